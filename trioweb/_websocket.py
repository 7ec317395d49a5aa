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
import math
import sys
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, final

import attrs
import trio

from ._datastructures import Headers, QueryParams
from ._endpoint import Endpoint, Hooks
from ._errors import HTTPError, WebSocketClosed
from ._exchange import Exchange, Receive, Send
from ._http_state import Effect
from ._outcome import Outcome
from ._pipeline import request_data
from ._response import error_response, to_response
from ._util import NoPublicConstructor
from ._websocket_state import Op, WebSocketState, transition

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

logger = logging.getLogger("trioweb")

__all__ = [
    "Op",
    "WebSocket",
    "WebSocketExchange",
    "WebSocketState",
    "WebSocketStatistics",
    "transition",
]


def _size(message: str | bytes) -> int:
    # What a message holds in memory; O(1) for str, unlike encoding it.
    return sys.getsizeof(message) if isinstance(message, str) else len(message)


@final
@attrs.frozen
class WebSocketStatistics:
    """A snapshot of a :class:`WebSocket`, for debugging (``websocket.statistics()``).

    Attributes:
        state: Where the conversation stands.
        buffered_messages: Messages received and not read by the handler yet.
        buffered_bytes: Their size in memory, bounded by the app's
            ``websocket_buffer_size`` (plus one message).
    """

    state: WebSocketState
    buffered_messages: int
    buffered_bytes: int


class _Inbox:
    """Messages from the client, bounded in bytes; the reader waits while it is full."""

    __slots__ = ("_budget", "_has_room", "_incoming", "_outgoing", "buffered")

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._outgoing, self._incoming = trio.open_memory_channel[str | bytes](math.inf)
        self._has_room: trio.Event | None = None
        self.buffered = 0

    async def put(self, message: str | bytes) -> None:
        """Queue ``message``, waiting while the inbox is full (one message always fits).

        Cancellation:
            A checkpoint; the wait ends with the reader's scope.
        """
        size = _size(message)
        while self.buffered and self.buffered + size > self._budget:
            self._has_room = trio.Event()
            await self._has_room.wait()
        await trio.lowlevel.checkpoint()
        self.buffered += size
        try:
            self._outgoing.send_nowait(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.buffered -= size  # close() stopped the handler's reading: dropped

    async def get(self) -> str | bytes:
        """The next message.

        Raises:
            trio.EndOfChannel: No more will come.
        """
        try:
            message = await self._incoming.receive()
        except trio.ClosedResourceError:
            raise trio.EndOfChannel from None
        self.buffered -= _size(message)
        if self._has_room is not None:
            self._has_room.set()
        return message

    def statistics(self) -> tuple[int, int]:
        return self._incoming.statistics().current_buffer_used, self.buffered

    def end(self) -> None:
        """No more messages will come (those queued are still delivered)."""
        self._outgoing.close()

    def stop_reading(self) -> None:
        """The handler reads no more: later messages are dropped."""
        self._incoming.close()


@final
class WebSocket(metaclass=NoPublicConstructor):
    """One WebSocket conversation; ask for it by annotating a handler parameter.

    ``close()`` waits for the client's acknowledgement (bounded by its timeout);
    ``close_output()`` sends the close and returns at once, and ``receive()``
    keeps returning what the client sends until it acknowledges.
    """

    def __init__(self, exchange: WebSocketExchange) -> None:
        self._exchange = exchange
        self._state = WebSocketState.CONNECTING
        self._inbox = _Inbox(exchange.buffer_size)
        self._peer_gone = trio.Event()
        self._send_lock = trio.Lock()
        self.close_code: int | None = None
        """The close code once the conversation is over (1006: client left)."""
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
        raw = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        ]
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
        raw = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        ]
        raw.append((b"content-length", str(len(payload)).encode()))
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
        """The next message, which must be text.

        Cancellation:
            As :meth:`receive`.
        """
        message = await self.receive()
        if not isinstance(message, str):
            raise TypeError("expected a text message, got a binary one")
        return message

    async def receive_bytes(self) -> bytes:
        """The next message, which must be binary.

        Cancellation:
            As :meth:`receive`.
        """
        message = await self.receive()
        if not isinstance(message, bytes):
            raise TypeError("expected a binary message, got a text one")
        return message

    async def receive_json(self) -> Any:
        """The next message, parsed as JSON.

        Cancellation:
            As :meth:`receive`.
        """
        return json.loads(await self.receive())

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                yield await self.receive()
            except WebSocketClosed:
                return

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


