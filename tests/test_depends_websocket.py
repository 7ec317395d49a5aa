"""Dependencies of WebSocket routes (issue 14): set up before the handshake, torn down
when the handler ends, shielded and bounded, however it ends."""

# No ``from __future__ import annotations``: the dependencies are local functions,
# which string annotations could not name when the route is declared.
import functools
import logging
from collections.abc import AsyncIterator
from typing import Annotated

import pytest
import trio
import trio.lowlevel
import trio.testing
from trio_websocket import open_websocket_url
from wsproto.events import AcceptConnection, CloseConnection, RejectConnection

from tests.wire import RawWebSocket
from trioweb import (
    App,
    Depends,
    DisconnectToken,
    Header,
    HTTPError,
    Request,
    RouteDefinitionError,
    Router,
    Server,
    WebSocket,
    WebSocketClosed,
    serve,
)
from trioweb.testing import TestClient, WebSocketRejected
from trioweb.testing._asgi_scope import websocket_scope

from .tasks import EventLog


def chat_app(log: list[str], *, teardown_timeout: float | None = None) -> App:
    """A session dependency (setup, yield, a teardown that takes a second) and a user."""
    app = App()

    async def session(token: DisconnectToken) -> AsyncIterator[str]:
        log.append("session up")
        try:
            yield "s1"
        except BaseException as error:
            log.append(f"session saw {type(error).__name__}")
            raise
        finally:
            await trio.sleep(1)  # only a shielded teardown gets past this after a cancel
            log.append(f"session down, token reason: {token.reason and token.reason.value}")

    async def user(
        session: Annotated[str, Depends(session, teardown_timeout=teardown_timeout)],
        name: Annotated[str, Header("x-user")] = "guest",
    ) -> str:
        return f"{name}@{session}"

    @app.websocket("/chat")
    async def chat(ws: WebSocket, who: Annotated[str, Depends(user)]) -> None:
        await ws.accept()
        log.append(f"handler {who}")
        async for message in ws:
            if message == "crash":
                raise ValueError("handler bug")
            if message == "wait":
                log.append("waiting")
                await trio.sleep(60)
            await ws.send(
                f"{who}: {message!r}" if isinstance(message, bytes) else f"{who}: {message}"
            )
        log.append("loop ended")

    return app


