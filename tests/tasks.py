"""Counting a Trio run's tasks: the leak checks' baseline."""

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
