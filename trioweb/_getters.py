"""Getters: one request's data to one parameter's value, compiled when the route is declared.

A binding plan (:mod:`._binding`) compiles each query, header, cookie and body
parameter into a getter specialised for its source, arity and default, so that
per request :func:`extract` only parses what the plan reads, once
(:class:`~._datastructures.RequestData`), and runs the getters over it. Pure.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import attrs

from ._converters import TextConverter
from ._datastructures import Headers, RequestData, group_query, parse_cookies
from ._errors import HTTPError, RequestValidationError
from ._json import parse_json
from ._structure import FORM, JSON, Structurer, in_detail

if TYPE_CHECKING:
    from ._binding import BindingPlan  # cycle-ok: annotation only

#: A parameter's default when it has none.
MISSING = inspect.Parameter.empty


class Missing(Exception):
    """A required query parameter, header or cookie was not sent."""


#: Reads one parameter's value from the request's data; raises ValueError (a 422
#: at the binder's loc), Missing, or HTTPError (RequestValidationError included).
Getter = Callable[[RequestData], object]


def text_getter(source: str, key: str, convert: TextConverter, default: object) -> Getter:
    """A getter specialised, once, for its source ("query", "header", "cookie"), arity, default.

    The source's lookup is written out in each: a call saved per parameter per request.
    """
    one, many, required = convert.convert, convert.many, default is MISSING
    if many:
        default = [] if required else default
    if source == "header":
        name = key.encode("latin-1")
        if many:
            return lambda data: (
                convert(values) if (values := data.headers.values_of(name)) else default
            )
        if required:

            def get_header(data: RequestData) -> object:
                value = data.headers.value_of(name)
                if value is None:
                    raise Missing
                return one(value)

            return get_header
        return lambda data: (
            default if (value := data.headers.value_of(name)) is None else one(value)
        )
    if source == "cookie":
        if many:
            return lambda data: convert(values) if (values := data.cookies.get(key)) else default
        if required:

            def get_cookie(data: RequestData) -> object:
                values = data.cookies.get(key)
                if not values:
                    raise Missing
                return one(values[-1])

            return get_cookie
        return lambda data: one(values[-1]) if (values := data.cookies.get(key)) else default
    if many:
        return lambda data: convert(values) if (values := data.query.get(key)) else default
    if required:

        def get_query(data: RequestData) -> object:
            values = data.query.get(key)
            if not values:
                raise Missing
            return one(values[-1])

        return get_query
    return lambda data: one(values[-1]) if (values := data.query.get(key)) else default


def raw_body(data: RequestData) -> object:
    return data.body


_REQUIRED: list[dict[str, object]] = [{"loc": ["body"], "msg": "field required"}]


def media_type(headers: Headers) -> str:
    """The ``content-type`` without parameters, lowercased ("" if none)."""
    value = headers.value_of(b"content-type") or ""
    if value == "application/json":  # the common case: nothing to strip
        return value
    return value.split(";", 1)[0].strip().lower()


def _lazy_hook(structurer: Structurer, kind: Any) -> Callable[[Any], Any]:
    """Structure into ``kind`` with its hook, looked up at the first request.

    Not when the route is declared: a class may name others defined after it.
    """
    hook: Callable[[Any], Any] | None = None

    def structure(data: Any) -> Any:
        nonlocal hook
        if hook is None:
            hook = structurer.hook(kind)
        return hook(data)

    return structure


def json_body(kind: Any, default: object, *, required: bool) -> Getter:
    """The getter of a JSON body structured into ``kind`` (strictly, every bad field reported)."""
    # Looked up at the first request, not when the route is declared: a class
    # may name others defined after it.
    hooks: tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any]] | None = None

    def get(data: RequestData) -> object:
        nonlocal hooks
        body = data.body
        if not body:
            if required:
                raise RequestValidationError(list(_REQUIRED))
            return default
        media = media_type(data.headers)
        if media != "application/json" and not media.endswith("+json"):
            raise HTTPError(415, f"expected an application/json body, got {media or 'none'!r}")
        document = parse_json(body)
        if hooks is None:
            hooks = JSON.lean.get_structure_hook(kind), JSON.detailed.get_structure_hook(kind)
        try:
            return hooks[0](document, kind)
        except Exception:  # what is wrong is said by the detailed structuring
            return in_detail(hooks[1], document, kind, "body")

    return get


def _form_fields(body: bytes, headers: Headers) -> list[tuple[str, str]]:
    media = media_type(headers)
    if media != "application/x-www-form-urlencoded":
        raise HTTPError(415, f"expected a form body, got {media or 'none'!r}")
    try:
        return parse_qsl(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise HTTPError(400, "the form body is not UTF-8") from None


def form_body(
    kind: Any, default: object, *, required: bool, many: frozenset[str] = frozenset()
) -> Getter:
    """The getter of an ``x-www-form-urlencoded`` body: a ``dict[str, str]``, or an attrs class.

    Args:
        kind: ``dict`` or the attrs class.
        default: The value when there is no body, unless ``required``.
        required: An empty body is a 422.
        many: The fields that take every value of a repeated name (the rest
            take the last).
    """
    structure = _lazy_hook(FORM, kind) if attrs.has(kind) else None

    def get(data: RequestData) -> object:
        if not data.body:
            if required:
                raise RequestValidationError(list(_REQUIRED))
            return default
        pairs = _form_fields(data.body, data.headers)
        if structure is None:
            return dict(pairs)
        form: dict[str, Any] = {}
        for name, value in pairs:
            if name in many:
                form.setdefault(name, []).append(value)
            else:
                form[name] = value  # the last of repeated values, as for a query parameter
        return structure(form)

    return get


# ---- per request ----


def extract(
    plan: BindingPlan,
    *,
    query_string: bytes,
    body: bytes | None,
    headers: Headers | None = None,
    raw_headers: Iterable[tuple[bytes, bytes]] = (),
) -> dict[str, object]:
    """The values of the plan's query, header, cookie and body parameters.

    Args:
        plan: The handler's plan.
        query_string: The raw query string.
        body: The body, if the plan reads it.
        headers: The request's headers, built once per request and shared
            with :attr:`Request.headers`; else wrapped from ``raw_headers``.
        raw_headers: The ASGI scope's header pairs, if ``headers`` is not given.

    Raises:
        RequestValidationError: 422, listing every offending field.
        HTTPError: 400 (malformed body) or 415 (wrong body media type).
    """
    if headers is None:
        headers = Headers.from_raw(raw_headers)
    data = RequestData(
        headers,
        body or b"",
        group_query(query_string) if plan.reads_query else {},
        parse_cookies(headers.getlist("cookie")) if plan.reads_cookies else {},
    )
    values: dict[str, object] = {}
    errors: list[dict[str, object]] = []
    for name, get, loc in plan.getters:
        try:
            values[name] = get(data)
        except ValueError as error:
            errors.append({"loc": loc, "msg": str(error)})
        except Missing:
            errors.append({"loc": loc, "msg": "field required"})
        except RequestValidationError as error:
            errors.extend(error.errors)
    if errors:
        raise RequestValidationError(errors)
    return values
