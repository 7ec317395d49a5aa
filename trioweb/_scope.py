"""The structured request scope: one HTTP request from routing to the last byte.

Theory of operation
-------------------
Every request runs inside one ``trio.CancelScope``, the request scope. When the
handler asks for a ``trio.Nursery`` the scope is that nursery's cancel scope,
so its child tasks live and die with the request. A disconnect cancels that
scope, and the handler and its children unwind the way Trio cancels anything.

This module is the thin Trio driver of the exchange; the decisions are made
elsewhere:

* ``_http_state``: the phase, the outcome and the body, as a pure table;
* ``_http_receive``: who drains ``receive()``, the lazy watcher, body reads;
* ``_http_send``: every response lowered, one send path;
* ``_pipeline``: hooks, binding, the handler, error handlers.

Watching for a disconnect needs a task that keeps draining ``receive()``, and
a task per request would cost more than the rest of the framework together,
so the watcher starts lazily: user code is driven by hand through
:func:`watched`, and code that finishes without ever yielding to Trio (the
common case for plain routes) never gets one, since it cannot be cancelled
anyway. At the first yield the watcher starts and the code continues, every
Trio trap forwarded unchanged. The request scope is entered *before* the first
step, so the cancel-scope stack stays properly nested. The one exception is a
handler whose own code has no ``await`` at all (``never_suspends``, decided at
decoration) on a route with nothing to await before it: it runs to its end at
once, outside any scope; a stream or file it returns is still sent inside one.
"""

from __future__ import annotations

import math
import sys
import time
import traceback
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

import trio

from ._endpoint import Endpoint, Hooks
from ._errors import HTTPError, IOCancelledError
from ._exchange import Exchange, Receive, Send
from ._files import FileResponse
from ._http_receive import Owner, PendingIO, Receiver
from ._http_send import incomplete_head, lower, lower_file, send_lowered, send_response, send_whole
from ._http_state import Effect, Event, HTTPState, Phase
from ._hypercorn import MULTIPLEXED
from ._outcome import DisconnectReason, Outcome
from ._pipeline import (
    AnyResponse,
    answer_status,
    request_data,
    run_pipeline,
)
from ._request import Request
from ._response import Response, error_response, to_response
from ._solve import Teardowns, call_with_dependencies

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


@types.coroutine
def watched(exchange: HTTPExchange, coro: Awaitable[Any]) -> Generator[Any, Any, Any]:
    """``await coro``, starting the exchange's watcher the first time it yields to Trio.

    Code that returns without ever yielding cannot be cancelled, so it needs
    no watcher: most plain handlers never pay for one. Trio resumes a task
    with ``coro.send(value)`` or ``coro.throw(error)``; both are passed on, so
    for the code inside this is exactly ``await``.
    """
    if not isinstance(coro, Coroutine):
        exchange.watch()
        return (yield from coro.__await__())
    try:
        trap = coro.send(None)
    except StopIteration as stop:
        return stop.value
    exchange.watch()
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


def overridden(exchange: Exchange) -> bool:
    """Whether ``app.dependency_overrides`` may replace the route's dependencies
    (stand-ins may suspend where the real ones cannot: they need a scope)."""
    return exchange.endpoint.dependencies is not None and bool(
        getattr(exchange.app, "dependency_overrides", None)
    )


