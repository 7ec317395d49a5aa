"""The receive side of an HTTP exchange: who drains ``receive()``, and the body readers.

Theory of operation
-------------------
Hypercorn reports a disconnect only by queuing ``http.disconnect`` on
``receive()``, so something must keep draining it; a task per request would
cost more than the rest of the framework. So exactly one of these owns
``receive()`` at any time, and :class:`Owner` says which:

* ``NOBODY``: nothing reads yet. Most plain requests end here.
* ``READER``: the request's own task reads the body itself (taking what is
  already queued without a checkpoint), and handles a disconnect itself.
* ``READER_THEN_WATCHER``: the same, and a watcher was asked for meanwhile; it
  starts when the read ends, since two tasks draining ``receive()`` would
  steal each other's messages.
* ``WATCHER``: a Trio system task drains it until ``http.disconnect``, which
  every server sends once the response is complete or the app returned, so it
  never holds a request up. It buffers the body, so an unread body cannot hold
  a disconnect back behind hypercorn's 10-message queue.
* ``ENDED``: ``http.disconnect`` was seen. Nobody may wait on ``receive()``
  again: hypercorn says it once, and a watcher started now would wait forever,
  keeping the exchange and its partial body alive (the mid-upload leak).

Every message goes to :meth:`HTTPState.on_receive`, and the exchange carries out
the effects; this module never decides what a message means.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any

import trio

from ._data_rate import MinDataRate, WriteClock, body_deadline
from ._errors import IOCancelledError
from ._http_state import BodyState, Effect, Event, HTTPState, Phase
from ._hypercorn import disconnect_reason, receive_nowait_of

logger = logging.getLogger("trioweb")


#: Seconds an HTTP/2 final send may take to come back after a disconnect
#: before it counts as stuck on a gone client (see ``_http_state.FINISHING``);
#: a send that completes comes back within microseconds.
DELIVERY_GRACE = 1.0
#: Seconds a watcher goes on draining after its exchange ended abnormally (a
#: write cut at its deadline, a timeout, an abort, a failure, a 413).
#: Hypercorn queues its own ``http.disconnect`` from inside the app's send when
#: the socket fails; a write cut at its deadline is a cancelled scope, and that
#: put is cancelled with it, so the disconnect may never come (trioweb's own
#: connection layer moves that put out of the writer; another server may not).
WATCHER_LINGER = 5.0


class Owner(enum.Enum):
    NOBODY = "nobody"
    READER = "reader"
    READER_THEN_WATCHER = "reader, then the watcher"
    WATCHER = "watcher"
    ENDED = "ended"


class PendingIO:
    """The body read or response write under way: what ``cancel_io()`` and a disconnect cancel.

    Args:
        response_rate: The route's minimum response data rate (None: none).
        request_rate: The route's minimum request body data rate (None: none).
    """

    __slots__ = ("_cancelled", "_delivered", "_interrupted", "clock", "request_rate", "scope")

    def __init__(
        self,
        response_rate: MinDataRate | None = None,
        request_rate: MinDataRate | None = None,
    ) -> None:
        self.scope: trio.CancelScope | None = None
        self._cancelled = False
        self._interrupted = False
        self._delivered: trio.Event | None = None
        self.clock = WriteClock(response_rate)
        self.request_rate = request_rate

    def expired(self, scope: trio.CancelScope) -> bool:
        """Whether ``scope``, this I/O's, ended by its own deadline rather than a cancel()."""
        return scope.cancel_called and not self._interrupted

    def sent(self, state: HTTPState) -> None:
        """A send came back: if it was the final body message, the response is delivered."""
        if state.phase is Phase.FINISHING:
            state.handle(Event.DELIVERED)
            if self._delivered is not None:
                self._delivered.set()

    async def wait_delivered(self, state: HTTPState, grace: float) -> bool:
        """Wait up to ``grace`` seconds for the final send to come back.

        Cancellation:
            Never cancelled (it runs in the watcher, a system task); bounded by ``grace``.
        """
        if state.phase is not Phase.FINISHING:
            await trio.lowlevel.checkpoint()
            return True
        self._delivered = trio.Event()
        with trio.move_on_after(grace):
            await self._delivered.wait()
        return state.phase is not Phase.FINISHING

    def cancel(self, *, by_app: bool) -> None:
        if self.scope is not None:
            self._cancelled = self._cancelled or by_app
            self._interrupted = True
            self.scope.cancel()

    async def finish(self, what: str) -> None:
        """End a read or write: a cancellation of the request wins over ``cancel_io()``.

        Raises:
            IOCancelledError: ``cancel_io()`` cancelled it.
        """
        self.scope = None
        self._interrupted = False
        # A disconnect or an oversized body also cancels the request scope:
        # let that cancellation, not an IOCancelledError, unwind the handler.
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._cancelled:
            self._cancelled = False
            raise IOCancelledError(f"the pending {what} was cancelled by cancel_io()")


