"""Helpers for tests that wait on a Trio run: its task count (the leak checks'
baseline), and a log a test can wait on."""

from __future__ import annotations

import trio
import trio.lowlevel


def live_tasks() -> list[trio.lowlevel.Task]:
    """Every task of this Trio run (a server's included), found by walking down from the root."""
    found: list[trio.lowlevel.Task] = []
    root = trio.lowlevel.current_root_task()
    assert root is not None
    pending = [root]
    while pending:
        task = pending.pop()
        found.append(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found


def task_count() -> int:
    """How many tasks this Trio run has."""
    return len(live_tasks())


class EventLog(list[str]):
    """A log a test can wait on: each append wakes the waiters."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = trio.Event()

    def append(self, entry: str) -> None:
        super().append(entry)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, entry: str) -> None:
        with trio.fail_after(10):
            while entry not in self:
                await self._changed.wait()
