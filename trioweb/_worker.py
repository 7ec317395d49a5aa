"""Each connection's life on hypercorn's TCPServer, contained and bounded.

Guards against two hypercorn behaviours:

* Hypercorn runs every connection as a task in the server's nursery, so an
  exception that escapes ``TCPServer.run()`` kills the whole server. A remote
  client can cause one: ``GET / HTTP/1.0\\r\\n\\r\\nX`` makes h11 fail while the
  response is still being written: the app's task closes the connection
  (``send_eof``, which checkpoints while it holds the stream's send side) as
  the reader's task sends the 400, whose ``send_all`` then raises
  ``trio.BusyResourceError``. ``_connection.TCPServer`` closes without the FIN
  when a send is in progress, so that race is gone; and whatever else escapes
  ``run()`` is contained: logged at WARNING with the peer, the connection
  closed, the server serving on.
* ``TCPServer.protocol_send`` shields ``send_all``, so no cancel scope reaches
  a write to a client that never reads: a cancelled connection would stay open
  for ever, and a graceful shutdown would never end. :meth:`Connections.abort`
  closes the sockets of the connections still open (with SO_LINGER 0, so the
  client gets a reset and the kernel drops the unsent data); the stuck write
  then fails with ``ClosedResourceError``, which hypercorn handles. (A write
  with a deadline is also cut there: see ``_connection``.)

Invariant: a stream is in ``_live`` (with its :class:`ServerConnection`) exactly
while its ``TCPServer.run()`` runs.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any, final

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState

from ._connection import ConnectionApp, ServerConnection, TCPServer, socket_of

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

logger = logging.getLogger("trioweb")


def _peer(sock: trio.socket.SocketType) -> str:
    try:
        name = sock.getpeername()
    except OSError:
        return "unknown peer"
    if sock.family == socket.AF_UNIX:
        return "unix socket peer"
    return f"[{name[0]}]:{name[1]}" if ":" in name[0] else f"{name[0]}:{name[1]}"


def _leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


@final
@attrs.define(eq=False)
class Connections:
    """The open connections of one server, each served by a contained TCPServer."""

    app: AppWrapper
    config: Config
    context: WorkerContext
    state: dict[str, Any]
    _live: dict[Any, ServerConnection] = attrs.field(factory=dict, init=False)
    _aborting: bool = attrs.field(default=False, init=False)
    _idle: trio.Event = attrs.field(factory=trio.Event, init=False)

    def __len__(self) -> int:
        return len(self._live)

    async def serve(self, stream: Any) -> None:
        """Serve one accepted stream until it closes; never raises but Cancelled.

        Cancellation:
            Reaches hypercorn's reads and its app tasks, not its shielded
            writes: :meth:`abort` is what ends those.
        """
        sock = socket_of(stream)
        peer = _peer(sock)
        connection = ServerConnection(stream)
        self._live[stream] = connection
        try:
            server = TCPServer(
                ConnectionApp(self.app, connection),
                self.config,
                self.context,
                ConnectionState(self.state.copy()),
                stream,
            )
            server.connection = connection
            connection.send_lock = server.send_lock
            await server.run()
        except (Exception, BaseExceptionGroup) as error:
            failures, rest = (
                error.split(Exception) if isinstance(error, BaseExceptionGroup) else (error, None)
            )
            if failures is not None:
                # After abort() such errors are expected: our own closing caused them.
                level = logging.DEBUG if self._aborting else logging.WARNING
                logger.log(
                    level, "connection from %s failed and was closed: %r", peer, _leaf(failures)
                )
                await trio.aclose_forcefully(stream)
            if rest is not None:
                raise rest from None
        finally:
            self._live.pop(stream, None)
            if not self._live:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no connection is open.

        Cancellation:
            Only waits: cancelling it leaves the connections alone.
        """
        while self._live:
            self._idle = trio.Event()
            await self._idle.wait()
        await trio.lowlevel.checkpoint()

    def abort(self) -> None:
        """Close, with a reset, the socket of every connection still open. Never blocks.

        Their requests are abandoned because the server shuts down
        (:attr:`~trioweb.DisconnectReason.SERVER_SHUTDOWN`).
        """
        self._aborting = True
        for connection in list(self._live.values()):
            connection.shut_down()  # wakes a task blocked on it with ClosedResourceError