class Receiver:
    """Drains ``receive()`` for one exchange; made when the first body read or watch needs it."""

    __slots__ = (
        "_apply",
        "_body_event",
        "_expired",
        "_io",
        "_read_scope",
        "_read_since",
        "_receive",
        "_received",
        "_scope",
        "_state",
        "_watch_scope",
        "owner",
    )

    def __init__(
        self,
        receive: Callable[[], Any],
        scope: dict[str, Any],
        state: HTTPState,
        apply: Callable[[int], None],
        io: PendingIO,
        expired: Callable[[], bool],
    ) -> None:
        self._scope = scope
        self._receive = receive
        self._state = state
        self._apply = apply
        self._io = io
        self._expired = expired  # whether the route's deadline has passed
        self._body_event: trio.Event | None = None
        self._watch_scope: trio.CancelScope | None = None
        self._read_scope: trio.CancelScope | None = None  # a body read's, while it waits
        self._read_since = 0.0
        self._received = 0
        self.owner = Owner.NOBODY

    def _take(self, message: dict[str, Any]) -> int:
        if message.get("type") == "http.disconnect":
            self.owner = Owner.ENDED
            effect = self._state.on_disconnect(
                disconnect_reason(self._scope), deadline_passed=self._expired()
            )
        else:
            effect = self._state.on_receive(message)
            self._received += len(message.get("body", b""))
            if self._read_scope is not None:  # more time for a body that moves on
                self._read_scope.deadline = self._body_deadline()
        if effect:
            self._apply(effect)
        return effect

    def _body_deadline(self) -> float:
        return body_deadline(self._io.request_rate, self._read_since, self._received)

    def _open_read_scope(self) -> trio.CancelScope:
        if self._read_scope is None and not self._read_since:
            self._read_since = trio.current_time()
        self._read_scope = self._io.scope = trio.CancelScope(deadline=self._body_deadline())
        return self._read_scope

    def _close_read_scope(self, scope: trio.CancelScope) -> None:
        self._read_scope = None
        if self._io.expired(scope) and self._body_pending():
            # Below the minimum request body rate: 408, or a closed connection.
            self._apply(self._state.on_too_slow())

    def wake_readers(self) -> None:
        if self._body_event is not None:
            self._body_event.set()

    # ---- the watcher ----

    def start_watcher(self) -> None:
        """Make sure ``receive()`` is watched from now on (a no-op once it ended)."""
        if self.owner is Owner.NOBODY:
            self.owner = Owner.WATCHER
            trio.lowlevel.spawn_system_task(self._watch, name="trioweb disconnect watcher")
        elif self.owner is Owner.READER:
            self.owner = Owner.READER_THEN_WATCHER

    def release(self, *, abnormal: bool) -> None:
        """The exchange ended: a watcher still draining may linger only so long."""
        if abnormal and self.owner is Owner.WATCHER and self._watch_scope is not None:
            self._watch_scope.deadline = trio.current_time() + WATCHER_LINGER

    async def _watch(self) -> None:
        # A system task: it ends with the http.disconnect that every server
        # sends, so it never holds a request up. Its scope is only ever given a
        # deadline once the exchange is over (see release()): cancelled any
        # earlier, it could miss the very message it waits for.
        try:
            with trio.CancelScope() as self._watch_scope:
                while self.owner is not Owner.ENDED:
                    effect = self._take(await self._receive())
                if effect & Effect.AWAIT_DELIVERY and not await self._io.wait_delivered(
                    self._state, DELIVERY_GRACE
                ):
                    # Stuck on a gone client.
                    self._apply(self._state.on_undelivered(disconnect_reason(self._scope)))
        except Exception:
            # Never raise: in a system task an error would end the whole run.
            logger.exception("trioweb's disconnect watcher failed")
            self.owner = Owner.ENDED
            self._apply(self._state.on_disconnect())

    # ---- the body ----

    async def read_body(self) -> bytes:
        """The whole body; see ``Request.body()`` for what cancels it.

        Raises:
            IOCancelledError: ``cancel_io()`` was called, or the client left
                mid-body on a route that runs on after a disconnect.
        """
        state = self._state
        if state.body_state is BodyState.EXPECTED:
            if self.owner is Owner.NOBODY:
                await self._read_directly()
            else:
                if self._body_event is None:
                    self._body_event = trio.Event()
                self.start_watcher()
                with self._open_read_scope() as scope:
                    await self._body_event.wait()
                self._close_read_scope(scope)
                await self._io.finish("body read")
        else:
            await trio.lowlevel.checkpoint()
        if state.body_state is BodyState.COMPLETE:
            return state.body
        if state.body_state is BodyState.EXPECTED:
            raise IOCancelledError("the body read was cancelled")  # pragma: no cover - a bug
        # Overflowed (the request scope is cancelled: 413) or cut short by the client.
        await trio.lowlevel.checkpoint_if_cancelled()
        raise IOCancelledError("the client disconnected before sending the whole body")

    def _body_pending(self) -> bool:
        return self._state.body_state is BodyState.EXPECTED and self.owner is not Owner.ENDED

    def take_queued(self) -> int:
        """Take what the server has already queued of the body, without waiting.

        Sync, so no checkpoint: for an exchange that has not entered its scope
        yet, and reads the body at once if it is all there.

        Returns:
            The effects of what was taken (already carried out): those that
            need the request scope are for the caller to carry out once it
            has one.
        """
        self.owner = Owner.READER
        try:
            return self._take_queued()
        finally:
            self._reader_done()

    def _take_queued(self) -> int:
        effects = Effect.NONE
        receive_nowait = receive_nowait_of(self._receive)
        if receive_nowait is not None:
            state, expected = self._state, BodyState.EXPECTED
            while state.body_state is expected and self.owner is not Owner.ENDED:
                try:
                    message = receive_nowait()
                except trio.WouldBlock:
                    break
                effects |= self._take(message)
        return effects

    def _reader_done(self) -> None:
        if self.owner is not Owner.ENDED:
            wanted = self.owner is Owner.READER_THEN_WATCHER
            self.owner = Owner.NOBODY
            # Past the limit the rest is drained and dropped: hypercorn's
            # reader would block on its full queue otherwise.
            if wanted or self._state.body_state is BodyState.OVERFLOWED:
                self.start_watcher()

    async def _read_directly(self) -> None:
        # No watcher yet: this task drains receive() itself, which spares most
        # requests with a body a task. What is queued already is taken without
        # a checkpoint.
        self.owner = Owner.READER
        try:
            self._take_queued()
            if self._body_pending():
                with self._open_read_scope() as scope:
                    while self._body_pending():
                        self._take(await self._receive())
                self._close_read_scope(scope)
        finally:
            self._reader_done()
        await self._io.finish("body read")
