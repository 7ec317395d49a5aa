"""HTTP/2 stream resets and stalled streams, over h2c and TLS (ALPN h2), driven with ``h2``.

A client's RST_STREAM cancels that stream's handler only, with ``token.reason``
``STREAM_RESET``; the other streams on the connection go on. A stream whose
client grants it no flow-control window blocks its own sender, and only it:
the route's minimum response rate and its ``timeout=`` end it, with a reset of
that stream, while streams with a window of their own finish. Every test
checks that no task is left behind; bounds are the tests' small settings
(a grace of 1 s), not the defaults.

What hypercorn allows, as seen here: streams with a window of their own are
served in full on the connection while another stalls, and it stays open
after that one's reset. The stalled stream keeps the bytes it was sent out of
the connection's window (the client never credits them back). A client that
reads nothing at all stalls every stream at once, since they share one
socket: then the whole connection is reset, and each of its requests counted
too slow.
"""

from __future__ import annotations

import gc
import logging
import random
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
import trio
import trio.testing
import trustme
from hypercorn.protocol.h2 import StreamBuffer

from trioweb import (
    App,
    DisconnectToken,
    EventStream,
    MinDataRate,
    Request,
    Response,
    Server,
    ServerSentEvent,
    StreamingResponse,
)

from .tasks import task_count

WAIT = 10  # bound, in seconds, of every wait
FAST = MinDataRate(bytes_per_second=1_000_000, grace_period=1.0)  # a 64 KiB write gets 1 s
CHUNK = 64 * 1024
BIG = 1024 * 1024
CANCEL = h2.errors.ErrorCodes.CANCEL


def body_for(name: str) -> bytes:
    """A body bigger than the default 64 KiB window, different for each stream."""
    return f"{name}:".encode() * 50_000


def pattern(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


def reason_of(token: DisconnectToken) -> str:
    return token.reason.value if token.reason is not None else "none"


class Board:
    """What handlers report, and a way to wait for a report without sleeping."""

    def __init__(self) -> None:
        self.record: list[str] = []
        self.release = trio.Event()  # what the waiting handlers wait for
        self.produced: dict[str, int] = {}
        self._waiting: dict[str, trio.Event] = {}

    def note(self, text: str) -> None:
        self.record.append(text)
        event = self._waiting.pop(text, None)
        if event is not None:
            event.set()

    async def seen(self, text: str, within: float = WAIT) -> None:
        if text in self.record:
            await trio.lowlevel.checkpoint()
            return
        with trio.fail_after(within):
            await self._waiting.setdefault(text, trio.Event()).wait()

    def count(self, suffix: str) -> int:
        return sum(line.endswith(suffix) for line in self.record)


@pytest.fixture
def board() -> Board:
    return Board()


@pytest.fixture
def app(board: Board) -> App:
    app = App(min_response_rate=FAST)

    @app.get("/hello")
    async def hello(request: Request) -> str:
        return f"hello over HTTP/{request.http_version}"

    @app.get("/wait/{name}")
    async def wait(name: str, token: DisconnectToken) -> Response:
        board.note(f"{name} started")
        try:
            await board.release.wait()
        except trio.Cancelled:
            board.note(f"{name} cancelled: {reason_of(token)}")
            raise
        return Response(body_for(name))

    @app.post("/upload")
    async def upload(request: Request, token: DisconnectToken) -> str:
        board.note("upload started")
        try:
            body = await request.body()
        finally:
            board.note(f"upload ended: {reason_of(token)}")
        return f"got {len(body)} bytes"

    @app.post("/early")
    async def early() -> str:  # answers without reading the body
        return "early"

    @app.get("/events")
    async def events(token: DisconnectToken) -> EventStream:
        async def first_then_wait() -> AsyncIterator[ServerSentEvent]:
            try:
                yield ServerSentEvent("first")
                await trio.sleep_forever()
            finally:
                board.note(f"events ended: {reason_of(token)}")

        return EventStream(first_then_wait(), keepalive=None)

    def endless(name: str, token: DisconnectToken, size: int = CHUNK) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            board.produced[name] = 0
            board.note(f"{name} started")
            try:
                while True:
                    yield b"s" * size
                    board.produced[name] += size
            finally:
                board.note(f"{name} ended: {reason_of(token)}")

        return StreamingResponse(chunks())

    @app.get("/stream")
    async def stream(token: DisconnectToken) -> StreamingResponse:
        return endless("stream", token)

    @app.get("/ticks")
    async def ticks(token: DisconnectToken) -> StreamingResponse:
        return endless("ticks", token, size=1000)  # small chunks, as fast as they go

    @app.get("/unbounded", min_response_rate=False)
    async def unbounded(token: DisconnectToken) -> StreamingResponse:
        return endless("unbounded", token)

    @app.get("/long-poll", min_response_rate=False, timeout=2)
    async def long_poll(token: DisconnectToken) -> StreamingResponse:
        return endless("long-poll", token)

    @app.get("/blob")
    async def blob() -> Response:
        board.note("blob started")
        await trio.lowlevel.checkpoint()
        return Response(pattern(BIG))

    @app.get("/big")
    async def big() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, BIG, CHUNK):
                yield pattern(BIG)[start : start + CHUNK]

        return StreamingResponse(chunks())

    return app


