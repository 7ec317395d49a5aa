"""One connection on hypercorn's TCPServer: the server side of ``trioweb.connection``.

Theory of operation
-------------------
Every connection gets a :class:`ServerConnection`, which each of its scopes
finds at ``scope["extensions"]["trioweb.connection"]`` (:class:`ConnectionApp`
puts it there). Through it the exchange learns why a client went away
(:meth:`ServerConnection.disconnect_reason`) and can close the connection
under a write it cannot interrupt (:meth:`ServerConnection.abort`). It knows
because :class:`TCPServer`, hypercorn's with three methods replaced, tells it
every read and write that failed, and how.

What the replaced methods change, each against a measured hypercorn behaviour:

* ``protocol_send``: hypercorn shields ``send_all``, so a write to a client that
  never reads held its task for ever. The shield stays (a cancelled task's
  last write still goes out whole), but the writing task's *deadlines* now
  bound the write: the exchange's minimum-rate deadline, the route's
  ``timeout``, the shutdown's. A write cut at one is not resumable: the
  connection is reset, and the client counted too slow.
* ``_read_data``: while h11 is paused (a request is being answered and bytes
  wait behind it: a pipelined request, or the stray CRLF RFC 9112 §2.2 lets
  clients send), hypercorn stopped reading, so it never saw the client's FIN
  and the handler ran to its end for nobody. Now the socket is still read
  while paused (:class:`_ReadWhilePaused`); what arrives is kept for h11, and
  an end of stream ends the connection, as it does when h11 is not paused.
* A failed write in a writer already cancelled (cut at its deadline):
  hypercorn's handling of it (closing its streams, telling the app) runs in
  the connection's task group, since in the writer it would be cancelled
  half-done and the app's disconnect lost.
* ``protocol_send`` again: hypercorn never stops a connection's idle timer
  when the connection ends, so a closed HTTP/2 connection whose streams were
  all done kept its task for ``keep_alive_timeout`` (measured: 3 of 3 s; an
  HTTP/1.1 one ends at once). The timer is stopped at the end, and not
  restarted by a stream that ends later.
* ``_close``: closing while a send is in progress would collide with it
  (``BusyResourceError``, which killed the server): it closes without the FIN.

A read or write that fails with ETIMEDOUT is the kernel's dead-peer timeout
(TCP keepalive and TCP_USER_TIMEOUT, see ``_listeners``), which also ends a
live client that keeps its receive window shut: ``TCP_INFO`` tells them apart
by whether the peer still acknowledged anything lately.
"""

from __future__ import annotations

import contextlib
import errno
import math
import socket
import struct
from typing import Any, final

import trio
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.tcp_server import MAX_RECV
from hypercorn.trio.tcp_server import TCPServer as HypercornTCPServer
from hypercorn.typing import AppWrapper

from ._h2_stream import H2Stream, stream_of
from ._hypercorn import CONNECTION_EXTENSION
from ._outcome import DisconnectReason

_LINGER_RESET = struct.pack("ii", 1, 0)  # on close: send RST, drop unsent data
#: Bytes read on while h11 is paused, before reading stops (backpressure).
PAUSED_READ_LIMIT = 64 * 1024
# struct tcp_info (linux/tcp.h): tcpi_last_ack_recv, milliseconds, is at byte 56.
_TCP_INFO_LAST_ACK = 56


def socket_of(stream: Any) -> trio.socket.SocketType:
    """The socket under a SocketStream, or under the SocketStream an SSLStream wraps."""
    return getattr(stream, "transport_stream", stream).socket  # type: ignore[no-any-return]


def reset(sock: trio.socket.SocketType) -> None:
    """Close ``sock`` with a reset (SO_LINGER 0): the client sees RST, unsent data is dropped.

    A task blocked on the socket wakes with ``ClosedResourceError``. Never blocks.
    """
    with contextlib.suppress(OSError):  # already closed, or a kind without linger
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


