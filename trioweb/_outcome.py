"""How a request ended: one value, shared by HTTP and WebSocket exchanges (pure)."""

from __future__ import annotations

import enum


class Outcome(enum.Enum):
    """How a request ended (logged, and reported to the test client).

    Only :attr:`COMPLETED` is a normal end. The exchange sets the first
    outcome that happens and keeps it: a client that leaves after its request
    timed out does not turn the timeout into a disconnect.
    """

    COMPLETED = "completed"
    DISCONNECTED = "disconnected"
    TIMED_OUT = "timed out"
    ABORTED = "aborted"
    TOO_LARGE = "body too large"
    FAILED = "failed"
