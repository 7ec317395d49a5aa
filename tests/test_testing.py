"""The test client and pytest plugin, used exactly as a user would: only fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, open_websocket_url

from trioweb import App, DisconnectToken, Request, Server, StreamingResponse, WebSocket
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


async def test_every_wait_is_bounded_with_a_clear_message(
    client: TestClient, autojump_clock: trio.testing.MockClock
) -> None:
    client.timeout = 5
    call: StreamCall
    with pytest.raises(
        AppDidNotRespond, match=r"did not start the response within 5s \(GET /wait\)"
    ):
        async with client.stream("GET", "/wait") as call:
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