# ---- the client ----


class Reply:
    """What the client got on one stream."""

    def __init__(self) -> None:
        self.status = 0
        self.body = bytearray()
        self.reset_code: int | None = None  # the server's RST_STREAM error code
        self.data = trio.Event()  # some body arrived
        self.ended = trio.Event()  # the stream ended, or was reset


class H2Client:
    """An HTTP/2 client on one connection; a task of the test's reads for it (:meth:`read`).

    It credits back the flow-control window of every stream but those in
    ``stalled``, which keep the window the client's settings gave them.
    """

    def __init__(self, stream: trio.abc.Stream, window: int | None = None) -> None:
        self.stream = stream
        self.connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        if window is not None:
            self.connection.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
            )
        self.replies: dict[int, Reply] = {}
        self.stalled: set[int] = set()
        self.closed = trio.Event()  # the server closed the connection
        self.goaway: int | None = None
        self._writing = trio.Lock()

    async def flush(self) -> None:
        async with self._writing:
            data = self.connection.data_to_send()
            if data:
                await self.stream.send_all(data)

    async def send_raw(self, data: bytes) -> None:
        async with self._writing:
            await self.stream.send_all(data)

    async def read(self) -> None:
        try:
            while True:
                data = await self.stream.receive_some(65536)
                if not data:
                    break
                for event in self.connection.receive_data(data):
                    self._on(event)
                await self.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except h2.exceptions.ProtocolError:
            pass  # the server closed it with a GOAWAY we then broke: it is gone
        finally:
            self.closed.set()

    def _on(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event.error_code
            return
        reply = self.replies.get(getattr(event, "stream_id", 0))
        if reply is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            reply.status = int(dict(event.headers)[b":status"])
        elif isinstance(event, h2.events.DataReceived):
            reply.body += event.data
            reply.data.set()
            if event.stream_id not in self.stalled:
                self.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
        elif isinstance(event, h2.events.StreamEnded):
            reply.ended.set()
        elif isinstance(event, h2.events.StreamReset):
            reply.reset_code = event.error_code
            reply.ended.set()

    async def open(
        self,
        path: str,
        *,
        method: str = "GET",
        body: bytes = b"",
        end: bool = True,
        stalled: bool = False,
    ) -> int:
        """Send a request; ``end=False`` leaves its body open, ``stalled`` grants it no window."""
        stream_id = self.connection.get_next_available_stream_id()
        self.replies[stream_id] = Reply()
        headers = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "x")]
        self.connection.send_headers(stream_id, headers, end_stream=end and not body)
        if body:
            self.connection.send_data(stream_id, body, end_stream=end)
        if stalled:
            self.stalled.add(stream_id)
        elif self.connection.local_settings.initial_window_size < BIG:
            self.connection.increment_flow_control_window(4 * BIG, stream_id)  # its own window
        await self.flush()
        return stream_id

    async def reset(self, stream_id: int) -> None:
        self.connection.reset_stream(stream_id, CANCEL)
        await self.flush()

    async def response(self, stream_id: int) -> tuple[int, bytes]:
        reply = self.replies[stream_id]
        with trio.fail_after(WAIT):
            await reply.ended.wait()
        assert reply.reset_code is None, f"stream {stream_id} was reset"
        return reply.status, bytes(reply.body)

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self.response(await self.open(path))


