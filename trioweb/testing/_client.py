"""An in-process ASGI test client that can leave mid-request.

Theory of operation
-------------------
Each call runs the app in a task of a nursery the call opens, so the app lives
inside the test's own task tree. The app's ``receive()`` reads what the test
puts in an unbounded channel (body chunks, then ``http.disconnect``); its
``send()`` puts response messages in another, which the test reads at its own
pace. Neither side can block the other, so long streams never deadlock.

Like hypercorn, the client sends ``http.disconnect`` after a complete response
(that one is not an abort). ``disconnect()`` sends it early: before the
response starts, mid-upload or mid-stream; the call then waits for the app to
finish. The app reports how the request ended through the ``trioweb.outcome``
scope extension, which is what ``handler_cancelled`` reads.

Every wait is bounded by the client's ``timeout`` and fails with
:class:`AppDidNotRespond` naming what the app did not do. Under
``MockClock(autojump_threshold=0)`` those are virtual seconds, and nothing here
sleeps on the wall clock.
"""

from __future__ import annotations

import json as jsonlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, final
from urllib.parse import urlencode

import trio

from .._datastructures import Headers
from .._errors import WebSocketClosed

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class AppDidNotRespond(AssertionError):
    """The app did not do something within the test client's timeout."""


@final
class WebSocketRejected(Exception):
    """The app refused the WebSocket handshake.

    Attributes:
        status: The HTTP status of the refusal (403 where the app just closed).
        body: The refusal's body, if the app sent one.
    """

    def __init__(self, status: int, body: bytes = b"") -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body

    def __str__(self) -> str:
        return f"WebSocket handshake rejected with HTTP {self.status}"


