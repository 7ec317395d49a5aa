"""The send side of an HTTP exchange: every response lowered, then one send path.

Every response (plain, stream, SSE, file, error, the incomplete head of
``abort()``) is first lowered to a :class:`Lowered`: a status, headers, and
either the body's bytes or a *pump*, an async function that produces the body
chunk by chunk through ``send_chunk``. Then :func:`send_lowered` sends it, so
the rules are each written once, here:

* HEAD gets the head only; a pump is not run and its source is closed.
* ``Connection: close`` is added when the app asked to close after the response.
* Every message goes through :meth:`HTTPState.on_send` first, which moves the
  phase (the final body message makes the response complete) and skips sends
  to a client that is gone.
* A send that may block (a stream, a file, SSE, any send once the exchange is
  watched) runs inside the exchange's :class:`PendingIO` scope, which a
  disconnect and ``cancel_io()`` cancel.
* Each such send has a deadline from the route's minimum response rate; a
  client below it is abandoned as too slow.
* A pump stops as soon as ``send_chunk`` says the exchange stopped (an outcome
  was set, or the client left).

What a handler returns most often (a ``str``, ``dict`` or ``list``) is lowered
without making a Response at all (:func:`send_result`, ``lower_value``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, Protocol

import attrs
import trio

from ._files import FileResponse, plan_file
from ._http_receive import PendingIO
from ._http_state import RETURNED, WHOLE, Effect, Event, HTTPState
from ._hypercorn import connection_of
from ._outcome import DisconnectReason
from ._response import (
    EventStream,
    Response,
    StreamingResponse,
    lower_value,
    status_response,
    to_response,
)
from ._sse import ServerSentEvent, encode_comment, encode_event

SendChunk = Callable[[bytes | str], Awaitable[bool]]
Pump = Callable[[SendChunk], Awaitable[None]]


@attrs.frozen
class Lowered:
    """A response as the server sees it."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    pump: Pump | None = None
    #: Closes the pump's source without running it (for HEAD).
    close: Callable[[], Awaitable[None]] | None = None


class SendSide(Protocol):
    """What the send path needs of an exchange."""

    state: HTTPState

    @property
    def io(self) -> PendingIO: ...

    scope: dict[str, Any]
    close_connection: bool
    cancel_scope: trio.CancelScope | None

    @property
    def send(self) -> Callable[[dict[str, Any]], Awaitable[None]]: ...
    @property
    def watched(self) -> bool: ...
    def watch(self) -> None: ...
    def apply(self, effect: int) -> None: ...


def _closing(iterable: AsyncIterable[object]) -> contextlib.AbstractAsyncContextManager[object]:
    """Close an async generator on leaving, so its ``finally`` runs now, not at GC."""
    if hasattr(iterable, "aclose"):
        return contextlib.aclosing(iterable)  # type: ignore[type-var]
    return contextlib.nullcontext()


def _stream_pump(content: AsyncIterable[Any]) -> tuple[Pump, Callable[[], Awaitable[None]]]:
    async def pump(send_chunk: SendChunk) -> None:
        async with _closing(content):
            async for chunk in content:
                if not await send_chunk(chunk):
                    break

    async def close() -> None:
        async with _closing(content):
            await trio.lowlevel.checkpoint()

    return pump, close


def _events_pump(stream: EventStream) -> Pump:
    async def pump(send_chunk: SendChunk) -> None:
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
            going = True
            while going:
                with trio.move_on_after(interval) as idle:
                    try:
                        event = await events.receive()
                    except trio.EndOfChannel:
                        break
                if idle.cancelled_caught:
                    chunk = encode_comment("keep-alive")
                elif isinstance(event, ServerSentEvent):
                    chunk = encode_event(event)
                else:
                    chunk = encode_event(ServerSentEvent(str(event)))
                going = await send_chunk(chunk)
            nursery.cancel_scope.cancel()

    return pump


