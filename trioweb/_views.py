"""Class-based views: annotated attributes bound per request, then the method runs.

The seed article binds ASP.NET's ``CancellationToken`` into controller
properties as well as action parameters; this is that, for trioweb::

    @app.route("/lottery")
    class Lottery:
        token: DisconnectToken
        request: Request

        async def get(self) -> dict: ...

A view becomes one ordinary endpoint per method it defines, with a synthetic
handler whose plan is the attributes' binders followed by the method's.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from ._binding import BODY_SOURCES, Binder, BindingPlan, Source, binder_for, make_plan
from ._errors import RouteDefinitionError
from ._router import VIEW_METHODS

_ATTRIBUTE = "view attribute "  # kwargs key prefix: cannot clash with a parameter name


def view_endpoints(
    view: type,
    *,
    path_params: Mapping[str, str],
    injectable: Mapping[type, Source],
    allowed: frozenset[Source],
) -> dict[str, tuple[Callable[..., Awaitable[object]], BindingPlan]]:
    """Per HTTP method the view defines: its synthetic handler and binding plan.

    Raises:
        RouteDefinitionError: The view defines no method, one is not async, or
            an attribute or parameter cannot be bound.
    """
    try:
        hints = typing.get_type_hints(view, include_extras=True)
    except Exception as error:
        raise RouteDefinitionError(
            f"cannot resolve the annotations of view {view.__qualname__}: {error}"
        ) from error
    attribute_binders = []
    for name, hint in hints.items():
        if typing.get_origin(hint) is ClassVar or hint is ClassVar:
            continue
        binder = binder_for(
            name,
            hint,
            getattr(view, name, inspect.Parameter.empty),
            where=f"attribute {name!r} of view {view.__qualname__}",
            path_params=path_params,
            injectable=injectable,
        )
        if binder.source not in allowed:
            raise RouteDefinitionError(
                f"attribute {name!r} of view {view.__qualname__}: a {binder.source.value} "
                "is not available here"
            )
        attribute_binders.append(
            Binder(
                _ATTRIBUTE + name,
                binder.source,
                binder.key,
                binder.convert,
                binder.body_type,
                binder.default,
            )
        )
    endpoints = {}
    for method in VIEW_METHODS:
        function = getattr(view, method, None)
        if function is None:
            continue
        method_plan = make_plan(
            function,
            path_params=path_params,
            injectable=injectable,
            allowed=allowed,
            skip_first=True,
        )
        binders = (*attribute_binders, *method_plan.binders)
        if sum(binder.source in BODY_SOURCES for binder in binders) > 1:
            raise RouteDefinitionError(f"view {view.__qualname__}.{method} has more than one body")
        endpoints[method.upper()] = (_handler(view, method), BindingPlan(binders))
    if not endpoints:
        raise RouteDefinitionError(
            f"view {view.__qualname__} defines none of {', '.join(VIEW_METHODS)}"
        )
    return endpoints


def _handler(view: type, method: str) -> Callable[..., Awaitable[object]]:
    @functools.wraps(getattr(view, method))
    async def handler(**kwargs: Any) -> object:
        instance = view()
        for key in [key for key in kwargs if key.startswith(_ATTRIBUTE)]:
            setattr(instance, key.removeprefix(_ATTRIBUTE), kwargs.pop(key))
        return await getattr(instance, method)(**kwargs)

    handler.__qualname__ = f"{view.__qualname__}.{method}"
    return handler
