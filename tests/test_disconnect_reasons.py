"""``token.reason`` says why a request was abandoned, and the one log line names it.

First through the test client, a table over every reason an app can observe,
for HTTP and for WebSockets: each is simulated as a client (or the server, or
the app) would cause it, and each test checks the token's reason, the log
line, that the callbacks ran once and that the handler was cancelled. Then
the reasons the client cannot cause are refused, and the first reason stays.

Then over a real hypercorn on loopback, what the other modules' tests do not
already show (they check the reason where they cause it: a client that closes
in ``test_wire``, a stalled reader and a slow upload in ``test_slow_clients``,
the shutdown in ``test_shutdown``, an abort in ``test_connection``, a WebSocket
client gone in ``test_websocket``): a write stuck until the shutdown resets
it, a WebSocket send cut at its deadline, and a shutdown after a disconnect.
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import attrs
import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request as WSRequest

from trioweb import (
    App,
    DisconnectReason,
    DisconnectToken,
    MinDataRate,
    Request,
    Server,
    StreamingResponse,
    WebSocket,
    WebSocketClosed,
    serve,
)
from trioweb.testing import StreamCall, TestClient, WebSocketSession

from .tasks import live_tasks
from .wire import connect, request_bytes

R = DisconnectReason
SLOW_UPLOAD = MinDataRate(bytes_per_second=100, grace_period=1.0)


@attrs.define
class Seen:
    """What the app's handlers saw."""

    reasons: list[DisconnectReason | None] = attrs.Factory(list)  # one per callback run
    record: list[str] = attrs.Factory(list)
    entered: trio.Event = attrs.Factory(trio.Event)
    token_set: trio.Event = attrs.Factory(trio.Event)
    recorded: trio.Event = attrs.Factory(trio.Event)

    def watch(self, token: DisconnectToken) -> None:
        """Note the token's reason when its callbacks run."""

        def note() -> None:
            self.reasons.append(token.reason)
            self.token_set.set()

        token.register(note)

    def note(self, line: str) -> None:
        self.record.append(line)
        self.recorded.set()


def reasons_app(seen: Seen) -> App:
    app = App()

    async def hold(name: str) -> None:
        seen.entered.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            seen.note(f"{name} cancelled")
            raise

    @app.get("/wait")
    async def wait(token: DisconnectToken) -> None:
        seen.watch(token)
        await hold("wait")

    @app.get("/abort")
    async def abort(request: Request, token: DisconnectToken) -> None:
        seen.watch(token)
        request.abort()
        await hold("abort")

    @app.post("/upload", min_request_rate=SLOW_UPLOAD)
    async def upload(request: Request, token: DisconnectToken) -> str:
        seen.watch(token)
        seen.entered.set()
        try:
            return f"got {len(await request.body())} bytes"
        except trio.Cancelled:
            seen.note("upload cancelled")
            raise

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, token: DisconnectToken) -> None:
        seen.watch(token)
        await websocket.accept()
        await hold("ws")

    @app.websocket("/ws-abort")
    async def ws_abort(websocket: WebSocket, token: DisconnectToken) -> None:
        seen.watch(token)
        await websocket.accept()
        websocket.abort()
        await hold("ws-abort")

    return app


def lines_about(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "trioweb" and r.levelno >= logging.INFO and r.getMessage().startswith(what)
    ]


# ---- every reason, through the test client ----

Leave = Callable[[TestClient, StreamCall], Awaitable[None]]


def disconnect_with(reason: DisconnectReason) -> Leave:
    async def leave(client: TestClient, call: StreamCall) -> None:
        await call.disconnect(reason=reason)

    return leave


async def shut_down(client: TestClient, call: StreamCall) -> None:
    await client.shutdown(graceful_timeout=1)


async def send_nothing(client: TestClient, call: StreamCall) -> None:
    # The body never comes: past the route's minimum rate the app answers 408.
    assert await call.wait_response_start() == 408
    await call.wait_app_done()