class HTTPExchange(Exchange):
    """The scope of one HTTP request. Built by :class:`~trioweb.App` per request."""

    __slots__ = ("_io", "_receiver", "_request", "close_connection", "state", "teardowns")

    def __init__(
        self,
        app: object,
        hooks: Hooks,
        endpoint: Endpoint,
        params: dict[str, object],
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> None:
        super().__init__(app, hooks, endpoint, params, scope, receive, send)
        self.state = HTTPState(
            endpoint.max_body_size,
            endpoint.cancel_on_disconnect,
            scope.get("http_version") in MULTIPLEXED,  # watch_from_start(), inlined
        )
        self._io: PendingIO | None = None  # made when a read or a guarded send needs it
        self.close_connection = False
        self._receiver: Receiver | None = None
        self._request: Request | None = None
        self.teardowns: Teardowns | None = None  # a stream's: run after its last byte

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
        endpoint, state = self.endpoint, self.state
        handler_cancelled = False
        ended = False
        try:
            try:
                if not endpoint.needs_scope and not self.hooks.hooked and not overridden(self):
                    # The handler cannot suspend, so nothing can cancel it: it
                    # runs outside any scope, which would cost more than the
                    # rest of the request. Only a stream or a file still needs one.
                    ready = self._answer_now()
                    state.handle(Event.RETURNED)
                    if isinstance(ready, Response):
                        if state.outcome is None:  # else the handler called abort()
                            await send_whole(self, ready.status, ready.raw_headers(), ready.body)
                    else:
                        handler_cancelled = await self._in_scope(ready)
                else:
                    handler_cancelled = await self._in_scope(None)
                if state.outcome is not None and not state.peer_gone:
                    await self._answer_outcome()
            except Exception as error:
                await self._answer_failure(error)
            except BaseExceptionGroup as group:
                failures, others = group.split(Exception)
                if failures is not None:
                    await self._answer_failure(failures)
                if others is not None:
                    raise others from None
            ended = True
        finally:
            if not ended and self.shutting_down():
                # Cancelled from outside: the server's graceful period is over.
                handler_cancelled = True
                self.apply(state.on_shutdown())
            state.handle(Event.FINISH)
            if self._receiver is not None:
                self._receiver.release(abnormal=state.outcome is not None)
            # The receiver calls back into this exchange: let go of it, or the
            # pair is a reference cycle only the cyclic GC frees (a watcher
            # still draining keeps it alive until it ends).
            self._receiver = None
            self._request = None  # likewise: a Request points back at its exchange
            self.finish(state.outcome, handler_cancelled)

    async def _in_scope(self, ready: AnyResponse | None) -> bool:
        """Run the handler (unless its response is ``ready``) in the request scope.

        Returns:
            Whether the scope was cancelled.
        """
        endpoint = self.endpoint
        timeout = endpoint.timeout
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        try:
            with trio.CancelScope(deadline=deadline) as cancel_scope:
                self.cancel_scope = cancel_scope
                if endpoint.needs_nursery:
                    async with trio.open_nursery() as nursery:
                        self.nursery = nursery
                        await self._respond(ready)
                else:
                    await self._respond(ready)
        finally:
            self.cancel_scope = None  # left: what is sent now (a 504, a 500) is not bound by it
        if cancel_scope.cancelled_caught:
            # Nobody else cancels this scope without saying why: its deadline passed.
            self.state.set_outcome(Outcome.TIMED_OUT)
        return cancel_scope.cancelled_caught

    def _answer_now(self) -> AnyResponse:
        """Run a handler that cannot suspend (see ``never_suspends``) to its end, now."""
        handler = self.endpoint.handler
        try:
            endpoint = self.endpoint
            if endpoint.dependencies is not None:  # none of which can suspend either
                coro = call_with_dependencies(self)
            elif endpoint.getters or endpoint.plan.data_binders:
                kwargs = endpoint.injected(self)
                if endpoint.plan.data_binders:  # never a body: that needs a scope
                    kwargs.update(request_data(self, None))
                coro = handler(**kwargs)
            else:
                coro = handler()
            try:
                coro.send(None)
            except StopIteration as stop:
                result = stop.value
            else:
                coro.close()
                raise RuntimeError(f"{handler!r} suspended, though its code has no await")
        except HTTPError as error:
            return error_response(error)
        return to_response(result, self.endpoint.status_code)

    async def _respond(self, response: AnyResponse | None) -> None:
        """Run the handler, unless its ``response`` is given, and send that."""
        state = self.state
        if response is None:
            endpoint = self.endpoint
            try:
                if endpoint.plan.data_binders or self.hooks.hooked or endpoint.dependencies:
                    response = await watched(self, run_pipeline(self))
                else:  # nothing to await before the handler: no pipeline frame to keep
                    result = await watched(self, endpoint.handler(**endpoint.injected(self)))
                    response = to_response(result, endpoint.status_code)
            except HTTPError as error:
                response = error_response(error)
            state.handle(Event.RETURNED)
        teardowns, self.teardowns = self.teardowns, None
        if teardowns is not None:  # a stream or file may use them: they end after its last byte
            await teardowns.after(None if state.stopped else self._send_any(response))
        elif not state.stopped:  # else aborted, or the client is gone: discard
            await self._send_any(response)

    async def _answer_outcome(self) -> None:
        """After an abort, a 413 or a timeout: what the client gets, if anything."""
        state = self.state
        if state.phase is Phase.HANDLER:
            state.handle(Event.RETURNED)
        if state.response_started:
            return
        if state.outcome is Outcome.ABORTED:
            await send_lowered(self, incomplete_head(), incomplete=True)
            return
        if state.outcome is Outcome.TIMED_OUT:
            error = HTTPError(504, "the handler did not answer in time")
        elif state.outcome is Outcome.TOO_LARGE:
            error = HTTPError(413, f"the body exceeds {self.endpoint.max_body_size} bytes")
        elif state.outcome is Outcome.TOO_SLOW:
            # The rest of the body may still trickle in: the connection cannot be reused.
            self.close_connection = True
            error = HTTPError(408, "the request body arrived too slowly")
        else:
            return
        await self._send_framework_response(error)

    async def _send_framework_response(self, error: HTTPError) -> None:
        if self.hooks.hooked:
            # The hooks run in a scope of their own, which a disconnect cancels.
            with trio.CancelScope() as self.cancel_scope:
                response = await answer_status(self, error)
                await self._send_any(response)
        else:
            await send_response(self, error_response(error))

    async def _send_any(self, response: AnyResponse) -> None:
        if isinstance(response, Response):  # the common case, first
            await send_response(self, response)
        elif isinstance(response, FileResponse):
            request = self.get_request()
            await send_lowered(self, await lower_file(response, request.headers, request.method))
        else:
            await send_lowered(self, lower(response))

    async def _answer_failure(self, error: BaseException) -> None:
        state = self.state
        if isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        if isinstance(error, HTTPError) and not state.response_started:
            if state.phase is Phase.HANDLER:
                state.handle(Event.RETURNED)
            await send_response(self, error_response(error))
            return
        if state.peer_gone and isinstance(error, IOCancelledError):
            return  # the client left mid-body: a disconnect, already said so
        self.log_failure(error)
        state.set_outcome(Outcome.FAILED)
        if state.response_started or state.peer_gone:
            return
        if state.phase is Phase.HANDLER:
            state.handle(Event.RETURNED)
        if getattr(self.app, "debug", False):
            text = "".join(traceback.format_exception(error))
            await send_response(self, Response(text, 500))
        else:
            await send_response(self, error_response(HTTPError(500)))

    # ---- the drivers' side ----

    def abandoned(self) -> DisconnectReason | None:
        return self.state.reason

    def apply(self, effect: int) -> None:
        super().apply(effect)
        if effect & Effect.CANCEL_IO and self._io is not None:
            self._io.cancel(by_app=False)
        if effect & Effect.WAKE_READERS and self._receiver is not None:
            self._receiver.wake_readers()

    @property
    def io(self) -> PendingIO:
        """The body read or response write under way, which cancel_io() cancels."""
        if self._io is None:
            self._io = PendingIO(self.endpoint.min_response_rate, self.endpoint.min_request_rate)
        return self._io

    @property
    def receiver(self) -> Receiver:
        if self._receiver is None:
            self._receiver = Receiver(
                self.receive, self.scope, self.state, self.apply, self.io, self._expired
            )
        return self._receiver

    def _expired(self) -> bool:
        """Whether the route's deadline has passed (its scope was cancelled by it)."""
        scope = self.cancel_scope
        return scope is not None and scope.cancel_called and trio.current_time() >= scope.deadline

    @property
    def watched(self) -> bool:
        receiver = self._receiver
        return receiver is not None and receiver.owner is not Owner.NOBODY

    def watch(self) -> None:
        self.receiver.start_watcher()

    # ---- what Request reaches ----

    def get_request(self) -> Request:
        if self._request is None:
            self._request = Request._create(self)
        return self._request

    async def read_body(self) -> bytes:
        """The whole body (what ``Request.body()`` returns); see there for cancellation."""
        return await self.receiver.read_body()

    def cancel_io(self) -> None:
        if self._io is not None:
            self._io.cancel(by_app=True)

    def abort(self) -> None:
        self.apply(self.state.on_abort())

    def close_after_response(self) -> None:
        self.close_connection = True
