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
from ._http_state import Effect, HTTPState
from ._hypercorn import connection_of, watch_from_start
from ._response import EventStream, Response, StreamingResponse, status_response
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
    io: PendingIO
    scope: dict[str, Any]
    close_connection: bool

    @property
    def send(self) -> Callable[[dict[str, Any]], Awaitable[None]]: ...
    @property
    def watched(self) -> bool: ...
    def watch(self) -> None: ...
    def apply(self, effect: Effect) -> None: ...


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


async def guarded_send(side: SendSide, message: dict[str, Any]) -> bool:
    """Send ``message`` in the exchange's pending-I/O scope; False once it has stopped.

    The write gets until the route's minimum response rate says it must be
    done (:class:`~trioweb._data_rate.WriteClock`); past that the client is
    too slow: its connection is closed and the request abandoned.

    Cancellation:
        Interrupted by a disconnect (silently: there is nobody to send to)
        and by ``cancel_io()`` (raises :class:`~trioweb.IOCancelledError`).
    """
    state, io = side.state, side.io
    if state.on_send(message) & Effect.SEND:
        deadline = io.clock.deadline(trio.current_time(), len(message.get("body", b"")))
        with trio.CancelScope(deadline=deadline) as scope:
            io.scope = scope
            await side.send(message)
        if io.expired(scope):
            # Below the minimum response rate. Over HTTP/1.1 the connection
            # layer already cut the write at this deadline (see _connection);
            # over HTTP/2 the stream waits on flow control: close it all.
            connection = connection_of(side.scope)
            if connection is not None:
                connection.abort()
            side.apply(state.on_too_slow())
        elif not scope.cancelled_caught:
            io.sent(state)
        await io.finish("response write")
    else:
        await trio.lowlevel.checkpoint()
    return not side.state.stopped


async def send_lowered(side: SendSide, lowered: Lowered, *, incomplete: bool = False) -> None:
    """Send a lowered response: the head, then the body or what the pump makes.

    Args:
        incomplete: Send the head only, and no end of the body (``abort()``).

    Cancellation:
        See :func:`guarded_send`. The request scope around it is what a
        disconnect or the route's deadline cancels.
    """
    if not side.watched and watch_from_start(side.scope):
        side.watch()  # HTTP/2 sends can hang on a gone client: watch them
    headers = lowered.headers
    if side.close_connection and (b"connection", b"close") not in headers:
        headers = [*headers, (b"connection", b"close")]
    head = {"type": "http.response.start", "status": lowered.status, "headers": headers}
    head_only = side.scope["method"] == "HEAD" or incomplete
    if lowered.pump is None or head_only:
        if lowered.close is not None:
            await lowered.close()
        final = {"type": "http.response.body", "body": b"" if head_only else lowered.body}
        state = side.state
        if side.watched:
            # Sent even after an outcome (a 413, a 504): only a gone client stops them.
            await guarded_send(side, head)
            if not incomplete:
                await guarded_send(side, final)
        else:
            # Unwatched, nothing can interrupt these sends: no scope to pay for.
            if state.on_send(head) & Effect.SEND:
                await side.send(head)
            if not incomplete and state.on_send(final) & Effect.SEND:
                await side.send(final)
                side.io.sent(state)
        return
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