class WebSocketExchange(Exchange):
    """The scope of one WebSocket connection."""

    __slots__ = ("_outcome", "_peer_gone", "_reader_scope", "buffer_size", "websocket")

    def __init__(
        self,
        app: object,
        hooks: Hooks,
        endpoint: Endpoint,
        params: dict[str, object],
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> None:
        super().__init__(app, hooks, endpoint, params, scope, receive, send)
        self.buffer_size: int = getattr(app, "websocket_buffer_size", 4 * 1024 * 1024)
        self._outcome: Outcome | None = None
        self._peer_gone = False
        self._reader_scope = trio.CancelScope()
        self.websocket = WebSocket._create(self)

    async def run(self) -> None:
        """Run the handler with a reader alongside.

        Cancellation:
            The client leaving cancels the handler and its nursery (unless the
            route opts out); a cancellation from outside propagates unchanged.
        """
        self.started_at = time.perf_counter()
        websocket = self.websocket
        handler_cancelled = False
        try:
            async with trio.open_nursery() as reader_nursery:
                reader_nursery.start_soon(self._read)
                try:
                    handler_cancelled = await self._run_handler(websocket)
                finally:
                    self._reader_scope.cancel()
        finally:
            websocket._dispose()
            self.finish(self._outcome, handler_cancelled, quiet=not handler_cancelled)

    async def _refuse(self, response: Any) -> None:
        response = to_response(response)
        headers = {"content-type": response.media_type or "text/plain"}
        await self.websocket.reject(response.status, response.body, headers)

    async def _run_handler(self, websocket: WebSocket) -> bool:
        failed = False
        try:
            for before in self.hooks.before_websocket:
                refusal = await before(websocket)
                if refusal is not None:
                    await self._refuse(refusal)
                    return False
            # Checked before the handshake; injected objects are bound in the scope.
            data = request_data(self, None) if self.endpoint.plan.data_binders else {}
        except HTTPError as error:
            # Query, header or cookie values that do not fit: refuse the handshake.
            await self._refuse(error_response(error))
            return False
        try:
            with trio.CancelScope() as cancel_scope:
                self.cancel_scope = cancel_scope
                if self.endpoint.needs_nursery:
                    async with trio.open_nursery() as nursery:
                        self.nursery = nursery
                        await self.endpoint.handler(**self.endpoint.injected(self), **data)
                else:
                    await self.endpoint.handler(**self.endpoint.injected(self), **data)
        except Exception as error:
            failed = True
            self._fail(error)
        except BaseExceptionGroup as group:
            failures, others = group.split(Exception)
            if failures is not None:
                failed = True
                self._fail(failures)
            if others is not None:
                raise others from None
        state = websocket.state
        if state is WebSocketState.CONNECTING:
            # Ending before accept() is a refusal: the server answers 403.
            await self.send({"type": "websocket.close", "code": 1008})
        elif state is WebSocketState.CONNECTED:
            await self.send({"type": "websocket.close", "code": 1011 if failed else 1000})
        return cancel_scope.cancelled_caught

    def _fail(self, error: BaseException) -> None:
        self._outcome = Outcome.FAILED
        self.log_failure(error)

    async def _read(self) -> None:
        """Drain receive() into the WebSocket's inbox; notice the client leaving."""
        websocket = self.websocket
        limit = self.endpoint.max_body_size  # a WebSocket route's max_message_size
        with self._reader_scope:
            while True:
                message = await self.receive()
                kind = message.get("type")
                if kind == "websocket.receive":
                    text = message.get("text")
                    payload = text if text is not None else message.get("bytes") or b""
                    if len(payload) > limit:
                        await self._too_big(len(payload), limit)
                        return
                    # Waits while the inbox is full: backpressure to the client.
                    await websocket._inbox.put(payload)
                elif kind == "websocket.disconnect":
                    self._on_disconnect(int(message.get("code", 1006)), message.get("reason") or "")
                    return

    async def _too_big(self, size: int, limit: int) -> None:
        logger.info(
            "%s: closed with 1009, a message of %d bytes exceeds max_message_size %d",
            self.describe(),
            size,
            limit,
        )
        reason = f"message too big (over {limit} bytes)"
        await self.send({"type": "websocket.close", "code": 1009, "reason": reason})
        self._on_disconnect(1009, reason)

    def _on_disconnect(self, code: int, reason: str) -> None:
        if self.websocket._on_peer_gone(code, reason):
            self._peer_gone = True
            if self._outcome is None:
                self._outcome = Outcome.DISCONNECTED
            effect = Effect.TRIP_TOKEN
            if self.endpoint.cancel_on_disconnect:
                effect |= Effect.CANCEL_SCOPE
            self.apply(effect)

    def client_gone(self) -> bool:
        return self._peer_gone

    def abort(self) -> None:
        if self._outcome is None:
            self._outcome = Outcome.ABORTED
        self.apply(Effect.CANCEL_SCOPE)
