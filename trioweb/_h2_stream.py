"""One HTTP/2 stream on hypercorn's ``H2Protocol``: backpressure, and a reset of its own.

Theory of operation
-------------------
Every HTTP/2 request's scope gets an :class:`H2Stream` as its
``trioweb.connection`` extension (``_connection.ConnectionApp`` makes it), and
the app's ``send`` goes through :meth:`H2Stream.send`. What it changes, each
against a measured hypercorn 0.18 behaviour:

* **No backpressure.** ``StreamBuffer.push`` waits for the sending task's next
  pop, and a pop of nothing (a stream whose client grants no window) counts as
  drained. So a stream whose client stops granting window buffered without
  bound (1.5 GB in 4 s, measured) and its sends never blocked, so no deadline
  (the route's ``timeout``, the minimum response rate) could see the client
  was too slow. Now a body message's send that leaves the stream's buffer past
  hypercorn's high-water mark (two frames) returns once the buffer is empty: a
  stalled stream blocks its own sender, and only it, with at most that much
  and one chunk buffered. (Waiting after every chunk instead made a stream of
  200-byte chunks 7 times slower: below the mark, chunks go out together.)
* **A reset of one stream.** ASGI has no message for it. When trioweb abandons
  a stream (its write ran past its deadline), :meth:`H2Stream.abort` sends
  RST_STREAM (CANCEL) and forgets the stream the way hypercorn handles a
  client's reset, so the connection's other streams go on. Only when the
  connection's own writes are stuck (the client reads nothing at all) is the
  whole connection reset: nothing, not even a reset frame, would reach it.
* **An idle connection after a client's reset.** Hypercorn's ``StreamReset``
  path never reports the connection idle again, so a connection whose last
  stream the client reset was never closed by the keep-alive timeout, and
  held a graceful shutdown for its whole period (measured: 3 of 3 s). When
  the app returns on a stream closed that way, the stream's end is reported
  as hypercorn reports a normal end (:meth:`H2Stream.ended`).
* **The buffer of a reset stream.** A stream reset before its response was
  complete kept its buffer (its unsent bytes, if any) and its place in the
  send scheduler for as long as the connection lived: hypercorn's sending
  task drops a buffer only once it finds it complete. It is emptied, and
  hypercorn then drops it.
* **DATA after the response.** A client still uploading when the response was
  complete made hypercorn raise ``KeyError`` out of its event loop, which ended
  the connection with every stream on it. The protocol's stream table answers
  for such streams with one that drops the data; hypercorn then still credits
  the flow-control window, as it does for any data (:class:`_Streams`).

A stream reset by the client, or the connection ending, wakes nothing here:
hypercorn queues ``http.disconnect`` for the app, and trioweb's watcher
cancels the send waiting on the buffer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, final

import h2.errors
import h2.exceptions
import trio
from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.h2 import BUFFER_HIGH_WATER, H2Protocol
from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream

from ._hypercorn import Connection
from ._outcome import DisconnectReason

#: Seconds a stream's reset waits for the connection's writer to come free
#: before the writes count as stuck and the whole connection is reset.
RESET_GRACE = 1.0

Send = Callable[[Any], Awaitable[None]]


class _Gone:
    """What hypercorn finds for a stream it already forgot: it takes events and drops them."""

    async def handle(self, event: object) -> None:
        await trio.lowlevel.checkpoint()


_GONE = _Gone()


class _Streams(dict[int, Any]):
    """``H2Protocol.streams``, with data for a forgotten stream dropped instead of a KeyError.

    Only ``streams[id]`` (how hypercorn hands a stream its DATA) answers for a
    missing id; ``in``, ``pop`` and ``len`` see the real table.
    """

    def __missing__(self, stream_id: int) -> _Gone:
        return _GONE


def stream_of(send: Send) -> tuple[H2Protocol, HTTPStream] | None:
    """The H2Protocol and HTTPStream behind hypercorn's ASGI ``send`` (its bound ``app_send``)."""
    stream = getattr(send, "__self__", None)
    if not isinstance(stream, HTTPStream):
        return None
    protocol = getattr(stream.send, "__self__", None)
    return (protocol, stream) if isinstance(protocol, H2Protocol) else None


