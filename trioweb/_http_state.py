"""The state of one HTTP exchange, as a pure state machine (no I/O, no Trio).

Rule 1, in h11's spirit: everything that changes an HTTP exchange's state
lives in this file. The Trio drivers (``_http_receive``, ``_http_send`` and
``_scope``) report what happened, an :class:`Event`, and carry out the
:class:`Effect` they get back; they never decide themselves what a message
means.

The phases, in order::

    HANDLER ─RETURNED─> RESPONDING ─HEAD─> HEAD_SENT ─FINAL─> FINISHING ─DELIVERED─> BODY_SENT
                                           CHUNK ↺
    (any phase) ─FINISH─> DONE

A client below its minimum data rate (``TOO_SLOW``) is treated as gone once
the response started: its connection is closed under it. Before that, it is
an upload too slow to wait for: the handler is cancelled as for a disconnect,
but the client is still there to be told 408 (:attr:`Outcome.TOO_SLOW`).

A disconnect before ``FINISHING`` means the client went away: the token is
tripped, pending I/O cancelled, body readers woken and (if the route says so)
the request scope cancelled. In ``BODY_SENT`` and ``DONE`` it is the normal end:
hypercorn says ``http.disconnect`` after every complete response.

``FINISHING`` is the time the final body message is in the server's hands. A
disconnect then is ambiguous: hypercorn queues its normal-end
``http.disconnect`` from inside that very send, but a client that left while
the send was stuck looks the same. Over HTTP/1.1 it is taken as the normal
end (hypercorn shields its socket writes, so nothing could interrupt one
anyway). Over HTTP/2 a send can wait forever for flow control from a client
that is gone, so the effect is ``AWAIT_DELIVERY``: the watcher gives the send a
moment to come back (``DELIVERED``), and if it does not, reports
``UNDELIVERED``, which counts as the client leaving.

The body is buffered here, up to ``max_body_size``, whoever drains
``receive()``. Past the limit it is discarded; while the handler still runs,
that is a 413 (:attr:`Outcome.TOO_LARGE`), later it is nobody's business.

A pair missing from :data:`TABLE` is a bug in trioweb, not in the app:
:meth:`HTTPState.handle` raises :class:`HTTPStateError` for it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, final

import attrs

from ._outcome import DisconnectReason, Outcome

# Phase and Event are IntEnums, and Effect plain int flags, for speed: every
# request looks up the table five times, and Enum's hash and Flag's operators
# are Python code (they cost as much as the rest of a plain request).


class Phase(enum.IntEnum):
    """Where an exchange stands."""

    HANDLER = 0  # hooks and the handler run
    RESPONDING = 1  # the response is chosen; nothing sent yet
    HEAD_SENT = 2  # http.response.start was handed to the server
    FINISHING = 3  # the final body message is in the server's hands
    BODY_SENT = 4  # the final body message was handed over: complete
    DONE = 5  # the exchange has ended


class Event(enum.IntEnum):
    """What can happen to an exchange."""

    RETURNED = 0  # the response to send is chosen
    HEAD = 1  # http.response.start is to be sent
    CHUNK = 2  # a body message with more to come
    FINAL = 3  # the last body message
    DELIVERED = 4  # the server took the last body message
    UNDELIVERED = 5  # it did not, and the client is gone
    BODY = 6  # a request body message with more to come
    BODY_END = 7  # the last request body message
    OVERFLOW = 8  # the request body passed max_body_size
    DISCONNECT = 9  # http.disconnect
    ABORT = 10  # the app called abort()
    FINISH = 11  # the exchange ends
    WHOLE = 12  # HEAD, FINAL and DELIVERED at once: a complete response sent unwatched
    TOO_SLOW = 13  # the client went below its minimum data rate


class Effect:
    """What the drivers must do: int flags, combined with ``|`` and tested with ``&``."""

    NONE = 0
    SEND = 1  # hand the message to the server
    TRIP_TOKEN = 2  # set the token and run its callbacks
    CANCEL_SCOPE = 4  # cancel the request scope
    CANCEL_IO = 8  # cancel a pending body read or response write
    WAKE_READERS = 16  # body readers look again
    AWAIT_DELIVERY = 32  # see FINISHING: wait a moment for the final send

    NAMES = ("SEND", "TRIP_TOKEN", "CANCEL_SCOPE", "CANCEL_IO", "WAKE_READERS", "AWAIT_DELIVERY")

    @classmethod
    def describe(cls, effect: int) -> str:
        """``effect`` in words, for tests and debugging."""
        names = [name for name in cls.NAMES if effect & getattr(cls, name)]
        return " | ".join(names) or "NONE"


class BodyState(enum.Enum):
    EXPECTED = "expected"  # more is to come
    COMPLETE = "complete"
    OVERFLOWED = "overflowed"  # past max_body_size: discarded
    CUT = "cut"  # the client left before sending all of it


# Enum members read through their class (``Event.RETURNED``) cost about three
# times a module global (EnumType's attribute lookup): the per-request paths,
# here and in the drivers, read these instead.
RETURNED, WHOLE, FINISH = Event.RETURNED, Event.WHOLE, Event.FINISH
EXPECTED, COMPLETE = BodyState.EXPECTED, BodyState.COMPLETE
_BODY, _BODY_END, _HANDLER = Event.BODY, Event.BODY_END, Phase.HANDLER


class HTTPStateError(RuntimeError):
    """An event that cannot happen in this phase: a bug in trioweb."""


_P, _E, _F = Phase, Event, Effect
_GONE = _F.TRIP_TOKEN | _F.CANCEL_SCOPE | _F.CANCEL_IO | _F.WAKE_READERS
_STARTED = (_P.HEAD_SENT, _P.FINISHING)
_LIVE = (_P.HANDLER, _P.RESPONDING, *_STARTED)  # the client still waits for something
_OVER = (_P.BODY_SENT, _P.DONE)
TABLE: Mapping[tuple[Phase, Event], tuple[Phase, int]] = {
    (_P.HANDLER, _E.RETURNED): (_P.RESPONDING, _F.NONE),
    (_P.RESPONDING, _E.HEAD): (_P.HEAD_SENT, _F.SEND),
    # Unwatched, nothing can see the exchange between the two sends and their
    # return, so the three steps are one: the fast path of a plain response.
    (_P.RESPONDING, _E.WHOLE): (_P.BODY_SENT, _F.SEND),
    (_P.HEAD_SENT, _E.CHUNK): (_P.HEAD_SENT, _F.SEND),
    (_P.HEAD_SENT, _E.FINAL): (_P.FINISHING, _F.SEND),
    (_P.FINISHING, _E.DELIVERED): (_P.BODY_SENT, _F.NONE),
    (_P.FINISHING, _E.UNDELIVERED): (_P.FINISHING, _GONE),
    (_P.HANDLER, _E.OVERFLOW): (_P.HANDLER, _F.CANCEL_SCOPE | _F.WAKE_READERS),
    **{(phase, _E.OVERFLOW): (phase, _F.WAKE_READERS) for phase in (_P.RESPONDING, *_STARTED)},
    **{(phase, _E.BODY): (phase, _F.NONE) for phase in Phase},
    **{(phase, _E.BODY_END): (phase, _F.WAKE_READERS) for phase in _LIVE},
    **{(phase, event): (phase, _F.NONE) for phase in _OVER for event in (_E.BODY_END, _E.OVERFLOW)},
    **{
        (phase, _E.DISCONNECT): (phase, _GONE)
        for phase in (_P.HANDLER, _P.RESPONDING, _P.HEAD_SENT)
    },
    (_P.FINISHING, _E.DISCONNECT): (_P.FINISHING, _F.AWAIT_DELIVERY),
    **{(phase, _E.DISCONNECT): (phase, _F.NONE) for phase in _OVER},
    **{
        (phase, _E.ABORT): (phase, _F.TRIP_TOKEN | _F.CANCEL_SCOPE | _F.CANCEL_IO)
        for phase in _LIVE
    },
    **{(phase, _E.ABORT): (phase, _F.NONE) for phase in _OVER},
    **{(phase, _E.TOO_SLOW): (phase, _GONE) for phase in _LIVE},
    **{(phase, _E.TOO_SLOW): (phase, _F.NONE) for phase in _OVER},
    **{(phase, _E.FINISH): (_P.DONE, _F.NONE) for phase in Phase},
}


# The same table, keyed by one int (phase * 16 + event): hashing an IntEnum
# member, let alone a tuple of two, costs more than the lookup itself.
_FLAT: Mapping[int, tuple[Phase, int]] = {
    int(phase) * 16 + int(event): result for (phase, event), result in TABLE.items()
}


@final
@attrs.define(eq=False, init=False)
class HTTPState:
    """One exchange's phase, outcome and body: the only place any of them changes.

    Args:
        max_body_size: Bytes of request body buffered before it overflows.
        cancel_on_disconnect: The route's policy: whether a disconnect
            cancels the request scope (the token is tripped either way).
        multiplexed: HTTP/2 or 3, where a send can wait forever for a gone
            client (see ``FINISHING``).
    """

    max_body_size: int
    cancel_on_disconnect: bool = True
    multiplexed: bool = False
    phase: Phase = attrs.field(init=False, default=Phase.HANDLER)
    #: The first way the exchange went wrong, or None while nothing did.
    outcome: Outcome | None = attrs.field(init=False, default=None)
    #: Whether the client went away before the response was complete.
    peer_gone: bool = attrs.field(init=False, default=False)
    #: Why the request was abandoned (what its token says), or None.
    reason: DisconnectReason | None = attrs.field(init=False, default=None)
    body_state: BodyState = attrs.field(init=False, default=BodyState.EXPECTED)
    _body: bytes | bytearray | None = attrs.field(init=False, default=None)

    def __init__(
        self, max_body_size: int, cancel_on_disconnect: bool = True, multiplexed: bool = False
    ) -> None:
        # Written out: one is made per request, and attrs' generated __init__
        # looks each default up in a dict of its fields on every call.
        self.max_body_size = max_body_size
        self.cancel_on_disconnect = cancel_on_disconnect
        self.multiplexed = multiplexed
        self.phase = _HANDLER
        self.outcome = None
        self.peer_gone = False
        self.reason = None
        self.body_state = EXPECTED
        self._body = None

    def handle(self, event: Event) -> int:
        """Move on by ``event``; what the drivers must do.

        Raises:
            HTTPStateError: ``event`` cannot happen in this phase.
        """
        try:
            self.phase, effect = _FLAT[self.phase * 16 + event]
        except KeyError:
            raise HTTPStateError(
                f"{event.name.lower()} cannot happen in phase {self.phase.name.lower()}"
            ) from None
        return effect

    def set_outcome(self, outcome: Outcome) -> None:
        """Record how the exchange went wrong; the first outcome stays."""
        if self.outcome is None:
            self.outcome = outcome

    @property
    def stopped(self) -> bool:
        """Whether the response must stop: something went wrong, or nobody listens."""
        return self.outcome is not None or self.peer_gone

    @property
    def response_started(self) -> bool:
        return self.phase in _STARTED or self.phase is Phase.BODY_SENT

    # ---- what the server says ----

    def on_receive(
        self,
        message: Mapping[str, Any],
        reason: DisconnectReason = DisconnectReason.CLIENT_DISCONNECTED,
    ) -> int:
        """One message from ``receive()``; ``reason`` is what a disconnect would mean."""
        kind = message.get("type")
        if kind == "http.request":
            return self._on_body(message.get("body", b""), bool(message.get("more_body", False)))
        if kind == "http.disconnect":
            return self.on_disconnect(reason)
        return Effect.NONE

    def on_disconnect(
        self,
        reason: DisconnectReason = DisconnectReason.CLIENT_DISCONNECTED,
        *,
        deadline_passed: bool = False,
    ) -> int:
        """``http.disconnect``: the client left, or the response was complete.

        Args:
            reason: What the connection layer says the disconnect means.
            deadline_passed: The route's deadline passed before it: the request
                timed out (its write was cut at that deadline), whichever task
                sees it first.
        """
        if self.peer_gone:
            return Effect.NONE  # already handled
        effect = self.handle(Event.DISCONNECT)
        if effect is Effect.AWAIT_DELIVERY:
            return effect if self.multiplexed else Effect.NONE
        if effect and deadline_passed:
            self.set_outcome(Outcome.TIMED_OUT)
        return self._client_left(effect, reason)

    def on_too_slow(self) -> int:
        """The client went below its minimum data rate (a write, or the body)."""
        if self.peer_gone:
            return Effect.NONE
        started = self.response_started
        effect = self.handle(Event.TOO_SLOW)
        if started:
            return self._client_left(effect, DisconnectReason.CLIENT_TOO_SLOW)
        if effect:
            # Nothing sent yet: the handler is cancelled, the client told 408.
            self.set_outcome(Outcome.TOO_SLOW)
            if self.reason is None:
                self.reason = DisconnectReason.CLIENT_TOO_SLOW
            if self.body_state is BodyState.EXPECTED:
                self.body_state = BodyState.CUT
        return effect

    def on_undelivered(
        self, reason: DisconnectReason = DisconnectReason.CLIENT_DISCONNECTED
    ) -> int:
        """The final send did not come back after a disconnect: the client is gone."""
        if self.peer_gone:
            return Effect.NONE
        return self._client_left(self.handle(Event.UNDELIVERED), reason)

    def _client_left(self, effect: int, reason: DisconnectReason) -> int:
        if effect:
            self.peer_gone = True
            if self.reason is None:
                self.reason = reason
            # Reset at the end of a shutdown (its write was stuck until then):
            # the shutdown, not the client, ended it.
            shutdown = self.reason is DisconnectReason.SERVER_SHUTDOWN
            self.set_outcome(Outcome.SHUTDOWN if shutdown else Outcome.DISCONNECTED)
            if self.body_state is BodyState.EXPECTED:
                self.body_state = BodyState.CUT
            if not self.cancel_on_disconnect:
                effect &= ~Effect.CANCEL_SCOPE
        return effect

    def on_shutdown(self) -> int:
        """The server's graceful period ended with this request still running."""
        if self.outcome is not None or self.phase is Phase.DONE:
            return Effect.NONE
        self.set_outcome(Outcome.SHUTDOWN)
        if self.reason is None:  # always so without an outcome; the first reason stays
            self.reason = DisconnectReason.SERVER_SHUTDOWN
        return Effect.TRIP_TOKEN

    def on_abort(self) -> int:
        """The app ends the exchange now (``request.abort()``)."""
        effect = self.handle(Event.ABORT)
        if effect:
            self.set_outcome(Outcome.ABORTED)
            if self.reason is None:
                self.reason = DisconnectReason.ABORTED
        return effect

    def on_send(self, message: Mapping[str, Any]) -> int:
        """A message the app is about to send: SEND, or NONE to skip it.

        Raises:
            HTTPStateError: The message does not fit the phase.
        """
        if message["type"] == "http.response.start":
            return self.on_send_event(Event.HEAD)
        return self.on_send_event(Event.CHUNK if message.get("more_body") else Event.FINAL)

    def on_send_event(self, event: Event) -> int:
        """:meth:`on_send` for a message whose event the caller knows (HEAD, CHUNK, FINAL)."""
        effect = self.handle(event)
        # Nobody is listening: hypercorn would swallow it anyway, or hang on HTTP/2.
        return Effect.NONE if self.peer_gone else effect

    # ---- the body ----

    def _on_body(self, chunk: bytes, more: bool) -> int:
        if self.body_state is not EXPECTED:
            return Effect.NONE  # discarding (overflowed), or a message after the end
        if self._body is None and not more:
            self._body = chunk  # the whole body at once: no copy
        else:
            if self._body is None:
                self._body = bytearray()
            elif isinstance(self._body, bytes):
                self._body = bytearray(self._body)
            self._body += chunk
        if len(self._body) > self.max_body_size:
            self._body = None
            self.body_state = BodyState.OVERFLOWED
            effect = self.handle(Event.OVERFLOW)
            if effect & Effect.CANCEL_SCOPE:
                self.set_outcome(Outcome.TOO_LARGE)
            return effect
        if more:
            return self.handle(_BODY)
        self.body_state = COMPLETE
        return self.handle(_BODY_END)

    @property
    def body(self) -> bytes:
        """The body received so far (all of it once :attr:`body_state` is COMPLETE)."""
        return bytes(self._body or b"")
