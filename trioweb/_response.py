"""Responses, and the conversion of whatever a handler returns into one. Pure."""

from __future__ import annotations

import datetime
import email.utils
import http
import json
import json.encoder
import math
import re
import uuid
from collections.abc import AsyncIterable, Callable, Mapping
from typing import Any, final

import attrs

from ._errors import HTTPError, RequestValidationError
from ._files import FileResponse
from ._sse import ServerSentEvent

_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*")
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"
_OCTETS = "application/octet-stream"


def _json_default(value: object) -> object:
    if attrs.has(type(value)):
        return attrs.asdict(value)  # type: ignore[arg-type]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _make_json_encoder(*, ascii_only: bool) -> Callable[[object], str]:
    # JSONEncoder.encode() builds a C encoder (and a closure) on every call,
    # which costs more than the encoding of a small response: build it once.
    # Without circular-reference markers, a value that contains itself ends
    # in RecursionError, which json_bytes turns into its ValueError.
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:  # no C accelerator (as on PyPy): the documented way
        return json.JSONEncoder(
            ensure_ascii=ascii_only, separators=(",", ":"), allow_nan=False, default=_json_default
        ).encode
    quote = json.encoder.encode_basestring_ascii if ascii_only else json.encoder.encode_basestring
    encode = make_encoder(None, _json_default, quote, None, ":", ",", False, False, False)
    return lambda value: "".join(encode(value, 0))


_encode_json = _make_json_encoder(ascii_only=False)
_encode_json_ascii = _make_json_encoder(ascii_only=True)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _non_finite_at(value: object) -> tuple[str, float] | None:
    """The path (``$.a[2]``) and value of the first NaN or infinity in ``value``, if any."""
    pending: list[tuple[str, object]] = [("$", value)]
    while pending:  # an explicit stack: the value may be nested deeper than Python recurses
        path, item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return path, item
        if attrs.has(type(item)):
            item = attrs.asdict(item, recurse=False)  # type: ignore[arg-type]  # an attrs instance
        if isinstance(item, dict):
            children = [
                (f"{path}.{key}" if _IDENTIFIER.fullmatch(str(key)) else f"{path}[{key!r}]", child)
                for key, child in item.items()
            ]
        elif isinstance(item, (list, tuple)):
            children = [(f"{path}[{index}]", child) for index, child in enumerate(item)]
        else:
            continue
        pending.extend(reversed(children))
    return None


def json_bytes(value: object) -> bytes:
    """Compact UTF-8 JSON; attrs instances, UUIDs and datetimes are understood.

    A string holding a lone surrogate (which JSON input can carry, as ``"\\ud800"``)
    is sent as that escape: UTF-8 cannot hold it.

    Raises:
        ValueError: The value has no JSON form: ``cannot encode as JSON: NaN
            (NaN and infinities are not JSON numbers) at $.path[0]``, or
            ``cannot encode as JSON: the value contains itself or is nested too
            deeply``.
        TypeError: A value of another type (``Foo is not JSON serializable``).
    """
    try:
        text = _encode_json(value)
    except RecursionError:
        raise ValueError(
            "cannot encode as JSON: the value contains itself or is nested too deeply"
        ) from None
    except ValueError as error:
        found = _non_finite_at(value)
        if found is None:
            raise ValueError(f"cannot encode as JSON: {error}") from None
        path, number = found
        name = "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"
        raise ValueError(
            f"cannot encode as JSON: {name} (NaN and infinities are not JSON numbers) at {path}"
        ) from None
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate: only a \u escape can carry it
        return _encode_json_ascii(value).encode()


