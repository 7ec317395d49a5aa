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
* otherwise a query parameter by name (``str``, ``int``, ``float``, ``bool``,
  ``uuid.UUID``, ``list[...]`` of those, ``X | None``, defaults).

Anything that cannot be bound is a :class:`~trioweb.RouteDefinitionError` naming
the handler and the parameter. Per request only :func:`extract` runs: it
returns the values, or raises :class:`~trioweb.RequestValidationError` (422, one
entry per offending field) or :class:`~trioweb.HTTPError` (400 for malformed
JSON, 415 for a body of the wrong media type).
"""

from __future__ import annotations

import enum
import functools
import inspect
import math
import types
import typing
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Annotated, Any, Union, final
from urllib.parse import parse_qsl

import attrs

from ._datastructures import Headers, QueryParams, parse_cookies
from ._errors import HTTPError, RequestValidationError, RouteDefinitionError
from ._structure import JSON_SCALARS, json_type, make_converter, parse_json, show
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


_MISSING = inspect.Parameter.empty

# ---- scalar values from text (query, headers, cookies, forms) ----

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected a boolean (true/false/1/0/yes/no/on/off), got {show(text)}")


def _to_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {show(text)}") from None


def _to_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {show(text)}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {show(text)}")
    return value


def _to_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValueError(f"expected a UUID, got {show(text)}") from None


_SCALARS: Mapping[object, Callable[[str], object]] = {
    str: str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    uuid.UUID: _to_uuid,
}


def _unwrap_optional(hint: object) -> tuple[object, bool]:
    """(inner type, whether None is allowed) for ``X | None`` / ``Optional[X]``."""
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


@attrs.frozen
class TextConverter:
    """How the text values of one query parameter, header or cookie become a value."""

    convert: Callable[[str], object]
    many: bool

    def __call__(self, values: list[str]) -> object:
        if self.many:
            return [self.convert(value) for value in values]
        return self.convert(values[-1])


def text_converter(hint: object) -> TextConverter | None:
    """The converter for ``hint``, or None if text cannot become one."""
    if hint in _SCALARS:
        return TextConverter(_SCALARS[hint], many=False)
    if typing.get_origin(hint) in (list, tuple, set, frozenset) or hint is list:
        args = typing.get_args(hint)
        item = args[0] if args else str
        if item in _SCALARS and (typing.get_origin(hint) is not tuple or args[1:] == (...,)):
            return TextConverter(_SCALARS[item], many=True)
    return None


# ---- structured bodies (see _structure) ----


def _structure_uuid(value: object, _: object) -> uuid.UUID:
    if type(value) is not str:
        raise TypeError(f"expected a UUID string, got {json_type(value)}")
    return _to_uuid(value)


def _from_text(convert: Callable[[str], object]) -> Callable[[object, object], object]:
    def structure(value: object, _: object) -> object:
        return convert(typing.cast(str, value))  # form values are always text

    return structure


_json_converter = make_converter({**JSON_SCALARS, uuid.UUID: _structure_uuid})
_form_converter = make_converter({kind: _from_text(convert) for kind, convert in _SCALARS.items()})


def structure(data: object, kind: object, location: str) -> object:
    """Structure JSON ``data`` into ``kind``, or raise a 422 listing every bad field."""
    return _structure(_json_converter, data, kind, location)


# ---- the plan ----


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

    @location.default
    def _location(self) -> str:
        return self.source.value.split()[0]


@attrs.frozen
class BindingPlan:
    """How to call one handler: its binders, in signature order."""

    binders: tuple[Binder, ...]
    sources: frozenset[Source] = attrs.field(init=False)
    data_binders: tuple[Binder, ...] = attrs.field(init=False)
    # Decided here, not per request: the hot path only reads it.
    needs_body: bool = attrs.field(init=False)

    @sources.default
    def _sources(self) -> frozenset[Source]:
        return frozenset(binder.source for binder in self.binders)

    @data_binders.default
    def _data_binders(self) -> tuple[Binder, ...]:
        return tuple(binder for binder in self.binders if binder.source in DATA_SOURCES)

    @needs_body.default
    def _needs_body(self) -> bool:
        return bool(self.sources & BODY_SOURCES)


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
    implied = {int: "int", float: "float", uuid.UUID: "uuid"}
    result = {}
    for name, hint in annotations.items():
        base, _ = _strip_annotated(hint)
        if isinstance(base, type) and base in implied:
            result[name] = implied[base]
    return result


_CONVERTER_TYPES: Mapping[str, type] = {
    "str": str,
    "path": str,
    "int": int,
    "float": float,
    "uuid": uuid.UUID,
}


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
    markers = [extra for extra in extras if isinstance(extra, (Header, Cookie, Query, Form))]
    if len(markers) > 1:
        raise RouteDefinitionError(f"{where} has more than one of Header/Cookie/Query/Form")
    marker = markers[0] if markers else None
    if marker is None and isinstance(base, type) and base in injectable:
        return Binder(name, injectable[base])
    if marker is None and name in path_params:
        produced = _CONVERTER_TYPES[path_params[name]]
        if base in _CONVERTER_TYPES.values() and base is not produced:
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
) -> BindingPlan:
    """Decide where each parameter of ``handler`` comes from.

    Args:
        handler: The handler function.
        path_params: The route's path parameters, mapped to their converter names.
        injectable: Annotation types the framework injects, and their source.
        annotations: ``handler``'s resolved annotations, if already known.
        allowed: The sources this kind of route offers (all if None).
        skip_first: Skip the first parameter (``self`` of a view method).

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
    parameters = list(inspect.signature(handler).parameters.values())[1 if skip_first else 0 :]
    binders = []
    for parameter in parameters:
        where = f"parameter {parameter.name!r} of handler {name}"
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
        raise RouteDefinitionError(f"handler {name} has more than one body parameter")
    return BindingPlan(tuple(binders))


