"""Clients that never read, or trickle an upload, over a real hypercorn on loopback.

A stalled reader is a client with a small receive buffer that sends its
request and never reads: the server's writes fill both buffers, then block.
The tests configure small bounds (a grace of 1 s, rates in kB/s) so that each
runs in seconds; ``benchmarks/wire.py`` measures the defaults.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator

import pytest
import trio

from trioweb import (
    App,
    DisconnectReason,
    DisconnectToken,
    EventStream,
    FileResponse,
    MinDataRate,
    Request,
    Response,
    Server,
    ServerSentEvent,
    StreamingResponse,
)

from .conftest import Probe
from .wire import connect, fetch, read_response, request_bytes, wait_closed_by_peer

CHUNK = 64 * 1024
FAST = MinDataRate(bytes_per_second=1_000_000, grace_period=1.0)  # a 64 KiB write gets 1 s
SLOW_UPLOAD = MinDataRate(bytes_per_second=100, grace_period=1.0)


def note_end(probe: Probe, token: DisconnectToken, name: str, produced: int) -> None:
    probe.record.append(f"{name} ended: {token.reason}, {produced} bytes produced")
    probe.done.set()


@pytest.fixture
def app(probe: Probe, tmp_path_factory: pytest.TempPathFactory) -> App:
    app = App(min_response_rate=FAST, min_request_rate=SLOW_UPLOAD)
    big_file = tmp_path_factory.mktemp("files") / "big.bin"
    big_file.write_bytes(b"f" * (64 * 1024 * 1024))

    @app.get("/stream")
    async def stream(token: DisconnectToken) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            produced = 0
            try:
                probe.entered.set()
                while produced < 1024**3:  # 1 GiB: far more than any buffer
                    yield b"s" * CHUNK
                    produced += CHUNK
            finally:
                note_end(probe, token, "stream", produced)

        return StreamingResponse(chunks())

    @app.get("/events")
    async def events(token: DisconnectToken) -> EventStream:
        async def ticks() -> AsyncIterator[ServerSentEvent]:
            produced = 0
            try:
                probe.entered.set()
                while True:  # small writes, as fast as they go
                    yield ServerSentEvent("x" * 1000)
                    produced += 1000
            finally:
                note_end(probe, token, "events", produced)

        return EventStream(ticks(), keepalive=None)

    @app.get("/file")
    async def file() -> FileResponse:
        probe.entered.set()
        return FileResponse(big_file)

    @app.get("/long-poll", min_response_rate=False, timeout=2)
    async def long_poll(token: DisconnectToken) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            produced = 0
            try:
                probe.entered.set()
                while True:
                    yield b"p" * CHUNK
                    produced += CHUNK
            finally:
                note_end(probe, token, "long poll", produced)

        return StreamingResponse(chunks())

    @app.post("/upload")
    async def upload(request: Request, token: DisconnectToken) -> str:
        probe.entered.set()
        try:
            body = await request.body()
        finally:
            probe.record.append(f"upload ended: {token.reason}")
            probe.done.set()
        return f"got {len(body)} bytes"

    @app.post("/upload-unbounded", min_request_rate=False)
    async def upload_unbounded(request: Request) -> str:
        return f"got {len(await request.body())} bytes"

    @app.get("/hello")
    async def hello() -> Response:
        return Response("hello")

    return app


class LogWatch(logging.Handler):
    """Sets ``seen`` when trioweb logs a line containing ``text`` (logged on the Trio thread)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


