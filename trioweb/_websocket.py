"""WebSockets: the WebSocket object and its exchange.

The close state machine is the pure table of ``_websocket_state``; the I/O
here only ever asks it first.

Theory of operation
-------------------
Each connection has a reader task that drains ``receive()`` into the
WebSocket's inbox (so a client that leaves is noticed even while the handler
is busy elsewhere) and a request scope around the handler, as for HTTP. The
inbox is bounded in bytes, not messages: a message larger than the route's
``max_message_size`` closes the conversation with 1009, and once the inbox
holds ``buffer_size`` bytes the reader stops reading until the handler catches
up, which is backpressure all the way to the client's TCP window.

When the client goes away (``websocket.disconnect`` before the server started a
close):

1. the reader closes the inbox: a handler parked in ``receive()`` or
   ``async for`` is woken with the end of the stream (``WebSocketClosed``; the
   loop ends), and messages already queued are still delivered first;
2. the token is set and its callbacks run;
3. the request scope is cancelled (unless ``cancel_on_disconnect=False``), so
   the handler's next checkpoint, and its child tasks, raise ``trio.Cancelled``.

Hypercorn reports 1006 for every close the client starts, clean or not
(hypercorn issue 127), so a client's close frame and a dropped TCP connection
cannot be told apart and both count as the client going away; a session that
ends that way without being cancelled is the normal end of a WebSocket, logged
at DEBUG. A disconnect that answers a close the server started
(``close()``/``close_output()``) is the expected acknowledgement, not an abort.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar, final

import trio

from ._datastructures import Headers, QueryParams
from ._errors import WebSocketClosed
from ._util import NoPublicConstructor
from ._websocket_inbox import Inbox, WebSocketStatistics
from ._websocket_state import Op, WebSocketState, transition

if sys.version_info < (3, 11):
    pass

logger = logging.getLogger("trioweb")

__all__ = ["Op", "WebSocket", "WebSocketState", "WebSocketStatistics", "transition"]


class _ExchangeSide(Protocol):
    """What a WebSocket needs of its exchange."""

    scope: dict[str, Any]
    params: dict[str, object]
    buffer_size: int

    @property
    def send(self) -> Callable[[dict[str, Any]], Awaitable[None]]: ...
    def abort(self) -> None: ...


def _raw_headers(headers: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]


_M = TypeVar("_M", str, bytes)


def _expect(message: str | bytes, kind: type[_M]) -> _M:
    if not isinstance(message, kind):
        raise TypeError(
            f"expected a {'text' if kind is str else 'binary'} message, got a "
            f"{'binary' if kind is str else 'text'} one"
        )
    return message


@final
class WebSocket(metaclass=NoPublicConstructor):
    """One WebSocket conversation; ask for it by annotating a handler parameter.

    ``close()`` waits for the client's acknowledgement (bounded by its timeout);
    ``close_output()`` sends the close and returns at once, and ``receive()``
    keeps returning what the client sends until it acknowledges.
    """

    def __init__(self, exchange: _ExchangeSide) -> None:
        self._exchange = exchange
        self._state = WebSocketState.CONNECTING
        self._inbox = Inbox(exchange.buffer_size)
        self._peer_gone = trio.Event()
        self._send_lock = trio.Lock()
        self.close_code: int | None = None
        """The close code once the conversation is over (1006 when the client left)."""
        self.close_reason = ""

    # ---- the request side ----

    @property
    def state(self) -> WebSocketState:
        return self._state

    def statistics(self) -> WebSocketStatistics:
        """A :class:`WebSocketStatistics` snapshot."""
        messages, size = self._inbox.statistics()
        return WebSocketStatistics(self._state, messages, size)

    @property
    def path(self) -> str:
        return str(self._exchange.scope["path"])

    @property
    def path_params(self) -> dict[str, object]:
        return dict(self._exchange.params)

    @property
    def headers(self) -> Headers:
        return Headers.from_raw(self._exchange.scope.get("headers", ()))

    @property
    def query_params(self) -> QueryParams:
        return QueryParams.from_query_string(self._exchange.scope.get("query_string", b""))

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered."""
        return list(self._exchange.scope.get("subprotocols", ()))

    # ---- handshake ----

    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Accept the handshake.

        Cancellation:
            A checkpoint; cancelled with the request scope.
        """
        self._state = transition(self._state, Op.ACCEPT)
        raw = _raw_headers(headers)
        await self._send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": raw})

    async def reject(
        self, status: int = 403, body: bytes | str = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """Refuse the handshake with an HTTP response.

        Uses the ``websocket.http.response`` extension where the server has
        it (hypercorn does); elsewhere the server answers 403 and ``body`` is lost.

        Cancellation:
            A checkpoint; cancelled with the request scope.
        """
        self._state = transition(self._state, Op.REJECT)
        if "websocket.http.response" not in self._exchange.scope.get("extensions", {}):
            await self._send({"type": "websocket.close", "code": 1008})
            return
        payload = body.encode() if isinstance(body, str) else bytes(body)
        raw = [*_raw_headers(headers), (b"content-length", str(len(payload)).encode())]
        await self._send(
            {"type": "websocket.http.response.start", "status": status, "headers": raw}
        )
        await self._send({"type": "websocket.http.response.body", "body": payload})

    # ---- messages ----

    async def receive(self) -> str | bytes:
        """The next message from the client.

        Cancellation:
            A checkpoint; cancelled with the request scope. When the client
            goes away, a task parked here gets ``WebSocketClosed``; the
            request's cancellation follows at its next checkpoint.

        Raises:
            WebSocketClosed: The conversation is over (after the messages the
                client sent before closing).
            WebSocketStateError: Not accepted yet, disposed or aborted.
        """
        self._state = transition(self._state, Op.RECEIVE)
        try:
            return await self._inbox.get()
        except trio.EndOfChannel:
            raise WebSocketClosed(self.close_code or 1006, self.close_reason) from None

    async def receive_text(self) -> str:
        """The next message, which must be text (else ``TypeError``).

        Cancellation:
            As :meth:`receive`.
        """
        return _expect(await self.receive(), str)

    async def receive_bytes(self) -> bytes:
        """The next message, which must be binary (else ``TypeError``).

        Cancellation:
            As :meth:`receive`.
        """
        return _expect(await self.receive(), bytes)

    async def receive_json(self) -> Any:
        """The next message, parsed as JSON.

        Cancellation:
            As :meth:`receive`.
        """
        return json.loads(await self.receive())

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        # A plain iterator, not an async generator: a `break` out of
        # `async for` leaves nothing to finalize later.
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None

    async def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message.

        Cancellation:
            A checkpoint; cancelled with the request scope.

        Raises:
            WebSocketStateError: Not accepted, closing or closed, disposed, aborted.
        """
        self._state = transition(self._state, Op.SEND)
        if isinstance(message, str):
            await self._send({"type": "websocket.send", "text": message})
        elif isinstance(message, (bytes, bytearray, memoryview)):
            await self._send({"type": "websocket.send", "bytes": bytes(message)})
        else:
            raise TypeError(f"send() takes str or bytes, not {type(message).__name__}")

    async def send_json(self, value: object) -> None:
        """Send ``value`` as a JSON text message.

        Cancellation:
            As :meth:`send`.
        """
        await self.send(json.dumps(value, separators=(",", ":"), ensure_ascii=False))

    # ---- closing ----

    async def close(
        self,
        code: int = 1000,
        reason: str = "",
        timeout: float = 5,  # noqa: ASYNC109 - the contract: close() waits at most this long
    ) -> None:
        """Close the conversation and wait for the client to acknowledge.

        For a close the client started, there is nothing left to wait for and
        it returns at once. Messages that arrive while waiting are discarded.
        Afterwards ``receive()`` raises ``WebSocketClosed``.

        Cancellation:
            Waits at most ``timeout`` seconds for the acknowledgement, then
            returns anyway; cancelled with the request scope.
        """
        before = self._state
        self._state = transition(self._state, Op.CLOSE)
        if before is WebSocketState.CONNECTED:
            await self._send_close(code, reason)
        elif before is WebSocketState.CONNECTING:
            await self._send({"type": "websocket.close", "code": code})
            return
        with trio.move_on_after(timeout):
            await self._peer_gone.wait()
        self._inbox.stop_reading()
        if self._state is not WebSocketState.CLOSED:
            self._state = WebSocketState.CLOSED
            self.close_code = self.close_code or 1006

    async def close_output(self, code: int = 1000, reason: str = "") -> None:
        """Send the close and return without waiting for the client.

        ``receive()`` still returns what the client sends before it
        acknowledges, then raises ``WebSocketClosed``.

        Cancellation:
            A checkpoint; cancelled with the request scope.
        """
        before = self._state
        self._state = transition(self._state, Op.CLOSE)
        if before is WebSocketState.CONNECTED or before is WebSocketState.CONNECTING:
            await self._send_close(code, reason)
        else:
            await trio.lowlevel.checkpoint()

    def abort(self) -> None:
        """End the conversation now: the handler is cancelled, and the server
        closes the connection (hypercorn sends close code 1011)."""
        self._state = transition(self._state, Op.ABORT)
        self._exchange.abort()

    async def _send_close(self, code: int, reason: str) -> None:
        # The conversation ends with the code we chose; hypercorn reports the
        # client's acknowledgement as 1000 whatever it was.
        self.close_code, self.close_reason = code, reason
        await self._send({"type": "websocket.close", "code": code, "reason": reason})

    async def _send(self, message: dict[str, Any]) -> None:
        # Hypercorn's send() never fails after the client left, and on HTTP/2
        # it can hang: a disconnect cancels the request scope around it.
        async with self._send_lock:
            await self._exchange.send(message)

    # ---- the reader's side ----

    def _on_peer_gone(self, code: int, reason: str) -> bool:
        """Record the end; True if it was the client leaving (not answering our close)."""
        was = self._state
        self._state = transition(self._state, Op.PEER_GONE)
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._inbox.end()
        self._peer_gone.set()
        return was is WebSocketState.CONNECTING or was is WebSocketState.CONNECTED

    def _dispose(self) -> None:
        self._state = transition(self._state, Op.DISPOSE)
        self._inbox.end()

    def __repr__(self) -> str:
        return f"<WebSocket {self._exchange.scope.get('path')} {self._state.value}>"
