"""Worker processes and reloading, through the command line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import trio

from .test_cli import ROOT
from .wire import fetch


class Log:
    """A server process's stderr, read by a task into one growing string."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.text = ""
        self.changed = trio.Event()

    async def pump(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.receive_some(65536):
            self.text += chunk.decode()
            self.changed.set()
            self.changed = trio.Event()

    async def wait_for(self, pattern: str, count: int = 1, within: float = 30) -> list[str]:
        with trio.fail_after(within):
            while len(found := re.findall(pattern, self.text)) < count:
                await self.changed.wait()
        return found


async def open_server(*args: str, cwd: Path = ROOT) -> trio.Process:
    return await trio.lowlevel.open_process(
        [sys.executable, "-m", "trioweb", "run", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)},
    )


async def kill(process: trio.Process) -> None:
    if process.returncode is None:
        process.kill()  # only the process this test started, by its handle
        await process.wait()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_workers_serve_from_two_processes_cancel_on_disconnect_and_stop_on_sigterm() -> None:
    process = await open_server("tests.serve_app:app", "--port", "0", "--workers", "2")
    log = Log(process)
    streams: list[trio.SocketStream] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(log.pump)
            ports = await log.wait_for(r"serving on http://127\.0\.0\.1:(\d+)", count=2)
            assert ports[0] == ports[1]  # one socket, shared
            port = int(ports[0])
            pids: set[int] = set()
            with trio.fail_after(30):
                for _ in range(200):  # bounded: connections go to whichever worker accepts
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                    streams.append(stream)
                    await stream.send_all(b"GET /hold HTTP/1.1\r\nhost: x\r\n\r\n")
                    data = b""
                    # The head, then the first chunk: the worker's PID and a newline.
                    while (found := re.search(rb"\r\n(\d+)\n\r\n", data)) is None:
                        data += await stream.receive_some(65536)
                    pids.add(int(found.group(1)))
                    if len(pids) == 2:
                        break
            assert len(pids) == 2
            assert os.getpid() not in pids
            assert process.pid not in pids
            for stream in streams:
                await stream.aclose()
            for pid in pids:
                await log.wait_for(rf"hold in {pid} cancelled")
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(30):
                status = await process.wait()
            nursery.cancel_scope.cancel()
    finally:
        await kill(process)
    assert status == 0, log.text
    assert not any(alive(pid) for pid in pids)
    assert "Traceback" not in log.text


async def test_a_worker_that_dies_stops_the_others_and_the_parent_exits_1() -> None:
    process = await open_server("tests.serve_app:app", "--port", "0", "--workers", "2")
    log = Log(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(log.pump)
            found = await log.wait_for(r"\[(\d+)\] trioweb INFO serving on", count=2)
            workers = [int(pid) for pid in found]
            os.kill(workers[0], signal.SIGKILL)  # a worker this test's server started
            with trio.fail_after(30):
                status = await process.wait()
            nursery.cancel_scope.cancel()
    finally:
        await kill(process)
    assert status == 1
    assert not any(alive(pid) for pid in workers)


async def test_reload_restarts_on_a_source_change(tmp_path: Path) -> None:
    source = tmp_path / "reloaded.py"
    template = (
        "from trioweb import App\napp = App()\n\n"
        "@app.get('/v')\nasync def v() -> str:\n    return {!r}\n"
    )
    source.write_text(template.format("one"))
    process = await open_server("reloaded:app", "--port", "0", "--reload", cwd=tmp_path)
    log = Log(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(log.pump)
            [port] = await log.wait_for(r"serving on http://127\.0\.0\.1:(\d+)")
            assert (await fetch(int(port), "GET", "/v")).body == b"one"
            source.write_text(template.format("two"))
            await log.wait_for(r"serving on http://127\.0\.0\.1:(\d+)", count=2)
            # The socket stayed bound: the same port, now the new code.
            assert (await fetch(int(port), "GET", "/v")).body == b"two"
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(30):
                status = await process.wait()
            nursery.cancel_scope.cancel()
    finally:
        await kill(process)
    assert status == 0, log.text
