"""Serving an app: trioweb's own small worker over hypercorn's TCPServer and Config.

Why not ``hypercorn.trio.serve``: its worker lets one connection's error kill
the server, cannot end a shutdown that a never-reading client holds open,
makes sockets without dead-peer detection, and reports an app that crashed
after startup as "shutdown without Lifespan support" and serves on. This
worker keeps hypercorn's protocol code (TCPServer, Config, WorkerContext) and
replaces the part around it (see ``_listeners``, ``_worker``, ``_proxy``).

The order of a server's life, and of its graceful shutdown (the reverse):

1. The app's lifespan starts (``_lifespan``); a startup failure ends serve() here.
2. The listener accepts; each connection runs in ``Connections`` (contained).
3. Shutdown begins (``Server.shutdown()``, or the app asks for it because an
   ``app.nursery`` task crashed): the listener is closed, the app's
   ``shutdown_started()`` hook is called if it has one, idle keep-alive
   connections close, and in-flight requests get ``graceful_timeout``.
4. At that deadline what is left is cancelled, and its sockets are closed.
5. The app's lifespan shutdown runs; then serve() returns, or raises
   :class:`LifespanFailed` if the app's startup, shutdown or nursery failed.
"""

from __future__ import annotations

import logging
import math
import socket
import sys
from typing import Any, final

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.utils import wrap_app

from ._lifespan import SHUTDOWN_EXTENSION
from ._listeners import (
    DEFAULT_DEAD_PEER_TIMEOUT,
    describe,
    open_tcp_socket,
    open_unix_socket,
)
from ._proxy import TrustedProxyHeaders
from ._util import NoPublicConstructor
from ._worker import Connections

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

logger = logging.getLogger("trioweb")


class LifespanFailed(RuntimeError):
    """The app's lifespan failed: its startup, its shutdown, or an ``app.nursery`` task.

    What failed was logged with its traceback when it happened; a crashed
    task's exception is this one's ``__cause__``.
    """


