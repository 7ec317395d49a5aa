"""Turn a handler's signature into a binding plan, once, when the route is declared.

Pure: the app tells :func:`make_plan` which annotation types it injects
(``Request``, ``DisconnectToken``, ``trio.Nursery``, ...), and this module decides,
per parameter, where its value comes from:

* a path parameter, by name;
* an injected object, by annotation;
* a header or cookie, with ``Annotated[str, Header("x-request-id")]`` /
  ``Annotated[str, Cookie("session")]``;
* the body: an attrs class (JSON, structured with cattrs, validators honoured),
  ``bytes`` (raw), or ``Annotated[T, Form()]`` (``x-www-form-urlencoded``);
* otherwise a query parameter by name (the scalars of :mod:`._converters`:
  ``str``, ``int``, ``float``, ``bool``, ``uuid.UUID``; ``list``/``set``/``tuple``
  of those, ``X | None``, defaults).

Anything that cannot be bound is a :class:`~trioweb.RouteDefinitionError` naming
the handler and the parameter. Each data parameter's :class:`Binder` is compiled,
then and there, into a getter specialised for its source, arity and default, so
that per request :func:`extract` only runs the plan's getters over the request's
data (parsed once, and only the parts the plan reads). It returns the values, or
raises :class:`~trioweb.RequestValidationError` (422, one entry per offending
field, whatever their sources) or :class:`~trioweb.HTTPError` (400 for a
malformed body, 415 for a body of the wrong media type).
"""

from __future__ import annotations

import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any, Union, final

import attrs

from ._converters import IMPLIED_PATH_CONVERTER, PATH_CONVERTERS, TextConverter, text_converter
from ._errors import RouteDefinitionError
from ._getters import MISSING as _MISSING
from ._getters import Getter, form_body, json_body, raw_body, text_getter
from ._getters import extract as extract  # re-exported: the exchange imports it here
from ._markers import Depends as Depends  # re-exported: a marker like Header
from ._structure import JSON
from ._structure import structure as _structure
from ._util import describe_callable


class Source(enum.Enum):
    """Where a parameter's value comes from."""

    PATH = "path parameter"
    QUERY = "query parameter"
    HEADER = "header"
    COOKIE = "cookie"
    JSON = "JSON body"
    RAW = "raw body"
    FORM = "form body"
    REQUEST = "Request"
    TOKEN = "DisconnectToken"
    NURSERY = "trio.Nursery"
    APP = "App"
    WEBSOCKET = "WebSocket"
    DEPENDS = "dependency"


#: The sources a request's data feeds (the rest are injected objects).
DATA_SOURCES = frozenset(
    {Source.QUERY, Source.HEADER, Source.COOKIE, Source.JSON, Source.RAW, Source.FORM}
)
BODY_SOURCES = frozenset({Source.JSON, Source.RAW, Source.FORM})


@final
@attrs.frozen
class Header:
    """Marks a parameter as a request header: ``Annotated[str, Header("x-request-id")]``.

    Without a name, the parameter's own, with ``_`` as ``-``.
    """

    name: str | None = None


@final
@attrs.frozen
class Cookie:
    """Marks a parameter as a cookie: ``Annotated[str, Cookie("session")]``."""

    name: str | None = None


@final
@attrs.frozen
class Query:
    """Names a query parameter differently from the handler parameter."""

    name: str | None = None


@final
@attrs.frozen
class Form:
    """Marks a parameter as the form body (``application/x-www-form-urlencoded``).

    Annotate an attrs class (fields structured from the form's values) or
    ``dict[str, str]``.
    """


def _unwrap_optional(hint: object) -> tuple[object, bool]:
    """(inner type, whether None is allowed) for ``X | None`` / ``Optional[X]``."""
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def structure(data: object, kind: object, location: str) -> object:
    """Structure JSON ``data`` into ``kind``, or raise a 422 listing every bad field."""
    return _structure(JSON, data, kind, location)


# ---- the plan ----


@functools.cache
def _many_valued_fields(kind: Any) -> frozenset[str]:
    """The fields of a form class that take every value of a repeated name (collections)."""
    many = set()
    for field in attrs.fields(kind):
        converter = text_converter(_unwrap_optional(field.type)[0])
        if converter is not None and converter.many:
            many.add(field.name)
    return frozenset(many)


