"""Serving an app on hypercorn's Trio worker."""

from __future__ import annotations

import functools
import logging
import signal
from typing import Any, final

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from ._util import NoPublicConstructor

logger = logging.getLogger("trioweb")


@final
@attrs.define(eq=False)
class Server(metaclass=NoPublicConstructor):
    """A running server, as handed back by ``nursery.start(trioweb.serve, ...)``.

    Attributes:
        host: The address it listens on.
        port: The port it listens on (the one the OS chose, for port 0).
    """

    host: str
    port: int
    _shutdown: trio.Event

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:8000``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def shutdown(self) -> None:
        """Start a graceful shutdown: stop accepting, let requests finish.

        ``serve()`` returns once it is done (at most ``graceful_timeout`` later,
        then the lifespan shutdown).
        """
        self._shutdown.set()


def make_config(
    host: str, port: int, *, graceful_timeout: float, keep_alive_timeout: float, access_log: bool
) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = keep_alive_timeout
    # hypercorn's read_timeout fires false disconnects: never set it.
    config.read_timeout = None
    config.accesslog = logging.getLogger("hypercorn.access") if access_log else None
    return config


async def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    graceful_timeout: float = 5.0,
    keep_alive_timeout: float = 5.0,
    access_log: bool = False,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` over HTTP/1.1 (and h2c) on hypercorn's Trio worker.

    Start it with ``server = await nursery.start(serve, app, "127.0.0.1", 0)``:
    the value handed back through ``task_status.started()`` is a
    :class:`Server` with the bound ``host``, ``port`` (the real one when 0 was
    asked for) and ``url``, and a ``shutdown()`` method.

    Args:
        app: The :class:`~trioweb.App` (or any ASGI 3 app).
        host: The address to listen on.
        port: The port; 0 lets the OS choose.
        graceful_timeout: Seconds a graceful shutdown waits for requests.
        keep_alive_timeout: Seconds an idle keep-alive connection stays open.
        access_log: Log every request on logger ``hypercorn.access``.

    Cancellation:
        ``server.shutdown()`` is the graceful way out: it returns after
        in-flight requests finished (or ``graceful_timeout`` passed) and the
        app's lifespan shutdown ran. Cancelling the caller's scope instead
        stops everything at once, and in-flight handlers see ``trio.Cancelled``.
    """
    config = make_config(
        host,
        port,
        graceful_timeout=graceful_timeout,
        keep_alive_timeout=keep_alive_timeout,
        access_log=access_log,
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            functools.partial(hypercorn_serve, app, config, shutdown_trigger=shutdown.wait)
        )
        bound_host, _, bound_port = binds[0].removeprefix("http://").rpartition(":")
        server = Server._create(bound_host.strip("[]"), int(bound_port), shutdown)
        logger.info("serving on %s", server.url)
        task_status.started(server)


def run(app: Any, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then shut down gracefully. Blocking."""

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                server: Server = await nursery.start(
                    functools.partial(serve, app, host, port, **options)
                )
                async for signum in signals:
                    logger.info(
                        "%s received: shutting down gracefully", signal.Signals(signum).name
                    )
                    server.shutdown()
                    break

    trio.run(main)
