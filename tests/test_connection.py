"""Connection control over the wire: cancel_io, abort, close after response, shielded work."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

import trioweb
from trioweb import (
    App,
    DisconnectReason,
    DisconnectToken,
    IOCancelledError,
    Request,
    Response,
    Server,
    StreamingResponse,
)

from .conftest import Probe
from .wire import connect, fetch, read_response, request_bytes


@pytest.fixture
def app(probe: Probe) -> App:
    app = App()

    @app.post("/upload")
    async def upload(request: Request, nursery: trio.Nursery) -> str:
        async def give_up_on_slow_client() -> None:
            await trio.sleep(0.2)  # the app's own patience, not test synchronization
            request.cancel_io()

        nursery.start_soon(give_up_on_slow_client)
        try:
            body = await request.body()
        except IOCancelledError:
            return "gave up on the upload"
        return f"got {len(body)} bytes"

    @app.get("/abort")
    async def abort(request: Request, token: DisconnectToken) -> str:
        probe.objects.append(token)
        request.abort()
        await trio.lowlevel.checkpoint()
        return "never sent"

    @app.get("/abort-mid-stream")
    async def abort_mid_stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield b"chunk %d\n" % i
            request.abort()
            await trio.lowlevel.checkpoint()
            yield b"never sent\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/bye")
    async def bye() -> Response:
        return Response("bye", close_connection=True)

    @app.get("/bye-later")
    async def bye_later(request: Request) -> str:
        request.close_after_response()
        return "bye"

    @app.get("/hello")
    async def hello() -> str:
        return "hello"

    @app.post("/transfer")
    async def transfer(token: DisconnectToken) -> str:
        try:
            async with trioweb.shielded(timeout=5):
                probe.record.append("debited")
                probe.entered.set()
                await token.wait()  # the client leaves in the middle of the transaction
                await trio.sleep(0.05)  # the rest of the transaction's I/O
                probe.record.append("credited")
            probe.record.append("not reached: cancelled as soon as the shield ends")
        finally:
            probe.done.set()
        return "done"

    @app.post("/runaway")
    async def runaway(token: DisconnectToken) -> str:
        try:
            async with trioweb.shielded(timeout=0.2):
                probe.entered.set()
                await token.wait()
                await trio.sleep(30)  # stuck: the shield's own deadline ends it
                probe.record.append("not reached")
        finally:
            probe.done.set()
        return "done"

    return app


async def test_cancel_io_interrupts_a_slow_upload_and_the_handler_answers(server: Server) -> None:
    async with await connect(server.port) as stream:
        await stream.send_all(
            request_bytes("POST", "/upload", [("content-length", "1000000")]) + b"x" * 1000
        )
        response = await read_response(stream, "POST")  # the rest of the body never comes
    assert (response.status, response.body) == (200, b"gave up on the upload")


async def test_abort_gives_an_incomplete_exchange_and_is_logged(
    server: Server, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    response = await fetch(server.port, "GET", "/abort")
    assert not response.complete
    assert response.body == b""
    await trio.testing.wait_all_tasks_blocked()
    (line,) = [r for r in caplog.records if "/abort" in r.getMessage()]
    assert line.levelno == logging.INFO
    assert line.getMessage().startswith("GET /abort cancelled: aborted by the app after")
    (token,) = probe.objects
    assert token.reason is DisconnectReason.ABORTED  # the client leaving afterwards changes nothing


async def test_abort_mid_stream_truncates_the_body(server: Server) -> None:
    response = await fetch(server.port, "GET", "/abort-mid-stream")
    assert response.status == 200
    assert not response.complete
    assert response.body == b"chunk 0\nchunk 1\nchunk 2\n"


@pytest.mark.parametrize("path", ["/bye", "/bye-later"])
async def test_close_after_response_ends_the_keep_alive_connection(
    server: Server, path: str
) -> None:
    async with await connect(server.port) as stream:
        await stream.send_all(request_bytes("GET", "/hello"))
        assert (await read_response(stream)).body == b"hello"  # keep-alive works...
        await stream.send_all(request_bytes("GET", path))
        response = await read_response(stream)
        assert (response.body, response.complete) == (b"bye", True)
        assert response.headers["connection"] == "close"
        # ...until this response: a second request on the socket gets no answer.
        try:
            await stream.send_all(request_bytes("GET", "/hello"))
            second = await read_response(stream)
        except trio.BrokenResourceError:
            pass  # refused outright (the server's RST arrived first)
        else:
            assert (second.status, second.complete) == (0, False)


async def leave_during(server: Server, probe: Probe, path: str) -> None:
    stream = await connect(server.port)
    await stream.send_all(request_bytes("POST", path, body=b"{}"))
    with trio.fail_after(10):
        await probe.entered.wait()
    await stream.aclose()
    with trio.fail_after(10):
        await probe.done.wait()
        await trio.testing.wait_all_tasks_blocked()


async def test_shielded_work_completes_after_a_disconnect(server: Server, probe: Probe) -> None:
    await leave_during(server, probe, "/transfer")
    assert probe.record == ["debited", "credited"]


async def test_shielded_work_is_bounded_by_its_timeout(
    server: Server, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    await leave_during(server, probe, "/runaway")
    assert probe.record == []
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "shielded work was cut off by its 0.2s timeout" in warning.getMessage()


async def test_shielded_needs_a_positive_timeout() -> None:
    with pytest.raises(ValueError, match="positive timeout"):
        async with trioweb.shielded(timeout=0):
            pass
