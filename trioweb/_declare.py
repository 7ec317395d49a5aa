"""Checks of handlers and hooks when they are declared, so that mistakes fail there.

Each finds a mistake that would otherwise show only per request, or never: a
sync hook (a TypeError at the first request), a path parameter no handler
parameter takes (silently a required query parameter), a return annotation
trioweb cannot send (a 500 for every call). Pure: no I/O, no Trio.
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Union

import attrs

from ._binding import BindingPlan, Source, annotations_of
from ._errors import RouteDefinitionError
from ._files import FileResponse
from ._response import SUPPORTED_RESULTS, Response, StreamingResponse
from ._util import describe_callable

# What to_response() takes (attrs classes are checked apart).
_RETURNABLE: tuple[type, ...] = (
    str,
    bytes,
    bytearray,
    memoryview,
    dict,
    list,
    type(None),
    Response,
    StreamingResponse,
    FileResponse,
)


def is_async_callable(function: object) -> bool:
    """Whether calling ``function`` gives an awaitable: an ``async def`` (or a
    partial of one), or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        inspect.getattr_static(type(function), "__call__", None)
    )


def check_hook(hook: object, what: str, arguments: Sequence[str]) -> None:
    """Check that ``hook`` is async and can be called with ``arguments`` positionally.

    Args:
        hook: The hook being registered.
        what: How to call it in a message ("after_request hook").
        arguments: The names of what it will be given, for the message.

    Raises:
        RouteDefinitionError: It is not callable, not async, or cannot take them.
    """
    if not callable(hook):
        raise RouteDefinitionError(f"{what} {hook!r} is not callable")
    name = describe_callable(hook)
    if not is_async_callable(hook):
        raise RouteDefinitionError(f"{what} {name} must be an async function (async def)")
    try:
        signature = inspect.signature(hook)
    except (TypeError, ValueError):  # no signature to check (some builtins, C callables)
        return
    try:
        signature.bind(*arguments)
    except TypeError:
        given = f" ({', '.join(arguments)})" if arguments else ""
        raise RouteDefinitionError(
            f"{what} {name} is called with {len(arguments)} arguments{given}, "
            f"but its signature is {signature}"
        ) from None


def check_endpoint(
    path: str,
    path_params: Sequence[str],
    handler: Callable[..., Any],
    plan: BindingPlan,
    annotations: Mapping[str, object] | None = None,
    *,
    returns: bool = True,
) -> None:
    """Check what the binding plan cannot: every path parameter is taken, and
    the return annotation (if ``returns``) is something trioweb can send.

    Raises:
        RouteDefinitionError: Naming the handler and the parameter or annotation.
    """
    name = describe_callable(handler)
    taken = {binder.key for binder in plan.binders if binder.source is Source.PATH}
    for param in path_params:
        if param in taken:
            continue
        # Unbound parameters became query parameters (or attributes): suggest a near name.
        others = [binder.name.split()[-1] for binder in plan.binders]
        close = difflib.get_close_matches(param, others, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RouteDefinitionError(
            f"route {path!r}: no parameter of handler {name} takes path parameter "
            f"{param!r}{hint}; add a parameter called {param}"
        )
    if not returns:
        return
    hints = annotations_of(handler) if annotations is None else annotations
    if "return" in hints and cannot_send(hints["return"]):
        raise RouteDefinitionError(
            f"handler {name} is annotated to return {_spell(hints['return'])}, which "
            f"trioweb cannot send; {SUPPORTED_RESULTS}"
        )


def cannot_send(hint: object) -> bool:
    """Whether no value of type ``hint`` could be a handler's result.

    Conservative: anything that might hold a returnable value passes
    (``object``, ``Any``, ``Mapping``, type variables, unions with one
    returnable member are checked member by member).
    """
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return cannot_send(typing.get_args(hint)[0])
    if origin is Union or origin is types.UnionType:
        return any(cannot_send(member) for member in typing.get_args(hint))
    if origin is not None:
        hint = origin  # dict[str, int] is a dict; Literal and friends are no class
    if hint is None or hint is Any or not isinstance(hint, type):
        return False
    if attrs.has(hint):
        return False
    try:
        return not any(issubclass(hint, kind) or issubclass(kind, hint) for kind in _RETURNABLE)
    except TypeError:  # a class issubclass() refuses (a non-runtime Protocol): let it be
        return False


def _spell(hint: object) -> str:
    if isinstance(hint, type) and typing.get_origin(hint) is None:
        module = hint.__module__
        return hint.__qualname__ if module == "builtins" else f"{module}.{hint.__qualname__}"
    return str(hint).replace("typing.", "")
