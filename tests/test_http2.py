"""HTTP/2 over the wire (h2c, prior knowledge), driven with the ``h2`` library.

On HTTP/2, hypercorn's ``send()`` can block forever once the TCP connection is
gone, so trioweb watches every HTTP/2 request from the start and guards its
sends. These tests show that HTTP/2 requests are served and that a client
leaving mid-handler or mid-stream is noticed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
import trio
import trio.testing

from trioweb import App, DisconnectToken, Request, Server, StreamingResponse

from .conftest import Probe

WAIT = 10


class H2Client:
    """A minimal HTTP/2 client: one connection, requests on odd stream ids."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))

    @classmethod
    async def connect(cls, port: int) -> H2Client:
        client = cls(await trio.open_tcp_stream("127.0.0.1", port))
        client.connection.initiate_connection()
        await client.flush()
        return client

    async def flush(self) -> None:
        await self.stream.send_all(self.connection.data_to_send())

    async def request(self, path: str) -> int:
        stream_id = self.connection.get_next_available_stream_id()
        headers = [
            (":method", "GET"),
            (":path", path),
            (":scheme", "http"),
            (":authority", "127.0.0.1"),
        ]
        self.connection.send_headers(stream_id, headers, end_stream=True)
        await self.flush()
        return stream_id

    async def events(self) -> list[h2.events.Event]:
        data = await self.stream.receive_some(65536)
        if not data:
            raise trio.BrokenResourceError("the server closed the connection")
        events = self.connection.receive_data(data)
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
        await self.flush()
        return events

    async def response(self, stream_id: int) -> tuple[int, bytes]:
        status, body = 0, b""
        with trio.fail_after(WAIT):
            while True:
                for event in await self.events():
                    if getattr(event, "stream_id", None) != stream_id:
                        continue
                    if isinstance(event, h2.events.ResponseReceived):
                        status = int(dict(event.headers)[b":status"])
                    elif isinstance(event, h2.events.DataReceived):
                        body += event.data
                    elif isinstance(event, h2.events.StreamEnded):
                        return status, body


@pytest.fixture
def app(probe: Probe) -> App:
    app = App()

    @app.get("/hello")
    async def hello(request: Request) -> str:
        return f"hello over HTTP/{request.http_version}"

    @app.get("/slow")
    async def slow(token: DisconnectToken) -> str:
        token.register(probe.record.append, "callback")
        await probe.hold(WAIT)
        return "too late"

    @app.get("/fast")
    async def fast() -> str:  # no await: no scope; only the early watcher guards its send
        return "fast"

    @app.get("/big")
    async def big() -> bytes:  # no await either, and more than any flow-control window
        return b"x" * (4 * 1024 * 1024)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            produced = 0
            try:
                while produced < 1000:  # 10 s of stream if nobody stops it
                    yield b"x" * 1024
                    produced += 1
                    probe.entered.set()
                    await trio.sleep(0.01)
            finally:
                probe.record.append(f"stream closed after {'all' if produced == 1000 else 'some'}")
                probe.done.set()

        return StreamingResponse(chunks())

    return app


async def test_a_plain_request(server: Server) -> None:
    client = await H2Client.connect(server.port)
    async with client.stream:
        stream_id = await client.request("/hello")
        assert await client.response(stream_id) == (200, b"hello over HTTP/2")


async def test_disconnect_cancels_the_handler(server: Server, probe: Probe) -> None:
    client = await H2Client.connect(server.port)
    await client.request("/slow")
    with trio.fail_after(WAIT):
        await probe.entered.wait()
    await client.stream.aclose()
    with trio.fail_after(WAIT):
        await probe.done.wait()
        await trio.testing.wait_all_tasks_blocked()
    assert probe.record == ["callback", "handler cancelled"]


async def test_tcp_close_mid_stream_cancels_and_closes_the_stream(
    server: Server, probe: Probe
) -> None:
    client = await H2Client.connect(server.port)
    await client.request("/stream")
    with trio.fail_after(WAIT):
        await probe.entered.wait()
    await client.stream.aclose()
    with trio.fail_after(WAIT):
        await probe.done.wait()
    assert probe.record == ["stream closed after some"]


async def test_a_handler_without_await(server: Server) -> None:
    client = await H2Client.connect(server.port)
    async with client.stream:
        stream_id = await client.request("/fast")
        assert await client.response(stream_id) == (200, b"fast")


async def test_send_blocked_by_flow_control_ends_when_the_client_leaves(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    # A client that never grants more window: hypercorn's send() of the big
    # body blocks. Only the watcher, started before the first send, can see
    # the client leave and cancel it.
    caplog.set_level(logging.INFO)
    client = H2Client(await trio.open_tcp_stream("127.0.0.1", server.port))
    client.connection.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024}
    )
    client.connection.initiate_connection()
    await client.flush()
    await client.request("/big")
    received = 0
    with trio.fail_after(WAIT):
        while received < 1024:  # the window's worth, then the server must wait
            for event in client.connection.receive_data(await client.stream.receive_some(65536)):
                if isinstance(event, h2.events.DataReceived):
                    received += len(event.data)
            await client.flush()
        await trio.testing.wait_all_tasks_blocked()
    await client.stream.aclose()
    with trio.fail_after(WAIT):
        while not any("GET /big" in r.getMessage() for r in caplog.records):
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(0.01)  # bounded by fail_after: the server's unwinding is I/O
    (line,) = [r.getMessage() for r in caplog.records if "GET /big" in r.getMessage()]
    assert "client disconnected" in line