# ---- serving, over h2c and TLS ----


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    directory = tmp_path_factory.mktemp("tls")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return ca, str(certfile), str(keyfile)


class Served:
    """A server, and how to open HTTP/2 connections to it (h2c, or TLS with ALPN h2)."""

    def __init__(self, server: Server, context: ssl.SSLContext | None) -> None:
        self.server = server
        self.context = context

    @asynccontextmanager
    async def connect(self, window: int | None = None) -> AsyncIterator[H2Client]:
        stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", self.server.port)
        if self.context is not None:
            tls = trio.SSLStream(stream, self.context, server_hostname="127.0.0.1")
            await tls.do_handshake()
            assert tls.selected_alpn_protocol() == "h2"
            stream = tls
        client = H2Client(stream, window)
        client.connection.initiate_connection()
        await client.flush()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.read)
                try:
                    yield client
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            # Outside the cancelled nursery: a checkpoint in there would raise a
            # Cancelled that replaces the test's own error, and the nursery absorbs it.
            await trio.aclose_forcefully(stream)


@pytest.fixture
async def served(
    live_server_factory: Any,
    certificate: tuple[trustme.CA, str, str],
    request: pytest.FixtureRequest,
) -> Served:
    ca, certfile, keyfile = certificate
    options: dict[str, Any] = {"keep_alive_timeout": 30}
    context = None
    if getattr(request, "param", "h2c") == "tls":
        options.update(certfile=certfile, keyfile=keyfile)
        context = ssl.create_default_context()
        ca.configure_trust(context)
        context.set_alpn_protocols(["h2"])
    return Served(await live_server_factory(**options), context)


BOTH = pytest.mark.parametrize("served", ["h2c", "tls"], indirect=True)


async def baseline() -> int:
    await trio.testing.wait_all_tasks_blocked()
    return task_count()


async def back_to(count: int) -> None:
    """Wait until the run has no more than ``count`` tasks: the server unwound, nothing leaked."""
    with trio.fail_after(WAIT):
        while task_count() > count:  # noqa: ASYNC110 - the server unwinds through I/O: no event
            await trio.sleep(0.01)
    await trio.testing.wait_all_tasks_blocked()
    assert task_count() == count


def stream_buffers() -> int:
    """How many of hypercorn's per-stream send buffers are alive (none once its streams ended)."""
    gc.collect()  # not those of connections gone, kept only by a reference cycle
    return sum(isinstance(o, StreamBuffer) for o in gc.get_objects())