def _peer_still_acknowledged(sock: trio.socket.SocketType) -> bool:
    """Whether a connection the kernel timed out had a live peer (a shut receive window).

    A dead peer acknowledged nothing for the whole TCP_USER_TIMEOUT; a live one
    that stopped reading acknowledged the kernel's zero-window probes.
    """
    try:
        timeout_ms = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LAST_ACK + 4)
        (last_ack_ms,) = struct.unpack_from("I", info, _TCP_INFO_LAST_ACK)
    except (OSError, AttributeError, struct.error):  # not Linux, or closed already
        return False
    return bool(timeout_ms) and last_ack_ms < 0.9 * timeout_ms


def _errno_of(error: BaseException) -> int | None:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None:
            return cause.errno
        cause = cause.__cause__ or cause.__context__
    return None


@final
class ServerConnection:
    """What a connection's scopes find at ``scope["extensions"]["trioweb.connection"]``."""

    __slots__ = ("_reason", "_sock", "closed", "multiplexed", "send_lock")

    def __init__(self, stream: Any) -> None:
        self._sock = socket_of(stream)
        self._reason: DisconnectReason | None = None
        #: The connection's write lock (its TCPServer's), busy while a write is under way.
        self.send_lock: trio.Lock | None = None
        #: Whether the connection ended (its socket failed, reached its end, or was reset).
        self.closed = False
        #: Whether it carries HTTP/2: a disconnect on an open one is a stream reset.
        self.multiplexed = False

    def __deepcopy__(self, memo: dict[int, object]) -> ServerConnection:
        # A handle on the one connection (hypercorn's proxy-headers middleware
        # deep-copies the scope): a copy would be a different connection.
        return self

    def disconnect_reason(self) -> DisconnectReason:
        """Why a request on this connection lost its client."""
        if self._reason is not None:
            return self._reason
        if self.multiplexed and not self.closed:
            return DisconnectReason.STREAM_RESET
        return DisconnectReason.CLIENT_DISCONNECTED

    def abort(self) -> None:
        """Reset the connection now, whatever is being sent. Never blocks."""
        self.closed = True
        reset(self._sock)

    def shut_down(self) -> None:
        """The shutdown's deadline passed with the connection still open: reset it.

        A write stuck until now fails, and its request is abandoned because the
        server shuts down (unless its client had left or been cut already).
        """
        self._reason = self._reason or DisconnectReason.SERVER_SHUTDOWN
        self.abort()

    def cut(self) -> None:
        """A write ran past its deadline: the client did not take the bytes in time."""
        self._reason = self._reason or DisconnectReason.CLIENT_TOO_SLOW
        self.abort()

    def ended(self) -> None:
        """The client's end of stream was read."""
        self.closed = True

    def failed(self, error: BaseException) -> None:
        """A read or write failed with ``error``: remember what it says about the peer."""
        if not self.closed and _errno_of(error) == errno.ETIMEDOUT:
            self._reason = (
                DisconnectReason.CLIENT_TOO_SLOW
                if _peer_still_acknowledged(self._sock)
                else DisconnectReason.CONNECTION_TIMED_OUT
            )
        self.closed = True


@final
class ConnectionApp:
    """hypercorn's app wrapper for one connection: each scope gets the connection.

    An HTTP/2 request's scope gets its stream instead (``_h2_stream``), and the
    app's sends go through it.
    """

    __slots__ = ("_app", "_connection")

    def __init__(self, app: AppWrapper, connection: ServerConnection) -> None:
        self._app = app
        self._connection = connection

    async def __call__(
        self, scope: Any, receive: Any, send: Any, sync_spawn: Any, call_soon: Any
    ) -> None:
        extensions = scope.get("extensions")
        if extensions is None:
            extensions = scope["extensions"] = {}
        connection = self._connection
        extensions[CONNECTION_EXTENSION] = connection
        if scope.get("http_version") == "2":
            connection.multiplexed = True
            found = stream_of(send) if scope["type"] == "http" else None
            if found is not None and connection.send_lock is not None:
                stream = H2Stream(connection, *found, connection.send_lock, connection.cut)
                extensions[CONNECTION_EXTENSION] = stream
                await self._app(scope, receive, stream.send, sync_spawn, call_soon)
                await stream.ended()
                return
        await self._app(scope, receive, send, sync_spawn, call_soon)


class _PeerGone(Exception):
    """The client's end of stream (or a failed read) came while h11 was paused."""