class Response:
    """A complete HTTP response.

    Args:
        body: The body; ``str`` is encoded as UTF-8.
        status: The status code.
        headers: Extra headers. ``content-length`` is always computed.
        media_type: The ``content-type``; by default ``text/plain; charset=utf-8``
            for a ``str`` body and ``application/octet-stream`` for bytes.
        close_connection: Close the connection once this response is complete
            (sends ``Connection: close``).
    """

    __slots__ = ("body", "close_connection", "cookies", "headers", "media_type", "status")

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        *,
        close_connection: bool = False,
    ) -> None:
        if isinstance(body, str):
            body = body.encode()
            media_type = media_type or _TEXT
        elif not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError(f"Response body must be bytes or str, not {type(body).__name__}")
        if not 100 <= status <= 599:
            raise ValueError(f"status {status} is not an HTTP status code")
        self.body = body if type(body) is bytes else bytes(body)
        self.status = status
        self.headers = dict(headers) if headers else {}
        self.media_type = media_type
        self.close_connection = close_connection
        self.cookies: list[str] = []

    def set_cookie(
        self,
        name: str,
        value: str = "",
        *,
        max_age: int | None = None,
        expires: datetime.datetime | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
    ) -> None:
        """Add a ``Set-Cookie`` header.

        Raises:
            ValueError: The name or value has characters a cookie cannot hold,
                or ``samesite`` is not strict, lax or none.
        """
        if not name or not _COOKIE_NAME.fullmatch(name):
            raise ValueError(f"invalid cookie name {name!r}")
        if not _COOKIE_VALUE.fullmatch(value):
            raise ValueError(f"invalid cookie value {value!r}: quote or encode it first")
        parts = [f"{name}={value}"]
        if max_age is not None:
            parts.append(f"Max-Age={int(max_age)}")
        if expires is not None:
            parts.append(f"Expires={email.utils.format_datetime(expires, usegmt=True)}")
        if path is not None:
            parts.append(f"Path={path}")
        if domain is not None:
            parts.append(f"Domain={domain}")
        if secure:
            parts.append("Secure")
        if httponly:
            parts.append("HttpOnly")
        if samesite is not None:
            if samesite.lower() not in ("strict", "lax", "none"):
                raise ValueError("samesite must be 'strict', 'lax' or 'none'")
            parts.append(f"SameSite={samesite.capitalize()}")
        self.cookies.append("; ".join(parts))

    def delete_cookie(
        self, name: str, *, path: str | None = "/", domain: str | None = None
    ) -> None:
        """Tell the client to drop cookie ``name``."""
        self.set_cookie(name, "", max_age=0, path=path, domain=domain)

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as ASGI wants them, with content type and length added."""
        if (
            not self.headers
            and not self.close_connection
            and not self.cookies
            and self.media_type
            and self.status >= 200
            and self.status not in (204, 304)
        ):
            # The common case, kept short: it runs for every request.
            return [
                (b"content-type", self.media_type.encode("latin-1")),
                (b"content-length", str(len(self.body)).encode()),
            ]
        raw = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self.headers.items()
        ]
        names = {name for name, _ in raw}
        if b"content-type" not in names and (self.body or self.media_type):
            raw.append((b"content-type", (self.media_type or _OCTETS).encode("latin-1")))
        if b"content-length" not in names and self.status >= 200 and self.status not in (204, 304):
            raw.append((b"content-length", str(len(self.body)).encode()))
        if self.close_connection:
            raw.append((b"connection", b"close"))
        raw.extend((b"set-cookie", cookie.encode("latin-1")) for cookie in self.cookies)
        return raw

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.media_type or ''} {len(self.body)} bytes>"


class StreamingResponse:
    """A response whose body is produced piece by piece.

    Each chunk is sent as soon as ``content`` yields it. When the client goes
    away, the handler's scope is cancelled and ``content`` closed
    deterministically (an async generator's ``finally`` runs).

    Args:
        content: An async iterable of ``bytes`` or ``str`` (UTF-8) chunks.
        status: The status code.
        headers: Extra headers (no ``content-length``: the body is chunked).
        media_type: The ``content-type`` (default application/octet-stream).
    """

    __slots__ = ("content", "headers", "media_type", "status")

    def __init__(
        self,
        content: AsyncIterable[Any],
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        if not hasattr(content, "__aiter__"):
            raise TypeError(
                f"StreamingResponse needs an async iterable, not {type(content).__name__}"
            )
        self.content = content
        self.status = status
        self.headers = dict(headers or {})
        self.media_type = media_type or _OCTETS

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        if b"content-type" not in {name for name, _ in raw}:
            raw.append((b"content-type", self.media_type.encode("latin-1")))
        return raw


@final
class EventStream(StreamingResponse):
    """A Server-Sent Events response (``text/event-stream``).

    Args:
        events: An async iterable of :class:`~trioweb.ServerSentEvent` (or
            ``str``, sent as the data of an unnamed event).
        keepalive: Seconds of silence after which a comment is sent, so that
            proxies keep the connection open (None: never).
        headers: Extra headers.
    """

    __slots__ = ("events", "keepalive")

    def __init__(
        self,
        events: AsyncIterable[ServerSentEvent | str],
        *,
        keepalive: float | None = 15.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if keepalive is not None and keepalive <= 0:
            raise ValueError("keepalive must be a positive number of seconds, or None")
        super().__init__(
            events, 200, {"cache-control": "no-cache", **(headers or {})}, "text/event-stream"
        )
        self.events = events
        self.keepalive = keepalive


def redirect(url: str, status: int = 307) -> Response:
    """A redirect to ``url`` (307 keeps the method and body; 301, 302, 303, 308 also allowed)."""
    if status not in (301, 302, 303, 307, 308):
        raise ValueError(f"{status} is not a redirect status")
    return Response(b"", status, {"location": url})


def error_response(error: HTTPError) -> Response:
    """The response for an :class:`~trioweb.HTTPError` (JSON for validation errors)."""
    if isinstance(error, RequestValidationError):
        return Response(json_bytes({"detail": error.errors}), error.status, error.headers, _JSON)
    return status_response(error.status, error.detail, error.headers)


def status_response(
    status: int, detail: str = "", headers: Mapping[str, str] | None = None
) -> Response:
    """A short text response for a status, such as 404 Not Found."""
    return Response(detail or http.HTTPStatus(status).phrase, status, headers)


def to_response(value: Any) -> Response | StreamingResponse | FileResponse:
    """Convert a handler's return value.

    ``str`` is text/plain, ``bytes`` application/octet-stream, ``dict``,
    ``list`` and attrs instances JSON, ``None`` 204 No Content.

    Raises:
        TypeError: The value is none of those.
    """
    if isinstance(value, (Response, StreamingResponse, FileResponse)):
        return value
    if isinstance(value, str):
        return Response(value.encode(), 200, None, _TEXT)
    if isinstance(value, (dict, list)) or attrs.has(type(value)):
        return Response(json_bytes(value), 200, None, _JSON)
    if value is None:
        return Response(b"", 204)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Response(bytes(value), 200, None, _OCTETS)
    raise TypeError(
        f"a handler returned {type(value).__name__}; return str, bytes, dict, list, "
        "an attrs instance, None, a trioweb.Response or a StreamingResponse"
    )
