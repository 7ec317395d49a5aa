"""Turn a handler's signature into a binding plan, once, when the route is declared.

Pure: the app tells :func:`make_plan` which annotation types it can inject
(``Request``, ``DisconnectToken``, ``trio.Nursery``, ...) and this module decides,
per parameter, where its value comes from. Anything that cannot be bound is a
:class:`~trioweb.RouteDefinitionError` naming the handler and the parameter,
raised by the decorator rather than by the first request.
"""

from __future__ import annotations

import enum
import inspect
import typing
import uuid
from collections.abc import Callable, Collection, Mapping

import attrs

from ._errors import RouteDefinitionError
from ._util import describe_callable


class Source(enum.Enum):
    """Where a parameter's value comes from."""

    PATH = "path parameter"
    REQUEST = "Request"
    TOKEN = "DisconnectToken"
    NURSERY = "trio.Nursery"
    APP = "App"
    WEBSOCKET = "WebSocket"


# The type each path converter produces, and the converter an annotation implies.
_CONVERTER_TYPES: Mapping[str, type] = {
    "str": str,
    "path": str,
    "int": int,
    "float": float,
    "uuid": uuid.UUID,
}
_IMPLICIT_CONVERTERS: Mapping[type, str] = {int: "int", float: "float", uuid.UUID: "uuid"}


@attrs.frozen
class Binder:
    """One parameter of the handler and its source."""

    name: str
    source: Source


@attrs.frozen
class BindingPlan:
    """How to call one handler: its binders, in signature order."""

    binders: tuple[Binder, ...]

    @property
    def sources(self) -> frozenset[Source]:
        return frozenset(binder.source for binder in self.binders)


def annotations_of(handler: Callable[..., object]) -> dict[str, object]:
    """The handler's resolved annotations.

    Raises:
        RouteDefinitionError: An annotation names something that does not exist.
    """
    try:
        return typing.get_type_hints(handler)
    except Exception as exc:
        raise RouteDefinitionError(
            f"cannot resolve the annotations of handler {describe_callable(handler)}: {exc}"
        ) from exc


def implicit_converters(annotations: Mapping[str, object]) -> dict[str, str]:
    """Converters for ``{x}`` path parameters implied by annotations (``x: int``)."""
    return {
        name: _IMPLICIT_CONVERTERS[hint]
        for name, hint in annotations.items()
        if isinstance(hint, type) and hint in _IMPLICIT_CONVERTERS
    }


def make_plan(
    handler: Callable[..., object],
    *,
    path_params: Mapping[str, str],
    injectable: Mapping[type, Source],
    annotations: Mapping[str, object] | None = None,
    allowed: Collection[Source] | None = None,
) -> BindingPlan:
    """Decide where each parameter of ``handler`` comes from.

    Args:
        handler: The handler function.
        path_params: The route's path parameters, mapped to their converter names.
        injectable: Annotation types the framework injects, and their source.
        annotations: ``handler``'s resolved annotations, if already known.
        allowed: The sources this kind of route offers (all if None).

    Raises:
        RouteDefinitionError: A parameter cannot be bound, or its annotation
            contradicts its path converter.
    """
    name = describe_callable(handler)
    if not callable(handler):
        raise RouteDefinitionError(f"handler {handler!r} is not callable")
    if not (
        inspect.iscoroutinefunction(handler)
        or inspect.iscoroutinefunction(inspect.getattr_static(type(handler), "__call__", None))
    ):
        raise RouteDefinitionError(f"handler {name} must be an async function (async def)")
    hints = annotations_of(handler) if annotations is None else annotations
    binders = []
    for parameter in inspect.signature(handler).parameters.values():
        where = f"parameter {parameter.name!r} of handler {name}"
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise RouteDefinitionError(f"{where}: *args and **kwargs cannot be bound")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise RouteDefinitionError(f"{where} is positional-only; handlers are called by name")
        hint = hints.get(parameter.name)
        source = injectable.get(hint) if isinstance(hint, type) else None
        if parameter.name in path_params and source is None:
            produced = _CONVERTER_TYPES[path_params[parameter.name]]
            if hint in _CONVERTER_TYPES.values() and hint is not produced:
                raise RouteDefinitionError(
                    f"{where} is annotated {getattr(hint, '__name__', hint)} but its path "
                    f"converter {path_params[parameter.name]!r} produces {produced.__name__}"
                )
            source = Source.PATH
        if source is None:
            raise RouteDefinitionError(
                f"{where} cannot be bound: it is not a path parameter of the route and its "
                f"annotation {getattr(hint, '__name__', hint)!r} is none of "
                f"{', '.join(sorted(s.value for s in set(injectable.values())))}"
            )
        if allowed is not None and source not in allowed:
            raise RouteDefinitionError(f"{where}: a {source.value} is not available here")
        binders.append(Binder(parameter.name, source))
    return BindingPlan(tuple(binders))