async def stay(client: TestClient, call: StreamCall) -> None:
    await call.wait_app_done()  # the app ends it by itself


HTTP_CASES = [
    ("GET", "/wait", disconnect_with(R.CLIENT_DISCONNECTED), R.CLIENT_DISCONNECTED),
    ("GET", "/wait", disconnect_with(R.STREAM_RESET), R.STREAM_RESET),
    ("GET", "/wait", disconnect_with(R.CLIENT_TOO_SLOW), R.CLIENT_TOO_SLOW),
    ("GET", "/wait", disconnect_with(R.CONNECTION_TIMED_OUT), R.CONNECTION_TIMED_OUT),
    ("GET", "/wait", shut_down, R.SERVER_SHUTDOWN),
    ("GET", "/abort", stay, R.ABORTED),
    ("POST", "/upload", send_nothing, R.CLIENT_TOO_SLOW),
]


@pytest.mark.parametrize(
    ("method", "path", "leave", "reason"),
    HTTP_CASES,
    ids=[f"{method} {path} {reason.name}" for method, path, _, reason in HTTP_CASES],
)
async def test_every_reason_over_http(
    method: str,
    path: str,
    leave: Leave,
    reason: DisconnectReason,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    seen = Seen()
    async with (
        TestClient(reasons_app(seen)) as client,
        client.stream(method, path, upload=method == "POST") as call,
    ):
        await seen.entered.wait()
        await leave(client, call)
    assert seen.reasons == [reason]  # the callback ran once, after the token was set
    assert seen.record == [f"{path.lstrip('/')} cancelled"]
    assert call.handler_cancelled
    [line] = lines_about(caplog, f"{method} {path}")
    assert line.startswith(f"{method} {path} cancelled: {reason.value} after "), line


WebSocketLeave = Callable[[TestClient, WebSocketSession], Awaitable[None]]


def drop_with(reason: DisconnectReason) -> WebSocketLeave:
    async def leave(client: TestClient, session: WebSocketSession) -> None:
        await session.disconnect(reason=reason)

    return leave


async def shut_down_websocket(client: TestClient, session: WebSocketSession) -> None:
    await client.shutdown(graceful_timeout=1)  # the handler never answers the 1001


async def stay_websocket(client: TestClient, session: WebSocketSession) -> None:
    await session.wait_app_done()


WEBSOCKET_CASES = [
    ("/ws", drop_with(R.CLIENT_DISCONNECTED), R.CLIENT_DISCONNECTED),
    ("/ws", drop_with(R.CLIENT_TOO_SLOW), R.CLIENT_TOO_SLOW),
    ("/ws", drop_with(R.CONNECTION_TIMED_OUT), R.CONNECTION_TIMED_OUT),
    ("/ws", shut_down_websocket, R.SERVER_SHUTDOWN),
    ("/ws-abort", stay_websocket, R.ABORTED),
]


@pytest.mark.parametrize(
    ("path", "leave", "reason"),
    WEBSOCKET_CASES,
    ids=[f"{path} {reason.name}" for path, _, reason in WEBSOCKET_CASES],
)
async def test_every_reason_over_a_websocket(
    path: str,
    leave: WebSocketLeave,
    reason: DisconnectReason,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    seen = Seen()
    async with TestClient(reasons_app(seen)) as client, client.websocket(path) as session:
        await seen.entered.wait()
        await leave(client, session)
    assert seen.reasons == [reason]
    assert seen.record == [f"{path.lstrip('/')} cancelled"]
    assert session.handler_cancelled
    [line] = lines_about(caplog, f"WEBSOCKET {path}")
    assert line.startswith(f"WEBSOCKET {path} cancelled: {reason.value} after "), line


async def test_a_websocket_shutdown_sends_1001_and_a_session_that_answers_ends_by_itself(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    app = App()
    reasons: list[DisconnectReason | None] = []

    @app.websocket("/echo")
    async def echo(websocket: WebSocket, token: DisconnectToken) -> None:
        token.register(lambda: reasons.append(token.reason))
        await websocket.accept()
        async for message in websocket:
            await websocket.send(message)

    async with TestClient(app) as client, client.websocket("/echo") as session:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.shutdown)
            with pytest.raises(WebSocketClosed) as closed:
                await session.receive()  # reading the close acknowledges it
        assert not session.handler_cancelled
        with pytest.raises(RuntimeError, match="takes no new requests"):
            await client.get("/echo")
    assert closed.value.code == 1001
    assert reasons == [R.SERVER_SHUTDOWN]
    [line] = lines_about(caplog, "WEBSOCKET /echo")
    assert line.startswith("WEBSOCKET /echo ended: server shutting down after"), line


async def test_hundreds_leaving_each_their_way_then_a_shutdown(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    app = App()
    reasons: dict[int, list[DisconnectReason | None]] = {}
    ways = [R.CLIENT_DISCONNECTED, R.STREAM_RESET, R.CLIENT_TOO_SLOW, R.CONNECTION_TIMED_OUT]

    @app.get("/wait/{n:int}")
    async def wait(n: int, token: DisconnectToken) -> None:
        reasons[n] = []
        token.register(lambda: reasons[n].append(token.reason))
        await trio.sleep_forever()

    async with TestClient(app) as client:
        baseline = len(live_tasks())
        async with AsyncExitStack() as stack:
            calls = [
                await stack.enter_async_context(client.stream("GET", f"/wait/{n}"))
                for n in range(400)
            ]
            await trio.testing.wait_all_tasks_blocked()
            async with trio.open_nursery() as nursery:
                for n, call in enumerate(calls[:300]):  # leave all at once, in four ways
                    nursery.start_soon(call.disconnect, ways[n % 4])
            await client.shutdown(graceful_timeout=1)  # the last 100 were still there
        await trio.testing.wait_all_tasks_blocked()
        assert len(live_tasks()) == baseline  # no watcher, no reader left behind
    expected = {n: [ways[n % 4] if n < 300 else R.SERVER_SHUTDOWN] for n in range(400)}
    assert reasons == expected
    said: dict[int, list[DisconnectReason | None]] = {}  # one line each, naming its reason
    for line in lines_about(caplog, "GET /wait/"):
        number, _, rest = line.removeprefix("GET /wait/").partition(" cancelled: ")
        assert int(number) not in said, line
        said[int(number)] = [R(rest.rpartition(" after ")[0])]
    assert said == expected


# ---- what a client cannot cause ----


@pytest.mark.parametrize(
    ("reason", "hint"),
    [(R.ABORTED, r"request\.abort\(\)"), (R.SERVER_SHUTDOWN, r"client\.shutdown\(\)")],
)
async def test_a_call_refuses_what_no_client_causes(reason: DisconnectReason, hint: str) -> None:
    seen = Seen()
    async with TestClient(reasons_app(seen)) as client, client.stream("GET", "/wait") as call:
        await seen.entered.wait()
        with pytest.raises(ValueError, match=hint):
            await call.disconnect(reason=reason)
        with pytest.raises(TypeError, match="DisconnectReason"):
            await call.disconnect(reason="stream reset")  # type: ignore[arg-type]
        assert not call.app_done  # nothing was said to the app
        await call.disconnect()
    assert seen.reasons == [R.CLIENT_DISCONNECTED]


@pytest.mark.parametrize(
    ("reason", "hint"),
    [
        (R.STREAM_RESET, "cannot tell a reset stream from the client's close"),
        (R.ABORTED, r"websocket\.abort\(\)"),
        (R.SERVER_SHUTDOWN, r"client\.shutdown\(\)"),
    ],
)
async def test_a_websocket_session_refuses_what_its_app_cannot_see(
    reason: DisconnectReason, hint: str
) -> None:
    seen = Seen()
    async with TestClient(reasons_app(seen)) as client, client.websocket("/ws") as session:
        await seen.entered.wait()
        with pytest.raises(ValueError, match=hint):
            await session.disconnect(reason=reason)
        await session.disconnect()
    assert seen.reasons == [R.CLIENT_DISCONNECTED]


# ---- the first reason stays ----


def staying_app(seen: Seen, *, timeout: float | None = None) -> App:
    """Routes that run on after the client left, so that something else can happen."""
    app = App()

    @app.get("/stay", cancel_on_disconnect=False, timeout=timeout)
    async def stay(token: DisconnectToken) -> str:
        seen.watch(token)
        seen.entered.set()
        try:
            await trio.sleep(30)
        finally:
            seen.note(f"stay ended: {getattr(token.reason, 'name', None)}")
            with trio.CancelScope(shield=True):  # the unit of work's end, past any deadline
                await trio.sleep(5)
        return "too late"

    @app.websocket("/ws-stay", cancel_on_disconnect=False)
    async def ws_stay(websocket: WebSocket, token: DisconnectToken) -> None:
        seen.watch(token)
        await websocket.accept()
        seen.entered.set()
        await trio.sleep(30)

    return app


async def test_a_shutdown_after_a_disconnect_keeps_client_disconnected(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    seen = Seen()
    async with TestClient(staying_app(seen)) as client, client.stream("GET", "/stay") as call:
        await seen.entered.wait()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call.disconnect)  # waits for the app, which runs on
            await trio.testing.wait_all_tasks_blocked()
            assert seen.reasons == [R.CLIENT_DISCONNECTED]
            await client.shutdown(graceful_timeout=1)  # then cancels it
    assert seen.reasons == [R.CLIENT_DISCONNECTED]
    assert seen.record == ["stay ended: CLIENT_DISCONNECTED"]
    assert call.handler_cancelled
    [line] = lines_about(caplog, "GET /stay")
    assert line.startswith("GET /stay cancelled: client disconnected after"), line


async def test_a_shutdown_after_a_websocket_client_left_keeps_client_disconnected(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    seen = Seen()
    async with TestClient(staying_app(seen)) as client, client.websocket("/ws-stay") as session:
        await seen.entered.wait()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(session.disconnect, R.CONNECTION_TIMED_OUT))
            await trio.testing.wait_all_tasks_blocked()
            await client.shutdown(graceful_timeout=1)
    assert seen.reasons == [R.CONNECTION_TIMED_OUT]
    [line] = lines_about(caplog, "WEBSOCKET /ws-stay")
    assert line.startswith("WEBSOCKET /ws-stay cancelled: connection timed out after"), line


async def test_a_disconnect_after_the_timeout_does_not_relabel_it(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    seen = Seen()
    async with (
        TestClient(staying_app(seen, timeout=2)) as client,
        client.stream("GET", "/stay") as call,
    ):
        await seen.entered.wait()
        await trio.sleep(3)  # past the deadline: the handler is in its shielded end
        assert seen.record == ["stay ended: None"]
        await call.disconnect(reason=R.CLIENT_TOO_SLOW)
    assert call.outcome == "timed out"
    # The token says the client went, and when: after the timeout, while the
    # request still ran. The request's outcome is still the timeout.
    assert seen.reasons == [R.CLIENT_TOO_SLOW]
    [line] = lines_about(caplog, "GET /stay")
    assert line.startswith("GET /stay ended after "), line
    assert line.endswith("s: timed out"), line


# ---- over a real hypercorn ----


async def serve_until_shut_down(
    app: App, body: Callable[[Server], Awaitable[None]], graceful_timeout: float = 1.0
) -> None:
    """Serve ``app``, run ``body``, then shut the server down and wait for serve() to end."""
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            functools.partial(serve, app, "127.0.0.1", 0, graceful_timeout=graceful_timeout)
        )
        await body(server)
        server.shutdown()


def stuck_app(seen: Seen) -> App:
    app = App()

    @app.get("/long-poll", min_response_rate=False)  # only the shutdown ends its writes
    async def long_poll(token: DisconnectToken) -> StreamingResponse:
        seen.watch(token)

        async def chunks() -> AsyncIterator[bytes]:
            seen.entered.set()
            while True:
                yield b"p" * 65536

        return StreamingResponse(chunks())

    @app.get("/stay", cancel_on_disconnect=False)
    async def stay(token: DisconnectToken) -> str:
        seen.watch(token)
        seen.entered.set()
        await trio.sleep(30)
        return "too late"

    @app.websocket("/flood")
    async def flood(websocket: WebSocket, token: DisconnectToken) -> None:
        seen.watch(token)
        await websocket.accept()
        seen.entered.set()
        try:
            with trio.move_on_after(1):  # the app's own patience with its sends
                while True:
                    await websocket.send(b"f" * 65536)
            await trio.sleep(10)  # the client's leaving cancels the handler
        except trio.Cancelled:
            seen.note("flood cancelled")
            raise

    return app


def never_reading(port: int, request: bytes) -> socket.socket:
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    client.connect(("127.0.0.1", port))
    client.sendall(request)
    return client


async def never_reading_websocket(port: int, path: str) -> trio.SocketStream:
    """A WebSocket client with a 4 KiB receive buffer that shakes hands and never reads."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    handshake = WSConnection(ConnectionType.CLIENT).send(WSRequest(host="x", target=path))
    await stream.send_all(handshake)
    return stream


async def test_a_write_stuck_until_the_shutdown_resets_it_is_server_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    seen = Seen()
    clients: list[socket.socket] = []

    async def body(server: Server) -> None:
        clients.append(never_reading(server.port, request_bytes("GET", "/long-poll")))
        with trio.fail_after(5):
            await seen.entered.wait()
        await trio.sleep(0.5)  # the buffers fill and the write blocks (not synchronization)

    try:
        with trio.fail_after(10):
            await serve_until_shut_down(stuck_app(seen), body)
    finally:
        for client in clients:
            client.close()
    # Its socket was reset at the deadline, under the write: the shutdown did it.
    assert seen.reasons == [R.SERVER_SHUTDOWN]
    [line] = lines_about(caplog, "GET /long-poll")
    assert line.startswith("GET /long-poll cancelled: server shutting down after"), line


async def test_a_shutdown_after_a_disconnect_keeps_client_disconnected_over_the_wire(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    seen = Seen()

    async def body(server: Server) -> None:
        stream = await connect(server.port)
        await stream.send_all(request_bytes("GET", "/stay"))
        with trio.fail_after(5):
            await seen.entered.wait()
        await stream.aclose()
        with trio.fail_after(5):
            await seen.token_set.wait()  # the server sees the FIN within milliseconds

    with trio.fail_after(10):
        await serve_until_shut_down(stuck_app(seen), body)
    assert seen.reasons == [R.CLIENT_DISCONNECTED]
    [line] = lines_about(caplog, "GET /stay")
    assert line.startswith("GET /stay cancelled: client disconnected after"), line


async def test_a_websocket_send_cut_at_its_deadline_is_client_too_slow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    seen = Seen()
    clients: list[trio.SocketStream] = []

    async def body(server: Server) -> None:
        clients.append(await never_reading_websocket(server.port, "/flood"))
        with trio.fail_after(5):
            await seen.entered.wait()
        with trio.fail_after(5):  # the send is cut 1 s after it started
            await seen.recorded.wait()

    try:
        with trio.fail_after(15):
            await serve_until_shut_down(stuck_app(seen), body)
    finally:
        for client in clients:
            await client.aclose()
    assert seen.reasons == [R.CLIENT_TOO_SLOW]
    assert seen.record == ["flood cancelled"]
    [line] = lines_about(caplog, "WEBSOCKET /flood")
    assert line.startswith("WEBSOCKET /flood cancelled: client too slow after"), line
