"""What the examples' tests share: waiting for a log line without sleeping."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import trio
import trio.lowlevel


class LogWatch(logging.Handler):
    """Collects log messages, and lets a Trio test wait (bounded) for one to appear.

    For servers in the test's own process reached over real sockets, where
    ``wait_all_tasks_blocked`` cannot tell whether the server has read what
    the client sent.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        self._changed = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if trio.lowlevel.in_trio_run():  # an Event is only for the Trio thread
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, message: str, timeout: float = 10) -> None:  # noqa: ASYNC109 - bounded by contract
        """Wait until ``message`` was logged.

        Cancellation:
            Fails with ``trio.TooSlowError`` after ``timeout`` seconds.
        """
        with trio.fail_after(timeout):
            while message not in self.messages:
                await self._changed.wait()


@pytest.fixture
def logs() -> Iterator[LogWatch]:
    watch = LogWatch()
    root = logging.getLogger()
    level = root.level
    root.addHandler(watch)
    root.setLevel(logging.INFO)
    try:
        yield watch
    finally:
        root.removeHandler(watch)
        root.setLevel(level)
