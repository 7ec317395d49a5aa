"""The structured request scope: one HTTP request from routing to the last byte.

Theory of operation
-------------------
Every request runs inside one ``trio.CancelScope``, the request scope. When the
handler asks for a ``trio.Nursery`` the scope is that nursery's cancel scope,
so its child tasks live and die with the request. A disconnect cancels that
scope, and the handler and its children unwind the way Trio cancels anything.

Watching for a disconnect needs a task that keeps draining ``receive()``
(hypercorn queues ``http.disconnect`` there and nowhere else). A task per
request would cost more than the rest of the framework together, so the
watcher starts lazily: user code (hooks and handler) is driven by hand through
:func:`watched`, and code that finishes without ever yielding to Trio, the
common case for plain routes, never gets one: it cannot be cancelled anyway.
At the first yield the watcher starts and the code continues, every Trio trap
forwarded unchanged. The request scope is entered *before* the first step, so
the cancel-scope stack stays properly nested whatever the handler does. The
one exception is a handler whose own code has no ``await`` at all
(:func:`never_suspends`, decided at decoration) on a route with nothing to
await before it: it runs to its end at once, outside any scope, since nothing
could cancel it; a stream or file it returns is still sent inside one.

The body is read by the request's own task while no watcher runs (hypercorn
usually has it queued already, so it costs no checkpoint), and by the watcher
afterwards; either buffers it up to ``max_body_size`` (413 past it), and either
calls :meth:`HTTPExchange._on_disconnect` on ``http.disconnect``, which sets
the token, runs its callbacks and cancels the scope. The watcher is a Trio
system task that ends with the ``http.disconnect`` every server sends once the
response is complete or the app has returned; it never holds a request up.
Hypercorn sends ``http.disconnect`` after every *normal* response too, so one
that arrives once the final body message was handed over (``_Phase.SENT``) is
not an abort.

Known server gaps designed around: ``send()`` never raises after a disconnect,
and on HTTP/2 it can hang forever after a TCP close, so HTTP/2 requests always
get a watcher and every guarded send runs in a cancel scope a disconnect
cancels. Trio's memory channels never return a queued message in a cancelled
scope (hypercorn issue 210), which is why the watcher has no scope to cancel.
"""

from __future__ import annotations

import contextlib
import dis
import enum
import inspect
import logging
import math
import sys
import time
import traceback
import types
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

import trio

from ._binding import Source, extract
from ._errors import HTTPError, IOCancelledError
from ._files import FileResponse, plan_file
from ._request import Request
from ._response import (
    EventStream,
    Response,
    StreamingResponse,
    error_response,
    status_response,
    to_response,
)
from ._sse import ServerSentEvent, encode_comment, encode_event
from ._token import DisconnectToken

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from ._app import App, Endpoint
    from ._websocket import WebSocket

logger = logging.getLogger("trioweb")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Outcome(enum.Enum):
    """How a request ended (reported to the test client)."""

    COMPLETED = "completed"
    DISCONNECTED = "disconnected"
    TIMED_OUT = "timed out"
    ABORTED = "aborted"
    TOO_LARGE = "body too large"
    FAILED = "failed"


class _Phase(enum.IntEnum):
    HANDLER = 0  # the handler runs
    SENDING = 1  # the handler returned; the response is on its way
    SENT = 2  # the final body message was handed to the server


# What a suspension point compiles to, in every supported Python (a superset:
# the names of other versions' opcodes simply never occur).
_SUSPENDING_OPS = frozenset(
    {
        "YIELD_VALUE",
        "YIELD_FROM",
        "SEND",
        "GET_AWAITABLE",
        "GET_AITER",
        "GET_ANEXT",
        "BEFORE_ASYNC_WITH",
        "SETUP_ASYNC_WITH",
    }
)


