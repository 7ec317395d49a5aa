"""Wall-clock bounds on the test's waits for the app, which virtual time cannot trip.

Theory of operation
-------------------
Under ``MockClock(autojump_threshold=0)`` the app runs in virtual time: a
handler sleeping 60 s takes no real time at all. A bound made with
``trio.move_on_after`` would be virtual too, and the clock would jump straight
to it whenever every task waits, so a 30 s bound would fail a 60 s handler.
The bound here is measured on the wall clock instead: a worker thread
(``trio.lowlevel.start_thread_soon``, from Trio's thread cache) waits on a
``threading.Event`` for the bound's real seconds, and if the wait is still
going on, cancels it through the run's ``TrioToken``. The thread is not a Trio
task, so it neither moves the virtual clock nor keeps it from jumping. No
deadline of the client's ever sits in Trio's deadline queue, which is why the
app's own deadlines are all the autojump clock ever jumps to.

A bound costs one thread hand-off, so waits that would not block skip it.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from collections.abc import Iterator

import outcome
import trio
import trio.testing

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


class AppDidNotRespond(AssertionError):
    """The app did not do something within the test client's wall-clock timeout."""


@contextlib.contextmanager
def wall_clock_bound(seconds: float | None) -> Iterator[trio.CancelScope]:
    """Cancel the block after ``seconds`` of real time (None or inf: never).

    The caller checks the yielded scope's ``cancelled_caught`` to tell the
    bound's expiry from a normal end.
    """
    scope = trio.CancelScope()
    if seconds is None or seconds == math.inf:
        with scope:
            yield scope
        return
    released = threading.Event()
    token = trio.lowlevel.current_trio_token()

    def wait() -> bool:
        return released.wait(max(seconds, 0.0))

    def deliver(result: outcome.Outcome[bool]) -> None:
        if not result.unwrap():  # the real seconds passed before the block ended
            # The run may be over by now; then nothing is left to cancel.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(scope.cancel)

    trio.lowlevel.start_thread_soon(wait, deliver)
    try:
        with scope:
            yield scope
    finally:
        released.set()


def did_not(what: str, seconds: float | None, where: str) -> AppDidNotRespond:
    """The failure for a wait that ran out: it names what the app did not do."""
    return AppDidNotRespond(
        f"the app did not {what} within {seconds}s of wall-clock time ({where})"
    )


async def settle(seconds: float | None) -> None:
    """Let every task run until all of them wait, without letting any time pass.

    Used once a response is complete: a handler that just returns has then
    finished and reported its outcome, while one still busy (a request-nursery
    child sleeping) goes on in the background, as it would behind a real server.
    ``wait_all_tasks_blocked`` wakes before the autojump clock would jump, so no
    virtual time passes either. A run that never goes idle (a task spinning on
    checkpoints) just ends the wait after ``seconds``.

    Cancellation:
        A plain checkpoint: cancelling the caller ends it.
    """
    with wall_clock_bound(seconds):
        await trio.testing.wait_all_tasks_blocked()


def original(error: BaseException) -> BaseException:
    """The exception inside nested groups of one, as the code that raised it raised it."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