def stalled_reader(port: int, path: str) -> socket.socket:
    """A client that asks for ``path`` with a 4 KiB receive buffer and never reads."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    client.connect(("127.0.0.1", port))
    client.sendall(request_bytes("GET", path))
    return client


@pytest.mark.parametrize("path", ["/stream", "/events", "/file"])
async def test_a_stalled_reader_is_abandoned_as_too_slow(
    server: Server, probe: Probe, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.INFO, logger="trioweb")
    watch = LogWatch(f"GET {path} cancelled: client too slow")
    logging.getLogger("trioweb").addHandler(watch)
    client = stalled_reader(server.port, path)
    try:
        with trio.fail_after(10):
            await probe.entered.wait()
        started = trio.current_time()
        with trio.fail_after(10):
            await watch.seen.wait()
        held = trio.current_time() - started
        # The write blocks once the buffers are full; 1 s after that it is cut.
        assert held < 6, held
        if path != "/file":
            [ended] = probe.record
            _, _, rest = ended.partition(" ended: ")
            reason, _, produced = rest.partition(", ")
            assert reason == str(DisconnectReason.CLIENT_TOO_SLOW)
            # What the buffers took, not the 1 GiB the generator could make: memory stays flat.
            assert int(produced.split()[0]) < 32 * 1024 * 1024, ended
        # The connection was reset under the stuck write.
        client.setblocking(False)
        with trio.fail_after(5):
            while True:
                try:
                    if not client.recv(1 << 20):
                        break
                except BlockingIOError:
                    await trio.sleep(0.01)
                except ConnectionResetError:
                    break
    finally:
        logging.getLogger("trioweb").removeHandler(watch)
        client.close()


async def test_the_route_timeout_ends_a_stuck_write_and_is_logged_as_timed_out(
    server: Server, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioweb")
    client = stalled_reader(server.port, "/long-poll")  # no minimum rate: only the timeout
    try:
        with trio.fail_after(5):
            await probe.entered.wait()
        started = trio.current_time()
        with trio.fail_after(6):
            await probe.done.wait()
        assert trio.current_time() - started < 3.5
        [line] = [r.getMessage() for r in caplog.records if "/long-poll" in r.getMessage()]
        assert "ended after 2." in line, line
        assert line.endswith(": timed out"), line
        # The write was cut at the deadline and the connection reset under it:
        # the token is set, saying so, but the request's outcome stays the timeout.
        [ended] = probe.record
        assert ended.startswith(f"long poll ended: {DisconnectReason.CLIENT_TOO_SLOW},"), ended
    finally:
        client.close()


async def test_a_1_byte_per_second_upload_gets_408_while_others_are_served(
    server: Server, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioweb")
    stream = await connect(server.port)
    head = request_bytes("POST", "/upload", [("content-length", "1000")])
    await stream.send_all(head)
    with trio.fail_after(5):
        await probe.entered.wait()
    started = trio.current_time()
    answer: list[int] = []

    async def trickle() -> None:
        for _ in range(1000):
            try:
                await stream.send_all(b"x")
            except trio.BrokenResourceError:
                return
            await trio.sleep(0.2)  # the client's pace: 5 bytes/s, below 100

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle)
        # Meanwhile other clients are served at once.
        for _ in range(5):
            assert (await fetch(server.port, "GET", "/hello")).body == b"hello"
        response = await read_response(stream, "POST")
        answer.append(response.status)
        assert response.headers.get("connection") == "close"
        assert await wait_closed_by_peer(stream)
        nursery.cancel_scope.cancel()
    # 1 s of grace, then 100 bytes/s: the 5 bytes sent by then buy 0.05 s more.
    assert answer == [408]
    assert trio.current_time() - started < 4
    assert probe.record == [f"upload ended: {DisconnectReason.CLIENT_TOO_SLOW}"]
    [line] = [r.getMessage() for r in caplog.records if "POST /upload" in r.getMessage()]
    assert line.startswith("POST /upload cancelled: client too slow after 1."), line
    await stream.aclose()


async def test_an_upload_at_the_minimum_rate_completes(server: Server, probe: Probe) -> None:
    stream = await connect(server.port)
    await stream.send_all(request_bytes("POST", "/upload", [("content-length", "300")]))
    for _ in range(10):
        await stream.send_all(b"y" * 30)
        await trio.sleep(0.1)  # 300 bytes/s: above the 100 asked for
    response = await read_response(stream, "POST")
    assert (response.status, response.body) == (200, b"got 300 bytes")
    await stream.aclose()


async def test_a_route_without_a_minimum_waits_for_a_slow_upload(server: Server) -> None:
    stream = await connect(server.port)
    await stream.send_all(request_bytes("POST", "/upload-unbounded", [("content-length", "3")]))
    for byte in b"abc":
        await stream.send_all(bytes([byte]))
        await trio.sleep(0.7)  # 2.1 s at 1.4 bytes/s: the app-wide minimum would end it
    response = await read_response(stream, "POST")
    assert (response.status, response.body) == (200, b"got 3 bytes")
    await stream.aclose()


@pytest.mark.parametrize("live_server", [{"keep_alive_timeout": 1}], indirect=True)
async def test_slowloris_on_the_headers_is_closed_by_hypercorn(server: Server) -> None:
    # hypercorn's own bound: a request head that never completes is closed
    # after keep_alive_timeout. 100 trickling connections, all closed.
    streams = [await connect(server.port) for _ in range(100)]
    closed = 0

    async def trickle(stream: trio.SocketStream) -> None:
        nonlocal closed
        try:
            for byte in b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 100:
                await stream.send_all(bytes([byte]))
                with trio.move_on_after(0.2):  # the client's pace
                    if await stream.receive_some(100) == b"":
                        break
            else:
                return
        except trio.BrokenResourceError:
            pass
        closed += 1

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for stream in streams:
                nursery.start_soon(trickle, stream)
    assert closed == 100
    assert (await fetch(server.port, "GET", "/hello")).body == b"hello"
    for stream in streams:
        await stream.aclose()
