"""``WebSocketSession``: a WebSocket conversation with an app called in-process.

Runs on the one driver (:class:`~trioweb.testing._driver.AppCall`); what is
here is only what WebSocket messages mean to a client: the handshake (accept,
close, or the ``websocket.http.response`` refusal), messages, and the close
(a client acknowledges the app's close; ``disconnect()`` drops the connection
with 1006, as hypercorn reports a vanished client).
"""

from __future__ import annotations

import json as jsonlib
from typing import Any, final

import trio

from .._datastructures import Headers
from .._errors import WebSocketClosed
from .._outcome import DisconnectReason
from ._connection import check_reason
from ._driver import AppCall


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
class WebSocketSession:
    """A WebSocket conversation from :meth:`TestClient.websocket`.

    Every wait is bounded by the client's ``timeout`` on the wall clock
    (:class:`~trioweb.testing.AppDidNotRespond`).
    """

    def __init__(self, call: AppCall, timeout: float | None) -> None:
        self._call = call
        self.timeout = timeout
        self.subprotocol: str | None = None
        self.headers = Headers(())
        self._closed: WebSocketClosed | None = None
        self._gone = False

    async def _next(self, what: str) -> dict[str, Any] | None:
        return await self._call.receive(what, self.timeout)

    async def handshake(self) -> None:
        """Connect and wait for the app's answer.

        Raises:
            WebSocketRejected: The app refused.

        Cancellation:
            Bounded by the client's ``timeout`` on the wall clock.
        """
        self._call.send_nowait({"type": "websocket.connect"})
        message = await self._next("answer the WebSocket handshake")
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
                part = await self._next("finish the handshake refusal")
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
        self._call.send_nowait(message)
        await trio.lowlevel.checkpoint()

    async def receive(self) -> str | bytes:
        """The app's next message.

        Raises:
            WebSocketClosed: The app closed the conversation. Reading the close
                acknowledges it, as a real client does.

        Cancellation:
            Bounded by the client's ``timeout`` on the wall clock.
        """
        if self._closed is not None:
            raise self._closed
        message = await self._next("send a WebSocket message")
        if message is None:
            self._closed = WebSocketClosed(1011, "the app ended without closing")
        elif message["type"] == "websocket.close":
            self._closed = WebSocketClosed(
                int(message.get("code", 1000)), message.get("reason") or ""
            )
            self._leave(1000)
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
            Bounded by the client's ``timeout`` on the wall clock.
        """
        self._leave(code)
        await self.wait_app_done()

    async def disconnect(
        self, reason: DisconnectReason = DisconnectReason.CLIENT_DISCONNECTED
    ) -> None:
        """Drop the connection (code 1006), then wait for the app to end.

        Args:
            reason: What the server makes of it, and so what the app's
                ``token.reason`` and log line say: ``CLIENT_DISCONNECTED``
                (gone, or closed: the server cannot tell them apart),
                ``CLIENT_TOO_SLOW`` (stopped reading until a send was cut at
                its deadline), ``CONNECTION_TIMED_OUT`` (vanished, until the
                dead-peer timeout).

        Raises:
            ValueError: ``STREAM_RESET`` (a WebSocket app cannot tell it from a
                close), ``ABORTED`` (the app's own doing: ``websocket.abort()``)
                or ``SERVER_SHUTDOWN`` (use :meth:`TestClient.shutdown`).

        Cancellation:
            Bounded by the client's ``timeout`` on the wall clock.
        """
        check_reason(reason, websocket=True)
        if not self._gone:
            self._call.connection.reason = reason
        self._leave(1006)
        await self.wait_app_done()

    async def wait_app_done(self) -> None:
        """Wait until the app's ASGI call returned.

        Cancellation:
            Bounded by the client's ``timeout`` on the wall clock.
        """
        await self._call.wait_done("finish the WebSocket call", self.timeout)

    def _leave(self, code: int) -> None:
        if not self._gone:
            self._gone = True
            self._call.send_nowait({"type": "websocket.disconnect", "code": code})

    @property
    def outcome(self) -> str | None:
        """How trioweb says the conversation ended."""
        return self._call.outcome

    @property
    def handler_cancelled(self) -> bool:
        """Whether the handler was cancelled."""
        return self._call.handler_cancelled

    def cancel(self) -> None:
        """Cut the app's call off."""
        self._call.cancel()
