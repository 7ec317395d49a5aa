"""``TestClient``: call an app in-process as a client would, including leaving early.

Theory of operation
-------------------
The client is a thin layer over :class:`~trioweb.testing.ASGITransport`, the
one ASGI driver: entering the client enters the transport (its nursery, the
app's lifespan), and every request is an ``httpx.Request``, so URLs, queries
and bodies are byte for byte what httpx puts on a socket, and the scope is
the one hypercorn would build from them. Unlike ``httpx.AsyncClient`` it adds
no headers of its own beyond ``Host`` and the body's, keeps no cookies and
follows no redirects: use httpx over the transport for those.

``request()`` and its shorthands return once the response is complete, as a
real client does: the app's call goes on in the background (a request-nursery
child outliving the response), and what it raises surfaces when the client
closes. Before returning, the client lets every task run until all of them
wait, without letting time pass, so a handler that simply returns has
reported its outcome by then.

``stream()`` and ``websocket()`` hand the call over live, for what httpx cannot
express: leaving before the response starts, at a chosen byte of an upload or
a chosen chunk of a stream.

Every wait is bounded on the wall clock (``timeout``, or ``timeout=`` per
request) and fails with :class:`~trioweb.testing.AppDidNotRespond` naming what
the app did not do. The app itself runs in whatever time the test runs in:
under ``MockClock(autojump_threshold=0)`` a 60 s handler takes no real time.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, final

import httpx

from .._datastructures import Headers
from ._asgi_scope import websocket_handshake_headers, websocket_scope
from ._deadline import settle
from ._driver import ASGIApp
from ._response import TestResponse
from ._stream_call import StreamCall
from ._transport import ASGITransport, body_message
from ._websocket_session import WebSocketSession

_UNSET: Any = object()
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@final
class TestClient:
    """Call an ASGI app in-process, as a client would, including leaving early.

    Use it as an async context manager: entering runs the app's lifespan
    startup, leaving waits for calls still running, runs the shutdown and
    raises what the app raised (an ``app.nursery`` task's crash included)::

        async with TestClient(app) as client:
            response = await client.get("/items/1")

    Args:
        app: The ASGI app.
        timeout: Wall-clock seconds for every wait for the app; ``timeout=``
            on a request overrides it for that request. It is real time even
            under the autojump clock, so virtual sleeps never trip it.
            ``FileResponse`` and ``trio.to_thread`` need no special care: while
            a worker thread runs, the autojump clock can only jump to the
            app's own deadlines (a route ``timeout``), never to the client's.
        base_url: Where relative request paths resolve (scheme, host, port,
            and the ``Host`` header).
        base_headers: Headers sent with every request. Unlike ``httpx.AsyncClient``,
            the client adds none of its own beyond ``Host`` and the body's.
        lifespan: Run the app's lifespan (False for an app that raises on one).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: ASGIApp,
        *,
        timeout: float = 30.0,
        base_url: str = "http://testserver",
        base_headers: Mapping[str, str] | None = None,
        lifespan: bool = True,
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.base_headers = dict(base_headers or {})
        self.transport = ASGITransport(app, lifespan=lifespan, timeout=timeout)
        self._base_url = httpx.URL(base_url)

    @property
    def base_url(self) -> str:
        """Where relative request paths resolve."""
        return str(self._base_url)

    @base_url.setter
    def base_url(self, value: str) -> None:
        self._base_url = httpx.URL(value)

    @property
    def lifespan_supported(self) -> bool:
        """Whether the app answered the lifespan startup."""
        return self.transport.lifespan is not None and self.transport.lifespan.supported

    async def __aenter__(self) -> TestClient:
        """Run the app's lifespan startup.

        Cancellation:
            Bounded by ``timeout`` on the wall clock.
        """
        self.transport.timeout = self.timeout
        await self.transport.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        """Wait for calls still running, run the lifespan shutdown, raise what the app raised.

        Cancellation:
            Bounded by ``timeout`` on the wall clock.
        """
        self.transport.timeout = self.timeout
        await self.transport.__aexit__(*exc_info)

    async def shutdown(self, graceful_timeout: float = 5.0) -> None:
        """Shut down as :func:`trioweb.serve` does on SIGTERM, up to the lifespan shutdown.

        New requests are refused. The app's ``shutdown_started()`` runs: open
        WebSockets get a 1001 close (read it to acknowledge, as a client
        does), their tokens set with ``SERVER_SHUTDOWN``. Calls still running
        get ``graceful_timeout`` seconds (the app's time: none of the real
        kind under the autojump clock); whatever runs then is cancelled by
        shutdown, its token set with ``SERVER_SHUTDOWN``. Leaving the client
        then runs the lifespan shutdown.

        Cancellation:
            See :meth:`ASGITransport.shutdown`.
        """
        await self.transport.shutdown(graceful_timeout)

    # ---- HTTP ----

    def build_request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        cookies: Mapping[str, str] | None = None,
        timeout: float | None = _UNSET,
        **body: Any,
    ) -> httpx.Request:
        """The request as httpx would send it (``body``: ``content``, ``json``, ``data``...).

        ``headers`` is a mapping, or a list of pairs to repeat a header, as in httpx.
        """
        own = httpx.Headers(headers)  # the request's own values replace the client's
        merged = [(k, v) for k, v in self.base_headers.items() if k not in own]
        merged.extend(own.multi_items())
        if cookies:
            merged.append(("cookie", "; ".join(f"{k}={v}" for k, v in cookies.items())))
        seconds = self.timeout if timeout is _UNSET else timeout
        return httpx.Request(
            method,
            self._url(path),
            params=params,
            headers=merged,
            extensions={"timeout": httpx.Timeout(seconds).as_dict()},
            **body,
        )

    def _url(self, path: str) -> httpx.URL:
        """``path`` against ``base_url``, joined as ``httpx.AsyncClient`` joins them."""
        # httpx refuses control characters in a URL; a client would percent-encode them.
        url = httpx.URL(_CONTROL.sub(lambda m: f"%{ord(m.group()):02X}", path))
        if not url.is_relative_url:
            return url
        base = self._base_url
        prefix = base.raw_path if base.raw_path.endswith(b"/") else base.raw_path + b"/"
        return base.copy_with(raw_path=prefix + url.raw_path.lstrip(b"/"))

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, *, upload: bool = False, **options: Any
    ) -> AsyncIterator[StreamCall]:
        """Start a call and hand it over live, before any response exists.

        Takes :meth:`request`'s options. With ``upload=True`` no body is sent:
        send it with :meth:`StreamCall.send_body`. Leaving the block before the
        response is complete disconnects and waits (bounded) for the app to
        end; after a complete response, the app's call goes on in the background.

        Cancellation:
            Bounded by the call's timeout on the wall clock. If the block
            raises, the app's call is cancelled.
        """
        request = self.build_request(method, path, **options)
        transport = self.transport
        timeout = transport.read_timeout(request)
        call = transport.open_call(transport.http_scope(request), f"{method} {request.url.path}")
        stream_call = StreamCall(call, request.method, timeout)
        if not upload:
            call.send_nowait(body_message(await request.aread(), final=True))
        try:
            yield stream_call
        except BaseException:
            call.cancel()  # don't leave the app behind a failed test
            raise
        if stream_call.response_done or call.done.is_set():
            await settle(timeout)
            call.raise_error()
        else:
            await stream_call.disconnect()

    async def request(self, method: str, path: str, **options: Any) -> TestResponse:
        """Make a complete request; returns once the response is complete.

        Args:
            method: The HTTP method.
            path: A path (with or without a query) relative to ``base_url``, or a URL.
            **options: ``params``, ``headers``, ``cookies``, ``timeout``
                (wall-clock seconds, None for the client's), and one body:
                ``content``, ``json``, ``data`` or ``files``, all as in httpx.

        Cancellation:
            Bounded by the timeout on the wall clock. Cancelling the caller
            tells the app the client left.
        """
        response = await self.transport.handle_async_request(
            self.build_request(method, path, **options)
        )
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        headers = Headers.from_raw(response.headers.raw)
        return TestResponse(
            response.status_code, headers, content, response.extensions["trioweb.outcome"]
        )

    async def get(self, path: str, **options: Any) -> TestResponse:
        """A complete GET request (see :meth:`request`)."""
        return await self.request("GET", path, **options)

    async def head(self, path: str, **options: Any) -> TestResponse:
        """A complete HEAD request (see :meth:`request`)."""
        return await self.request("HEAD", path, **options)

    async def options(self, path: str, **options: Any) -> TestResponse:
        """A complete OPTIONS request (see :meth:`request`)."""
        return await self.request("OPTIONS", path, **options)

    async def post(self, path: str, **options: Any) -> TestResponse:
        """A complete POST request (see :meth:`request`)."""
        return await self.request("POST", path, **options)

    async def put(self, path: str, **options: Any) -> TestResponse:
        """A complete PUT request (see :meth:`request`)."""
        return await self.request("PUT", path, **options)

    async def patch(self, path: str, **options: Any) -> TestResponse:
        """A complete PATCH request (see :meth:`request`)."""
        return await self.request("PATCH", path, **options)

    async def delete(self, path: str, **options: Any) -> TestResponse:
        """A complete DELETE request (see :meth:`request`)."""
        return await self.request("DELETE", path, **options)

    # ---- WebSocket ----

    @asynccontextmanager
    async def websocket(
        self,
        path: str,
        *,
        subprotocols: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        timeout: float | None = _UNSET,
    ) -> AsyncIterator[WebSocketSession]:
        """Open a WebSocket conversation; leaving the block drops the connection (1006).

        Raises:
            WebSocketRejected: The app refused the handshake.

        Cancellation:
            Bounded by the timeout on the wall clock. If the block raises, the
            app's call is cancelled.
        """
        subprotocols = list(subprotocols or [])
        handshake = {**websocket_handshake_headers(subprotocols), **(headers or {})}
        request = self.build_request("GET", path, params=params, headers=handshake, timeout=timeout)
        transport = self.transport
        scope = websocket_scope(request, subprotocols=subprotocols, client=transport.client)
        call = transport.open_call(scope, f"WEBSOCKET {request.url.path}")
        session = WebSocketSession(call, transport.read_timeout(request))
        try:
            await session.handshake()
            yield session
        except BaseException:
            call.cancel()
            raise
        await session.disconnect()
