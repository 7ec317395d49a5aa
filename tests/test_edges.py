"""The request pipeline at its edges: leaks, races and hook order (issue 10's regressions)."""

from __future__ import annotations

import gc

import pytest
import trio
import trio.lowlevel
import trio.testing

from trioweb import App, Request, Server

from .conftest import Probe
from .wire import connect, fetch, request_bytes

WAIT = 10  # bound, in seconds, of every wait


def live_tasks() -> list[trio.lowlevel.Task]:
    """Every task of this Trio run, found by walking down from the root task."""
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


async def settle() -> None:
    """Let every task that can still run, run (unwinding, watchers ending)."""
    for _ in range(3):
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()


@pytest.fixture
def app(probe: Probe) -> App:
    app = App()

    @app.post("/upload")
    async def upload(request: Request) -> str:
        probe.entered.set()
        try:
            return str(len(await request.body()))
        finally:
            probe.done.set()

    @app.post("/bound")
    async def bound(body: bytes) -> str:
        return str(len(body))

    return app


@pytest.mark.parametrize("path", ["/upload", "/bound"])
async def test_leaving_mid_upload_leaves_no_task_behind(
    server: Server, probe: Probe, path: str
) -> None:
    assert (await fetch(server.port, "POST", path, body=b"warm")).status == 200
    await settle()
    baseline = len(live_tasks())
    for _ in range(20):
        stream = await connect(server.port)
        await stream.send_all(request_bytes("POST", path, [("content-length", "100000")]))
        await stream.send_all(b"x" * 1000)
        await trio.testing.wait_all_tasks_blocked()
        await stream.aclose()
        await settle()
    names = [task.name for task in live_tasks()]
    assert len(names) == baseline, names
    # And it still serves.
    assert (await fetch(server.port, "POST", path, body=b"abc")).body == b"3"