@final
class _ReadWhilePaused:
    """``H11Protocol.can_read``, read through: while h11 waits on it, the socket is read on."""

    def __init__(self, server: TCPServer) -> None:
        self._server = server
        self._event = trio.Event()
        self._reading: trio.CancelScope | None = None
        self.pending = bytearray()  # read meanwhile, for h11 once it goes on

    async def clear(self) -> None:
        self._event = trio.Event()

    async def set(self) -> None:
        self._event.set()
        if self._reading is not None:
            self._reading.cancel()  # a receive_some is safe to cancel once TLS shook hands

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        """Wait until h11 may go on, reading the socket meanwhile.

        Raises:
            _PeerGone: The client closed, or the read failed.
        """
        server = self._server
        while not self._event.is_set() and len(self.pending) < PAUSED_READ_LIMIT:
            data: bytes | bytearray | None = None
            with trio.CancelScope() as self._reading:
                try:
                    data = await server.stream.receive_some(MAX_RECV)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                    server.connection.failed(error)
                    raise _PeerGone from error
            self._reading = None
            if data == b"":
                server.connection.ended()
                raise _PeerGone
            if data:
                self.pending += data
        await self._event.wait()


class TCPServer(HypercornTCPServer):
    """hypercorn's TCPServer, with bounded writes, reads while paused, a safe close."""

    connection: ServerConnection

    async def protocol_send(self, event: Event) -> None:
        if not isinstance(event, RawData):
            if isinstance(event, Updated) and self.connection.closed:
                # A stream of a closed connection ended: an idle timer now
                # would hold the connection's task for keep_alive_timeout.
                await self.idle_task.stop()
                return
            await super().protocol_send(event)
            return
        # The writer's deadline, seen before the shield hides it. A writer
        # already cancelled (-inf) writes as hypercorn would: whole.
        deadline = trio.current_effective_deadline()
        bounded = deadline != math.inf and deadline > trio.current_time()
        async with self.send_lock:
            try:
                with trio.CancelScope(shield=True):
                    if not bounded:
                        await self.stream.send_all(event.data)
                    else:
                        with trio.CancelScope(deadline=deadline) as bound:
                            await self.stream.send_all(event.data)
                        if bound.cancelled_caught:
                            self.connection.cut()
                            raise trio.ClosedResourceError("the write was cut at its deadline")
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                self.connection.failed(error)
                await self._write_failed()

    async def _write_failed(self) -> None:
        """Hypercorn's own handling of a failed write: it closes its streams, tells the app.

        A writer already cancelled (a write cut at its deadline) would cancel
        that too, half-done: hypercorn marks the stream closed, then its put of
        the app's disconnect is cancelled, and a WebSocket app never hears that
        its client is gone. So there it runs in the connection's task group.
        """
        if trio.current_effective_deadline() > trio.current_time():
            await self.protocol.handle(Closed())
        else:
            self._task_group.spawn(self.protocol.handle, Closed())

    async def _read_data(self) -> None:
        paused: _ReadWhilePaused | None = None
        protocol = self.protocol.protocol
        if isinstance(protocol, H11Protocol):
            paused = _ReadWhilePaused(self)
            protocol.can_read = paused  # the same interface as hypercorn's EventWrapper
        # hypercorn bounds each read by read_timeout; trioweb never sets one (make_config).
        try:
            while True:
                data: bytes | bytearray
                if paused is not None and paused.pending:
                    data, paused.pending = paused.pending, bytearray()
                else:
                    try:
                        data = await self.stream.receive_some(MAX_RECV)
                    except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                        self.connection.failed(error)
                        break
                    if not data:
                        self.connection.ended()
                await self.protocol.handle(RawData(bytes(data)))
                if not data:
                    break
        except _PeerGone:
            pass
        await self.protocol.handle(Closed())
        await self.idle_task.stop()  # hypercorn leaves it running: see protocol_send

    async def _close(self) -> None:
        self.connection.closed = True
        if self.send_lock.locked():
            # A send is in progress (another task's, or this one's failed one):
            # send_eof would collide with it. Closing wakes it with ClosedResourceError.
            await self.stream.aclose()
        else:
            await super()._close()