def lower(response: Response | StreamingResponse) -> Lowered:
    """A response that needs no I/O to describe, lowered."""
    if isinstance(response, Response):
        return Lowered(response.status, response.raw_headers(), response.body)
    headers = response.raw_headers()
    pump, close = _stream_pump(response.content)
    if isinstance(response, EventStream):
        pump = _events_pump(response)
    return Lowered(response.status, headers, pump=pump, close=close)


async def lower_file(response: FileResponse, request_headers: Any, method: str) -> Lowered:
    """A file response, lowered: its plan (304, 206, 416...) and a pump reading it.

    Cancellation:
        A checkpoint (the ``stat``); the pump reads in Trio's worker threads.
    """
    try:
        stat = await trio.Path(response.path).stat()
    except (FileNotFoundError, NotADirectoryError):
        return lower(status_response(404))
    plan = plan_file(response, stat.st_size, stat.st_mtime_ns, request_headers, method=method)

    async def pump(send_chunk: SendChunk) -> None:
        remaining = plan.length
        async with await trio.open_file(response.path, "rb") as file:
            await file.seek(plan.start)
            while remaining > 0:
                chunk = await file.read(min(response.chunk_size, remaining))
                if not chunk:
                    break  # the file shrank meanwhile: the client sees a short body
                remaining -= len(chunk)
                if not await send_chunk(chunk):
                    break

    return Lowered(plan.status, plan.headers, pump=pump if plan.length else None)


def incomplete_head() -> Lowered:
    """What ``abort()`` leaves the client: a head whose promised body never comes.

    Hypercorn answers 500 by itself to an app that ends before
    ``http.response.start``, and ASGI has no message to reset a connection, so
    this is the only incomplete exchange an app can produce: the head, then FIN.
    """
    return Lowered(500, [(b"content-length", b"1"), (b"connection", b"close")])


async def guarded_send(side: SendSide, *messages: dict[str, Any]) -> bool:
    """Send ``messages`` in the exchange's pending-I/O scope; False once it has stopped.

    One scope for all of them: entering one costs more than a send.

    The write gets until the route's minimum response rate says it must be
    done (:class:`~trioweb._data_rate.WriteClock`); past that the client is
    too slow: its connection is closed and the request abandoned.

    Cancellation:
        Interrupted by a disconnect (silently: there is nobody to send to)
        and by ``cancel_io()`` (raises :class:`~trioweb.IOCancelledError`).
    """
    state, io = side.state, side.io
    size = sum(len(message.get("body", b"")) for message in messages)
    # The route's deadline too: the shield hides it from the connection layer,
    # which bounds hypercorn's shielded write by the writer's deadline.
    route_deadline = side.cancel_scope.deadline if side.cancel_scope is not None else math.inf
    deadline = min(io.clock.deadline(trio.current_time(), size), route_deadline)
    # Shielded: only this scope's own cancel (a disconnect, cancel_io(), the
    # write's deadline) stops a send, never the request scope's. Hypercorn runs
    # its own bookkeeping inside our send when the socket fails (it queues
    # http.disconnect from there); in an already-cancelled scope that put
    # would be cancelled and the watcher would wait forever for it.
    with trio.CancelScope(shield=True, deadline=deadline) as scope:
        io.scope = scope
        for message in messages:
            if state.on_send(message) & Effect.SEND:
                await side.send(message)
    if io.expired(scope):
        # Cut at its deadline. Over HTTP/1.1 the connection layer already cut
        # the write (see _connection); over HTTP/2 the stream waits on flow
        # control: it is reset, and the connection's other streams go on
        # (see _h2_stream). Either way the client is gone, and it is said now,
        # not when (or if) the server's disconnect comes: at the route's
        # deadline the request timed out, its token set with the write's
        # reason; else the client was below its minimum rate.
        connection = connection_of(side.scope)
        if connection is not None:
            connection.abort()
        if trio.current_time() < route_deadline:
            side.apply(state.on_too_slow())
        else:
            side.apply(state.on_disconnect(DisconnectReason.CLIENT_TOO_SLOW, deadline_passed=True))
    elif not scope.cancelled_caught:
        io.sent(state)
    await io.finish("response write")
    return not state.stopped


