"""``shielded()``: finish a unit of work even though the client went away."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

logger = logging.getLogger("trioweb")


@asynccontextmanager
async def shielded(
    timeout: float,  # noqa: ASYNC109 - the timeout *is* the point: it bounds the shield
) -> AsyncIterator[trio.CancelScope]:
    """Run the block shielded from cancellation, but for at most ``timeout`` seconds.

    A disconnect cancels a handler wherever it is; some work must not stop
    half-done (aiohttp's lesson). Wrap that unit of work::

        async with trioweb.shielded(timeout=5):
            async with db.transaction():
                await db.execute(debit)
                await db.execute(credit)

    Cancellation:
        The block is shielded from every outer cancellation (a disconnect, a
        route timeout, server shutdown). Its own deadline still cancels it
        after ``timeout`` seconds: that is logged as a warning, and
        ``trio.TooSlowError`` is raised after the block, as ``trio.fail_after``
        does, so that the caller never goes on as if the cut-off work had
        succeeded. On leaving the block, an outer cancellation that arrived
        meanwhile takes effect first.

    Yields:
        The shielded ``trio.CancelScope``, e.g. to extend its deadline.

    Raises:
        trio.TooSlowError: The block was cut off by its timeout.
    """
    if not timeout > 0:
        raise ValueError("shielded() needs a positive timeout: unbounded shielding can hang")
    started = time.perf_counter()
    with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout) as scope:
        yield scope
    if scope.cancelled_caught:
        logger.warning(
            "shielded work was cut off by its %.3gs timeout after %.2fs",
            timeout,
            time.perf_counter() - started,
        )
    # An outer cancellation that arrived meanwhile wins: it says more than the timeout.
    await trio.lowlevel.checkpoint_if_cancelled()
    if scope.cancelled_caught:
        raise trio.TooSlowError(f"shielded work was cut off by its {timeout:.3g}s timeout")
