"""The WebSocket close state machine: one pure table, tested row by row.

Everything that changes a WebSocket's state goes through :func:`transition`,
a table of (state, operation) -> new state or error. The I/O parts in
``_websocket`` only ever ask it first.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import final

from ._errors import WebSocketAbortedError, WebSocketDisposedError, WebSocketStateError


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
    (_S.CLOSE_SENT, _O.SEND): "close() or close_output() was called",
    (_S.CLOSED, _O.SEND): "the WebSocket is closed",
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
