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

from trioweb.__main__ import main
from trioweb._loading import load_app

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


# ---- the process: signals, exit status, bounded shutdown, startup errors ----


async def start_server(*options: str, cwd: Path = ROOT) -> trio.Process:
    return await trio.lowlevel.open_process(
        [sys.executable, "-m", "trioweb", "run", *options, "--port", "0"],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)},
    )


async def finish(process: trio.Process, within: float = 30) -> tuple[int, str]:
    """Wait (bounded) for the process to exit; its status and its whole log."""
    assert process.stderr is not None
    log = b""
    with trio.fail_after(within):
        while chunk := await process.stderr.receive_some(65536):
            log += chunk
        status = await process.wait()
    return status, log.decode()


async def stop(process: trio.Process) -> None:
    if process.returncode is None:
        process.kill()  # only the process this test started, by its handle
        await process.wait()
    assert process.stderr is not None
    await process.stderr.aclose()


async def test_a_second_signal_stops_at_once_without_a_traceback() -> None:
    process = await start_server("tests.serve_app:app", "--graceful-timeout", "60")
    try:
        port = await read_port(process)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /hold HTTP/1.1\r\nhost: x\r\n\r\n")
        with trio.fail_after(10):
            await stream.receive_some(65536)  # the head and the PID: the handler is running
        process.send_signal(signal.SIGINT)
        await trio.sleep(0.3)  # a human's second Ctrl+C
        process.send_signal(signal.SIGINT)
        started = trio.current_time()
        status, log = await finish(process, within=10)
        elapsed = trio.current_time() - started
        await stream.aclose()
    finally:
        await stop(process)
    assert status == 1
    assert "Traceback" not in log
    assert "SIGINT again: stopping at once" in log
    assert elapsed < 2


async def test_shutdown_is_bounded_with_a_client_that_never_reads() -> None:
    process = await start_server(
        "tests.serve_app:app", "--graceful-timeout", "1", "--shutdown-grace", "1"
    )
    try:
        port = await read_port(process)
        sock = trio.socket.socket()
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
        await sock.connect(("127.0.0.1", port))
        stream = trio.SocketStream(sock)
        await stream.send_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        with trio.fail_after(10):
            await stream.receive_some(1)  # streaming has begun; now never read again
        await trio.sleep(0.5)  # the server fills the socket buffers and blocks in send_all
        process.send_signal(signal.SIGTERM)
        started = trio.current_time()
        status, log = await finish(process, within=15)
        elapsed = trio.current_time() - started
        await stream.aclose()
    finally:
        await stop(process)
    assert status == 0, log
    # graceful_timeout 1 + shutdown_grace 1 (unused: no app.nursery task) + the 0.5 s reset delay
    assert elapsed < 1 + 1 + 1.5, elapsed
    print(f"shutdown with a never-reading client took {elapsed:.2f}s")


async def test_a_crashing_app_nursery_task_stops_the_server_with_status_1() -> None:
    process = await start_server("tests.serve_app:app")
    try:
        port = await read_port(process)
        response = await fetch(port, "POST", "/crash")
        assert response.body == b"scheduled"
        status, log = await finish(process)
    finally:
        await stop(process)
    assert status == 1
    assert "a task in app.nursery crashed; shutting the app down" in log
    assert "RuntimeError: a background task failed on purpose" in log
    assert "Lifespan support" not in log  # hypercorn's misleading message
    assert log.count("Traceback") == 1


async def test_the_process_dies_of_nothing_a_client_sends() -> None:
    process = await start_server("tests.serve_app:app")
    try:
        port = await read_port(process)
        for _ in range(20):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"GET /plain HTTP/1.0\r\n\r\nX")
                with trio.move_on_after(5):
                    while await stream.receive_some(65536):
                        pass
        assert (await fetch(port, "GET", "/plain")).body == b"plain"
        assert process.returncode is None
        process.send_signal(signal.SIGTERM)
        status, _ = await finish(process)
    finally:
        await stop(process)
    assert status == 0


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trioweb", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
    )


def test_not_an_asgi_app_is_one_clear_line() -> None:
    result = run_cli("run", "tests.serve_app:logger")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "trioweb: tests.serve_app:logger is not an ASGI app (an async callable of scope, "
        "receive, send), it is Logger"
    ]


def test_a_port_in_use_is_one_clear_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("run", "tests.serve_app:app", "--port", str(port))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"trioweb: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(another server is listening there)"
    ]


def test_an_import_error_inside_the_app_shows_the_users_traceback(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text("import trioweb\nimport no_such_dependency_xyz\n")
    result = run_cli("run", "broken_app:app", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert 'broken_app.py", line 2, in <module>' in result.stderr
    assert "ModuleNotFoundError: No module named 'no_such_dependency_xyz'" in result.stderr


def test_help_documents_every_option() -> None:
    result = run_cli("run", "--help")
    options = [
        "--host", "--port", "--uds", "--workers", "--reload", "--certfile", "--keyfile",
        "--ca-certs", "--root-path", "--proxy-headers", "--forwarded-allow-ips",
        "--graceful-timeout", "--shutdown-grace", "--keep-alive-timeout", "--dead-peer-timeout",
        "--h11-max-incomplete-size", "--access-log", "--log-level",
    ]  # fmt: skip
    for option in options:
        assert option in result.stdout
    # Every option the parser has is in that list: nothing undocumented.
    assert set(re.findall(r"(--[a-z0-9-]+)", result.stdout)) - {"--help"} == set(options)


def test_the_cli_passes_every_option_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from trioweb import __main__ as cli

    seen: dict[str, object] = {}
    monkeypatch.setattr(cli, "run", lambda app, **options: seen.update(options, app=app))
    main(["run", "tests.serve_app:app", "--dead-peer-timeout", "0", "--forwarded-allow-ips", "*"])
    assert seen["dead_peer_timeout"] is None
    assert seen["forwarded_allow_ips"] == "*"
    main(["run", "tests.serve_app:app", "--workers", "2"])
    assert seen["app"] == "tests.serve_app:app"  # workers import it themselves


async def test_access_log() -> None:
    process = await start_server("tests.serve_app:app", "--access-log")
    try:
        port = await read_port(process)
        assert (await fetch(port, "GET", "/plain")).status == 200
        process.send_signal(signal.SIGTERM)
        status, log = await finish(process)
    finally:
        await stop(process)
    assert status == 0
    assert re.search(r'hypercorn\.access INFO .*"GET /plain 1\.1" 200', log), log


def test_log_level_sets_basic_config_and_trioweb_and_hypercorn_loggers() -> None:
    code = (
        "import logging; from trioweb._supervise import configure_logging; "
        "configure_logging('error'); "
        "print([logging.getLevelName(logging.getLogger(n).level) for n in "
        "('trioweb', 'hypercorn.error', 'hypercorn.access', '', 'other')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    # The root through basicConfig (the app's own loggers follow it); nothing else.
    assert result.stdout.strip() == "['ERROR', 'ERROR', 'ERROR', 'ERROR', 'NOTSET']"
