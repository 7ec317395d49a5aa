"""What HTTP and WebSocket exchanges share: the token, the scope's effects, the last word.

An exchange owns its request's :class:`~trioweb.DisconnectToken` (created on
first use, tripped and disposed only here, on the Trio thread), carries out
the effects its state machine asks for, and ends with :meth:`Exchange.finish`:
the token is disposed, one log line says how the request ended, and a test
client that asked (the ``trioweb.outcome`` scope extension) is told.

The log line of an abandoned request names the token's reason, which is the
first one (:class:`~trioweb.DisconnectReason`):
``GET /x cancelled: client too slow after 3.01s`` when the handler was
cancelled, ``... ended: <reason> after ...`` when it ended by itself, and
``... ran to completion after the client disconnected ...`` on a route that
does not cancel on a disconnect. A request nobody abandoned says its outcome:
``GET /x ended after 2.00s: timed out``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ._endpoint import Endpoint, Hooks
from ._http_state import Effect
from ._outcome import DisconnectReason, Outcome
from ._token import DisconnectToken

logger = logging.getLogger("trioweb")

# Enum members read through their class cost about three times a global:
# finish() runs for every request.
_COMPLETED, _FAILED = Outcome.COMPLETED, Outcome.FAILED

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


#: The outcomes that abandon a request, and the reason each implies where none was set.
_ABANDONING = {
    Outcome.DISCONNECTED: DisconnectReason.CLIENT_DISCONNECTED,
    Outcome.TOO_SLOW: DisconnectReason.CLIENT_TOO_SLOW,
    Outcome.SHUTDOWN: DisconnectReason.SERVER_SHUTDOWN,
    Outcome.ABORTED: DisconnectReason.ABORTED,
}


class Exchange:
    """The parts of a request's scope that do not depend on its protocol."""

    __slots__ = (
        "_token",
        "app",
        "cancel_scope",
        "endpoint",
        "hooks",
        "nursery",
        "params",
        "receive",
        "scope",
        "send",
        "started_at",
    )

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
        self.app = app  # what an `App` parameter is given; nothing else reads it
        self.hooks = hooks
        self.endpoint = endpoint
        self.params = params
        self.scope = scope
        self.receive = receive
        self.send = send
        self.cancel_scope: trio.CancelScope | None = None
        self.nursery: trio.Nursery | None = None
        self.started_at = 0.0
        self._token: DisconnectToken | None = None

    def abandoned(self) -> DisconnectReason | None:
        """Why the request was abandoned before it was over, or None."""
        return None

    def get_token(self) -> DisconnectToken:
        """The request's token, made on first use (already set if it was abandoned)."""
        if self._token is None:
            budget: float = getattr(self.app, "callback_budget", 0.001)
            self._token = DisconnectToken._create(self.describe(), budget)
            reason = self.abandoned()
            if reason is not None:
                self._token._trip(reason)
        return self._token

    def apply(self, effect: int) -> None:
        """Carry out what the state machine asked for (subclasses add the I/O effects)."""
        if effect & Effect.TRIP_TOKEN and self._token is not None:
            # Before the scope is cancelled: callbacks see a live request.
            self._token._trip(self.abandoned() or DisconnectReason.CLIENT_DISCONNECTED)
        if effect & Effect.CANCEL_SCOPE and self.cancel_scope is not None:
            self.cancel_scope.cancel()

    def shutting_down(self) -> bool:
        """Whether the app's server has begun a graceful shutdown."""
        return bool(getattr(self.app, "shutting_down", False))

    def describe(self) -> str:
        return f"{self.scope.get('method', 'WEBSOCKET')} {self.scope.get('path')}"

    def log_failure(self, error: BaseException) -> None:
        logger.error(
            "%s failed in %s after %.2fs",
            self.describe(),
            self.endpoint.name,
            time.perf_counter() - self.started_at,
            exc_info=error,
        )

    def outcome_text(self, outcome: Outcome) -> str:
        """How an outcome that abandoned nobody is said in the log line (a timeout, a 413)."""
        return outcome.value

    def finish(
        self, outcome: Outcome | None, handler_cancelled: bool, *, quiet: bool = False
    ) -> None:
        """Dispose of the token and say how the request ended.

        Args:
            outcome: How it ended (None: completed).
            handler_cancelled: Whether the request scope was cancelled.
            quiet: A disconnect is the normal end (a WebSocket the client
                closed): say so at DEBUG only.
        """
        if self._token is not None:
            self._token._dispose()
        outcome = outcome or _COMPLETED
        if outcome is not _COMPLETED and outcome is not _FAILED:
            self._log_end(outcome, handler_cancelled, quiet)
        extensions = self.scope.get("extensions")
        if extensions:  # a test client (trioweb.testing) asks how the request ended
            report = extensions.get("trioweb.outcome")
            if report is not None:
                report["outcome"] = outcome.value
                report["handler_cancelled"] = handler_cancelled

    def _log_end(self, outcome: Outcome, handler_cancelled: bool, quiet: bool) -> None:
        """The one line about a request that did not complete; it names the token's reason."""
        what, elapsed = self.describe(), time.perf_counter() - self.started_at
        fallback = _ABANDONING.get(outcome)
        if fallback is None:  # nobody abandoned it: a timeout, a body over its limit
            logger.info("%s ended after %.2fs: %s", what, elapsed, self.outcome_text(outcome))
            return
        # The same reason the token has (the first one; see DisconnectReason).
        reason = self.abandoned() or fallback
        if handler_cancelled:
            logger.info("%s cancelled: %s after %.2fs", what, reason.value, elapsed)
        elif quiet and reason is DisconnectReason.CLIENT_DISCONNECTED:
            logger.debug("%s ended: the client closed it after %.2fs", what, elapsed)
        elif outcome is Outcome.DISCONNECTED and not quiet:  # cancel_on_disconnect=False
            after = "the client disconnected" if reason is fallback else reason.value
            logger.info(
                "%s ran to completion after %s (%.2fs); nothing more was sent", what, after, elapsed
            )
        else:
            logger.info("%s ended: %s after %.2fs", what, reason.value, elapsed)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
