"""The lifespan of an app under test: startup before the first request, shutdown after the last.

Invariant: whatever makes the app's lifespan fail reaches the test as an
exception. The app's lifespan call may raise (its own error, or one from
``app.nursery``, which trioweb's App runs inside that call), or it may report
``lifespan.startup.failed`` / ``lifespan.shutdown.failed``. Raised errors are
re-raised as raised, unwrapped from exception groups of one; reported ones
become :class:`LifespanFailed` with the app's message. Only an app that
returns without a word, as ASGI lets an app without lifespan support do,
is run without a lifespan.
"""

from __future__ import annotations

from typing import Any, final

import trio

from ._driver import AppCall, ASGIApp


@final
class LifespanFailed(Exception):
    """The app reported that its lifespan startup or shutdown failed.

    Attributes:
        phase: ``"startup"`` or ``"shutdown"``.
        message: The message the app sent with the failure.
    """

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(phase, message)
        self.phase = phase
        self.message = message

    def __str__(self) -> str:
        return f"the app's lifespan {self.phase} failed: {self.message}"


@final
class Lifespan:
    """Drives one ``lifespan`` call of the app through an :class:`AppCall`.

    Attributes:
        supported: Whether the app answered the startup.
        state: The lifespan state, copied into every request's scope.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.state: dict[str, Any] = {}
        scope = {"type": "lifespan", "asgi": {"spec_version": "2.0", "version": "3.0"}}
        scope["state"] = self.state
        self._call = AppCall(app, scope, "lifespan")
        self.supported = False

    async def startup(self, nursery: trio.Nursery, limit: float | None) -> None:
        """Start the lifespan call in ``nursery`` and wait for the startup to finish.

        Raises:
            LifespanFailed: The app reported ``lifespan.startup.failed``.
            Exception: What the app's lifespan call raised.

        Cancellation:
            Bounded by ``limit`` on the wall clock (``AppDidNotRespond``).
        """
        self._call.start(nursery)
        self._call.send_nowait({"type": "lifespan.startup"})
        message = await self._call.receive("finish its lifespan startup", limit)
        if message is None:
            return  # the app returned without a word: it has no lifespan support
        if message["type"] == "lifespan.startup.failed":
            await self._call.wait_done("end its lifespan after the failed startup", limit)
            raise LifespanFailed("startup", str(message.get("message", "")))
        self.supported = True

    def raise_failure(self) -> None:
        """Raise, once, what the lifespan call raised while the app ran (app.nursery crashed)."""
        self._call.raise_error()

    async def shutdown(self, limit: float | None) -> None:
        """Ask the app to shut down and wait until its lifespan call ended.

        Raises:
            LifespanFailed: The app reported ``lifespan.shutdown.failed``.
            Exception: What the app's lifespan call raised, now or before.

        Cancellation:
            Bounded by ``limit`` on the wall clock (``AppDidNotRespond``).
        """
        if not self.supported:
            return
        if self._call.done.is_set():  # it crashed while the app ran
            self._call.raise_error()
            return
        self._call.send_nowait({"type": "lifespan.shutdown"})
        message = await self._call.receive("finish its lifespan shutdown", limit)
        await self._call.wait_done("end its lifespan call after the shutdown", limit)
        if message is None:
            raise AssertionError("the app ended its lifespan without completing the shutdown")
        if message["type"] == "lifespan.shutdown.failed":
            raise LifespanFailed("shutdown", str(message.get("message", "")))

    def cancel(self) -> None:
        """Cut the lifespan call off."""
        self._call.cancel()