def _compile(binder: Binder) -> Getter | None:
    source, required = binder.source, binder.default is _MISSING
    if binder.convert is not None:
        return text_getter(binder.location, binder.key, binder.convert, binder.default)
    if source is Source.RAW:
        return raw_body
    if source is Source.JSON:
        return json_body(binder.body_type, binder.default, required=required)
    if source is Source.FORM:
        kind = binder.body_type
        many = _many_valued_fields(kind) if attrs.has(kind) else frozenset()  # type: ignore[arg-type]
        return form_body(kind, binder.default, required=required, many=many)
    return None  # path parameters and injected objects: the exchange supplies them


@attrs.frozen
class Binder:
    """One parameter of the handler and how to get its value."""

    name: str
    source: Source
    key: str = ""
    convert: TextConverter | None = None
    body_type: object = None
    default: object = _MISSING
    #: Where an error in this value is reported (the first word of the source).
    location: str = attrs.field(init=False)
    #: For a query, header, cookie or body parameter: its value from a request's data.
    get: Getter | None = attrs.field(init=False, eq=False, repr=False)

    @location.default
    def _location(self) -> str:
        return "body" if self.source in BODY_SOURCES else self.source.value.split()[0]

    @get.default
    def _get(self) -> Getter | None:
        return _compile(self)


@attrs.frozen
class BindingPlan:
    """How to call one handler: its binders, in signature order."""

    binders: tuple[Binder, ...]
    sources: frozenset[Source] = attrs.field(init=False)
    data_binders: tuple[Binder, ...] = attrs.field(init=False)
    # Decided here, not per request: the hot path only reads it.
    needs_body: bool = attrs.field(init=False)
    reads_query: bool = attrs.field(init=False)
    reads_cookies: bool = attrs.field(init=False)
    #: (name, getter, loc) of each data binder: all that extract() runs per request.
    getters: tuple[tuple[str, Getter, list[str]], ...] = attrs.field(
        init=False, eq=False, repr=False
    )

    @sources.default
    def _sources(self) -> frozenset[Source]:
        return frozenset(binder.source for binder in self.binders)

    @data_binders.default
    def _data_binders(self) -> tuple[Binder, ...]:
        return tuple(binder for binder in self.binders if binder.source in DATA_SOURCES)

    @needs_body.default
    def _needs_body(self) -> bool:
        return bool(self.sources & BODY_SOURCES)

    @reads_query.default
    def _reads_query(self) -> bool:
        return Source.QUERY in self.sources

    @reads_cookies.default
    def _reads_cookies(self) -> bool:
        return Source.COOKIE in self.sources

    @getters.default
    def _getters(self) -> tuple[tuple[str, Getter, list[str]], ...]:
        return tuple(
            (binder.name, binder.get, [binder.location, binder.key])
            for binder in self.data_binders
            if binder.get is not None
        )


def annotations_of(handler: Callable[..., object]) -> dict[str, object]:
    """The handler's resolved annotations, ``Annotated`` kept.

    Raises:
        RouteDefinitionError: An annotation names something that does not exist.
    """
    try:
        # For a class-based view: its attributes' annotations.
        return typing.get_type_hints(handler, include_extras=True)
    except Exception as exc:
        raise RouteDefinitionError(
            f"cannot resolve the annotations of handler {describe_callable(handler)}: {exc}"
        ) from exc


def _strip_annotated(hint: object) -> tuple[object, tuple[object, ...]]:
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        return base, tuple(extras)
    return hint, ()


def implicit_converters(annotations: Mapping[str, object]) -> dict[str, str]:
    """Converters for ``{x}`` path parameters implied by annotations (``x: int``)."""
    result = {}
    for name, hint in annotations.items():
        base, _ = _strip_annotated(hint)
        if isinstance(base, type) and base in IMPLIED_PATH_CONVERTER:
            result[name] = IMPLIED_PATH_CONVERTER[base]
    return result


_PATH_TYPES = frozenset(converter.type for converter in PATH_CONVERTERS.values())


