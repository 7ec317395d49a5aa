"""Responses, and the conversion of whatever a handler returns into one. Pure."""

from __future__ import annotations

import datetime
import email.utils
import http
import inspect
import re
from collections.abc import AsyncIterable, Mapping
from typing import Any, final

import attrs

from ._errors import HTTPError
from ._files import FileResponse
from ._json_encoding import json_bytes
from ._sse import ServerSentEvent

_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*")
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"
_OCTETS = "application/octet-stream"


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
        if body and (status < 200 or status in _CANNOT_HAVE_BODY):
            raise ValueError(f"a {status} response cannot have a body")
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


@final
class JSONResponse(Response):
    """A JSON response with a status and headers of its choosing.

    For what a returned dict cannot say: ``return JSONResponse(item, status=201,
    headers={"location": url})``.

    Args:
        content: What to encode: what a handler may return as JSON (dict, list,
            attrs instances, str, numbers, None, UUIDs, datetimes).
        status: The status code.
        headers: Extra headers.
        media_type: The ``content-type``.

    Raises:
        TypeError: ``content`` cannot be encoded as JSON.
        ValueError: It holds NaN or an infinity.
    """

    __slots__ = ()

    def __init__(
        self,
        content: object,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        media_type: str = _JSON,
        close_connection: bool = False,
    ) -> None:
        super().__init__(
            json_bytes(content), status, headers, media_type, close_connection=close_connection
        )


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

    It sends ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no``: behind
    nginx, without the latter, events wait in its buffer instead of reaching
    the browser. ``headers`` may replace either.

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
        merged = {
            "cache-control": "no-cache",
            # nginx buffers a proxied response unless told not to: no event would arrive.
            "x-accel-buffering": "no",
            **{name.lower(): value for name, value in (headers or {}).items()},
        }
        super().__init__(events, 200, merged, "text/event-stream")
        self.events = events
        self.keepalive = keepalive


def redirect(url: str, status: int = 307) -> Response:
    """A redirect to ``url`` (307 keeps the method and body; 301, 302, 303, 308 also allowed)."""
    if status not in (301, 302, 303, 307, 308):
        raise ValueError(f"{status} is not a redirect status")
    return Response(b"", status, {"location": url})


def error_response(error: HTTPError) -> Response:
    """The response for an :class:`~trioweb.HTTPError`: JSON ``{"detail": ...}``."""
    return status_response(error.status, error.detail, error.headers)


def status_response(
    status: int,
    detail: str | dict[str, Any] | list[Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON error response, ``{"detail": detail}``; the detail defaults to the
    status's phrase, such as ``"Not Found"``."""
    if detail is None or detail == "":
        try:
            detail = http.HTTPStatus(status).phrase
        except ValueError:  # a status with no registered phrase, such as 599
            detail = "Client Error" if status < 500 else "Server Error"
    return Response(json_bytes({"detail": detail}), status, headers, _JSON)


_CANNOT_HAVE_BODY = frozenset({204, 304})


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate (JSON input can carry one): escape it
        return text.encode("utf-8", "backslashreplace")


_TEXT_TYPE = (b"content-type", _TEXT.encode())
_JSON_TYPE = (b"content-type", _JSON.encode())


def lower_value(value: object) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
    """The headers and body of a 200 for a ``str``, ``dict`` or ``list`` a handler
    returned: ``to_response(value)``'s ``raw_headers()`` and ``body``, without
    making the Response (the common case, on the path of every such request).

    Returns:
        None for any other value (a subclass of those included).

    Raises:
        TypeError, ValueError: As :func:`json_bytes`.
    """
    kind = type(value)
    if kind is str:
        body, content_type = _utf8(value), _TEXT_TYPE  # type: ignore[arg-type]
    elif kind is dict or kind is list:
        body, content_type = json_bytes(value), _JSON_TYPE
    else:
        return None
    return [content_type, (b"content-length", b"%d" % len(body))], body


def to_response(
    value: Any, status: int | None = None
) -> Response | StreamingResponse | FileResponse:
    """Convert a handler's return value.

    ``str`` is text/plain, ``bytes`` application/octet-stream, ``dict``,
    ``list`` and attrs instances JSON, ``None`` 204 No Content (or an empty
    body with ``status``). A response object is returned as it is, with its
    own status.

    Args:
        value: What the handler returned.
        status: The status of a plain value (the route's ``status_code``);
            None for 200 (204 for None).

    Raises:
        TypeError: The value is none of those, or has a body that ``status``
            cannot carry (204, 304).
    """
    if isinstance(value, (Response, StreamingResponse, FileResponse)):
        return value
    if status is not None and value is not None and status in _CANNOT_HAVE_BODY:
        raise TypeError(
            f"a handler returned {_type_name(value)} for a route whose status_code is "
            f"{status}, which has no body; return None"
        )
    if isinstance(value, str):
        return Response(_utf8(value), status or 200, None, _TEXT)
    if isinstance(value, (dict, list)) or attrs.has(type(value)):
        return Response(json_bytes(value), status or 200, None, _JSON)
    if value is None:
        return Response(b"", status or 204)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Response(bytes(value), status or 200, None, _OCTETS)
    if inspect.iscoroutine(value):
        value.close()  # it will never run: no "never awaited" warning on top of this error
    raise TypeError(unsupported_return(value))


def _type_name(value: object) -> str:
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


SUPPORTED_RESULTS = (
    "return str, bytes, dict, list, an attrs instance, None, a trioweb.Response "
    "(JSONResponse, ...), a StreamingResponse or a FileResponse"
)


def unsupported_return(value: object) -> str:
    """Why ``value`` cannot be a handler's result, naming its type."""
    hint = ""
    if inspect.iscoroutine(value) or inspect.isawaitable(value):
        hint = " (an awaitable: did you forget an await?)"
    elif inspect.isasyncgen(value) or inspect.isgenerator(value):
        hint = " (a generator: wrap an async one in StreamingResponse)"
    return f"a handler returned {_type_name(value)}{hint}; {SUPPORTED_RESULTS}"
