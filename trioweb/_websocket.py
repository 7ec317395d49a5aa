"""WebSockets: a pure close state machine, the WebSocket object, and its exchange.

Everything that changes a WebSocket's state goes through :func:`transition`,
a pure table of (state, operation) -> new state or error; the table is tested
row by row. The I/O parts only ever ask it first.

Theory of operation
-------------------
Each connection has a reader task that drains ``receive()`` into a bounded
channel (so a client that leaves is noticed even while the handler is busy
elsewhere) and a request scope around the handler, as for HTTP. When the
client goes away (``websocket.disconnect`` before the server started a close):

1. the reader closes the channel: a handler parked in ``receive()`` or
   ``async for`` is woken with the end of the stream (``WebSocketClosed``; the
   loop ends), and messages already queued are still delivered first;
2. the token is set and its callbacks run;
3. the request scope is cancelled (unless ``cancel_on_disconnect=False``), so
   the handler's next checkpoint, and its child tasks, raise ``trio.Cancelled``.

Hypercorn reports 1006 for every close the client starts, clean or not
(hypercorn issue 127), so a client's close frame and a dropped TCP connection
cannot be told apart and both count as the client going away. A disconnect that
answers a close the server started (``close()``/``close_output()``) is the
expected acknowledgement, not an abort.
"""

from __future__ import annotations

import contextlib
import enum
import json
import sys
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, final

import trio

from ._datastructures import Headers, QueryParams
from ._errors import (
    HTTPError,
    WebSocketAbortedError,
    WebSocketClosed,
    WebSocketDisposedError,
    WebSocketStateError,
)
from ._response import error_response
from ._scope import ExchangeBase
from ._util import NoPublicConstructor

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

# Messages the reader may queue before it stops reading (and so stops noticing
# a disconnect) until the handler catches up; hypercorn's own queue holds 10.
INCOMING_BUFFER = 64


@final
class WebSocketState(enum.Enum):
    """Where a WebSocket conversation stands."""

    CONNECTING = "connecting"  # handshake not answered yet
    CONNECTED = "connected"
    CLOSE_SENT = "close sent"  # the server sent its close and awaits the client's
    CLOSED = "closed"  # closed both ways, or the client went away
    REJECTED = "rejected"  # the handshake was refused
    ABORTED = "aborted"
    DISPOSED = "disposed"  # the handler returned


class Op(enum.Enum):
    """What can happen to a WebSocket."""

    ACCEPT = "accept"
    REJECT = "reject"
    SEND = "send"
    RECEIVE = "receive"
    CLOSE = "close"
    PEER_GONE = "peer gone"
    ABORT = "abort"
    DISPOSE = "dispose"


_S, _O = WebSocketState, Op
_TABLE: Mapping[tuple[WebSocketState, Op], WebSocketState] = {
    (_S.CONNECTING, _O.ACCEPT): _S.CONNECTED,
    (_S.CONNECTING, _O.REJECT): _S.REJECTED,
    (_S.CONNECTING, _O.CLOSE): _S.REJECTED,
    (_S.CONNECTING, _O.PEER_GONE): _S.CLOSED,
    (_S.CONNECTED, _O.SEND): _S.CONNECTED,
    (_S.CONNECTED, _O.RECEIVE): _S.CONNECTED,
    (_S.CONNECTED, _O.CLOSE): _S.CLOSE_SENT,
    (_S.CONNECTED, _O.PEER_GONE): _S.CLOSED,
    (_S.CLOSE_SENT, _O.RECEIVE): _S.CLOSE_SENT,
    (_S.CLOSE_SENT, _O.CLOSE): _S.CLOSE_SENT,
    (_S.CLOSE_SENT, _O.PEER_GONE): _S.CLOSED,
    (_S.CLOSED, _O.RECEIVE): _S.CLOSED,
    (_S.CLOSED, _O.CLOSE): _S.CLOSED,
    (_S.CLOSED, _O.PEER_GONE): _S.CLOSED,
    (_S.REJECTED, _O.PEER_GONE): _S.REJECTED,
}
_WHY: Mapping[tuple[WebSocketState, Op], str] = {
    (_S.CONNECTING, _O.SEND): "call accept() before sending",
    (_S.CONNECTING, _O.RECEIVE): "call accept() before receiving",
    (_S.CONNECTED, _O.ACCEPT): "accept() was already called",
    (_S.CONNECTED, _O.REJECT): "the handshake was already accepted; use close() instead",
    (_S.CLOSE_SENT, _O.SEND): "cannot send after close() or close_output()",
    (_S.CLOSED, _O.SEND): "cannot send: the WebSocket is closed",
}