@final
class H2Stream:
    """One HTTP/2 request's stream: what its scope finds at ``trioweb.connection``.

    Args:
        connection: The connection the stream is on.
        protocol: Hypercorn's protocol for that connection.
        stream: Hypercorn's stream, whose ``app_send`` the app was given.
        send_lock: The connection's write lock (busy while a write is under way).
        abort_connection: Resets the whole connection, its client too slow (never blocks).
    """

    __slots__ = ("_abort_connection", "_connection", "_protocol", "_reason", "_send", "_stream")

    def __init__(
        self,
        connection: Connection,
        protocol: H2Protocol,
        stream: HTTPStream,
        send_lock: trio.Lock,
        abort_connection: Callable[[], None],
    ) -> None:
        self._connection = connection
        self._protocol = protocol
        self._stream = stream
        self._send = send_lock
        self._abort_connection = abort_connection
        self._reason: DisconnectReason | None = None
        if not isinstance(protocol.streams, _Streams):
            protocol.streams = _Streams(protocol.streams)

    def __deepcopy__(self, memo: dict[int, object]) -> H2Stream:
        return self  # a handle on the one stream (see ServerConnection.__deepcopy__)

    def disconnect_reason(self) -> DisconnectReason:
        """Why this stream lost its client: too slow if trioweb reset it, else the connection's."""
        return self._reason or self._connection.disconnect_reason()

    async def send(self, message: Any) -> None:
        """Hypercorn's ``send``; a body message past the high-water mark waits until it is sent.

        Cancellation:
            Waits on the client's flow-control window for this stream: a
            client that grants none holds it until cancelled (trioweb's
            guarded sends bound it by the route's deadlines).
        """
        await self._stream.app_send(message)
        if message["type"] == "http.response.body" and message.get("more_body"):
            buffer = self._protocol.stream_buffers.get(self._stream.stream_id)
            # Past hypercorn's own high-water mark (two frames): below it, small
            # chunks gather and go out together, as they do with hypercorn alone.
            if buffer is not None and len(buffer.buffer) >= BUFFER_HIGH_WATER:
                await buffer.drain()

    def abort(self) -> None:
        """Reset this stream (RST_STREAM, CANCEL): the client was too slow. Never blocks.

        The reset is written by a task of the connection's, which resets the
        whole connection instead if its writer stays busy for ``RESET_GRACE``.
        """
        self._reason = self._reason or DisconnectReason.CLIENT_TOO_SLOW
        with contextlib.suppress(h2.exceptions.ProtocolError):  # closed already
            self._protocol.connection.reset_stream(
                self._stream.stream_id, h2.errors.ErrorCodes.CANCEL
            )
        self._protocol.task_group.spawn(self._write_reset)

    async def _write_reset(self) -> None:
        with trio.move_on_after(RESET_GRACE) as waiting:
            async with self._send:  # free: the connection's writes are moving
                pass
        protocol, stream_id = self._protocol, self._stream.stream_id
        if protocol.closed:
            return  # the connection ended meanwhile: nothing to write, nobody to tell
        if waiting.cancelled_caught:
            self._abort_connection()
            return
        await protocol._flush()
        # As hypercorn handles a client's reset: the app is told, hypercorn forgets the stream.
        await protocol.stream_send(StreamClosed(stream_id=stream_id))
        await self._drop_buffer()

    async def _drop_buffer(self) -> None:
        # Closed (emptied) and its sending task woken for it, the buffer is
        # dropped by hypercorn's own path for a stream closed while it waited.
        buffer = self._protocol.stream_buffers.get(self._stream.stream_id)
        if buffer is not None:
            await buffer.close()
            await self._protocol._window_updated(self._stream.stream_id)

    async def ended(self) -> None:
        """The app returned: if the client had reset the stream, say the stream is over.

        Cancellation:
            A few checkpoints; cancelled, the connection is just not reported idle.
        """
        stream = self._stream
        if self._protocol.closed:
            return  # the connection ended: nothing to report, nothing to send on
        if stream.closed and stream.state is not ASGIHTTPState.CLOSED:
            # Hypercorn's reset path skipped these: the idle timer, the GOAWAY
            # at shutdown, and the buffer of a stream that had no window.
            await self._protocol.stream_send(StreamClosed(stream_id=stream.stream_id))
            await self._drop_buffer()