def _watched(side: SendSide) -> bool:
    """Whether the exchange is watched, after watching it if its sends can hang."""
    if side.watched:
        return True
    if side.state.multiplexed:
        side.watch()  # HTTP/2 sends can hang on a gone client: watch them first
        return True
    return False


def _head(side: SendSide, status: int, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    _watched(side)
    if side.close_connection and (b"connection", b"close") not in headers:
        headers = [*headers, (b"connection", b"close")]
    return {"type": "http.response.start", "status": status, "headers": headers}


async def send_whole(
    side: SendSide,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    *,
    incomplete: bool = False,
) -> None:
    """Send a response whose body is all there: the head, then the body at once.

    Args:
        incomplete: Send the head only, and no end of the body (``abort()``).

    Cancellation:
        See :func:`guarded_send`; unwatched, nothing interrupts these sends.
    """
    watched = _watched(side)
    if side.close_connection and (b"connection", b"close") not in headers:
        headers = [*headers, (b"connection", b"close")]
    head = {"type": "http.response.start", "status": status, "headers": headers}
    head_only = incomplete or side.scope["method"] == "HEAD"
    final = {"type": "http.response.body", "body": b"" if head_only else body}
    if watched:
        # Sent even after an outcome (a 413, a 504): only a gone client stops them.
        await (guarded_send(side, head) if incomplete else guarded_send(side, head, final))
        return
    # Unwatched, nothing can interrupt these sends: no scope to pay for.
    state = side.state
    if incomplete:
        if state.on_send_event(Event.HEAD):
            await side.send(head)
    elif state.on_send_event(WHOLE):
        await side.send(head)
        await side.send(final)


async def send_result(
    side: SendSide, result: object, status: int | None
) -> StreamingResponse | FileResponse | None:
    """Send what a handler returned, when it is all there; the response chosen.

    Args:
        result: The handler's return value.
        status: The route's ``status_code`` (None: the default).

    Returns:
        A stream or file response, unsent: its body takes time, so the
        caller sends it in the request scope.

    Raises:
        TypeError, ValueError: As :func:`~trioweb._response.to_response`.

    Cancellation:
        See :func:`send_whole`.
    """
    state = side.state
    lowered = lower_value(result) if status is None else None
    if lowered is not None:  # a str, dict or list: no Response to make
        state.handle(RETURNED)
        if state.outcome is None:  # else the handler called abort()
            await send_whole(side, 200, *lowered)
        return None
    response = to_response(result, status)
    state.handle(RETURNED)
    if not isinstance(response, Response):
        return response
    if state.outcome is None:
        await send_whole(side, response.status, response.raw_headers(), response.body)
    return None


async def send_response(side: SendSide, response: Response) -> None:
    """Send a complete :class:`~trioweb.Response` (the common case, with nothing to lower)."""
    await send_whole(side, response.status, response.raw_headers(), response.body)


async def send_lowered(side: SendSide, lowered: Lowered, *, incomplete: bool = False) -> None:
    """Send a lowered response: the head, then the body or what the pump makes.

    Args:
        incomplete: Send the head only, and no end of the body (``abort()``).

    Cancellation:
        See :func:`guarded_send`. The request scope around it is what a
        disconnect or the route's deadline cancels.
    """
    if lowered.pump is None or incomplete or side.scope["method"] == "HEAD":
        if lowered.close is not None:
            await lowered.close()
        await send_whole(side, lowered.status, lowered.headers, lowered.body, incomplete=incomplete)
        return
    head = _head(side, lowered.status, lowered.headers)
    side.watch()  # a body produced over time blocks: its client must be watched

    async def send_chunk(chunk: bytes | str) -> bool:
        if isinstance(chunk, str):
            chunk = chunk.encode()
        elif not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"a stream yielded {type(chunk).__name__}; yield bytes or str")
        message = {"type": "http.response.body", "body": bytes(chunk), "more_body": True}
        return await guarded_send(side, message)

    if await guarded_send(side, head):
        await lowered.pump(send_chunk)
        if not side.state.stopped:
            await guarded_send(side, {"type": "http.response.body", "body": b""})