class LogWatch(logging.Handler):
    """trioweb's log lines, and a way to wait for one (they are logged on the Trio thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self._changed = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self._changed.set()

    async def lines(self, text: str, count: int = 1) -> list[str]:
        """The lines that contain ``text``, once there are ``count`` of them."""
        with trio.fail_after(WAIT):
            while len([m for m in self.messages if text in m]) < count:
                self._changed = trio.Event()
                await self._changed.wait()
        await trio.testing.wait_all_tasks_blocked()  # and no more come
        return [m for m in self.messages if text in m]


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[LogWatch]:
    caplog.set_level(logging.INFO, logger="trioweb")
    watch = LogWatch()
    logging.getLogger("trioweb").addHandler(watch)
    yield watch
    logging.getLogger("trioweb").removeHandler(watch)


# ---- a client's reset ----


@BOTH
async def test_a_reset_cancels_only_its_own_stream(
    served: Served, board: Board, log: LogWatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with served.connect() as client:
        assert await client.get("/hello") == (200, b"hello over HTTP/2")
        idle = await baseline()
        ids = {name: await client.open(f"/wait/{name}") for name in "abc"}
        for name in "abc":
            await board.seen(f"{name} started")
        await client.reset(ids["b"])
        await board.seen("b cancelled: stream reset")
        board.release.set()
        for name in "ac":
            assert await client.response(ids[name]) == (200, body_for(name))
        assert client.replies[ids["b"]].status == 0  # nothing was sent on it
        assert sorted(board.record) == [
            "a started",
            "b cancelled: stream reset",
            "b started",
            "c started",
        ]
        [line] = await log.lines("/wait/")
        assert line.startswith("GET /wait/b cancelled: stream reset after "), line
        await back_to(idle)  # the connection still open, nothing of the streams left
        assert stream_buffers() == 0
        assert not client.closed.is_set()
        assert await client.get("/hello") == (200, b"hello over HTTP/2")


@BOTH
async def test_a_reset_mid_upload_cancels_the_body_read(
    served: Served, board: Board, log: LogWatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with served.connect() as client:
        assert await client.get("/hello") == (200, b"hello over HTTP/2")
        idle = await baseline()
        stream_id = await client.open("/upload", method="POST", body=b"u" * 10_000, end=False)
        await board.seen("upload started")
        await client.reset(stream_id)
        await board.seen("upload ended: stream reset")
        [line] = await log.lines("/upload")
        assert line.startswith("POST /upload cancelled: stream reset after "), line
        await back_to(idle)
        assert stream_buffers() == 0  # the stream's unsent bytes are gone too
        assert await client.get("/hello") == (200, b"hello over HTTP/2")


@BOTH
async def test_a_reset_mid_stream_response_ends_the_stream(
    served: Served, board: Board, log: LogWatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with served.connect() as client:
        assert await client.get("/hello") == (200, b"hello over HTTP/2")
        idle = await baseline()
        stream_id = await client.open("/events")
        with trio.fail_after(WAIT):
            await client.replies[stream_id].data.wait()
        assert bytes(client.replies[stream_id].body) == b"data: first\n\n"
        await client.reset(stream_id)
        await board.seen("events ended: stream reset")
        [line] = await log.lines("/events")
        assert line.startswith("GET /events cancelled: stream reset after "), line
        await back_to(idle)
        assert stream_buffers() == 0
        assert await client.get("/hello") == (200, b"hello over HTTP/2")


def rst_stream(stream_id: int) -> bytes:
    """A raw RST_STREAM (CANCEL) frame: h2 will not send one on a stream it closed."""
    return struct.pack(">I", 4)[1:] + bytes([0x3, 0]) + struct.pack(">II", stream_id, CANCEL)


@pytest.mark.parametrize(
    "point", ["with the headers", "after the response", "after the response, uploading"]
)
async def test_a_reset_at_any_point_leaves_the_connection_serving(
    served: Served, board: Board, caplog: pytest.LogCaptureFixture, point: str
) -> None:
    async with served.connect() as client:
        assert await client.get("/hello") == (200, b"hello over HTTP/2")
        idle = await baseline()
        if point == "with the headers":
            # HEADERS and RST_STREAM in one write: the handler starts after the reset.
            stream_id = client.connection.get_next_available_stream_id()
            client.replies[stream_id] = Reply()
            headers = [(":method", "GET"), (":path", "/wait/x"), (":scheme", "http")]
            client.connection.send_headers(stream_id, [*headers, (":authority", "x")], True)
            client.connection.reset_stream(stream_id, CANCEL)
            await client.flush()
            await board.seen("x cancelled: stream reset")
        elif point == "after the response":
            stream_id = await client.open("/hello")
            assert await client.response(stream_id) == (200, b"hello over HTTP/2")
            await client.send_raw(rst_stream(stream_id))
        else:
            # The response is complete while the client still uploads: hypercorn
            # raised KeyError on that DATA and ended the whole connection.
            other = await client.open("/wait/o")
            await board.seen("o started")
            stream_id = await client.open("/early", method="POST", body=b"e" * 100, end=False)
            with trio.fail_after(WAIT):
                await client.replies[stream_id].ended.wait()
            assert bytes(client.replies[stream_id].body) == b"early"
            for _ in range(10):  # more than hypercorn's queue, and credited back
                client.connection.send_data(stream_id, b"e" * 10_000)
                await client.flush()
            await client.reset(stream_id)
            board.release.set()
            assert await client.response(other) == (200, body_for("o"))
        assert await client.get("/hello") == (200, b"hello over HTTP/2")
        await back_to(idle)
        assert stream_buffers() == 0
        assert not client.closed.is_set()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_200_streams_every_other_one_reset(
    served: Served, board: Board, log: LogWatch, caplog: pytest.LogCaptureFixture
) -> None:
    # hypercorn allows 100 concurrent streams: two rounds of 100, on one connection.
    async with served.connect() as client:
        assert await client.get("/hello") == (200, b"hello over HTTP/2")
        idle = await baseline()
        for round_ in range(2):
            board.release = trio.Event()
            names = [f"{round_}-{n}" for n in range(100)]
            ids = {name: await client.open(f"/wait/{name}") for name in names}
            for name in names:
                await board.seen(f"{name} started")
            for name in names[1::2]:
                await client.reset(ids[name])
            for name in names[1::2]:
                await board.seen(f"{name} cancelled: stream reset")
            board.release.set()
            for name in names[::2]:
                assert await client.response(ids[name]) == (200, body_for(name))
        assert board.count("cancelled: stream reset") == 100
        assert board.count("started") == 200
        assert len(await log.lines("cancelled: stream reset", 100)) == 100
        assert len(await log.lines("/wait/", 100)) == 100  # the completed ones say nothing
        await back_to(idle)
        assert stream_buffers() == 0  # the stream's unsent bytes are gone too
        assert await client.get("/hello") == (200, b"hello over HTTP/2")


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    head = struct.pack(">I", len(payload))[1:] + bytes([kind, flags])
    return head + struct.pack(">I", stream_id) + payload


def random_frames(seed: int, count: int) -> bytes:
    """Frames of known types with random flags, streams and payloads (short: a frame
    header announcing megabytes is waited for in full before h2 can reject it)."""
    rng = random.Random(seed)
    return b"".join(
        frame(rng.randrange(10), rng.randrange(256), rng.randrange(16), rng.randbytes(64))
        for _ in range(count)
    )


GARBAGE = {
    "random frames": random_frames(13, 50),
    "DATA on stream 0": frame(0x0, 0x1, 0, b"x"),
    "headers that do not decode": frame(0x1, 0x4 | 0x1, 101, b"\xff\xff\xff\xff\xff"),
    "a zero window update": frame(0x8, 0, 0, struct.pack(">I", 0)),
    "a reset of an idle stream": rst_stream(99),
    "a frame past the maximum size": frame(0x0, 0, 1, b"x" * 20_000),
    "SETTINGS of a bad length": frame(0x4, 0, 0, b"\x00\x01\x00"),
    "a stream that depends on itself": frame(0x2, 0, 7, struct.pack(">IB", 7, 16)),
}


#: What h2 lets through: a reset of a stream never opened is a connection error
#: by RFC 9113 section 6.4, but h2 ignores it; the connection serves on.
TOLERATED = {"a reset of an idle stream"}


@pytest.mark.parametrize("garbage", list(GARBAGE))
async def test_garbage_frames_end_only_their_connection(
    served: Served, board: Board, caplog: pytest.LogCaptureFixture, garbage: str
) -> None:
    before = await baseline()
    async with served.connect() as client:
        assert await client.get("/hello") == (200, b"hello over HTTP/2")
        g = await client.open("/wait/g")
        await board.seen("g started")
        await client.send_raw(GARBAGE[garbage])
        if garbage in TOLERATED:
            assert await client.get("/hello") == (200, b"hello over HTTP/2")
            board.release.set()
            assert await client.response(g) == (200, body_for("g"))
        else:
            with trio.fail_after(WAIT):
                await client.closed.wait()
            # The server's connection ended: a disconnect, not a stream reset.
            await board.seen("g cancelled: client disconnected")
    await back_to(before)
    async with served.connect() as other:
        assert await other.get("/hello") == (200, b"hello over HTTP/2")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_connection_whose_last_stream_was_reset_is_still_closed_when_idle(
    live_server_factory: Any, board: Board
) -> None:
    # hypercorn's reset path never said the connection was idle again.
    served = Served(await live_server_factory(keep_alive_timeout=1), None)
    async with served.connect() as client:
        stream_id = await client.open("/wait/k")
        await board.seen("k started")
        await client.reset(stream_id)
        await board.seen("k cancelled: stream reset")
        with trio.fail_after(3):  # the keep-alive timeout, 1 s
            await client.closed.wait()


async def test_a_reset_does_not_hold_a_graceful_shutdown(
    live_server_factory: Any, board: Board
) -> None:
    server = await live_server_factory(graceful_timeout=WAIT, keep_alive_timeout=WAIT)
    async with Served(server, None).connect() as client:
        stream_id = await client.open("/wait/s")
        await board.seen("s started")
        await client.reset(stream_id)
        await board.seen("s cancelled: stream reset")
        await trio.testing.wait_all_tasks_blocked()
        server.shutdown()
        with trio.fail_after(WAIT / 2):  # not the graceful period: nothing is in flight
            await client.closed.wait()


# ---- a stream without a window: hypercorn's send() blocks ----


async def wait_blocked(client: H2Client, stream_id: int, window: int) -> None:
    """Wait until the stalled stream got its whole window and the server waits on it."""
    reply = client.replies[stream_id]
    with trio.fail_after(WAIT):
        while len(reply.body) < window:
            await reply.data.wait()
            reply.data = trio.Event()
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
    assert len(reply.body) == window


@BOTH
@pytest.mark.parametrize("path", ["/stream", "/ticks", "/blob"])
async def test_a_stalled_stream_is_reset_as_too_slow_and_the_others_go_on(
    served: Served, board: Board, log: LogWatch, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    async with served.connect(window=1024) as client:
        assert await client.get("/hello") == (200, b"hello over HTTP/2")
        idle = await baseline()
        stalled = await client.open(path, stalled=True)
        others = [await client.open("/big"), await client.open("/big")]
        name = path.lstrip("/")
        await board.seen(f"{name} started")
        started = trio.current_time()
        for other in others:  # each with a window of its own: served in full meanwhile
            assert await client.response(other) == (200, pattern(BIG))
        with trio.fail_after(WAIT):
            await client.replies[stalled].ended.wait()
        held = trio.current_time() - started
        assert held < 4, held  # the write blocked at once; 1 s of grace, then it was cut
        assert client.replies[stalled].reset_code == CANCEL
        assert len(client.replies[stalled].body) == 1024  # the window's worth, no more
        [line] = await log.lines(f"GET {path}")
        assert f"GET {path} cancelled: client too slow after " in line, line
        if path != "/blob":
            await board.seen(f"{name} ended: client too slow")
            assert board.produced[name] <= 2 * CHUNK  # memory stays flat
        await back_to(idle)
        assert stream_buffers() == 0  # the stream's unsent bytes are gone too
        assert not client.closed.is_set()
        assert await client.get("/hello") == (200, b"hello over HTTP/2")


async def test_the_route_timeout_ends_a_stalled_stream(
    served: Served, board: Board, log: LogWatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with served.connect(window=1024) as client:
        assert await client.get("/hello") == (200, b"hello over HTTP/2")
        idle = await baseline()
        stalled = await client.open("/long-poll", stalled=True)  # no minimum rate: the timeout
        await board.seen("long-poll started")
        started = trio.current_time()
        # The write was cut at the deadline and its stream reset: the token is
        # set, saying so (as over HTTP/1.1), but the outcome stays the timeout.
        await board.seen("long-poll ended: client too slow")
        assert trio.current_time() - started < 3.5
        assert board.produced["long-poll"] <= 2 * CHUNK  # it waited: memory stays flat
        [line] = await log.lines("/long-poll")
        assert "ended after 2." in line, line
        assert line.endswith(": timed out"), line
        with trio.fail_after(WAIT):
            await client.replies[stalled].ended.wait()
        assert client.replies[stalled].reset_code == CANCEL
        await back_to(idle)
        assert stream_buffers() == 0  # the stream's unsent bytes are gone too
        assert await client.get("/hello") == (200, b"hello over HTTP/2")


@BOTH
async def test_resetting_a_stalled_stream_ends_its_handler(
    served: Served, board: Board, log: LogWatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with served.connect(window=1024) as client:
        assert await client.get("/hello") == (200, b"hello over HTTP/2")
        idle = await baseline()
        stalled = await client.open("/unbounded", stalled=True)  # nothing else ends it
        await wait_blocked(client, stalled, 1024)
        produced = board.produced["unbounded"]
        assert produced <= CHUNK  # blocked on its first chunk: the buffer does not grow
        await client.reset(stalled)
        await board.seen("unbounded ended: stream reset", within=2)
        [line] = await log.lines("/unbounded")
        assert line.startswith("GET /unbounded cancelled: stream reset after "), line
        await back_to(idle)
        assert stream_buffers() == 0  # the stream's unsent bytes are gone too
        assert await client.get("/hello") == (200, b"hello over HTTP/2")


async def test_a_client_that_reads_nothing_has_its_connection_reset(
    served: Served, board: Board, log: LogWatch, caplog: pytest.LogCaptureFixture
) -> None:
    # All the window it could want, and it never reads the socket: hypercorn's
    # own writer is stuck, so not even a stream reset would reach the client.
    before = await baseline()
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1}
    )
    connection.initiate_connection()
    connection.increment_flow_control_window(2**31 - 1 - 65535)
    headers = [(":method", "GET"), (":scheme", "http"), (":authority", "x")]
    connection.send_headers(1, [*headers, (":path", "/wait/w")], end_stream=True)
    connection.send_headers(3, [*headers, (":path", "/stream")], end_stream=True)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    client.connect(("127.0.0.1", served.server.port))
    try:
        client.sendall(connection.data_to_send())
        await board.seen("stream started")
        started = trio.current_time()
        await board.seen("stream ended: client too slow")
        assert trio.current_time() - started < 6  # the buffers fill, 1 s of grace, 1 s more
        assert board.produced["stream"] < 32 * 1024 * 1024  # what the buffers took
        # The other stream on the connection went with it, for the same reason.
        await board.seen("w cancelled: client too slow")
        await back_to(before)  # the connection was reset: hypercorn's stuck writer is gone
        client.setblocking(False)
        with trio.fail_after(WAIT):
            while True:
                try:
                    if not client.recv(1 << 20):
                        break
                except BlockingIOError:
                    await trio.sleep(0.01)
                except ConnectionResetError:
                    break
    finally:
        client.close()
    [line] = await log.lines("GET /stream")
    assert "cancelled: client too slow" in line, line
    [line] = await log.lines("GET /wait/w")
    assert "cancelled: client too slow" in line, line
