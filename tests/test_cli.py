"""The command line: serve a module's app, stop gracefully on SIGINT/SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from trioweb.__main__ import load_app, main

from .wire import fetch

ROOT = Path(__file__).resolve().parent.parent


async def read_port(process: trio.Process) -> int:
    """Read the server's log until it says where it listens (bounded)."""
    assert process.stderr is not None
    log = b""
    with trio.fail_after(30):
        while (found := re.search(rb"serving on http://127\.0\.0\.1:(\d+)", log)) is None:
            chunk = await process.stderr.receive_some(4096)
            if not chunk:
                raise AssertionError(f"the server exited before serving:\n{log.decode()}")
            log += chunk
    return int(found.group(1))


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
async def test_run_serves_and_stops_gracefully(stop: signal.Signals) -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trioweb", "run", "examples.lottery:app", "--port", "0"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        port = await read_port(process)
        response = await fetch(port, "GET", "/items/3")
        assert response.body == b'{"id":3,"path":"/items/3"}'
        process.send_signal(stop)
        with trio.fail_after(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()  # only the process this test started, by its handle
            await process.wait()
        assert process.stderr is not None
        await process.stderr.aclose()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("examples.lottery", "expected MODULE:ATTR"),
        ("no_such_module_here:app", "cannot import 'no_such_module_here'"),
        ("examples.lottery:nope", "has no attribute 'nope'"),
    ],
)
def test_bad_targets_exit_with_a_message(target: str, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        load_app(target)


def test_usage_error_exits() -> None:
    with pytest.raises(SystemExit):
        main(["run"])