@final
@attrs.define(eq=False)
class Server(metaclass=NoPublicConstructor):
    """A running server, as handed back by ``nursery.start(trioweb.serve, ...)``.

    Attributes:
        host: The address it listens on (the socket's path for a Unix socket).
        port: The port it listens on (the one the OS chose, for port 0; 0 for a Unix socket).
        scheme: ``"https"`` with TLS, else ``"http"``.
    """

    host: str
    port: int
    scheme: str
    _shutdown: trio.Event
    _unix: bool = False

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:8000`` (``http+unix://`` quoted path)."""
        if self._unix:
            return f"{self.scheme}+unix://{self.host.replace('/', '%2F')}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def shutdown(self) -> None:
        """Start a graceful shutdown: stop accepting, let requests finish.

        ``serve()`` returns once it is done: at most ``graceful_timeout`` later,
        then the app's lifespan shutdown.
        """
        self._shutdown.set()


def make_config(
    *,
    graceful_timeout: float = 5.0,
    keep_alive_timeout: float = 5.0,
    access_log: bool = False,
    root_path: str = "",
    h11_max_incomplete_size: int = 16 * 1024,
    certfile: str | None = None,
    keyfile: str | None = None,
    ca_certs: str | None = None,
) -> Config:
    """The hypercorn Config for these options."""
    config = Config()
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = keep_alive_timeout
    # hypercorn's read_timeout fires false disconnects: never set it.
    config.read_timeout = None
    config.accesslog = logging.getLogger("hypercorn.access") if access_log else None
    # A Logger, not "-": hypercorn then adds no handler of its own, and the
    # records propagate to whatever logging the program set up.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.root_path = root_path
    config.h11_max_incomplete_size = h11_max_incomplete_size
    config.certfile, config.keyfile, config.ca_certs = certfile, keyfile, ca_certs
    return config


@final
@attrs.define(eq=False)
class _LifespanDriver:
    """Drives the app's ASGI lifespan scope, as a server does, and remembers what failed."""

    app: Any
    request_shutdown: trio.Event
    state: dict[str, Any] = attrs.field(factory=dict)
    supported: bool = False
    failure: LifespanFailed | None = None
    _to_app: trio.MemorySendChannel[dict[str, Any]] = attrs.field(init=False)
    _inbox: trio.MemoryReceiveChannel[dict[str, Any]] = attrs.field(init=False)
    _from_app: trio.MemorySendChannel[dict[str, Any]] = attrs.field(init=False)
    _outbox: trio.MemoryReceiveChannel[dict[str, Any]] = attrs.field(init=False)
    _ended: trio.Event = attrs.field(factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        self._to_app, self._inbox = trio.open_memory_channel(math.inf)
        self._from_app, self._outbox = trio.open_memory_channel(math.inf)

    async def _run_app(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
            "extensions": {SHUTDOWN_EXTENSION: {"request": self.request_shutdown.set}},
        }
        try:
            await self.app(scope, self._inbox.receive, self._send)
        except (Exception, BaseExceptionGroup) as error:
            if isinstance(error, BaseExceptionGroup) and error.split(Exception)[0] is None:
                raise  # only Cancelled: the server is being stopped at once
            if not self.supported:
                logger.debug("the app has no lifespan support (%r); serving without", error)
            else:
                if not hasattr(self.app, "_on_startup"):  # a trioweb App logged it already
                    logger.error("the app's lifespan failed", exc_info=error)
                self.failure = LifespanFailed(f"the app failed while serving: {error!r}")
                self.failure.__cause__ = error
        finally:
            self._ended.set()
            self._from_app.close()
            if self.supported:
                self.request_shutdown.set()  # an app whose lifespan ended cannot serve on

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            self.supported = True
        await self._from_app.send(message)

    async def _reply(self) -> dict[str, Any] | None:
        try:
            return await self._outbox.receive()
        except trio.EndOfChannel:
            return None

    async def start(self, nursery: trio.Nursery) -> bool:
        """Run the startup in ``nursery``; False (and ``failure`` set) if it failed."""
        nursery.start_soon(self._run_app)
        await self._to_app.send({"type": "lifespan.startup"})
        reply = await self._reply()
        if reply is not None and reply["type"] == "lifespan.startup.failed":
            self.failure = LifespanFailed(f"the app's startup failed: {reply.get('message', '')}")
            return False
        return True

    async def shutdown(self) -> None:
        """Run the lifespan shutdown (if the app is still in its lifespan) and wait for its end."""
        if not self.supported:
            return
        if not self._ended.is_set():
            await self._to_app.send({"type": "lifespan.shutdown"})
            reply = await self._reply()
            if reply is not None and reply["type"] == "lifespan.shutdown.failed":
                self.failure = self.failure or LifespanFailed(
                    f"the app's shutdown failed: {reply.get('message', '')}"
                )
        await self._ended.wait()


def _listener(sock: socket.socket, config: Config) -> trio.abc.Listener[Any]:
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    context = config.create_ssl_context()
    if context is None:
        return listener
    return trio.SSLListener(listener, context, https_compatible=True)


def _announce_shutdown(app: Any) -> None:
    hook = getattr(app, "shutdown_started", None)
    if hook is None:
        return
    try:
        hook()
    except Exception:
        logger.exception("the app's shutdown_started() hook failed")


async def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    uds: str | None = None,
    sock: socket.socket | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    ca_certs: str | None = None,
    root_path: str = "",
    proxy_headers: bool = False,
    forwarded_allow_ips: str | list[str] = "127.0.0.1,::1",
    graceful_timeout: float = 5.0,
    shutdown_grace: float | None = None,
    keep_alive_timeout: float = 5.0,
    access_log: bool = False,
    h11_max_incomplete_size: int = 16 * 1024,
    dead_peer_timeout: float | None = DEFAULT_DEAD_PEER_TIMEOUT,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` over HTTP/1.1 and HTTP/2 on hypercorn's protocol code.

    Start it with ``server = await nursery.start(serve, app, "127.0.0.1", 0)``:
    the value handed back is a :class:`Server` with the bound ``host``,
    ``port`` (the real one when 0 was asked for) and ``url``, and a
    ``shutdown()`` method. HTTP/2 is h2c in clear text, and chosen by ALPN
    (``h2``, ``http/1.1``) over TLS.

    Args:
        app: The :class:`~trioweb.App` (or any ASGI 3 app).
        host: The address to listen on.
        port: The port; 0 lets the OS choose.
        uds: Listen on this Unix socket path instead of ``host``/``port``.
        sock: Listen on this already-bound listening socket instead.
        certfile: The TLS certificate chain (PEM); with ``keyfile``, serve HTTPS.
        keyfile: The TLS private key (PEM).
        ca_certs: CA certificates to verify client certificates with.
        root_path: The ASGI ``root_path``: the prefix a proxy mounts the app under.
        proxy_headers: Believe X-Forwarded-For/-Proto/-Host from trusted proxies.
        forwarded_allow_ips: The trusted proxies: comma-separated addresses or
            networks, or ``"*"`` for every peer. Unix-socket peers are trusted.
        graceful_timeout: Seconds a graceful shutdown waits for in-flight requests.
        shutdown_grace: If given, sets the App's ``shutdown_grace``: seconds its
            ``app.nursery`` tasks get at shutdown before they are cancelled.
        keep_alive_timeout: Seconds an idle keep-alive connection stays open.
        access_log: Log every request on logger ``hypercorn.access``.
        h11_max_incomplete_size: Bytes an HTTP/1.1 request head may take.
        dead_peer_timeout: Seconds after which a connection whose peer went
            silent (vanished without closing) is ended, and its request
            cancelled: TCP keepalive plus TCP_USER_TIMEOUT. None turns it off.

    Raises:
        LifespanFailed: The app's startup or shutdown failed, or an
            ``app.nursery`` task crashed (after the graceful shutdown ran).
        OSError: The socket could not be bound (a ``ListenError`` saying where and why).

    Cancellation:
        ``server.shutdown()`` is the graceful way out (see the module
        docstring). Cancelling the caller's scope instead stops everything at
        once: in-flight handlers see ``trio.Cancelled``, open connections are
        reset, and the app's lifespan is cancelled (its shutdown hooks do not run).
    """
    if shutdown_grace is not None and hasattr(app, "shutdown_grace"):
        app.shutdown_grace = shutdown_grace
    config = make_config(
        graceful_timeout=graceful_timeout,
        keep_alive_timeout=keep_alive_timeout,
        access_log=access_log,
        root_path=root_path,
        h11_max_incomplete_size=h11_max_incomplete_size,
        certfile=certfile,
        keyfile=keyfile,
        ca_certs=ca_certs,
    )
    if sock is None:
        sock = (
            open_unix_socket(uds)
            if uds is not None
            else open_tcp_socket(host, port, dead_peer_timeout=dead_peer_timeout)
        )
    served: Any = app
    if proxy_headers:
        allowed = forwarded_allow_ips
        allowed = allowed.split(",") if isinstance(allowed, str) else allowed
        served = TrustedProxyHeaders(app, forwarded_allow_ips=allowed)
    lifespan = _LifespanDriver(app, trio.Event())
    wrapped = wrap_app(served, config.wsgi_max_body_size, "asgi")
    try:
        async with trio.open_nursery() as nursery:
            if await lifespan.start(nursery):
                await _serve_connections(app, wrapped, config, sock, lifespan, task_status)
                await lifespan.shutdown()
    finally:
        sock.close()
    # Raised here, outside the nursery, so the caller gets it unwrapped.
    if lifespan.failure is not None:
        raise lifespan.failure


async def _serve_connections(
    app: Any,
    wrapped: Any,
    config: Config,
    sock: socket.socket,
    lifespan: _LifespanDriver,
    task_status: trio.TaskStatus[Server],
) -> None:
    context = WorkerContext(None)
    connections = Connections(wrapped, config, context, lifespan.state)
    listener = _listener(sock, config)
    bound_host, bound_port = describe(sock)
    server = Server._create(
        bound_host,
        bound_port,
        "https" if config.ssl_enabled else "http",
        lifespan.request_shutdown,
        sock.family == socket.AF_UNIX,
    )
    async with trio.open_nursery() as handlers:
        handlers.start_soon(_abort_when_cancelled, connections)
        accepting = trio.CancelScope()
        handlers.start_soon(_accept, listener, connections, handlers, accepting)
        logger.info("serving on %s", server.url)
        task_status.started(server)
        await lifespan.request_shutdown.wait()
        accepting.cancel()
        await listener.aclose()  # new connections are refused, not queued
        logger.info(
            "shutting down: %d open connections get %ss", len(connections), config.graceful_timeout
        )
        _announce_shutdown(app)
        await context.terminated.set()  # hypercorn closes the idle keep-alive connections
        handlers.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await connections.wait_idle()
        handlers.cancel_scope.cancel()  # all done: stop the abort watcher


async def _accept(
    listener: trio.abc.Listener[Any],
    connections: Connections,
    handlers: trio.Nursery,
    accepting: trio.CancelScope,
) -> None:
    with accepting:
        await trio.serve_listeners(connections.serve, [listener], handler_nursery=handlers)


# How long cancelled connections get to close by themselves before they are reset.
ABORT_DELAY = 0.5


async def _abort_when_cancelled(connections: Connections) -> None:
    # The graceful deadline (or a hard cancel) cancels the handlers' nursery,
    # and this finally runs then: a cancelled connection usually closes at once,
    # but hypercorn's shielded writes to a client that does not read never end
    # until their socket is closed.
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(ABORT_DELAY):
            await connections.wait_idle()
        connections.abort()
