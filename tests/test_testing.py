"""The test client and pytest plugin, used exactly as a user would: only fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, open_websocket_url

from trioweb import (
    App,
    DisconnectToken,
    FileResponse,
    Request,
    Server,
    StreamingResponse,
    WebSocket,
)
from trioweb.testing import AppDidNotRespond, StreamCall, TestClient

from .conftest import Probe
from .wire import fetch


@pytest.fixture
def app(probe: Probe) -> App:
    app = App()

    @app.on_startup
    async def startup() -> None:
        probe.record.append("startup")

    @app.on_shutdown
    async def shutdown() -> None:
        probe.record.append("shutdown")

    async def child() -> None:
        try:
            await trio.sleep(60)  # outlives nothing: the request ends when it does
        finally:
            probe.record.append("child ended")

    @app.get("/wait")
    async def wait(token: DisconnectToken, nursery: trio.Nursery) -> str:
        token.register(probe.record.append, "callback")
        nursery.start_soon(child)
        try:
            await trio.sleep(60)
        except trio.Cancelled:
            probe.record.append("handler cancelled")
            raise
        return "waited a minute"

    @app.post("/upload", max_body_size=10_000_000)
    async def upload(request: Request) -> str:
        try:
            body = await request.body()
        except trio.Cancelled:
            probe.record.append("upload cancelled")
            raise
        return f"{len(body)} bytes"

    @app.get("/chunks/{count:int}")
    async def chunks(count: int) -> StreamingResponse:
        async def produce() -> AsyncIterator[bytes]:
            try:
                for i in range(count):
                    yield b"%d\n" % i
                    await trio.sleep(0.01)
            finally:
                probe.record.append("generator closed")

        return StreamingResponse(produce(), media_type="text/plain")

    @app.get("/never")
    async def never() -> str:
        await trio.Event().wait()  # nothing will ever set it
        return "unreachable"

    @app.websocket("/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            async for message in ws:
                await ws.send(message)
        finally:
            probe.record.append("echo ended")

    return app


async def test_lifespan_startup_ran(client: TestClient, probe: Probe) -> None:
    assert probe.record == ["startup"]
    assert client.lifespan_supported


async def test_lifespan_shutdown_runs_on_exit(app: App, probe: Probe) -> None:
    async with TestClient(app):
        assert probe.record == ["startup"]
    assert probe.record == ["startup", "shutdown"]


async def test_sixty_second_handler_finishes_instantly(
    client: TestClient, autojump_clock: trio.testing.MockClock
) -> None:
    client.timeout = 120
    response = await client.get("/wait")
    assert response.text == "waited a minute"
    assert trio.current_time() >= 60  # virtual time went by, wall time did not


async def test_disconnect_before_response_start(
    client: TestClient, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    async with client.stream("GET", "/wait") as call:
        await trio.sleep(0.7)
        await call.disconnect()
    assert call.handler_cancelled
    assert call.status_code is None
    assert sorted(probe.record) == ["callback", "child ended", "handler cancelled", "startup"]


async def test_disconnect_mid_upload(client: TestClient, probe: Probe) -> None:
    async with client.stream(
        "POST", "/upload", headers={"content-length": "1000000"}, upload=True
    ) as call:
        await call.send_body(b"x" * 1000)
        await trio.testing.wait_all_tasks_blocked()
        await call.disconnect()
    assert call.handler_cancelled
    assert "upload cancelled" in probe.record


async def test_disconnect_mid_stream_of_50_chunks(
    client: TestClient, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    received = []
    async with client.stream("GET", "/chunks/50") as call:
        async for chunk in call.aiter_bytes():
            received.append(chunk)
            if len(received) == 20:
                break
        await call.disconnect()
    assert received == [b"%d\n" % i for i in range(20)]
    assert call.outcome == "disconnected"
    assert "generator closed" in probe.record  # its finally ran


async def test_stream_of_1000_chunks_read_fully(
    client: TestClient, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    response = await client.get("/chunks/1000")
    assert response.content == b"".join(b"%d\n" % i for i in range(1000))
    assert "generator closed" in probe.record


async def test_websocket_echo_and_disconnect(client: TestClient, probe: Probe) -> None:
    async with client.websocket("/echo") as ws:
        await ws.send_text("hello")
        assert await ws.receive_text() == "hello"
        await ws.send_bytes(b"\x00\x01")
        assert await ws.receive_bytes() == b"\x00\x01"
        await ws.disconnect()
    assert "echo ended" in probe.record


async def test_sixty_virtual_seconds_need_no_timeout_setting(
    client: TestClient, autojump_clock: trio.testing.MockClock
) -> None:
    response = await client.get("/wait")  # the client's default timeout is 30 s
    assert response.text == "waited a minute"
    assert trio.current_time() >= 60


async def test_a_real_hang_fails_after_the_wall_clock_bound_naming_the_wait(
    client: TestClient, autojump_clock: trio.testing.MockClock
) -> None:
    client.timeout = 0.5  # real seconds: the virtual clock cannot trip it
    with pytest.raises(
        AppDidNotRespond,
        match=r"did not start the response within 0.5s of wall-clock time \(GET /never\)",
    ):
        await client.get("/never")
    assert trio.current_time() == 0  # the bound never put a deadline on the virtual clock


async def test_per_request_timeout(
    client: TestClient, autojump_clock: trio.testing.MockClock
) -> None:
    with pytest.raises(AppDidNotRespond, match=r"within 0.25s of wall-clock time"):
        await client.get("/never", timeout=0.25)
    call: StreamCall
    with pytest.raises(AppDidNotRespond, match=r"did not start the response within 0.25s"):
        async with client.stream("GET", "/never", timeout=0.25) as call:
            await call.wait_response_start()


async def test_over_the_wire(live_server: Server) -> None:
    response = await fetch(live_server.port, "GET", "/chunks/3")
    assert response.status == 200
    assert response.body == b"0\n1\n2\n"
    assert live_server.url == f"http://127.0.0.1:{live_server.port}"


async def test_websocket_over_the_wire(live_server: Server, probe: Probe) -> None:
    async with open_websocket_url(f"ws://127.0.0.1:{live_server.port}/echo") as ws:
        await ws.send_message("over the wire")
        assert await ws.get_message() == "over the wire"
    # The close handshake is done; what is left on the server is scheduling.
    with trio.fail_after(5):
        await trio.testing.wait_all_tasks_blocked()
    assert "echo ended" in probe.record
    with pytest.raises(ConnectionClosed):
        await ws.send_message("closed")


# ---- parity with the wire, and the app's call outliving its response ----


async def test_paths_are_percent_decoded_as_hypercorn_does() -> None:
    app = App()

    @app.get("/hello/{name}")
    async def hello(name: str, request: Request) -> dict[str, object]:
        return {"name": name, "path": request.path, "query": request.query_string.decode()}

    async with TestClient(app) as client:
        response = await client.get("/hello/hello%20w%C3%B6rld?q=a+b%2B")
    assert response.json() == {
        "name": "hello wörld",
        "path": "/hello/hello wörld",
        "query": "q=a+b%2B",  # the query stays raw, as on the wire
    }


async def test_response_returns_before_a_request_nursery_child_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App()
    record: list[str] = []

    @app.get("/background")
    async def background(nursery: trio.Nursery) -> str:
        async def child() -> None:
            await trio.sleep(1)
            record.append("child done")

        nursery.start_soon(child)
        return "answered"

    async with TestClient(app) as client:
        response = await client.get("/background")
        assert response.text == "answered"
        assert trio.current_time() == 0  # answered at once, as over the wire
        assert record == []
        assert response.outcome is None  # the request ends with its last child
    # Closing the client waits for the call still running.
    assert record == ["child done"]
    assert trio.current_time() == 1
    assert response.outcome == "completed"


async def test_a_handler_that_returns_has_reported_its_outcome(client: TestClient) -> None:
    async with client.stream("GET", "/chunks/2") as call:
        await call.read()
    assert call.outcome == "completed"
    assert (await client.get("/chunks/1")).outcome == "completed"


async def test_an_error_after_the_response_surfaces_when_the_client_closes() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # no lifespan support
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        raise RuntimeError("broke after answering")

    client = TestClient(app)
    await client.__aenter__()
    response = await client.get("/")
    assert response.content == b"ok"  # the client had its response...
    with pytest.raises(RuntimeError, match="broke after answering"):
        await client.__aexit__(None, None, None)  # ...and the error comes with the close


async def test_an_error_before_the_response_is_raised_by_the_request() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raise LookupError("broke at once")

    async with TestClient(app) as client:
        with pytest.raises(LookupError, match="broke at once"):
            await client.get("/")


async def test_file_response_under_the_autojump_clock(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    app = App()
    target = tmp_path / "data.bin"
    target.write_bytes(bytes(range(256)) * 64)

    @app.get("/file")
    async def file() -> FileResponse:
        return FileResponse(target)

    async with TestClient(app) as client:
        response = await client.get("/file")
    assert response.content == target.read_bytes()
