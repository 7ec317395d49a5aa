"""ASGI scopes built from an ``httpx.Request`` exactly as hypercorn builds them off the wire.

Invariant: for a request httpx would send over a socket, the scope here is the
one hypercorn 0.18 hands the app (``hypercorn/protocol/http_stream.py`` and
``ws_stream.py``), except ``client`` and ``server``, which name no real socket.
In particular ``path`` is the percent-decoded ``raw_path`` (UTF-8, as
``urllib.parse.unquote``), ``raw_path`` excludes the query, header names are
lowercase (h11 lowers them) and values are the bytes httpx would send.

Also what hypercorn's HTTP/1.1 framing adds to a response (:func:`framed_headers`):
h11 appends ``Transfer-Encoding: chunked`` to a body of unknown length and
moves ``Connection: close`` to the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

import httpx

Headers = list[tuple[bytes, bytes]]

# What hypercorn sends for HTTP/1.1 and WebSocket scopes.
_HTTP_ASGI = {"spec_version": "2.1", "version": "3.0"}
_WEBSOCKET_ASGI = {"spec_version": "2.3", "version": "3.0"}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _common(
    request: httpx.Request,
    *,
    client: tuple[str, int],
    root_path: str,
    state: Mapping[str, Any],
) -> dict[str, Any]:
    url = request.url
    path, _, query_string = url.raw_path.partition(b"?")
    return {
        "http_version": "1.1",
        "path": unquote(path.decode("ascii")),
        "raw_path": path,
        "query_string": query_string,
        "root_path": root_path,
        "headers": [(name.lower(), value) for name, value in request.headers.raw],
        "client": client,
        "server": (url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 80)),
        "state": dict(state),  # hypercorn copies the lifespan state for each request
    }


def http_scope(
    request: httpx.Request,
    *,
    client: tuple[str, int],
    root_path: str = "",
    state: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``http`` scope hypercorn would build for ``request`` on HTTP/1.1."""
    scope = _common(request, client=client, root_path=root_path, state=state or {})
    scope.update(
        type="http",
        asgi=dict(_HTTP_ASGI),
        method=request.method,
        scheme=request.url.scheme,
        extensions={},
    )
    return scope


def websocket_scope(
    request: httpx.Request,
    *,
    subprotocols: list[str],
    client: tuple[str, int],
    root_path: str = "",
    state: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``websocket`` scope hypercorn would build for a handshake to ``request.url``."""
    scope = _common(request, client=client, root_path=root_path, state=state or {})
    scope.update(
        type="websocket",
        asgi=dict(_WEBSOCKET_ASGI),
        scheme="wss" if request.url.scheme in ("https", "wss") else "ws",
        subprotocols=list(subprotocols),
        extensions={"websocket.http.response": {}},
    )
    return scope


def websocket_handshake_headers(subprotocols: list[str]) -> dict[str, str]:
    """The headers a WebSocket client (wsproto) adds to its handshake request."""
    headers = {
        "connection": "Upgrade",
        "upgrade": "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    if subprotocols:
        headers["sec-websocket-protocol"] = ", ".join(subprotocols)
    return headers


def suppress_body(method: str, status: int) -> bool:
    """Whether hypercorn drops the body the app sends (as ``hypercorn.utils.suppress_body``)."""
    return method == "HEAD" or 100 <= status < 200 or status in (204, 304)


def framed_headers(status: int, headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """The response headers as h11 puts them on an HTTP/1.1 wire."""
    result: Headers = []
    close = False
    length_known = status in (204, 304)
    for name, value in headers:
        lower = name.lower()
        if lower == b"connection" and b"close" in value.lower():
            close = True  # h11 rewrites this header at the end (set_comma_header)
            continue
        if lower in (b"content-length", b"transfer-encoding"):
            length_known = True
        result.append((name, value))
    if not length_known:
        result.append((b"Transfer-Encoding", b"chunked"))
    if close:
        result.append((b"Connection", b"close"))
    return result