def transition(state: WebSocketState, op: Op) -> WebSocketState:
    """The state after ``op``, or the error that ``op`` is in ``state``.

    Raises:
        WebSocketDisposedError: Any use after the handler returned.
        WebSocketAbortedError: Any use after an abort.
        WebSocketStateError: ``op`` does not fit ``state``.
    """
    if op is Op.DISPOSE:
        return _S.DISPOSED
    if state is _S.DISPOSED:
        raise WebSocketDisposedError(
            f"cannot {op.value}: the WebSocket's handler has returned and the socket is "
            "disposed; do not keep a WebSocket beyond its handler"
        )
    if op is Op.ABORT:
        return _S.ABORTED
    if state is _S.ABORTED:
        if op is Op.PEER_GONE:
            return state
        raise WebSocketAbortedError(f"cannot {op.value}: the WebSocket was aborted")
    try:
        return _TABLE[state, op]
    except KeyError:
        why = _WHY.get((state, op), f"not allowed while the WebSocket is {state.value}")
        raise WebSocketStateError(f"cannot {op.value}: {why}") from None


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
        self._incoming_send, self._incoming = trio.open_memory_channel[str | bytes](INCOMING_BUFFER)
        self._peer_gone = trio.Event()
        self._send_lock = trio.Lock()
        self.close_code: int | None = None
        """The close code once the conversation is over (1006: client left)."""
        self.close_reason = ""

    # ---- the request side ----

    @property
    def state(self) -> WebSocketState:
        return self._state

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
            return await self._incoming.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
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
        self._incoming.close()
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
        self._incoming_send.close()
        self._peer_gone.set()
        return was is WebSocketState.CONNECTING or was is WebSocketState.CONNECTED

    def _dispose(self) -> None:
        self._state = transition(self._state, Op.DISPOSE)
        self._incoming_send.close()

    def __repr__(self) -> str:
        return f"<WebSocket {self._exchange.scope.get('path')} {self._state.value}>"


class WebSocketExchange(ExchangeBase):
    """The scope of one WebSocket connection."""

    __slots__ = ("_reader_scope",)

    async def run(self) -> None:
        """Run the handler with a reader alongside.

        Cancellation:
            The client leaving cancels the handler and its nursery (unless the
            route opts out); a cancellation from outside propagates unchanged.
        """
        self.started_at = time.perf_counter()
        websocket = self.websocket = WebSocket._create(self)
        handler_cancelled = False
        try:
            async with trio.open_nursery() as reader_nursery:
                self._reader_scope = trio.CancelScope()
                reader_nursery.start_soon(self._read)
                try:
                    handler_cancelled = await self._run_handler(websocket)
                finally:
                    self._reader_scope.cancel()
        finally:
            websocket._dispose()
            self._finish(handler_cancelled)

    async def _run_handler(self, websocket: WebSocket) -> bool:
        failed = False
        try:
            # Checked before the handshake; injected objects are bound in the scope.
            data = self._data(None) if self.endpoint.plan.data_binders else {}
        except HTTPError as error:
            # Query, header or cookie values that do not fit: refuse the handshake.
            response = error_response(error)
            await websocket.reject(
                response.status,
                response.body,
                {"content-type": response.media_type or "text/plain"},
            )
            return False
        try:
            with trio.CancelScope() as cancel_scope:
                self.cancel_scope = cancel_scope
                if self.endpoint.needs_nursery:
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        await self.endpoint.handler(**self._bind(), **data)
                else:
                    await self.endpoint.handler(**self._bind(), **data)
        except Exception as error:
            failed = True
            self._log_failure(error)
        except BaseExceptionGroup as group:
            failures, others = group.split(Exception)
            if failures is not None:
                failed = True
                self._log_failure(failures)
            if others is not None:
                raise others from None
        state = websocket.state
        if state is WebSocketState.CONNECTING:
            # Ending before accept() is a refusal: the server answers 403.
            await self.send({"type": "websocket.close", "code": 1008})
        elif state is WebSocketState.CONNECTED:
            await self.send({"type": "websocket.close", "code": 1011 if failed else 1000})
        return cancel_scope.cancelled_caught

    async def _read(self) -> None:
        """Drain receive() into the WebSocket's channel; notice the client leaving."""
        websocket = self.websocket
        assert websocket is not None
        with self._reader_scope:
            while True:
                message = await self.receive()
                kind = message.get("type")
                if kind == "websocket.receive":
                    text = message.get("text")
                    payload = text if text is not None else message.get("bytes") or b""
                    # Blocks while the buffer is full: backpressure to the server.
                    # close() ends the handler's reading; later messages are dropped.
                    with contextlib.suppress(trio.BrokenResourceError):
                        await websocket._incoming_send.send(payload)

                elif kind == "websocket.disconnect":
                    self._on_disconnect(int(message.get("code", 1006)), message.get("reason") or "")
                    return

    def _on_disconnect(self, code: int, reason: str) -> None:
        assert self.websocket is not None
        if self.websocket._on_peer_gone(code, reason):
            self._client_left()