def never_suspends(handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` is a coroutine function whose own code cannot suspend.

    Such a handler has no ``await``, ``async for`` or ``async with``: it runs
    to its end in one step, so nothing can cancel it and it needs no request
    scope. Anything else (wrappers, partials, classes) counts as suspending.
    """
    function = handler.__func__ if isinstance(handler, types.MethodType) else handler
    if not isinstance(function, types.FunctionType):
        return False
    code = function.__code__
    if not code.co_flags & inspect.CO_COROUTINE:
        return False
    return not any(op.opname in _SUSPENDING_OPS for op in dis.get_instructions(code))


@types.coroutine
def watched(exchange: HTTPExchange, coro: Awaitable[Any]) -> Generator[Any, Any, Any]:
    """``await coro``, starting the exchange's watcher the first time it yields to Trio.

    Code that returns without ever yielding cannot be cancelled, so it needs
    no watcher: most plain handlers never pay for one. Trio resumes a task
    with ``coro.send(value)`` or ``coro.throw(error)``; both are passed on, so
    for the code inside this is exactly ``await``.
    """
    if not isinstance(coro, Coroutine):
        exchange._start_watcher()
        return (yield from coro.__await__())
    try:
        trap = coro.send(None)
    except StopIteration as stop:
        return stop.value
    exchange._start_watcher()
    while True:
        try:
            value = yield trap
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as error:
            try:
                trap = coro.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                trap = coro.send(value)
            except StopIteration as stop:
                return stop.value
            finally:
                # Trio resumes a cancelled task with an Error outcome that
                # keeps the Cancelled, whose traceback keeps this frame: kept
                # here too, they would form a cycle only the cyclic GC frees.
                del value


def _closing(iterable: AsyncIterable[object]) -> contextlib.AbstractAsyncContextManager[object]:
    """Close an async generator on leaving, so its ``finally`` runs now, not at GC."""
    if hasattr(iterable, "aclose"):
        return contextlib.aclosing(iterable)  # type: ignore[type-var]
    return contextlib.nullcontext()


async def _aclose(iterable: AsyncIterable[object]) -> None:
    async with _closing(iterable):
        await trio.lowlevel.checkpoint()


class ExchangeBase:
    """What HTTP and WebSocket exchanges share: binding, the token, the outcome."""

    __slots__ = (
        "_finished",
        "_nursery",
        "_token",
        "app",
        "cancel_scope",
        "endpoint",
        "outcome",
        "params",
        "receive",
        "scope",
        "send",
        "started_at",
        "websocket",
    )

    def __init__(
        self,
        app: App,
        endpoint: Endpoint,
        params: dict[str, object],
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> None:
        self.app = app
        self.endpoint = endpoint
        self.params = params
        self.scope = scope
        self.receive = receive
        self.send = send
        self.cancel_scope: trio.CancelScope | None = None
        self.outcome: Outcome | None = None
        self.started_at = 0.0
        self.websocket: WebSocket | None = None
        self._nursery: trio.Nursery | None = None
        self._token: DisconnectToken | None = None
        self._finished = False

    def _bind(self) -> dict[str, object]:
        kwargs: dict[str, object] = {}
        for binder in self.endpoint.plan.binders:
            source = binder.source
            if source is Source.PATH:
                kwargs[binder.name] = self.params[binder.key]
            elif source is Source.REQUEST:
                kwargs[binder.name] = self.get_request()
            elif source is Source.TOKEN:
                kwargs[binder.name] = self.get_token()
            elif source is Source.NURSERY:
                kwargs[binder.name] = self._nursery
            elif source is Source.APP:
                kwargs[binder.name] = self.app
            elif source is Source.WEBSOCKET:
                kwargs[binder.name] = self.websocket
        return kwargs

    def get_request(self) -> Request:
        raise NotImplementedError  # only HTTP exchanges have a Request

    def _arguments(self, body: bytes | None) -> dict[str, object]:
        """The handler's keyword arguments: injected objects, then the request's data.

        Raises:
            HTTPError: 400, 415 or 422 (RequestValidationError) for bad data.
        """
        kwargs = self._bind()
        if self.endpoint.plan.data_binders:
            kwargs.update(self._data(body))
        return kwargs

    def _data(self, body: bytes | None) -> dict[str, object]:
        """The values of the query, header, cookie and body parameters (see ``extract``)."""
        return extract(
            self.endpoint.plan,
            query_string=self.scope.get("query_string", b""),
            raw_headers=self.scope.get("headers", ()),
            body=body,
        )

    def get_token(self) -> DisconnectToken:
        if self._token is None:
            self._token = DisconnectToken._create(self._describe(), self.app.callback_budget)
            if self.outcome is Outcome.DISCONNECTED:
                self._token._trip()
        return self._token

    def _describe(self) -> str:
        return f"{self.scope.get('method', 'WEBSOCKET')} {self.scope.get('path')}"

    def _finish(self, handler_cancelled: bool) -> None:
        """Dispose of the token, say how the request ended."""
        self._finished = True
        if self._token is not None:
            self._token._dispose()
        outcome = self.outcome or Outcome.COMPLETED
        if outcome is not Outcome.COMPLETED and outcome is not Outcome.FAILED:
            elapsed = time.perf_counter() - self.started_at
            if outcome is Outcome.DISCONNECTED and handler_cancelled:
                logger.info(
                    "%s cancelled: client disconnected after %.2fs", self._describe(), elapsed
                )
            elif outcome is Outcome.DISCONNECTED:
                logger.info(
                    "%s ran to completion after the client disconnected (%.2fs); "
                    "nothing more was sent",
                    self._describe(),
                    elapsed,
                )
            else:
                logger.info("%s ended after %.2fs: %s", self._describe(), elapsed, outcome.value)
        extensions = self.scope.get("extensions")
        if extensions:  # a test client (trioweb.testing) asks how the request ended
            report = extensions.get("trioweb.outcome")
            if report is not None:
                report["outcome"] = outcome.value
                report["handler_cancelled"] = handler_cancelled

    def _client_left(self) -> None:
        """The client went away: set the token, run its callbacks, cancel if the route says so."""
        if self.outcome is None:
            self.outcome = Outcome.DISCONNECTED
        if self._token is not None:
            self._token._trip()
        if self.endpoint.cancel_on_disconnect and self.cancel_scope is not None:
            self.cancel_scope.cancel()

    def abort(self) -> None:
        if self.outcome is None:
            self.outcome = Outcome.ABORTED
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()

    def _log_failure(self, error: BaseException) -> None:
        self.outcome = Outcome.FAILED
        logger.error(
            "%s failed after %.2fs",
            self._describe(),
            time.perf_counter() - self.started_at,
            exc_info=error,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._describe()}>"


class HTTPExchange(ExchangeBase):
    """The scope of one HTTP request. Built by :class:`~trioweb.App` per request."""

    __slots__ = (
        "_body",
        "_body_complete",
        "_body_event",
        "_close_connection",
        "_io_cancelled",
        "_io_scope",
        "_phase",
        "_reading",
        "_request",
        "_watcher_wanted",
        "_watching",
        "response_started",
    )

    def __init__(
        self,
        app: App,
        endpoint: Endpoint,
        params: dict[str, object],
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> None:
        super().__init__(app, endpoint, params, scope, receive, send)
        self.response_started = False
        self._phase = _Phase.HANDLER
        self._request: Request | None = None
        self._io_scope: trio.CancelScope | None = None
        self._io_cancelled = False
        self._body: bytes | bytearray | None = None
        self._body_complete = False
        self._body_event: trio.Event | None = None
        self._reading = False
        self._watcher_wanted = False
        self._watching = False
        self._close_connection = False

    # ---- the request's life ----

    async def run(self) -> None:
        """Run the handler and send its response.

        Cancellation:
            A disconnect before the response is complete cancels the handler
            and its nursery, and nothing is sent. The route's ``timeout``
            cancels them too and answers 504. A cancellation from outside
            (server shutdown) propagates unchanged.
        """
        self.started_at = time.perf_counter()
        endpoint = self.endpoint
        response: Response | None = None
        handler_cancelled = False
        try:
            try:
                ready = None
                if not endpoint.needs_scope and not self.app._hooked:
                    # The handler cannot suspend, so nothing can cancel it: it
                    # runs outside any scope, which would cost more than the
                    # rest of the request. Only a stream or a file still needs one.
                    ready = self._answer_now()
                if isinstance(ready, Response):
                    self._phase = _Phase.SENDING
                    if self.outcome is None:  # else the handler called abort()
                        await self._send_response(ready)
                else:
                    deadline = (
                        math.inf
                        if endpoint.timeout is None
                        else trio.current_time() + endpoint.timeout
                    )
                    with trio.CancelScope(deadline=deadline) as cancel_scope:
                        self.cancel_scope = cancel_scope
                        if endpoint.needs_nursery:
                            async with trio.open_nursery() as nursery:
                                self._nursery = nursery
                                await self._respond(ready)
                        else:
                            await self._respond(ready)
                    handler_cancelled = cancel_scope.cancelled_caught
                    if handler_cancelled and self.outcome is None:
                        # Nobody else cancels this scope without saying why: its deadline passed.
                        self.outcome = Outcome.TIMED_OUT
                if self.outcome is not None:
                    response = self._response_for_outcome()
            except Exception as error:
                response = self._response_after_error(error)
            except BaseExceptionGroup as group:
                failures, others = group.split(Exception)
                if failures is not None:
                    response = self._response_after_error(failures)
                if others is not None:
                    raise others from None
            if self.outcome is Outcome.ABORTED and not self.response_started:
                await self._send_incomplete_head()
            elif response is not None and not self.response_started:
                await self._send_response(response)
        finally:
            self._finish(handler_cancelled)

    def _answer_now(self) -> Response | StreamingResponse | FileResponse:
        """Run a handler that cannot suspend (see :func:`never_suspends`) to its end, now."""
        handler = self.endpoint.handler
        try:
            coro = handler(**self._arguments(None))
            try:
                coro.send(None)
            except StopIteration as stop:
                return to_response(stop.value)
            coro.close()
            raise RuntimeError(f"{handler!r} suspended, though its code has no await")
        except HTTPError as error:
            return error_response(error)

    async def _respond(
        self, response: Response | StreamingResponse | FileResponse | None = None
    ) -> None:
        """Run the handler, unless its ``response`` is given, and send that."""
        if response is None:
            endpoint = self.endpoint
            try:
                if endpoint.plan.needs_body or self.app._hooked:
                    result = await watched(self, self._pipeline())
                else:  # nothing to await before the handler: no pipeline frame to keep
                    result = await watched(self, endpoint.handler(**self._arguments(None)))
                response = to_response(result)
            except HTTPError as error:
                response = error_response(error)
        self._phase = _Phase.SENDING
        if self.outcome is not None:
            return  # the client is gone (cancel_on_disconnect=False): discard
        if isinstance(response, StreamingResponse):
            await self._send_stream(response)
        elif isinstance(response, FileResponse):
            await self._send_file(response)
        else:
            await self._send_response(response)

    async def _pipeline(self) -> object:
        """Binding from the request's data, hooks, the handler and error handlers.

        Driven by :func:`watched` as a whole: the first time any of it yields
        to Trio, the watcher starts (a direct body read defers it).
        """
        app, plan = self.app, self.endpoint.plan
        try:
            kwargs = self._arguments(await self.read_body() if plan.needs_body else None)
            for before in app._before_request:
                early = await before(self.get_request())
                if early is not None:
                    result: object = early
                    break
            else:
                result = await self.endpoint.handler(**kwargs)
        except Exception as error:
            handler = app._error_handler_for(error)
            if handler is None:
                raise
            result = await handler(self.get_request(), error)
        response = to_response(result)
        for after in app._after_request:
            replaced = await after(self.get_request(), response)
            if replaced is not None:
                response = to_response(replaced)
        return response

    def _response_for_outcome(self) -> Response | None:
        if self.outcome is Outcome.TIMED_OUT:
            return status_response(504, "the handler did not answer in time")
        if self.outcome is Outcome.TOO_LARGE:
            return status_response(413, f"the body exceeds {self.endpoint.max_body_size} bytes")
        return None

    def _response_after_error(self, error: BaseException) -> Response | None:
        if isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            only = error.exceptions[0]
            if isinstance(only, HTTPError) and not self.response_started:
                return error_response(only)
        self._log_failure(error)
        if self.app.debug:
            return Response("".join(traceback.format_exception(error)), 500)
        return status_response(500)

    # ---- sending ----

    async def _send_response(self, response: Response) -> None:
        headers = response.raw_headers()
        if self._close_connection and not response.close_connection:
            headers.append((b"connection", b"close"))
        body = b"" if self.scope["method"] == "HEAD" else response.body
        start = {"type": "http.response.start", "status": response.status, "headers": headers}
        final = {"type": "http.response.body", "body": body}
        if not self._watching and self.scope.get("http_version", "1.1") in ("2", "3"):
            self._start_watcher()
        self.response_started = True
        if not self._watching:
            await self.send(start)
            self._phase = _Phase.SENT
            await self.send(final)
        else:
            await self.guarded_send(start, final)

    async def _send_stream(self, response: StreamingResponse) -> None:
        self._start_watcher()  # a stream blocks: its client must be watched
        headers = response.raw_headers()
        if self._close_connection:
            headers.append((b"connection", b"close"))
        self.response_started = True
        await self.guarded_send(
            {"type": "http.response.start", "status": response.status, "headers": headers}
        )
        if self.scope["method"] == "HEAD":
            await _aclose(response.content)
        elif isinstance(response, EventStream):
            await self._send_events(response)
        else:
            async with _closing(response.content):
                async for chunk in response.content:
                    await self._send_chunk(chunk)
                    if self.outcome is not None:
                        break
        if self.outcome is None:
            await self.guarded_send({"type": "http.response.body", "body": b""})

    async def _send_file(self, response: FileResponse) -> None:
        try:
            stat = await trio.Path(response.path).stat()
        except (FileNotFoundError, NotADirectoryError):
            await self._send_response(status_response(404))
            return
        plan = plan_file(response, stat.st_size, stat.st_mtime_ns, self.get_request().headers)
        if self._close_connection:
            plan.headers.append((b"connection", b"close"))
        self._start_watcher()  # reading a file blocks: its client must be watched
        self.response_started = True
        await self.guarded_send(
            {"type": "http.response.start", "status": plan.status, "headers": plan.headers}
        )
        remaining = plan.length if self.scope["method"] != "HEAD" else 0
        if remaining:
            async with await trio.open_file(response.path, "rb") as file:
                await file.seek(plan.start)
                while remaining > 0 and self.outcome is None:
                    chunk = await file.read(min(response.chunk_size, remaining))
                    if not chunk:
                        break  # the file shrank meanwhile: the client sees a short body
                    remaining -= len(chunk)
                    await self._send_chunk(chunk)
        if self.outcome is None:
            await self.guarded_send({"type": "http.response.body", "body": b""})

    async def _send_events(self, stream: EventStream) -> None:
        # A producer task feeds a rendezvous channel, so waiting for the next
        # event can time out (keep-alive) without cancelling the user's
        # generator mid-await, and no cancel scope sits around a yield.
        to_sender, events = trio.open_memory_channel[ServerSentEvent | str](0)

        async def produce() -> None:
            async with to_sender, _closing(stream.events):
                async for event in stream.events:
                    await to_sender.send(event)

        interval = math.inf if stream.keepalive is None else stream.keepalive
        async with trio.open_nursery() as nursery, events:
            nursery.start_soon(produce)
            while self.outcome is None:
                with trio.move_on_after(interval) as idle:
                    try:
                        event = await events.receive()
                    except trio.EndOfChannel:
                        break
                if idle.cancelled_caught:
                    await self._send_chunk(encode_comment("keep-alive"))
                elif isinstance(event, ServerSentEvent):
                    await self._send_chunk(encode_event(event))
                else:
                    await self._send_chunk(encode_event(ServerSentEvent(str(event))))
            nursery.cancel_scope.cancel()

    async def _send_chunk(self, chunk: bytes | str) -> None:
        if isinstance(chunk, str):
            chunk = chunk.encode()
        elif not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"a stream yielded {type(chunk).__name__}; yield bytes or str")
        await self.guarded_send(
            {"type": "http.response.body", "body": bytes(chunk), "more_body": True}
        )

    async def _send_incomplete_head(self) -> None:
        # Hypercorn answers 500 by itself to an app that ends before
        # http.response.start, and ASGI has no message to reset a connection, so
        # the only incomplete exchange an app can produce is a head whose
        # promised body never comes: the client sees the head, then FIN.
        self.response_started = True
        await self.guarded_send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [(b"content-length", b"1"), (b"connection", b"close")],
            }
        )

    async def guarded_send(self, *messages: dict[str, Any]) -> None:
        """Send ``messages`` in order so that a disconnect or ``cancel_io()`` can interrupt them.

        Handing over the final body message moves the exchange to ``_Phase.SENT``.

        Cancellation:
            Interrupted by a disconnect (silently: there is nobody to send to)
            and by :meth:`cancel_io` (raises :class:`~trioweb.IOCancelledError`).
        """
        if self.outcome is Outcome.DISCONNECTED:
            await trio.lowlevel.checkpoint()
            return
        # One scope for all of them: entering one costs more than a send.
        with trio.CancelScope() as self._io_scope:
            for message in messages:
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    self._phase = _Phase.SENT
                await self.send(message)
        self._io_scope = None
        await trio.lowlevel.checkpoint_if_cancelled()
        self._raise_if_io_cancelled("response write")

    # ---- the watcher and the body ----

    async def _watch(self) -> None:
        # A system task with no cancel scope of its own: it ends with the
        # http.disconnect that every server sends once the response is complete
        # or the app has returned, so it never holds the request up.
        try:
            while self._on_receive(await self.receive()):
                pass
        except Exception:
            # Never raise: in a system task an error would end the whole run.
            logger.exception("trioweb's disconnect watcher of %r failed", self)
            self._on_disconnect()

    def _on_receive(self, message: dict[str, Any]) -> bool:
        """Handle one message from ``receive()``; False once there will be no more."""
        kind = message.get("type")
        if kind == "http.disconnect":
            self._on_disconnect()
            return False
        if kind == "http.request":
            self._on_body(message)
        return True

    def _on_body(self, message: dict[str, Any]) -> None:
        if self.outcome is Outcome.TOO_LARGE:
            # Keep draining, discarding: hypercorn's reader would block on a
            # full queue otherwise, and it closes the connection after the 413.
            return
        if self._body is None:
            if not message.get("more_body", False):  # the whole body at once: no copy
                self._body = message.get("body", b"")
                self._check_body_complete(message)
                return
            self._body = bytearray()
        self._body += message.get("body", b"")
        self._check_body_complete(message)

    def _check_body_complete(self, message: dict[str, Any]) -> None:
        assert self._body is not None
        if len(self._body) > self.endpoint.max_body_size:
            if self.outcome is None:
                self.outcome = Outcome.TOO_LARGE
            self._body = None
            self._wake_body_readers()
            if self.cancel_scope is not None:
                self.cancel_scope.cancel()
        elif not message.get("more_body", False):
            self._body_complete = True
            self._wake_body_readers()

    def _on_disconnect(self) -> None:
        if self._finished or self._phase is _Phase.SENT or self.outcome is Outcome.DISCONNECTED:
            return  # the normal end of a request, or already handled
        self._client_left()
        # Pending I/O is pointless with the client gone, whatever the route's policy.
        self._wake_body_readers()
        if self._io_scope is not None:
            self._io_scope.cancel()

    def _wake_body_readers(self) -> None:
        if self._body_event is not None:
            self._body_event.set()

    async def read_body(self) -> bytes:
        """The whole body (what ``Request.body()`` returns); see there for cancellation."""
        if self._body_complete:
            await trio.lowlevel.checkpoint()
        elif not self._watching and not self._reading:
            await self._read_body_directly()
        else:
            self._start_watcher()
            if self._body_event is None:
                self._body_event = trio.Event()
            with trio.CancelScope() as self._io_scope:
                await self._body_event.wait()
            self._io_scope = None
            await self._finish_io("body read")
        return bytes(self._body or b"")

    def _start_watcher(self) -> None:
        if self._watching:
            return
        if self._reading:
            # Two tasks draining receive() would steal each other's messages:
            # the direct reader starts the watcher when it is done.
            self._watcher_wanted = True
            return
        self._watching = True
        trio.lowlevel.spawn_system_task(self._watch, name="trioweb disconnect watcher")

    async def _read_body_directly(self) -> None:
        # No watcher yet: this task drains receive() itself, and sees a
        # disconnect itself, which spares most requests with a body a task.
        # Hypercorn's receive() is a trio MemoryReceiveChannel's: what it has
        # already queued (usually the whole body) is taken without a
        # checkpoint, through the channel's receive_nowait().
        receive_nowait = getattr(getattr(self.receive, "__self__", None), "receive_nowait", None)
        if receive_nowait is not None:
            while not self._body_complete and self.outcome is None:
                try:
                    message = receive_nowait()
                except trio.WouldBlock:
                    break
                self._on_receive(message)
            if self._body_complete or self.outcome is not None:
                await self._finish_io("body read")
                return
        self._reading = True
        try:
            with trio.CancelScope() as self._io_scope:
                while not self._body_complete and self.outcome is None:
                    self._on_receive(await self.receive())
        finally:
            self._reading = False
            self._io_scope = None
            if self._watcher_wanted:
                self._start_watcher()
        await self._finish_io("body read")

    async def _finish_io(self, what: str) -> None:
        # A disconnect or an oversized body also cancels the request scope:
        # let that cancellation, not an IOCancelledError, unwind the handler.
        await trio.lowlevel.checkpoint_if_cancelled()
        self._raise_if_io_cancelled(what)
        if not self._body_complete:
            raise IOCancelledError("the client disconnected before sending the whole body")

    def _raise_if_io_cancelled(self, what: str) -> None:
        if self._io_cancelled:
            self._io_cancelled = False
            raise IOCancelledError(f"the pending {what} was cancelled by cancel_io()")

    # ---- what Request reaches ----

    def get_request(self) -> Request:
        if self._request is None:
            self._request = Request._create(self)
        return self._request

    def cancel_io(self) -> None:
        if self._io_scope is not None:
            self._io_cancelled = True
            self._io_scope.cancel()

    def close_after_response(self) -> None:
        self._close_connection = True