# ---- per request ----


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _body_value(binder: Binder, body: bytes, headers: Headers) -> object:
    if binder.source is Source.RAW:
        return body
    if not body:
        if binder.default is not _MISSING:
            return binder.default
        raise RequestValidationError([{"loc": ["body"], "msg": "field required"}])
    media_type = _media_type(headers)
    if binder.source is Source.JSON:
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise HTTPError(415, f"expected an application/json body, got {media_type or 'none'!r}")
        return structure(parse_json(body), binder.body_type, "body")
    if media_type != "application/x-www-form-urlencoded":
        raise HTTPError(415, f"expected a form body, got {media_type or 'none'!r}")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise HTTPError(400, "the form body is not UTF-8") from None
    if not attrs.has(binder.body_type):  # type: ignore[arg-type]
        return dict(pairs)
    many = _many_valued_fields(binder.body_type)
    form: dict[str, Any] = {}
    for key, value in pairs:
        if key in many:
            form.setdefault(key, []).append(value)
        else:
            form[key] = value  # the last of repeated values, as a query parameter
    return _structure(_form_converter, form, binder.body_type, "body")


@functools.cache
def _many_valued_fields(kind: Any) -> frozenset[str]:
    """The fields of a form class that take every value of a repeated key (lists)."""
    many = set()
    for field in attrs.fields(kind):
        converter = text_converter(_unwrap_optional(field.type)[0])
        if converter is not None and converter.many:
            many.add(field.name)
    return frozenset(many)


def extract(
    plan: BindingPlan,
    *,
    query_string: bytes,
    raw_headers: Iterable[tuple[bytes, bytes]],
    body: bytes | None,
) -> dict[str, object]:
    """The values of the plan's query, header, cookie and body parameters.

    Raises:
        RequestValidationError: 422, listing every offending field.
        HTTPError: 400 (malformed JSON) or 415 (wrong body media type).
    """
    values: dict[str, object] = {}
    errors: list[dict[str, object]] = []
    query: QueryParams | None = None
    cookies: dict[str, list[str]] | None = None
    headers: Headers | None = None  # parsed only if a binder reads them
    for binder in plan.data_binders:
        if binder.source is Source.QUERY:
            if query is None:
                query = QueryParams.from_query_string(query_string)
            raw = query.getlist(binder.key)
        else:
            if headers is None:
                headers = Headers.from_raw(raw_headers)
            if binder.source in BODY_SOURCES:
                try:
                    values[binder.name] = _body_value(binder, body or b"", headers)
                except RequestValidationError as error:
                    errors.extend(error.errors)
                continue
            if binder.source is Source.HEADER:
                raw = headers.getlist(binder.key)
            else:
                if cookies is None:
                    cookies = parse_cookies(headers.getlist("cookie"))
                raw = cookies.get(binder.key, [])
        location = binder.location
        assert binder.convert is not None
        if not raw:
            if binder.default is not _MISSING:
                values[binder.name] = binder.default
            elif binder.convert.many:
                values[binder.name] = []  # a list without a default: absent is empty
            else:
                errors.append({"loc": [location, binder.key], "msg": "field required"})
            continue
        try:
            values[binder.name] = binder.convert(raw)
        except ValueError as error:
            errors.append({"loc": [location, binder.key], "msg": str(error)})
    if errors:
        raise RequestValidationError(errors)
    return values
