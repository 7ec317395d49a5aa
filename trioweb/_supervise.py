"""Running a server as a process: signals, worker processes, and reloading.

Signals: the first SIGINT or SIGTERM starts a graceful shutdown; a second one
cancels everything at once, and the process exits promptly with status 1 and
no traceback. (Trio's default turns SIGINT into KeyboardInterrupt; a signal
receiver is installed instead, so no traceback ever comes from one.)

Exit status: 0 after a graceful shutdown; 1 after a forced one, or when the
app's lifespan failed (its startup, its shutdown, or an ``app.nursery`` task:
the traceback was logged when it happened).

Workers: the parent makes the listening socket (with its options) and starts
``workers`` processes with the ``spawn`` method, each importing the app and
serving that one socket with its own lifespan. Workers ignore SIGINT, so a
Ctrl+C that reaches the whole process group counts once: the parent passes a
SIGTERM on to each, by PID, for each signal it gets. A worker that exits on
its own stops the others, and the parent exits with status 1.

Reloading: watchfiles restarts the server process when a source file under the
current directory changes. The socket stays bound across restarts.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Iterable
from typing import Any

import trio

from ._listeners import DEFAULT_DEAD_PEER_TIMEOUT, ListenError, open_tcp_socket, open_unix_socket
from ._loading import load_app
from ._serve import LifespanFailed, Server, serve

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

logger = logging.getLogger("trioweb")

LOG_FORMAT = "%(asctime)s [%(process)d] %(name)s %(levelname)s %(message)s"


def configure_logging(level: str) -> None:
    """What the command line sets up: basicConfig, and trioweb's and hypercorn's level.

    The root logger gets ``level`` too (through basicConfig, nothing more), so
    that the app's own loggers are heard at the level the user asked for.
    """
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    for name in ("trioweb", "hypercorn.error", "hypercorn.access"):
        logging.getLogger(name).setLevel(level.upper())


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def serve_until_signalled(
    app: Any, options: dict[str, Any], signums: Iterable[int] = (signal.SIGINT, signal.SIGTERM)
) -> int:
    """Serve until a signal, as the module docstring says; return the exit status.

    Raises:
        LifespanFailed: The app's lifespan failed.

    Cancellation:
        A second signal cancels the serve() task at once (see serve()).
    """
    status = 0
    with trio.open_signal_receiver(*signums) as signals:
        try:
            async with trio.open_nursery() as nursery:

                async def watch(server: Server) -> None:
                    nonlocal status
                    async for signum in signals:
                        name = signal.Signals(signum).name
                        if status == 0 and not server._shutdown.is_set():
                            logger.info("%s: shutting down gracefully (again: at once)", name)
                            server.shutdown()
                        else:
                            logger.warning("%s again: stopping at once", name)
                            status = 1
                            nursery.cancel_scope.cancel()

                async def serve_then_stop(*, task_status: trio.TaskStatus[Server]) -> None:
                    await serve(app, task_status=task_status, **options)
                    nursery.cancel_scope.cancel()  # the watcher's work is over too

                server: Server = await nursery.start(serve_then_stop)
                nursery.start_soon(watch, server)
        except BaseExceptionGroup as group:
            failed, rest = group.split(LifespanFailed)
            if rest is not None:
                raise
            assert failed is not None
            raise _first_leaf(failed) from None
    return status


def open_socket(options: dict[str, Any]) -> socket.socket:
    """The listening socket ``options`` describe (their host/port/uds are removed)."""
    host, port, uds = options.pop("host"), options.pop("port"), options.pop("uds", None)
    if uds is not None:
        return open_unix_socket(uds)
    return open_tcp_socket(
        host, port, dead_peer_timeout=options.get("dead_peer_timeout", DEFAULT_DEAD_PEER_TIMEOUT)
    )


def _serve_process(app: Any, options: dict[str, Any], signums: tuple[int, ...]) -> int:
    try:
        return trio.run(serve_until_signalled, app, options, signums)
    except LifespanFailed as error:
        logger.error("exiting: %s", error)
        return 1


def _load(target: str) -> Any:

    return load_app(target)


def _worker_main(target: str, options: dict[str, Any], log_level: str | None) -> None:
    # A fresh interpreter (spawn): logging and the app are set up again.
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent passes signals on as SIGTERM
    if log_level is not None:
        configure_logging(log_level)
    sys.exit(_serve_process(_load(target), options, (signal.SIGTERM,)))


def _reload_main(target: str, options: dict[str, Any], log_level: str | None) -> None:
    if log_level is not None:
        configure_logging(log_level)
    sys.exit(_serve_process(_load(target), options, (signal.SIGINT, signal.SIGTERM)))


async def _supervise(processes: list[Any]) -> int:
    status = 0
    stopping = False
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            def stop_all() -> None:
                for process in processes:
                    if process.exitcode is None:
                        os.kill(process.pid, signal.SIGTERM)

            async def watch(process: Any) -> None:
                nonlocal status, stopping
                await trio.lowlevel.wait_readable(process.sentinel)
                process.join()
                if process.exitcode != 0:
                    status = 1
                if not stopping:
                    logger.error("worker %d exited (%s): stopping", process.pid, process.exitcode)
                    stopping, status = True, 1
                    stop_all()

            async def relay() -> None:
                nonlocal stopping
                async for signum in signals:
                    logger.info("%s: stopping the workers", signal.Signals(signum).name)
                    stopping = True
                    stop_all()

            async with trio.open_nursery() as watchers:
                for process in processes:
                    watchers.start_soon(watch, process)
                nursery.start_soon(relay)
            nursery.cancel_scope.cancel()
    return status


def run(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    reload: bool = False,
    log_level: str | None = None,
    **options: Any,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then shut down gracefully. Blocking.

    Args:
        app: The app, or ``"MODULE:ATTR"`` (needed for ``workers`` and ``reload``).
        host: The address to listen on.
        port: The port.
        workers: Worker processes, each running the app and its lifespan.
        reload: Restart when a source file changes (needs ``trioweb[reload]``).
        log_level: Set trioweb's and hypercorn's loggers to this level, and
            set up basicConfig (as the command line does).
        **options: What :func:`trioweb.serve` takes.

    Raises:
        SystemExit: Status 1 (and a one-line message) when the socket cannot be
            bound, the app's lifespan failed, or a second signal forced the stop.
    """
    if log_level is not None:
        configure_logging(log_level)
    if (workers > 1 or reload) and not isinstance(app, str):
        raise ValueError("workers and reload need the app as 'MODULE:ATTR', to import it anew")
    if workers > 1 and reload:
        raise ValueError("choose workers or reload, not both")
    options = {"host": host, "port": port, **options}
    try:
        sock = open_socket(options)
    except ListenError as error:
        raise SystemExit(f"trioweb: {error.strerror}") from None
    options["sock"] = sock
    if reload:
        status = _run_reloading(app, options, log_level)
    elif workers > 1:
        processes = [
            multiprocessing.get_context("spawn").Process(
                target=_worker_main, args=(app, options, log_level)
            )
            for _ in range(workers)
        ]
        for process in processes:
            process.start()
        sock.close()  # the workers have their copies
        status = trio.run(_supervise, processes)
    else:
        loaded = _load(app) if isinstance(app, str) else app
        status = _serve_process(loaded, options, (signal.SIGINT, signal.SIGTERM))
    if status:
        raise SystemExit(status)


def _run_reloading(target: str, options: dict[str, Any], log_level: str | None) -> int:
    try:
        import watchfiles
    except ImportError:
        raise SystemExit(
            "trioweb: --reload needs watchfiles: pip install 'trioweb[reload]'"
        ) from None
    bound = options.get("graceful_timeout", 5.0) + (options.get("shutdown_grace") or 5.0) + 2
    watchfiles.run_process(
        os.getcwd(),
        target=functools.partial(_reload_main, target, options, log_level),
        target_type="function",
        callback=lambda changes: logger.info("%d files changed: reloading", len(changes)),
        sigint_timeout=int(bound),
    )
    return 0
