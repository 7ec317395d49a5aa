"""The request pipeline at its edges: leaks, races and hook order (issue 10's regressions)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
import trio.lowlevel
import trio.testing

from trioweb import (
    App,
    DisconnectReason,
    DisconnectToken,
    EventStream,
    HTTPError,
    IOCancelledError,
    Request,
    Response,
    Server,
    StreamingResponse,
    WebSocket,
    WebSocketClosed,
    WebSocketStateError,
    serve,
    shielded,
)
from trioweb.testing import TestClient, WebSocketRejected

from .conftest import Probe
from .tasks import live_tasks
from .wire import connect, fetch, request_bytes

WAIT = 10  # bound, in seconds, of every wait


async def settle() -> None:
    """Let every task that can still run, run (unwinding, watchers ending)."""
    for _ in range(3):
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()


def bare_scope(path: str, **extra: object) -> dict[str, object]:
    scope: dict[str, object] = {"type": "http", "method": "GET", "path": path, "headers": []}
    return {**scope, "query_string": b"", **extra}


async def disconnect_when(
    app: App,
    scope: dict[str, object],
    send: Callable[[dict[str, object]], Awaitable[None]],
    ready: trio.Event,
    then: Callable[[], None] = lambda: None,
) -> None:
    """A bare ASGI harness: serve ``scope``; once ``ready`` is set, say ``http.disconnect``.

    ``then`` runs once the app has seen the disconnect (all its tasks blocked).
    """
    to_app, app_receives = trio.open_memory_channel[dict[str, object]](10)
    await to_app.send({"type": "http.request", "body": b"", "more_body": False})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(app, scope, app_receives.receive, send)
        with trio.fail_after(WAIT):
            await ready.wait()
        await to_app.send({"type": "http.disconnect"})
        await trio.testing.wait_all_tasks_blocked()
        then()


@pytest.fixture
def app(probe: Probe) -> App:
    app = App()

    @app.post("/upload")
    async def upload(request: Request) -> str:
        probe.entered.set()
        try:
            return str(len(await request.body()))
        finally:
            probe.done.set()

    @app.post("/bound")
    async def bound(body: bytes) -> str:
        return str(len(body))

    return app


@pytest.mark.parametrize("path", ["/upload", "/bound"])
async def test_leaving_mid_upload_leaves_no_task_behind(
    server: Server, probe: Probe, path: str
) -> None:
    assert (await fetch(server.port, "POST", path, body=b"warm")).status == 200
    await settle()
    baseline = len(live_tasks())
    for _ in range(20):
        stream = await connect(server.port)
        await stream.send_all(request_bytes("POST", path, [("content-length", "100000")]))
        await stream.send_all(b"x" * 1000)
        await trio.testing.wait_all_tasks_blocked()
        await stream.aclose()
        await settle()
    names = [task.name for task in live_tasks()]
    assert len(names) == baseline, names
    # And it still serves.
    assert (await fetch(server.port, "POST", path, body=b"abc")).body == b"3"


# ---- hooks, in the right order, seeing every response ----


def hooked_app(record: list[str]) -> App:
    app = App(max_body_size=10)

    @app.before_request
    async def auth(request: Request) -> object:
        record.append(f"before {request.path}")
        if request.headers.get("authorization") != "yes":
            return Response(b"who are you?", 401)
        return None

    @app.after_request
    async def stamp(request: Request, response: object) -> None:
        record.append(f"after {getattr(response, 'status', '?')}")
        assert isinstance(response, Response)
        response.headers["x-seen"] = "yes"

    @app.get("/items")
    async def items(limit: int) -> dict[str, int]:
        return {"limit": limit}

    @app.post("/echo")
    async def echo(body: bytes) -> bytes:
        return body

    @app.get("/slow", timeout=0.5)
    async def slow() -> None:
        await trio.sleep(10)

    return app


async def test_before_request_answers_before_binding_can_say_422() -> None:
    record: list[str] = []
    async with TestClient(hooked_app(record)) as client:
        response = await client.get("/items")  # no limit, and no authorization
    assert response.status_code == 401  # not a 422 that would list the route's parameters
    assert b"limit" not in response.content
    assert record == ["before /items", "after 401"]


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/items", 422, b""),
        ("GET", "/nowhere", 404, b""),
        ("DELETE", "/items", 405, b""),
        ("POST", "/echo", 413, b"x" * 11),
    ],
)
async def test_after_request_sees_responses_trioweb_makes(
    method: str, path: str, status: int, body: bytes
) -> None:
    record: list[str] = []
    async with TestClient(hooked_app(record)) as client:
        response = await client.request(
            method, path, headers={"authorization": "yes"}, content=body or None
        )
    assert response.status_code == status
    assert response.headers["x-seen"] == "yes"
    assert record == [f"before {path}", f"after {status}"]


async def test_after_request_sees_the_timeout(autojump_clock: trio.testing.MockClock) -> None:
    record: list[str] = []
    async with TestClient(hooked_app(record)) as client:
        response = await client.get("/slow", headers={"authorization": "yes"})
    assert (response.status_code, response.headers["x-seen"]) == (504, "yes")


async def test_errorhandler_for_routing_statuses() -> None:
    app = App()

    @app.errorhandler(404)
    async def not_found(request: Request, error: Exception) -> Response:
        return Response(f"no {request.path} here", 404)

    @app.errorhandler(405)
    async def not_allowed(request: Request, error: HTTPError) -> Response:
        return Response(f"try {error.headers['allow']}", 405, error.headers)

    @app.get("/thing")
    async def thing() -> str:
        return "thing"

    async with TestClient(app) as client:
        missing = await client.get("/nope")
        wrong = await client.post("/thing")
        right = await client.get("/thing")
    assert (missing.status_code, missing.text) == (404, "no /nope here")
    assert (wrong.status_code, wrong.text, wrong.headers["allow"]) == (
        405,
        "try GET, HEAD",
        "GET, HEAD",
    )
    assert right.text == "thing"


async def test_before_websocket_refuses_the_handshake() -> None:
    app = App()
    reached: list[str] = []

    @app.before_websocket
    async def auth(websocket: WebSocket) -> object:
        if websocket.query_params.get("key") != "ok":
            return Response(b"no key", 401)
        return None

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        reached.append("handler")
        await websocket.accept()
        await websocket.send("hi")

    async with TestClient(app) as client:
        with pytest.raises(WebSocketRejected) as refused:
            async with client.websocket("/ws"):
                pass
        async with client.websocket("/ws", params={"key": "ok"}) as session:
            assert await session.receive() == "hi"
    assert (refused.value.status, refused.value.body) == (401, b"no key")
    assert reached == ["handler"]


# ---- WebSockets: bounded in bytes, said once, quiet when the client closes ----


async def test_websocket_inbox_is_bounded_in_bytes() -> None:
    app = App(websocket_buffer_size=3 * 1024 * 1024, websocket_max_message_size=2 * 1024 * 1024)
    sockets: list[WebSocket] = []
    release = trio.Event()

    @app.websocket("/hoard")
    async def hoard(websocket: WebSocket) -> None:
        sockets.append(websocket)
        await websocket.accept()
        await release.wait()  # never reads while the client floods it
        assert len(await websocket.receive_bytes()) == 1024 * 1024

    async with TestClient(app) as client, client.websocket("/hoard") as session:
        for _ in range(40):
            await session.send_bytes(b"x" * 1024 * 1024)
        await trio.testing.wait_all_tasks_blocked()
        (websocket,) = sockets
        held = websocket.statistics()
        assert held.buffered_bytes <= 3 * 1024 * 1024
        assert held.buffered_messages == 3
        release.set()
        await trio.testing.wait_all_tasks_blocked()


async def test_websocket_message_over_the_limit_closes_with_1009(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()
    seen: list[object] = []

    @app.websocket("/small", max_message_size=10)
    async def small(websocket: WebSocket) -> None:
        await websocket.accept()
        seen.append(await websocket.receive())
        try:
            await websocket.receive()
        except WebSocketClosed as closed:
            seen.append(closed.code)

    caplog.set_level(logging.INFO)
    async with TestClient(app) as client, client.websocket("/small") as session:
        await session.send_text("short")
        await session.send_text("far too long for this route")
        with pytest.raises(WebSocketClosed) as closed:
            await session.receive()
    assert closed.value.code == 1009
    assert seen == ["short", 1009]
    assert any("1009" in r.getMessage() for r in caplog.records)


async def test_websocket_state_errors_say_it_once() -> None:
    app = App()
    errors: list[str] = []

    @app.websocket("/once")
    async def once(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close(timeout=0.1)
        try:
            await websocket.send("late")
        except WebSocketStateError as error:
            errors.append(str(error))

    async with TestClient(app) as client, client.websocket("/once") as session:
        with pytest.raises(WebSocketClosed):
            await session.receive()
    (message,) = errors
    assert message.count("cannot") == 1, message


async def test_websocket_closed_by_the_client_is_not_an_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for message in websocket:
            await websocket.send(message)

    caplog.set_level(logging.DEBUG)
    async with TestClient(app) as client:
        async with client.websocket("/echo") as session:
            await session.send_text("hi")
            assert await session.receive() == "hi"
            await session.close()
        await trio.testing.wait_all_tasks_blocked()
    ours = [r for r in caplog.records if r.name == "trioweb"]
    assert ours, "the end of the session is said, at DEBUG"
    assert all(r.levelno <= logging.DEBUG for r in ours), [r.getMessage() for r in ours]


# ---- shielded(): a cut-off block is not a success ----


async def test_shielded_timeout_raises_too_slow(autojump_clock: trio.testing.MockClock) -> None:
    reached: list[str] = []

    async def unit_of_work() -> None:
        async with shielded(timeout=1):
            await trio.sleep(5)
        reached.append("after the block")

    with pytest.raises(trio.TooSlowError):
        await unit_of_work()
    assert reached == []


async def test_shielded_outer_cancellation_still_wins(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.CancelScope() as outer:
        async with shielded(timeout=1):
            outer.cancel()  # a disconnect arrives meanwhile
            await trio.sleep(5)  # and the block is also cut off by its timeout
        pytest.fail("not reached: the outer cancellation takes effect")
    assert outer.cancelled_caught


# ---- handlers that answer at once, or read late ----


async def test_handler_without_await_raising_http_error() -> None:
    app = App()

    @app.get("/teapot")
    async def teapot() -> str:
        raise HTTPError(418, "short and stout")

    async with TestClient(app) as client:
        response = await client.get("/teapot")
    assert response.status_code == 418
    assert b"short and stout" in response.content


async def test_body_read_after_the_handler_awaited_is_woken() -> None:
    app = App()

    @app.post("/late")
    async def late(request: Request) -> str:
        await trio.lowlevel.checkpoint()  # the watcher starts: it drains the body from now on
        return (await request.body()).decode()

    async with TestClient(app) as client, client.stream("POST", "/late", upload=True) as call:
        await trio.testing.wait_all_tasks_blocked()
        await call.send_body(b"hello ")
        await trio.testing.wait_all_tasks_blocked()
        await call.send_body(b"world", final=True)
        response = await call.read()
    assert response.text == "hello world"


async def test_unsupported_return_value_names_the_handler_without_noise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.get("/set")
    async def gives_a_set() -> object:
        return {1, 2}

    @app.get("/nan")
    async def gives_nan() -> object:
        return {"x": float("nan")}

    async with TestClient(app) as client:
        assert (await client.get("/set")).status_code == 500
        assert (await client.get("/nan")).status_code == 500
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 2
    for record, name in zip(failures, ["gives_a_set", "gives_nan"], strict=True):
        assert name in record.getMessage()
        assert record.exc_info is not None
        error = record.exc_info[1]
        assert error is not None
        assert not isinstance(error.__context__, StopIteration), "no StopIteration noise"


# ---- routes that run on after a disconnect (cancel_on_disconnect=False) ----


def runs_on_app(probe: Probe) -> App:
    app = App()

    @app.post("/pay", cancel_on_disconnect=False)
    async def pay(request: Request, token: DisconnectToken) -> str:
        try:
            await request.body()
        except IOCancelledError as error:
            probe.record.append(f"body: {error}")
        probe.record.append(f"token set: {token.is_set()}")
        await trio.lowlevel.checkpoint()  # not cancelled: the route runs on
        probe.record.append("finished")
        return "receipt"

    async def counting(kind: str) -> AsyncIterator[str]:
        sent = 0
        try:
            while sent < 1000:
                yield f"{kind} {sent}\n"
                sent += 1
                await trio.sleep(0.01)
        finally:
            probe.record.append(f"{kind} closed after {sent}")
            probe.done.set()

    @app.get("/stream", cancel_on_disconnect=False)
    async def stream() -> StreamingResponse:
        return StreamingResponse(counting("stream"))

    @app.get("/events", cancel_on_disconnect=False)
    async def events() -> EventStream:
        return EventStream(counting("events"))

    return app


async def test_runs_on_with_a_body_cut_short(caplog: pytest.LogCaptureFixture) -> None:
    probe = Probe()
    async with TestClient(runs_on_app(probe)) as client:
        async with client.stream("POST", "/pay", upload=True) as call:
            await call.send_body(b"half of it")
            await trio.testing.wait_all_tasks_blocked()
            await call.disconnect()
        assert call.outcome == "disconnected"
        assert not call.handler_cancelled
    assert probe.record == [
        "body: the client disconnected before sending the whole body",
        "token set: True",
        "finished",
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("path", ["/stream", "/events"])
async def test_runs_on_but_a_stream_stops_when_its_client_left(
    path: str, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe()
    async with TestClient(runs_on_app(probe)) as client:
        async with client.stream("GET", path) as call:
            assert await call.wait_response_start() == 200
            assert await call.next_chunk()
            await call.disconnect()
        with trio.fail_after(5):
            await probe.done.wait()
    (closed,) = probe.record
    sent = int(closed.rsplit(" ", 1)[1])
    assert sent < 1000, closed  # closed early, and deterministically


@pytest.fixture
def stuck_app(probe: Probe) -> App:
    app = App()

    @app.get("/flood", timeout=0.2)
    async def flood() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            probe.entered.set()
            # One chunk far larger than the socket buffers: whenever the
            # deadline comes, the send is stuck in hypercorn's shielded write.
            yield b"x" * (32 * 1024 * 1024)
            probe.record.append("all sent")

        return StreamingResponse(chunks())

    return app


async def test_timed_out_in_a_stuck_send_leaves_no_task_behind(
    stuck_app: App, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(serve, stuck_app, "127.0.0.1", 0)
        await settle()
        baseline = len(live_tasks())
        stream = await connect(server.port)
        await stream.send_all(request_bytes("GET", "/flood"))
        with trio.fail_after(WAIT):
            await probe.entered.wait()
        # The route's deadline passes while the send is stuck on a client that
        # does not read (hypercorn shields the write: nothing can interrupt it).
        await trio.sleep(0.5)
        await stream.aclose()
        with trio.fail_after(WAIT):
            while len(live_tasks()) > baseline:
                await settle()
                await trio.sleep(0.01)  # bounded: the server's unwinding is socket I/O
        assert probe.record == []
        server.shutdown()


async def test_breaking_out_of_async_for_leaves_nothing_unclosed() -> None:
    app = App()
    got: list[str | bytes] = []

    @app.websocket("/first")
    async def first(websocket: WebSocket) -> None:
        await websocket.accept()
        async for message in websocket:
            got.append(message)
            break  # an async generator here would be left for the GC to close
        await websocket.close()

    async with TestClient(app) as client, client.websocket("/first") as session:
        await session.send_text("one")
        with pytest.raises(WebSocketClosed):
            await session.receive()
    gc.collect()  # under filterwarnings=error, an unclosed generator would fail here
    assert got == ["one"]


@pytest.mark.parametrize("kind", ["stream", "events"])
async def test_nothing_is_sent_after_the_client_left(kind: str) -> None:
    # A bare ASGI harness: the server says http.disconnect mid-stream, and the
    # test records every message the app sends from then on. The route runs on
    # after a disconnect, so only the send path can keep the stream quiet.
    app = App()
    paused, resume = trio.Event(), trio.Event()

    async def chunks() -> AsyncIterator[str]:
        for n in range(100):
            yield f"{n}\n"
            if n == 3:
                paused.set()
                await resume.wait()

    @app.get("/stream", cancel_on_disconnect=False)
    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks())

    @app.get("/events", cancel_on_disconnect=False)
    async def events() -> EventStream:
        return EventStream(chunks())

    after: list[dict[str, object]] = []
    gone = False

    async def send(message: dict[str, object]) -> None:
        await trio.lowlevel.checkpoint()
        if gone:
            after.append(message)

    def client_gone() -> None:  # the watcher has seen the disconnect: from now on
        nonlocal gone
        gone = True
        resume.set()

    await disconnect_when(app, bare_scope(f"/{kind}"), send, paused, then=client_gone)
    assert after == []


# ---- the token says why ----


class FakeConnection:
    """The connection layer's handle, as trioweb's serving or a test client gives it."""

    def __init__(self, reason: DisconnectReason) -> None:
        self.reason = reason

    def disconnect_reason(self) -> DisconnectReason:
        return self.reason

    def abort(self) -> None:
        raise AssertionError("not used here")


@pytest.mark.parametrize(
    "reason",
    [None, DisconnectReason.STREAM_RESET, DisconnectReason.CONNECTION_TIMED_OUT],
)
async def test_the_token_and_the_log_line_say_why(
    reason: DisconnectReason | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = App()
    reasons: list[object] = []
    entered = trio.Event()

    @app.get("/wait")
    async def wait(token: DisconnectToken) -> None:
        token.register(lambda: reasons.append(token.reason))
        entered.set()
        await trio.sleep_forever()

    extensions = {} if reason is None else {"trioweb.connection": FakeConnection(reason)}

    async def send(message: dict[str, object]) -> None:
        raise AssertionError(f"nothing is sent: {message}")

    await disconnect_when(app, bare_scope("/wait", extensions=extensions), send, entered)
    expected = reason or DisconnectReason.CLIENT_DISCONNECTED
    assert reasons == [expected]
    assert f"GET /wait cancelled: {expected.value} after" in caplog.text


async def test_abort_sets_the_token_with_its_reason() -> None:
    app = App()
    seen: list[object] = []

    @app.get("/abort")
    async def abort(request: Request, token: DisconnectToken) -> str:
        token.register(lambda: seen.append(token.reason))
        request.abort()
        await trio.lowlevel.checkpoint()
        return "not sent"

    async with TestClient(app) as client, client.stream("GET", "/abort") as call:
        await call.wait_app_done()
    assert seen == [DisconnectReason.ABORTED]


async def test_a_lone_surrogate_echoed_as_text_is_not_a_500() -> None:
    app = App()

    @app.post("/echo")
    async def echo(request: Request) -> str:
        return str((await request.json())["s"])

    async with TestClient(app) as client:
        response = await client.post("/echo", content=b'{"s": "a\\ud800b"}')
    assert response.status_code == 200
    assert response.content == b"a\\ud800b"