@final
class TestResponse:
    """A complete response, as the test client received it."""

    __test__ = False  # not a pytest test class

    def __init__(self, status_code: int, headers: Headers, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def __repr__(self) -> str:
        return f"<TestResponse {self.status_code} {len(self.content)} bytes>"


class _Call:
    """What an HTTP call and a WebSocket session share: the app task and its channels."""

    def __init__(self, client: TestClient, scope: dict[str, Any]) -> None:
        self._client = client
        self._scope = scope
        self._report: dict[str, object] = {}
        scope["extensions"]["trioweb.outcome"] = self._report
        self._to_app, self._app_inbox = trio.open_memory_channel[dict[str, Any]](math.inf)
        self._from_app, self._outbox = trio.open_memory_channel[dict[str, Any]](math.inf)
        self._app_done = trio.Event()
        self._app_error: BaseException | None = None
        self._cancel_scope = trio.CancelScope()

    @property
    def _what(self) -> str:
        return f"{self._scope.get('method', 'WEBSOCKET')} {self._scope['path']}"

    async def _run_app(self) -> None:
        try:
            with self._cancel_scope:
                await self._client.app(self._scope, self._app_inbox.receive, self._from_app.send)
        except Exception as error:
            self._app_error = error
        finally:
            # Readers get what the app sent, then EndOfChannel: "the app ended".
            self._from_app.close()
            self._app_done.set()

    def _raise_app_error(self) -> None:
        if self._app_error is not None:
            error, self._app_error = self._app_error, None
            raise error

    async def _next_message(self, what: str) -> dict[str, Any] | None:
        """The app's next message, or None if the app ended without one."""
        with trio.move_on_after(self._client.timeout):
            try:
                return await self._outbox.receive()
            except trio.EndOfChannel:
                self._raise_app_error()
                return None
        raise AppDidNotRespond(
            f"the app did not {what} within {self._client.timeout}s ({self._what})"
        )

    async def wait_app_done(self) -> None:
        """Wait until the app's ASGI call returned.

        Cancellation:
            Bounded by the client's timeout (:class:`AppDidNotRespond`).
        """
        with trio.move_on_after(self._client.timeout) as scope:
            await self._app_done.wait()
        if scope.cancelled_caught:
            raise AppDidNotRespond(
                f"the app did not finish within {self._client.timeout}s ({self._what})"
            )
        self._raise_app_error()

    @property
    def outcome(self) -> str | None:
        """How trioweb says the request ended ("completed", "disconnected", ...)."""
        value = self._report.get("outcome")
        return None if value is None else str(value)

    @property
    def handler_cancelled(self) -> bool:
        """Whether the handler (or its nursery) was cancelled."""
        return bool(self._report.get("handler_cancelled", False))


@final
class StreamCall(_Call):
    """A live HTTP call from :meth:`TestClient.stream`."""

    def __init__(self, client: TestClient, scope: dict[str, Any]) -> None:
        super().__init__(client, scope)
        self.status_code: int | None = None
        self.headers = Headers(())
        self._body_done = False
        self._response_done = False
        self._disconnected = False

    async def send_body(self, chunk: bytes, *, final: bool = False) -> None:
        """Send part of the request body (``final=True`` for the last part).

        Cancellation:
            Bounded by the client's ``timeout`` (:class:`AppDidNotRespond`).
        """
        if self._body_done:
            raise RuntimeError("the request body was already complete")
        self._body_done = final
        await self._to_app.send({"type": "http.request", "body": chunk, "more_body": not final})

    async def wait_response_start(self) -> int:
        """Wait for the response's status and headers; returns the status.

        Raises:
            AppDidNotRespond: No ``http.response.start`` in time, or the app
                ended without one.

        Cancellation:
            Bounded by the client's ``timeout`` (:class:`AppDidNotRespond`).
        """
        if self.status_code is None:
            message = await self._next_message("start the response")
            if message is None:
                raise AppDidNotRespond(f"the app ended without starting a response ({self._what})")
            if message["type"] != "http.response.start":
                raise AssertionError(f"expected http.response.start, got {message['type']!r}")
            self.status_code = int(message["status"])
            self.headers = Headers.from_raw(message.get("headers", ()))
        return self.status_code

    async def next_chunk(self) -> bytes | None:
        """The next non-empty body chunk, or None once the body is complete.

        Cancellation:
            Bounded by the client's ``timeout`` (:class:`AppDidNotRespond`).
        """
        await self.wait_response_start()
        while not self._response_done:
            message = await self._next_message("send the rest of the response body")
            if message is None:
                raise AppDidNotRespond(f"the app ended before the response body did ({self._what})")
            if message["type"] != "http.response.body":
                raise AssertionError(f"expected http.response.body, got {message['type']!r}")
            if not message.get("more_body", False):
                self._response_done = True
                # Hypercorn, too, says "disconnect" after every complete response.
                await self._to_app.send({"type": "http.disconnect"})
            if message.get("body"):
                return bytes(message["body"])
        return None

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The response body, chunk by chunk, as the app sends it.

        A plain iterator, not a generator: breaking out of the loop is fine.
        """
        return _Chunks(self)

    def aiter_events(self) -> AsyncIterator[dict[str, str]]:
        """Server-Sent Events, parsed: dicts with ``data``, and ``event``, ``id``, ``retry``."""
        return _Events(self)

    async def read(self) -> TestResponse:
        """Read the whole response.

        Cancellation:
            Bounded by the client's ``timeout`` (:class:`AppDidNotRespond`).
        """
        content = b"".join([chunk async for chunk in _Chunks(self)])
        assert self.status_code is not None
        return TestResponse(self.status_code, self.headers, content)

    async def disconnect(self) -> None:
        """Leave now, as a client closing its socket, then wait for the app to end.

        Cancellation:
            Bounded by the client's ``timeout`` (:class:`AppDidNotRespond`).
        """
        if not self._disconnected:
            self._disconnected = True
            await self._to_app.send({"type": "http.disconnect"})
        await self.wait_app_done()

    async def _close(self) -> None:
        if not self._response_done and not self._app_done.is_set():
            await self.disconnect()
        else:
            await self.wait_app_done()


class _Chunks:
    def __init__(self, call: StreamCall) -> None:
        self._call = call

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._call.next_chunk()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


class _Events:
    def __init__(self, call: StreamCall) -> None:
        self._call = call
        self._buffer = ""

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> dict[str, str]:
        while True:
            while "\n\n" in self._buffer:
                block, self._buffer = self._buffer.split("\n\n", 1)
                event = parse_event(block)
                if event:
                    return event
            chunk = await self._call.next_chunk()
            if chunk is None:
                raise StopAsyncIteration
            self._buffer += chunk.decode()


def parse_event(block: str) -> dict[str, str]:
    """One SSE block as a dict; comments (keep-alives) are skipped, data lines joined."""
    event: dict[str, str] = {}
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data" and "data" in event:
            value = f"{event['data']}\n{value}"
        event[field] = value
    return event


@final
class WebSocketSession(_Call):
    """A WebSocket conversation from :meth:`TestClient.websocket`."""

    def __init__(self, client: TestClient, scope: dict[str, Any]) -> None:
        super().__init__(client, scope)
        self.subprotocol: str | None = None
        self.headers = Headers(())
        self._closed: WebSocketClosed | None = None
        self._gone = False

    async def _handshake(self) -> None:
        await self._to_app.send({"type": "websocket.connect"})
        message = await self._next_message("answer the WebSocket handshake")
        if message is None:
            raise WebSocketRejected(500)
        if message["type"] == "websocket.accept":
            self.subprotocol = message.get("subprotocol")
            self.headers = Headers.from_raw(message.get("headers") or ())
        elif message["type"] == "websocket.close":
            raise WebSocketRejected(403)
        elif message["type"] == "websocket.http.response.start":
            body = b""
            while True:
                part = await self._next_message("finish the handshake refusal")
                if part is None:
                    break
                body += part.get("body", b"")
                if not part.get("more_body", False):
                    break
            raise WebSocketRejected(int(message["status"]), body)
        else:
            raise AssertionError(f"unexpected {message['type']!r} during the handshake")

    async def send_text(self, text: str) -> None:
        """Send a text message to the app (checkpoints; never blocks)."""
        await self._send({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message to the app (checkpoints; never blocks)."""
        await self._send({"type": "websocket.receive", "bytes": data})

    async def send_json(self, value: object) -> None:
        """Send ``value`` as a JSON text message (checkpoints; never blocks)."""
        await self.send_text(jsonlib.dumps(value))

    async def _send(self, message: dict[str, Any]) -> None:
        if self._gone:
            raise RuntimeError("this WebSocket session is closed")
        await self._to_app.send(message)

    async def receive(self) -> str | bytes:
        """The app's next message.

        Raises:
            WebSocketClosed: The app closed the conversation. Reading the close
                acknowledges it, as a real client does.

        Cancellation:
            Bounded by the client's ``timeout`` (:class:`AppDidNotRespond`).
        """
        if self._closed is not None:
            raise self._closed
        message = await self._next_message("send a WebSocket message")
        if message is None:
            self._closed = WebSocketClosed(1011, "the app ended without closing")
        elif message["type"] == "websocket.close":
            self._closed = WebSocketClosed(
                int(message.get("code", 1000)), message.get("reason") or ""
            )
            await self._leave(1000)
        elif message["type"] == "websocket.send":
            text = message.get("text")
            return text if text is not None else bytes(message.get("bytes") or b"")
        else:
            raise AssertionError(f"unexpected {message['type']!r} from a WebSocket app")
        raise self._closed

    async def receive_text(self) -> str:
        """The app's next message, which must be text (as :meth:`receive`)."""
        message = await self.receive()
        assert isinstance(message, str), f"expected text, got {message!r}"
        return message

    async def receive_bytes(self) -> bytes:
        """The app's next message, which must be binary (as :meth:`receive`)."""
        message = await self.receive()
        assert isinstance(message, bytes), f"expected bytes, got {message!r}"
        return message

    async def receive_json(self) -> Any:
        """The app's next message, parsed as JSON (as :meth:`receive`)."""
        return jsonlib.loads(await self.receive())

    async def close(self, code: int = 1000) -> None:
        """Close from the client side, then wait for the app to end.

        Cancellation:
            Bounded by the client's ``timeout`` (:class:`AppDidNotRespond`).
        """
        await self._leave(code)
        await self.wait_app_done()

    async def disconnect(self) -> None:
        """Drop the connection (code 1006), then wait for the app to end.

        Cancellation:
            Bounded by the client's ``timeout`` (:class:`AppDidNotRespond`).
        """
        await self._leave(1006)
        await self.wait_app_done()

    async def _leave(self, code: int) -> None:
        if not self._gone:
            self._gone = True
            await self._to_app.send({"type": "websocket.disconnect", "code": code})

    async def _close(self) -> None:
        await self.disconnect()


@final
class TestClient:
    """Call an ASGI app in-process, as a client would, including leaving early.

    Use it as an async context manager: entering runs the app's lifespan
    startup, leaving its shutdown::

        async with TestClient(app) as client:
            response = await client.get("/items/1")

    Args:
        app: The ASGI app.
        timeout: Bound, in seconds, of every wait for the app (virtual under
            a MockClock). With ``autojump_threshold=0``, time jumps whenever
            every task waits, including on a worker thread (``FileResponse``,
            ``trio.to_thread``): test such routes without the autojump clock.
        base_headers: Headers sent with every request.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self, app: ASGIApp, *, timeout: float = 30.0, base_headers: Mapping[str, str] | None = None
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.base_headers = dict(base_headers or {"host": "testserver"})
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._lifespan: (
            tuple[
                trio.MemorySendChannel[dict[str, Any]],
                trio.MemoryReceiveChannel[dict[str, Any]],
                trio.Event,
            ]
            | None
        ) = None
        self.lifespan_supported = False

    async def __aenter__(self) -> TestClient:
        stack = AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        self._stack = stack
        self._nursery = nursery
        try:
            await self._start_lifespan(nursery)
        except BaseException:
            nursery.cancel_scope.cancel()
            await stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._stack is not None
        assert self._nursery is not None
        stack, self._stack = self._stack, None
        try:
            if self.lifespan_supported:
                await self._stop_lifespan()
        finally:
            # Calls still running (a test that left one open) are cut off.
            self._nursery.cancel_scope.cancel()
            self._nursery = None
            await stack.aclose()

    async def _start_lifespan(self, nursery: trio.Nursery) -> None:
        to_app, inbox = trio.open_memory_channel[dict[str, Any]](math.inf)
        from_app, outbox = trio.open_memory_channel[dict[str, Any]](math.inf)
        done = trio.Event()

        async def run() -> None:
            try:
                await self.app(
                    {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                    inbox.receive,
                    from_app.send,
                )
            except Exception:
                pass  # an app without lifespan support may raise: carry on without it
            finally:
                done.set()
                from_app.close()

        nursery.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        with trio.move_on_after(self.timeout) as scope:
            try:
                message = await outbox.receive()
            except trio.EndOfChannel:
                return  # the app returned: no lifespan support
        if scope.cancelled_caught:
            raise AppDidNotRespond(
                f"the app did not finish its lifespan startup within {self.timeout}s"
            )
        if message["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"the app's startup failed: {message.get('message', '')}")
        self.lifespan_supported = True
        self._lifespan = (to_app, outbox, done)

    async def _stop_lifespan(self) -> None:
        assert self._lifespan is not None
        to_app, outbox, done = self._lifespan
        await to_app.send({"type": "lifespan.shutdown"})
        with trio.move_on_after(self.timeout) as scope:
            message = await outbox.receive()
            await done.wait()
        if scope.cancelled_caught:
            raise AppDidNotRespond(
                f"the app did not finish its lifespan shutdown within {self.timeout}s"
            )
        if message["type"] == "lifespan.shutdown.failed":
            raise RuntimeError(f"the app's shutdown failed: {message.get('message', '')}")

    # ---- HTTP ----

    def _scope(
        self,
        kind: str,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        cookies: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        path, _, query = path.partition("?")
        if params:
            query = "&".join(filter(None, [query, urlencode(params, doseq=True)]))
        merged = {**self.base_headers, **(headers or {})}
        if cookies:
            merged["cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        scope: dict[str, Any] = {
            "type": kind,
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "scheme": "http" if kind == "http" else "ws",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "extensions": {},
        }
        if kind == "http":
            scope["method"] = method.upper()
        return scope

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        cookies: Mapping[str, str] | None = None,
        upload: bool = False,
    ) -> AsyncIterator[StreamCall]:
        """Start a call and hand it over live, before any response exists.

        With ``upload=True`` no body is sent: send it with
        :meth:`StreamCall.send_body`. Otherwise ``content`` (or ``json``) is
        sent whole at once. Leaving the block before the response is complete
        disconnects; it always waits (bounded) for the app to end.

        Cancellation:
            Bounded by the client's ``timeout`` (:class:`AppDidNotRespond`).
        """
        headers = dict(headers or {})
        body = b""
        if json is not None:
            body = jsonlib.dumps(json).encode()
            headers.setdefault("content-type", "application/json")
        elif content is not None:
            body = content.encode() if isinstance(content, str) else content
        if body or method.upper() in ("POST", "PUT", "PATCH"):
            headers.setdefault("content-length", str(len(body)))
        call = StreamCall(self, self._scope("http", method, path, params, headers, cookies))
        if not upload:
            await call.send_body(body, final=True)
        # The app runs in the client's nursery, not one around this block, so an
        # error in the test's block reaches the test unwrapped (no ExceptionGroup).
        self._require_nursery().start_soon(call._run_app)
        try:
            yield call
        except BaseException:
            call._cancel_scope.cancel()  # don't leave the app behind a failed test
            raise
        await call._close()

    async def request(self, method: str, path: str, **options: Any) -> TestResponse:
        """Make a complete request (see :meth:`stream` for the options).

        Cancellation:
            Bounded by the client's ``timeout`` (:class:`AppDidNotRespond`).
        """
        async with self.stream(method, path, **options) as call:
            return await call.read()

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
        params: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[WebSocketSession]:
        """Open a WebSocket conversation.

        Raises:
            WebSocketRejected: The app refused the handshake.

        Cancellation:
            Bounded by the client's ``timeout`` (:class:`AppDidNotRespond`).
        """
        scope = self._scope("websocket", "GET", path, params, headers, None)
        scope["subprotocols"] = list(subprotocols or [])
        scope["extensions"]["websocket.http.response"] = {}
        session = WebSocketSession(self, scope)
        self._require_nursery().start_soon(session._run_app)
        try:
            await session._handshake()
            yield session
        except BaseException:
            session._cancel_scope.cancel()
            raise
        await session._close()

    def _require_nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError(
                "use the TestClient as an async context manager: "
                "async with TestClient(app) as client"
            )
        return self._nursery