async def test_set_up_once_per_session_before_the_handler(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with (
        TestClient(chat_app(log)) as client,
        client.websocket("/chat", headers={"x-user": "ann"}) as ws,
    ):
        await ws.send_text("hi")
        assert await ws.receive_text() == "ann@s1: hi"
        await ws.send_text("again")
        assert await ws.receive_text() == "ann@s1: again"
        assert log == ["session up", "handler ann@s1"]
        await ws.close()  # a client's close: as hypercorn reports it, the client went
    # The loop ended (no cancellation reached the handler): a teardown with no error.
    assert log == [
        "session up",
        "handler ann@s1",
        "loop ended",
        "session down, token reason: client disconnected",
    ]


async def test_client_gone_mid_handler_tears_down_once_shielded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with TestClient(chat_app(log)) as client, client.websocket("/chat") as ws:
        await ws.send_text("wait")
        await trio.testing.wait_all_tasks_blocked()
        await ws.disconnect()  # a dropped connection, 1006
        assert ws.handler_cancelled
    assert log == [
        "session up",
        "handler guest@s1",
        "waiting",
        "session saw Cancelled",  # thrown in at its yield; then a 1 s teardown, shielded
        "session down, token reason: client disconnected",
    ]


async def test_a_handler_that_returns_is_torn_down_before_its_1000_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    app = App()

    async def resource() -> AsyncIterator[str]:
        yield "r"
        await trio.sleep(1)
        log.append("teardown")

    @app.websocket("/once")
    async def once(ws: WebSocket, r: Annotated[str, Depends(resource)]) -> None:
        await ws.accept()
        await ws.send(r)
        log.append("handler returned")

    async with TestClient(app) as client, client.websocket("/once") as ws:
        assert await ws.receive_text() == "r"
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
        # The close comes after the teardown: it ran before trioweb closed.
        assert log == ["handler returned", "teardown"]
        assert closed.value.code == 1000


async def test_handler_error_is_thrown_into_the_teardown_and_closes_1011(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    async with TestClient(chat_app(log)) as client, client.websocket("/chat") as ws:
        await ws.send_text("crash")
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
        assert closed.value.code == 1011
    assert log[2:] == ["session saw ValueError", "session down, token reason: None"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [str(r.exc_info[1]) for r in errors if r.exc_info] == ["handler bug"]


async def test_a_teardown_that_overruns_is_cut_off_logged_and_closes_1011(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()
    log: list[str] = []

    async def slow() -> AsyncIterator[str]:
        yield "slow"
        try:
            await trio.sleep(60)
        finally:
            log.append(f"cut at {trio.current_time():.0f}")

    @app.websocket("/slow")
    async def handler(ws: WebSocket, s: Annotated[str, Depends(slow, teardown_timeout=2)]) -> None:
        await ws.accept()

    async with TestClient(app) as client, client.websocket("/slow") as ws:
        start = trio.current_time()
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
        assert closed.value.code == 1011  # never a clean close for work cut off
        assert trio.current_time() - start == pytest.approx(2)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "teardown of dependency" in warning.getMessage()
    assert "2s teardown_timeout" in warning.getMessage()
    assert len(log) == 1


async def test_a_dependency_refuses_the_handshake_with_its_status(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    app = App()

    async def opened() -> AsyncIterator[None]:
        log.append("opened")
        try:
            yield
        finally:
            log.append("closed")

    async def auth(
        o: Annotated[None, Depends(opened)], token: Annotated[str, Header("x-token")] = ""
    ) -> str:
        if token != "secret":
            raise HTTPError(401, "who are you?")
        return "ann"

    @app.websocket("/private")
    async def private(ws: WebSocket, user: Annotated[str, Depends(auth)]) -> None:
        await ws.accept()
        await ws.send(user)

    async with TestClient(app) as client:
        with pytest.raises(WebSocketRejected) as rejected:
            async with client.websocket("/private"):
                pass
        assert rejected.value.status == 401
        assert log == ["opened", "closed"]  # what was set up is torn down
        log.clear()
        async with client.websocket("/private", headers={"x-token": "secret"}) as ws:
            assert await ws.receive_text() == "ann"
    assert log == ["opened", "closed"]


async def test_a_client_gone_during_setup_tears_down_what_was_set_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    app = App()

    async def first() -> AsyncIterator[None]:
        try:
            yield
        finally:
            log.append("first torn down")

    async def waits(f: Annotated[None, Depends(first)]) -> None:
        try:
            await trio.sleep(60)
        except trio.Cancelled:
            log.append("setup cancelled")
            raise

    @app.websocket("/ws")
    async def handler(ws: WebSocket, w: Annotated[None, Depends(waits)]) -> None:
        log.append("not reached")

    async with TestClient(app) as client:
        # By hand: client.websocket() would wait for the handshake's answer.
        scope = websocket_scope(
            client.build_request("GET", "/ws"), subprotocols=[], client=("t", 1)
        )
        call = client.transport.open_call(scope, "WEBSOCKET /ws")
        call.send_nowait({"type": "websocket.connect"})
        await trio.testing.wait_all_tasks_blocked()
        assert log == []  # waiting in the second setup
        call.send_nowait({"type": "websocket.disconnect", "code": 1006})
        await call.wait_done("end", 5)
    assert log == ["setup cancelled", "first torn down"]


async def test_app_and_router_dependencies_run_after_before_websocket() -> None:
    log: list[str] = []

    async def app_wide() -> AsyncIterator[None]:
        log.append("app dependency")
        yield
        log.append("app dependency down")

    async def router_wide(ws: WebSocket) -> None:
        log.append(f"router dependency {ws.path}")

    app = App(dependencies=[Depends(app_wide)])
    api = Router(prefix="/api", dependencies=[Depends(router_wide)])

    @app.before_websocket
    async def before(ws: WebSocket) -> None:
        log.append("before_websocket")

    @api.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        log.append("handler")
        await ws.accept()

    app.include(api)
    async with TestClient(app) as client, client.websocket("/api/ws") as ws:
        with pytest.raises(WebSocketClosed):
            await ws.receive()
    assert log == [
        "before_websocket",
        "app dependency",
        "router dependency /api/ws",
        "handler",
        "app dependency down",
    ]


def test_an_app_dependency_that_needs_a_request_names_the_websocket_chain() -> None:
    async def audit(request: Request) -> None:
        pass

    app = App(dependencies=[Depends(audit)])

    async def chat(ws: WebSocket) -> None:
        pass

    with pytest.raises(RouteDefinitionError, match=r"chat → audit: .*Request is not available"):
        app.websocket("/ws")(chat)


async def test_overrides_replace_a_websocket_dependency(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    app = chat_app(log)
    graph = app._websocket_routes._by_name["chat"].endpoint.dependencies  # a look inside
    assert graph is not None
    [node] = [n for n in graph.nodes if n.name.endswith("user")]

    async def fake_user() -> str:
        return "fake"

    app.dependency_overrides[node.call] = fake_user
    async with TestClient(app) as client, client.websocket("/chat") as ws:
        await ws.send_text("x")
        assert await ws.receive_text() == "fake: x"
    assert "session up" not in log  # the real user's own dependency is not run


async def test_teardown_waits_for_the_tasks_of_the_handlers_nursery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    app = App()

    async def feed() -> AsyncIterator[str]:
        yield "feed"
        log.append("feed closed")

    async def child(name: str) -> None:
        await trio.sleep(5)
        log.append(f"child still had {name}")

    @app.websocket("/ws")
    async def handler(
        ws: WebSocket, nursery: trio.Nursery, f: Annotated[str, Depends(feed)]
    ) -> None:
        await ws.accept()
        nursery.start_soon(child, f)
        log.append("handler returned")

    async with TestClient(app) as client, client.websocket("/ws") as ws:
        with pytest.raises(WebSocketClosed):
            await ws.receive()
    assert log == ["handler returned", "child still had feed", "feed closed"]


async def test_a_dependency_may_take_the_nursery(autojump_clock: trio.testing.MockClock) -> None:
    app = App()
    log: list[str] = []

    async def background(nursery: trio.Nursery) -> AsyncIterator[trio.Nursery]:
        yield nursery
        log.append("background down")

    @app.websocket("/ws")
    async def handler(ws: WebSocket, n: Annotated[trio.Nursery, Depends(background)]) -> None:
        await ws.accept()
        n.start_soon(trio.sleep, 1)
        log.append(f"got a nursery: {isinstance(n, trio.Nursery)}")

    async with TestClient(app) as client, client.websocket("/ws") as ws:
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
        assert closed.value.code == 1000
    assert log == ["got a nursery: True", "background down"]


async def test_shutdown_1001_ends_the_handler_and_tears_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    app = chat_app(log)
    async with TestClient(app) as client, client.websocket("/chat") as ws:
        await ws.send_text("hi")
        await ws.receive_text()
        app.shutdown_started()
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()  # the 1001, acknowledged: the handler's loop ends
        assert closed.value.code == 1001
        await ws.wait_app_done()
    assert log == [
        "session up",
        "handler guest@s1",
        "loop ended",
        "session down, token reason: server shutting down",
    ]


async def test_hundreds_of_websocket_clients_leaving_at_different_points(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    app = App()
    ups: list[int] = []
    downs: list[int] = []

    seen: list[str] = []

    async def session(ws: WebSocket) -> AsyncIterator[int]:
        number = int(ws.query_params["n"])
        ups.append(number)
        try:
            yield number
        except BaseException as error:
            seen.append(type(error).__name__)
            raise
        else:
            seen.append("no error")
        finally:
            # One in ten overruns its 2 s teardown_timeout: cut off, logged.
            await trio.sleep(30 if number % 10 == 0 else 1)
            downs.append(number)

    @app.websocket("/ws")
    async def handler(
        ws: WebSocket, n: Annotated[int, Depends(session, teardown_timeout=2)]
    ) -> None:
        await ws.accept()
        async for message in ws:
            if message == "crash":
                raise ValueError("crash")
            await ws.send(message)
            if message == "wait":
                await trio.sleep(60)  # the client leaves meanwhile: cancelled here
        log.append("loop ended")

    count = 300
    tasks_before = trio.lowlevel.current_statistics().tasks_living
    async with TestClient(app) as client:

        async def one(i: int) -> None:
            async with client.websocket(f"/ws?n={i}") as ws:
                for _ in range(i % 4):
                    await ws.send_text("x")
                    await ws.receive_text()
                await trio.sleep(i % 3)
                how = i % 5
                if how == 0:
                    if i % 2:  # while the handler waits, not in its receive loop
                        await ws.send_text("wait")
                        assert await ws.receive_text() == "wait"
                    await ws.disconnect()  # a dropped connection
                elif how == 1:
                    await ws.close()  # a client's close frame
                elif how == 2:
                    await ws.send_text("crash")  # the handler fails
                    with pytest.raises(WebSocketClosed):
                        await ws.receive()
                elif how == 3:
                    ws.cancel()  # the server cuts the session off
                    await ws.wait_app_done()
                # how == 4: leaving the block drops the connection

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
    assert trio.lowlevel.current_statistics().tasks_living == tasks_before  # none left
    assert sorted(ups) == list(range(count))
    # Every teardown ran once: those that overran were cut off, the rest completed.
    overran = [i for i in range(count) if i % 10 == 0]
    assert sorted(downs) == [i for i in range(count) if i % 10 != 0]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(overran)
    assert all("cut off by its 2s teardown_timeout" in r.getMessage() for r in warnings)
    # Every way in: a clean end, a cancellation (client gone, cut off), a failure.
    assert len(seen) == count
    assert {"no error", "Cancelled", "ValueError"} <= set(seen)


# ---- over the wire ----


WIRE_LOG = EventLog()


@pytest.fixture
def app() -> App:
    return chat_app(WIRE_LOG)


async def test_over_the_wire_a_close_and_a_drop_each_tear_down_once(live_server: Server) -> None:
    WIRE_LOG.clear()
    url = live_server.url.replace("http://", "ws://")
    async with open_websocket_url(f"{url}/chat", extra_headers=[(b"x-user", b"bo")]) as ws:
        await ws.send_message("hi")
        assert await ws.get_message() == "bo@s1: hi"
    # trio-websocket closes cleanly; hypercorn reports it as 1006, a client gone.
    await WIRE_LOG.wait_for("session down, token reason: client disconnected")
    assert WIRE_LOG == [
        "session up",
        "handler bo@s1",
        "loop ended",
        "session down, token reason: client disconnected",
    ]
    WIRE_LOG.clear()
    client, answer = await RawWebSocket.connect(live_server.port, "/chat")
    assert isinstance(answer, AcceptConnection)
    await client.send_text("wait")
    await WIRE_LOG.wait_for("waiting")
    await client.drop()  # no close frame: the connection just goes
    await WIRE_LOG.wait_for("session down, token reason: client disconnected")
    assert WIRE_LOG == [
        "session up",
        "handler guest@s1",
        "waiting",
        "session saw Cancelled",
        "session down, token reason: client disconnected",
    ]


async def test_over_the_wire_a_refusal_from_a_dependency() -> None:
    app = App()

    async def auth(token: Annotated[str, Header("x-token")] = "") -> None:
        raise HTTPError(403, "no")

    @app.websocket("/ws")
    async def handler(ws: WebSocket, a: Annotated[None, Depends(auth)]) -> None:
        await ws.accept()

    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(functools.partial(serve, app, "127.0.0.1", 0))
        client, answer = await RawWebSocket.connect(server.port, "/ws")
        assert isinstance(answer, RejectConnection)
        assert answer.status_code == 403
        await client.drop()
        server.shutdown()


async def test_over_the_wire_shutdown_closes_1001_and_tears_down() -> None:
    log = EventLog()
    app = chat_app(log)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server: Server = await nursery.start(
                functools.partial(serve, app, "127.0.0.1", 0, graceful_timeout=5)
            )
            client, _ = await RawWebSocket.connect(server.port, "/chat")
            await log.wait_for("handler guest@s1")
            server.shutdown()
            event = await client.next_event()
            assert isinstance(event, CloseConnection)
            assert event.code == 1001
            await client.acknowledge(event)  # a well-behaved client answers the close
            await client.drop()
            await log.wait_for("session down, token reason: server shutting down")
    assert log == [
        "session up",
        "handler guest@s1",
        "loop ended",
        "session down, token reason: server shutting down",
    ]


async def test_over_the_wire_shutdown_past_its_grace_cancels_and_tears_down_shielded() -> None:
    log = EventLog()
    app = App()

    async def session(token: DisconnectToken) -> AsyncIterator[None]:
        try:
            yield
        except trio.Cancelled:
            log.append("cancelled")
            raise
        finally:
            await trio.sleep(0.5)  # past the cancel: only the shield lets this finish
            log.append(f"down: {token.reason and token.reason.value}")

    @app.websocket("/stubborn")
    async def stubborn(ws: WebSocket, s: Annotated[None, Depends(session)]) -> None:
        await ws.accept()
        log.append("accepted")
        await trio.sleep_forever()  # ignores the 1001

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server: Server = await nursery.start(
                functools.partial(serve, app, "127.0.0.1", 0, graceful_timeout=0.2)
            )
            client, answer = await RawWebSocket.connect(server.port, "/stubborn")
            assert isinstance(answer, AcceptConnection)
            await log.wait_for("accepted")
            server.shutdown()
            event = await client.next_event()
            assert isinstance(event, CloseConnection)
            assert event.code == 1001
            await log.wait_for("down: server shutting down")
            await client.drop()
    assert log == ["accepted", "cancelled", "down: server shutting down"]