def binder_for(
    name: str,
    hint: object,
    default: object,
    *,
    where: str,
    path_params: Mapping[str, str],
    injectable: Mapping[type, Source],
) -> Binder:
    """Decide where one parameter (or view attribute) comes from.

    Raises:
        RouteDefinitionError: It cannot be bound.
    """
    base, extras = _strip_annotated(hint)
    for extra in extras:
        if isinstance(extra, Depends):
            return Binder(name, Source.DEPENDS, body_type=extra)
    markers = [extra for extra in extras if isinstance(extra, (Header, Cookie, Query, Form))]
    if len(markers) > 1:
        raise RouteDefinitionError(f"{where} has more than one of Header/Cookie/Query/Form")
    marker = markers[0] if markers else None
    if marker is None and isinstance(base, type) and base in injectable:
        return Binder(name, injectable[base])
    if marker is None and name in path_params:
        produced = PATH_CONVERTERS[path_params[name]].type
        if base in _PATH_TYPES and base is not produced:
            raise RouteDefinitionError(
                f"{where} is annotated {getattr(base, '__name__', base)} but its path "
                f"converter {path_params[name]!r} produces {produced.__name__}"
            )
        return Binder(name, Source.PATH, key=name)
    inner, optional = _unwrap_optional(base)
    if optional and default is _MISSING:
        default = None
    if isinstance(marker, Form):
        if not (attrs.has(inner) or typing.get_origin(inner) is dict or inner is dict):  # type: ignore[arg-type]
            raise RouteDefinitionError(
                f"{where}: a Form() must be an attrs class or dict[str, str]"
            )
        if attrs.has(inner):  # type: ignore[arg-type]
            # Form values are converted per field type: resolve string annotations now.
            attrs.resolve_types(inner)
        return Binder(name, Source.FORM, body_type=inner, default=default)
    if marker is None and inner is bytes:
        return Binder(name, Source.RAW, default=default)
    if marker is None and attrs.has(inner):  # type: ignore[arg-type]
        return Binder(name, Source.JSON, body_type=base, default=default)
    converter = text_converter(inner)
    if converter is None:
        kinds = ", ".join(sorted(s.value for s in set(injectable.values())))
        raise RouteDefinitionError(
            f"{where} cannot be bound: {getattr(hint, '__name__', hint)!r} is neither a path "
            f"parameter, an injectable ({kinds}), an attrs class or bytes (the body), nor a "
            "str/int/float/bool/UUID or a list of them (query, header, cookie)"
        )
    if isinstance(marker, Header):
        key = (marker.name or name.replace("_", "-")).lower()
        return Binder(name, Source.HEADER, key, converter, default=default)
    if isinstance(marker, Cookie):
        return Binder(name, Source.COOKIE, marker.name or name, converter, default=default)
    key = marker.name if isinstance(marker, Query) and marker.name else name
    return Binder(name, Source.QUERY, key, converter, default=default)


def make_plan(
    handler: Callable[..., object],
    *,
    path_params: Mapping[str, str],
    injectable: Mapping[type, Source],
    annotations: Mapping[str, object] | None = None,
    allowed: Collection[Source] | None = None,
    skip_first: bool = False,
    what: str = "handler",
) -> BindingPlan:
    """Decide where each parameter of ``handler`` comes from.

    Args:
        handler: The handler function.
        path_params: The route's path parameters, mapped to their converter names.
        injectable: Annotation types the framework injects, and their source.
        annotations: ``handler``'s resolved annotations, if already known.
        allowed: The sources this kind of route offers (all if None).
        skip_first: Skip the first parameter (``self`` of a view method).
        what: "handler", or "dependency" (which may be sync or a generator).

    Raises:
        RouteDefinitionError: A parameter cannot be bound, or its annotation
            contradicts its path converter.
    """
    name = describe_callable(handler)
    if not callable(handler):
        raise RouteDefinitionError(f"handler {handler!r} is not callable")
    if what == "handler" and not (
        inspect.iscoroutinefunction(handler)
        or inspect.iscoroutinefunction(inspect.getattr_static(type(handler), "__call__", None))
    ):
        raise RouteDefinitionError(f"handler {name} must be an async function (async def)")
    hints = annotations_of(handler) if annotations is None else annotations
    parameters = list(inspect.signature(handler).parameters.values())[1 if skip_first else 0 :]
    binders = []
    for parameter in parameters:
        where = f"parameter {parameter.name!r} of {what} {name}"
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise RouteDefinitionError(f"{where}: *args and **kwargs cannot be bound")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise RouteDefinitionError(f"{where} is positional-only; handlers are called by name")
        binder = binder_for(
            parameter.name,
            hints.get(parameter.name, str),
            parameter.default,
            where=where,
            path_params=path_params,
            injectable=injectable,
        )
        if allowed is not None and binder.source not in allowed:
            raise RouteDefinitionError(f"{where}: a {binder.source.value} is not available here")
        binders.append(binder)
    if sum(binder.source in BODY_SOURCES for binder in binders) > 1:
        raise RouteDefinitionError(f"{what} {name} has more than one body parameter")
    return BindingPlan(tuple(binders))
