"""The one ASGI driver of trioweb.testing: a single call of the app, run in-process.

Theory of operation
-------------------
An :class:`AppCall` runs ``app(scope, receive, send)`` as a task of a nursery
the caller owns (the transport's), so the call can outlive whoever started it,
as a request's background work outlives its response behind a real server.
The app's ``receive()`` reads what the client puts in an unbounded channel and
its ``send()`` puts messages in another, which the client reads at its own
pace: neither side ever blocks the other, so a long stream cannot deadlock and
the client can always say ``http.disconnect`` at once, even from a cancelled
task (``send_nowait`` needs no checkpoint).

Every wait of the client's is bounded on the wall clock
(:func:`~trioweb.testing._deadline.wall_clock_bound`) and fails with
:class:`~trioweb.testing.AppDidNotRespond` naming what the app did not do. An exception the app
raises is stored; the next reader of its messages gets it, and otherwise the
transport raises it when it closes (:attr:`AppCall.unseen_error`).

HTTP, WebSocket and lifespan calls all use this class; only what the messages
mean differs, and that lives with the callers.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, final

import trio

from .._hypercorn import CONNECTION_EXTENSION
from .._outcome import DisconnectReason
from ._connection import SimulatedConnection
from ._deadline import did_not, original, wall_clock_bound

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
Message = dict[str, Any]


@final
class AppCall:
    """One ASGI call of the app: its task, its two channels, and how it ended.

    Args:
        app: The ASGI app.
        scope: The call's scope. Its ``extensions`` get ``trioweb.outcome``, the
            dict trioweb's exchange fills with ``outcome`` and ``handler_cancelled``,
            and ``trioweb.connection``, the :class:`SimulatedConnection` that
            says what a disconnect meant.
        describe: What the call is, for failure messages ("GET /items/1").
    """

    def __init__(self, app: ASGIApp, scope: dict[str, Any], describe: str) -> None:
        self.app = app
        self.scope = scope
        self.describe = describe
        self.report: dict[str, object] = {}
        self.connection = SimulatedConnection(self._reset)
        extensions = scope.setdefault("extensions", {})
        extensions["trioweb.outcome"] = self.report
        extensions[CONNECTION_EXTENSION] = self.connection
        self._to_app, self._app_inbox = trio.open_memory_channel[Message](math.inf)
        self._from_app, self._outbox = trio.open_memory_channel[Message](math.inf)
        self.done = trio.Event()
        self.error: BaseException | None = None
        self._error_seen = False
        self._disconnected = False
        # What the client's own request body raised (a failing upload generator).
        self.request_error: Exception | None = None
        self.cancel_scope = trio.CancelScope()

    def start(self, nursery: trio.Nursery) -> None:
        """Start the app's task in ``nursery`` (sync: it runs at the next checkpoint)."""
        nursery.start_soon(self._run, name=f"<ASGI app: {self.describe}>")

    async def _run(self) -> None:
        try:
            with self.cancel_scope:
                await self.app(self.scope, self._app_inbox.receive, self._from_app.send)
        except Exception as error:  # stored for the client; the nursery must not fail
            self.error = original(error)
        finally:
            # Readers get what the app sent, then EndOfChannel: "the app ended".
            self._from_app.close()
            self.done.set()
            if self.scope.get("type") == "http":
                self.disconnect()  # as hypercorn, once the app returned

    def send_nowait(self, message: Message) -> None:
        """Give the app a message (never blocks, works in a cancelled scope)."""
        # Even once the app returned: a task it left (trioweb's disconnect
        # watcher) may still be reading. This side holds the receiving end, so
        # the send cannot fail; unread messages go with the AppCall.
        self._to_app.send_nowait(message)

    def disconnect(self, reason: DisconnectReason | None = None) -> None:
        """Send ``http.disconnect``, once (the client left, or the response is complete).

        Args:
            reason: What the connection layer says the departure meant
                (None: CLIENT_DISCONNECTED, or what it was set to before).
        """
        if not self._disconnected:
            self._disconnected = True
            if reason is not None:
                self.connection.reason = reason
            self.send_nowait({"type": "http.disconnect"})

    def _reset(self) -> None:
        # The app reset the connection (a write cut at its deadline): as the
        # server does then, tell it the client is gone.
        # trioweb resets only HTTP connections so.
        if self.scope.get("type") == "http":
            self.disconnect()

    async def receive(self, what: str, limit: float | None) -> Message | None:
        """The app's next message, or None if the app ended without one.

        Args:
            what: What the app should do, for the failure message
                ("start the response").
            limit: Wall-clock seconds to wait (None: no bound).

        Raises:
            AppDidNotRespond: No message within ``limit``.
            Exception: What the app raised, if it ended by raising.

        Cancellation:
            A checkpoint; bounded by ``limit`` on the wall clock.
        """
        try:
            message = self._outbox.receive_nowait()
        except trio.WouldBlock:
            pass
        except trio.EndOfChannel:
            self.raise_error()
            return None
        else:
            await trio.lowlevel.checkpoint()
            return message
        with wall_clock_bound(limit) as bound:
            try:
                return await self._outbox.receive()
            except trio.EndOfChannel:
                self.raise_error()
                return None
        assert bound.cancelled_caught
        raise did_not(what, limit, self.describe)

    def raise_error(self) -> None:
        """Raise what the app raised, once."""
        if self.error is not None and not self._error_seen:
            self._error_seen = True
            raise self.error

    @property
    def unseen_error(self) -> BaseException | None:
        """What the app raised, if no reader has been given it yet."""
        return None if self._error_seen else self.error

    async def wait_done(self, what: str, limit: float | None) -> None:
        """Wait until the app's call returned, then raise what it raised.

        Cancellation:
            A checkpoint; bounded by ``limit`` on the wall clock
            (:class:`~trioweb.testing.AppDidNotRespond`).
        """
        if self.done.is_set():
            await trio.lowlevel.checkpoint()
        else:
            with wall_clock_bound(limit) as bound:
                await self.done.wait()
            if bound.cancelled_caught:
                raise did_not(what, limit, self.describe)
        self.raise_error()

    def cancel(self) -> None:
        """Cut the app's call off (a test that failed mid-call leaves nothing behind)."""
        self.cancel_scope.cancel()

    @property
    def outcome(self) -> str | None:
        """How trioweb says the request ended ("completed", "disconnected", ...)."""
        value = self.report.get("outcome")
        return None if value is None else str(value)

    @property
    def handler_cancelled(self) -> bool:
        """Whether the handler (or its nursery) was cancelled."""
        return bool(self.report.get("handler_cancelled", False))


def check_type(message: Message, expected: str) -> None:
    """Fail the test, naming both, when the app sent a message out of order."""
    if message["type"] != expected:
        raise AssertionError(f"expected {expected}, got {message['type']!r}")
