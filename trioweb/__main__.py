"""The command line: ``trioweb run MODULE:ATTR --host H --port P``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from ._serve import run


def load_app(target: str) -> object:
    """Import ``MODULE:ATTR`` (the current directory is importable).

    Raises:
        SystemExit: The target is malformed, or the module or attribute is missing.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(
            f"trioweb: expected MODULE:ATTR (like examples.lottery:app), got {target!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SystemExit(f"trioweb: cannot import {module_name!r}: {error}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise SystemExit(
            f"trioweb: module {module_name!r} has no attribute {attribute!r}"
        ) from None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="trioweb", description="Serve a trioweb app.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="serve MODULE:ATTR on hypercorn")
    run_parser.add_argument("app", help="the app to serve, as MODULE:ATTR")
    run_parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    run_parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    run_parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run(load_app(args.app), host=args.host, port=args.port, access_log=args.access_log)


if __name__ == "__main__":
    main()
