"""The connection under an in-process call: what a simulated departure means to the app.

Behind trioweb's own server, every scope carries the connection layer's handle
(``scope["extensions"]["trioweb.connection"]``), through which the exchange
learns why its client went away: a reset HTTP/2 stream, a dead peer, a write
cut as too slow. :class:`SimulatedConnection` is that handle for a test
client's call, so a test can leave with any reason a real client can cause
(:func:`check_reason` says which those are), and the app sees exactly what
it would see over a socket: ``token.reason``, the log line, the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import final

from .._outcome import DisconnectReason

_NOT_THE_CLIENTS = {
    DisconnectReason.ABORTED: (
        "an abort is the app's own doing: call request.abort() (or websocket.abort()) "
        "in the handler"
    ),
    DisconnectReason.SERVER_SHUTDOWN: (
        "a shutdown is the server's doing: simulate it with `await client.shutdown()`"
    ),
}
_NOT_ON_A_WEBSOCKET = (
    "a WebSocket cannot tell a reset stream from the client's close (both end its "
    "HTTP/2 stream with 1006, hypercorn issue 127), so its app sees CLIENT_DISCONNECTED"
)


def check_reason(reason: DisconnectReason, *, websocket: bool) -> None:
    """Refuse a reason a client cannot cause (or a WebSocket app cannot observe).

    Raises:
        TypeError: ``reason`` is not a :class:`~trioweb.DisconnectReason`.
        ValueError: The client cannot cause it; the message says how to get it.
    """
    if not isinstance(reason, DisconnectReason):
        raise TypeError(f"reason must be a trioweb.DisconnectReason, not {reason!r}")
    why = _NOT_THE_CLIENTS.get(reason)
    if why is None and websocket and reason is DisconnectReason.STREAM_RESET:
        why = _NOT_ON_A_WEBSOCKET
    if why is not None:
        raise ValueError(f"a client cannot disconnect with DisconnectReason.{reason.name}: {why}")


@final
class SimulatedConnection:
    """``scope["extensions"]["trioweb.connection"]`` for one in-process call.

    Args:
        on_abort: What the server would do once the app resets the connection
            (tell the app its client is gone).
    """

    __slots__ = ("_on_abort", "aborted", "reason")

    def __init__(self, on_abort: Callable[[], None]) -> None:
        self._on_abort = on_abort
        #: What a disconnect on this call means (set by the client as it leaves).
        self.reason = DisconnectReason.CLIENT_DISCONNECTED
        #: Whether the app reset the connection (a write cut at its deadline).
        self.aborted = False

    def __deepcopy__(self, memo: dict[int, object]) -> SimulatedConnection:
        # One connection, as the server's handle: a middleware's deep copy of
        # the scope must not make a second one.
        return self

    def disconnect_reason(self) -> DisconnectReason:
        """Why the client is gone: what the test said as it left."""
        return self.reason

    def abort(self) -> None:
        """The app resets the connection: the server then says the client is gone."""
        if not self.aborted:
            self.aborted = True
            self._on_abort()
