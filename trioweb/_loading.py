"""Loading an app from ``MODULE:ATTR``, with startup errors a person can read.

A malformed target, a missing module or attribute, or something that is not
an ASGI app is one line and a non-zero exit. An error raised *inside* the
app's module while it is imported is the user's own bug, so it propagates
with its real traceback.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys


def _missing_module(error: ModuleNotFoundError, module_name: str) -> bool:
    """Whether the target module (or a package above it) is what is missing."""
    parts = module_name.split(".")
    return error.name in {".".join(parts[: i + 1]) for i in range(len(parts))}


def _is_asgi_app(value: object) -> bool:
    call = inspect.getattr_static(type(value), "__call__", None)
    return inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(call)


def load_app(target: str) -> object:
    """Import ``MODULE:ATTR`` (the current directory is importable).

    Raises:
        SystemExit: The target is malformed, the module or attribute is
            missing, or it is not an ASGI app. An exception raised by the
            module's own code propagates, with its traceback.
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
    except ModuleNotFoundError as error:
        if not _missing_module(error, module_name):
            raise  # the app's module imports something missing: its traceback says where
        raise SystemExit(f"trioweb: cannot import {module_name!r}: {error}") from None
    try:
        app = getattr(module, attribute)
    except AttributeError:
        raise SystemExit(
            f"trioweb: module {module_name!r} has no attribute {attribute!r}"
        ) from None
    if not _is_asgi_app(app):
        raise SystemExit(
            f"trioweb: {target} is not an ASGI app (an async callable of scope, receive, "
            f"send), it is {type(app).__name__}"
        )
    return app
