"""The command line: ``trioweb run MODULE:ATTR [options]`` (``trioweb run --help``).

Startup errors are one readable line and a non-zero exit: a malformed target,
a missing module or attribute, something that is not an ASGI app, a port in
use. An error raised *inside* the app's module while it is imported is the
user's own bug, so it is shown with its real traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._listeners import DEFAULT_DEAD_PEER_TIMEOUT
from ._loading import load_app
from ._supervise import run


def _keepalive(value: str) -> float | None:
    seconds = float(value)
    if seconds == 0:
        return None
    if seconds < 2:
        raise argparse.ArgumentTypeError("must be 0 (off) or at least 2 seconds")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trioweb", description="Serve a trioweb app.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser(
        "run",
        help="serve MODULE:ATTR",
        description="Serve MODULE:ATTR on hypercorn's protocol code, under Trio. The first "
        "SIGINT/SIGTERM shuts down gracefully, a second one at once.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = run_parser.add_argument
    add("app", help="the app to serve, as MODULE:ATTR (the current directory is importable)")
    add("--host", default="127.0.0.1", help="address to listen on")
    add("--port", type=int, default=8000, help="port to listen on (0: the OS chooses)")
    add("--uds", metavar="PATH", help="listen on this Unix socket instead of host and port")
    add("--workers", type=int, default=1, help="worker processes, each with its own lifespan")
    add("--reload", action="store_true", help="restart on source changes (trioweb[reload])")
    add("--certfile", help="TLS certificate chain (PEM): serve HTTPS, HTTP/2 by ALPN")
    add("--keyfile", help="TLS private key (PEM)")
    add("--ca-certs", help="CA certificates to verify client certificates")
    add("--root-path", default="", help="the ASGI root_path: the prefix a proxy mounts under")
    add(
        "--proxy-headers",
        action="store_true",
        help="believe X-Forwarded-For/-Proto/-Host from --forwarded-allow-ips",
    )
    add(
        "--forwarded-allow-ips",
        default="127.0.0.1,::1",
        help="trusted proxies: comma-separated addresses or networks, or '*'",
    )
    add("--graceful-timeout", type=float, default=5.0, help="seconds in-flight requests get")
    add(
        "--shutdown-grace",
        type=float,
        default=None,
        help="seconds app.nursery tasks get at shutdown (default: the App's, 5)",
    )
    add("--keep-alive-timeout", type=float, default=5.0, help="seconds an idle connection lives")
    add(
        "--dead-peer-timeout",
        type=_keepalive,
        default=DEFAULT_DEAD_PEER_TIMEOUT,
        metavar="SECONDS",
        help="end connections whose peer vanished after this many silent seconds "
        "(TCP keepalive + TCP_USER_TIMEOUT); 0 turns it off",
    )
    add(
        "--h11-max-incomplete-size",
        type=int,
        default=16 * 1024,
        metavar="BYTES",
        help="largest HTTP/1.1 request head",
    )
    add("--access-log", action="store_true", help="log every request (logger hypercorn.access)")
    add(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error", "critical"],
        help="level of trioweb's and hypercorn's loggers",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = vars(build_parser().parse_args(argv))
    args.pop("command")
    target = args.pop("app")
    workers, reload = args["workers"], args["reload"]
    # Workers and the reloader import the app themselves, in their processes;
    # it is imported here too, so that a bad target fails before anything starts.
    app = load_app(target)
    run(target if workers > 1 or reload else app, **args)


if __name__ == "__main__":
    main()
