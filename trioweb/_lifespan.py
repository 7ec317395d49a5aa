"""The app's lifespan: what starts in which order, and the reverse order it stops in.

Startup: :attr:`App.nursery` opens, the ``lifespan`` context is entered, the
``on_startup`` hooks run, and the server starts accepting.

Shutdown, the reverse: the server stops accepting and gives in-flight requests
``graceful_timeout`` (that part is the server's), then the ``on_shutdown`` hooks
run, ``app.nursery`` gets ``shutdown_grace`` and is cancelled, and only when its
last task has ended is the ``lifespan`` context left. A task in ``app.nursery``
therefore never sees a pool or client that the context already closed.

Invariant: ``app.nursery`` is opened by a task of its own (:class:`_AppNursery`),
not by the code that enters the context. That is what lets the nursery exist
while the context is entered, yet close before the context is left.

A crashing ``app.nursery`` task is a bug the app cannot keep serving past: its
traceback is logged at ERROR on logger ``trioweb``, the driver is asked to shut
down, and once the shutdown above has run, the lifespan call raises the task's
original exception (an :class:`ExceptionGroup` if several tasks crashed), instead
of sending ``lifespan.shutdown.complete``.

How the driver is asked: a server that can stop on the app's behalf puts
``scope["extensions"]["trioweb.shutdown"] = {"request": callable}`` in the
lifespan scope; trioweb calls ``request()`` (sync, no arguments) once, keeps
waiting for ``lifespan.shutdown``, and raises after it. :func:`trioweb.serve`
does this. Without the extension (hypercorn on its own, a test driver) the app
cannot ask, so it does not wait: it runs the shutdown at once and raises.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from collections.abc import Awaitable, Callable
from typing import Any, final

import attrs
import trio

from ._exchange import Receive, Send

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

logger = logging.getLogger("trioweb")

SHUTDOWN_EXTENSION = "trioweb.shutdown"


def _original(error: BaseException) -> BaseException:
    """The one exception inside nested single-member groups, else the group itself."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


@final
@attrs.frozen
class LifespanPlan:
    """What an app's lifespan runs, as the app hands it over (no app internals here).

    Attributes:
        context: Enters the app's ``lifespan`` context, or None.
        on_startup: The startup hooks, in order.
        on_shutdown: The shutdown hooks, in order.
        shutdown_grace: Seconds ``app.nursery`` tasks get at shutdown.
        set_nursery: Tells the app its nursery (None once closed).
    """

    context: Callable[[], contextlib.AbstractAsyncContextManager[object]] | None
    on_startup: tuple[Callable[[], Awaitable[object]], ...]
    on_shutdown: tuple[Callable[[], Awaitable[object]], ...]
    shutdown_grace: float
    set_nursery: Callable[[trio.Nursery | None], None]


@final
@attrs.define(eq=False)
class _AppNursery:
    """``app.nursery``, held open by a task of its own until :meth:`close`."""

    set_nursery: Callable[[trio.Nursery | None], None]
    on_crash: Callable[[], None]
    crash: BaseException | None = None
    _closing: trio.Event = attrs.field(factory=trio.Event)
    _grace: float = math.inf
    _closed: trio.Event = attrs.field(factory=trio.Event)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self.set_nursery(nursery)
                task_status.started()
                await self._closing.wait()
                # Not cancel(): the tasks get their grace, then the deadline cancels them.
                nursery.cancel_scope.deadline = trio.current_time() + self._grace
        except Exception as error:  # the nursery's ExceptionGroup: a task crashed
            self.crash = _original(error)
            logger.error(
                "a task in app.nursery crashed; shutting the app down", exc_info=self.crash
            )
            self.on_crash()
        finally:
            self.set_nursery(None)
            self._closed.set()

    async def close(self, grace: float) -> None:
        """Give the tasks ``grace`` seconds, cancel them, and wait until all have ended.

        Cancellation:
            Waits for the tasks; if the caller is cancelled it stops waiting,
            and the nursery is cancelled with the lifespan call around it.
        """
        self._grace = grace
        self._closing.set()
        await self._closed.wait()


async def run_lifespan(
    plan: LifespanPlan, scope: dict[str, Any], receive: Receive, send: Send
) -> None:
    """Serve the ASGI ``lifespan`` scope for an app's ``plan`` (see the module docstring).

    Raises:
        Exception: What a crashed ``app.nursery`` task raised, after the shutdown ran.

    Cancellation:
        Cancelling the call stops everything at once: the shutdown hooks do
        not run, ``app.nursery`` is cancelled, the context is left.
    """
    message = await receive()
    if message["type"] != "lifespan.startup":
        return
    extension = scope.get("extensions", {}).get(SHUTDOWN_EXTENSION)
    waiting = trio.CancelScope()

    def on_crash() -> None:
        if extension is not None:
            extension["request"]()
        else:
            waiting.cancel()  # nobody to ask: shut down now

    holder = _AppNursery(plan.set_nursery, on_crash)
    async with trio.open_nursery() as root:
        await root.start(holder.run)
        stack = contextlib.AsyncExitStack()
        startup_error: Exception | None = None
        try:
            if plan.context is not None:
                await stack.enter_async_context(plan.context())
            for hook in plan.on_startup:
                await hook()
        except Exception as error:
            logger.exception("startup failed")
            startup_error = error
        failure: str | None = None
        if startup_error is None:
            await send({"type": "lifespan.startup.complete"})
            with waiting:
                await receive()
            try:
                for hook in plan.on_shutdown:
                    await hook()
            except Exception as error:
                logger.exception("shutdown failed")
                failure = repr(error)
        await holder.close(0 if startup_error is not None else plan.shutdown_grace)
        try:
            await stack.aclose()
        except Exception as error:
            logger.exception("shutdown failed")
            failure = failure or repr(error)
    if startup_error is not None:
        await send({"type": "lifespan.startup.failed", "message": repr(startup_error)})
    elif holder.crash is not None:
        raise holder.crash
    elif failure is None:
        await send({"type": "lifespan.shutdown.complete"})
    else:
        await send({"type": "lifespan.shutdown.failed", "message": failure})
