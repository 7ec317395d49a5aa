"""How a request ended, and why it was abandoned: values shared by every exchange (pure)."""

from __future__ import annotations

import enum
from typing import final


class Outcome(enum.Enum):
    """How a request ended (logged, and reported to the test client).

    Only :attr:`COMPLETED` is a normal end. The exchange sets the first
    outcome that happens and keeps it: a client that leaves after its request
    timed out does not turn the timeout into a disconnect.
    """

    COMPLETED = "completed"
    DISCONNECTED = "disconnected"  # abandoned: the token's reason says why
    TIMED_OUT = "timed out"
    ABORTED = "aborted"
    TOO_LARGE = "body too large"
    TOO_SLOW = "client too slow"  # the body came too slowly: answered 408
    FAILED = "failed"
    SHUTDOWN = "cancelled by shutdown"  # the server's graceful period ended first


@final
class DisconnectReason(enum.Enum):
    """Why a request was abandoned: what ``DisconnectToken.reason`` says once it is set.

    The server cannot always tell these apart. A client that closes its socket
    and one whose network dropped it look the same until the dead-peer timeout
    (TCP keepalive and ``TCP_USER_TIMEOUT``) decides: only then is it
    :attr:`CONNECTION_TIMED_OUT`. A WebSocket client's close frame arrives as
    1006 (hypercorn issue 127), like a dropped connection: both are
    :attr:`CLIENT_DISCONNECTED`. Over HTTP/2, a stream whose connection is still
    open when its request is abandoned was reset: :attr:`STREAM_RESET`.
    """

    CLIENT_DISCONNECTED = "client disconnected"
    STREAM_RESET = "stream reset"
    CLIENT_TOO_SLOW = "client too slow"
    CONNECTION_TIMED_OUT = "connection timed out"
    SERVER_SHUTDOWN = "server shutting down"
    ABORTED = "aborted by the app"
