"""Dependencies (issue 14): a graph decided at declaration, setup in order, shielded teardown."""

# No ``from __future__ import annotations``: the dependencies are local functions,
# which string annotations could not name when the route is declared.
import functools
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import attrs
import httpx
import pytest
import trio
import trio.lowlevel
import trio.testing

from trioweb import (
    App,
    Depends,
    DisconnectToken,
    Header,
    Request,
    RouteDefinitionError,
    Router,
    Server,
    State,
    StreamingResponse,
    serve,
)
from trioweb.testing import TestClient

from .tasks import EventLog


def warnings_and_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "trioweb" and r.levelno >= logging.WARNING]


@attrs.define
class Conn:
    """A fake connection whose transactions record a commit or a rollback."""

    log: list[str]
    fail_commit: bool = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator["Conn"]:
        try:
            yield self
        except BaseException as error:
            await trio.sleep(1)  # a rollback takes time: only a shielded teardown finishes it
            self.log.append(f"rollback ({type(error).__name__})")
            raise
        await trio.sleep(1)
        if self.fail_commit:
            raise RuntimeError("commit failed")
        self.log.append("commit")


@attrs.frozen
class Order:
    item: str


def orders_app(log: list[str], *, fail_commit: bool = False, timeout: float | None = None) -> App:
    """The issue's example: create → transaction → connection, and current_user → connection."""
    app = App()

    async def connection(app: App) -> AsyncIterator[Conn]:
        log.append("connect")
        try:
            yield Conn(log, fail_commit)
        finally:
            await trio.sleep(1)
            log.append("disconnect")

    async def transaction(
        conn: Annotated[Conn, Depends(connection)], token: DisconnectToken
    ) -> AsyncIterator[Conn]:
        async with conn.transaction() as tx:
            yield tx
        log.append(f"transaction over, token reason: {token.reason}")

    async def current_user(
        authorization: Annotated[str, Header()], conn: Annotated[Conn, Depends(connection)]
    ) -> str:
        return authorization.removeprefix("Bearer ")

    @app.post("/orders", status_code=201, timeout=timeout)
    async def create(
        order: Order,
        tx: Annotated[Conn, Depends(transaction)],
        user: Annotated[str, Depends(current_user)],
        sleep: float = 0,
    ) -> dict[str, str]:
        log.append(f"handler {user} {order.item}")
        if order.item == "bad":
            raise ValueError("bad item")
        await trio.sleep(sleep)
        return {"user": user, "item": order.item}

    app.state.connection = connection  # for the overrides test
    return app


ORDER: dict[str, Any] = {"json": {"item": "tea"}, "headers": {"authorization": "Bearer ann"}}


async def test_completed_request_commits_then_gets_201(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with TestClient(orders_app(log)) as client:
        response = await client.post("/orders", **ORDER)
    assert response.status_code == 201
    assert response.json() == {"user": "ann", "item": "tea"}
    # The connection is shared by transaction and current_user: made once.
    assert log == [
        "connect",
        "handler ann tea",
        "commit",
        "transaction over, token reason: None",
        "disconnect",
    ]


@pytest.mark.parametrize("suspends", [True, False], ids=["awaits", "cannot-suspend"])
async def test_teardown_runs_before_the_response_is_sent(suspends: bool) -> None:
    app = App()
    log: list[str] = []

    async def held() -> AsyncIterator[str]:
        yield "value"
        if suspends:  # the request scope's path; else the no-scope fast path
            await trio.lowlevel.checkpoint()
        log.append("teardown done")

    @app.get("/")
    async def handler(value: Annotated[str, Depends(held)]) -> str:
        return value

    async def spy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def sending(message: dict[str, Any]) -> None:
            if scope["type"] == "http":
                log.append(message["type"])
            await send(message)

        await app(scope, receive, sending)

    async with TestClient(spy) as client:
        response = await client.get("/")
    assert response.text == "value"
    assert log == ["teardown done", "http.response.start", "http.response.body"]


async def test_handler_exception_is_thrown_into_teardown(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    async with TestClient(orders_app(log)) as client:
        response = await client.post("/orders", json={"item": "bad"}, headers=ORDER["headers"])
    assert response.status_code == 500
    assert log == ["connect", "handler ann bad", "rollback (ValueError)", "disconnect"]
    [record] = warnings_and_errors(caplog)
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)  # the handler's error, not masked


async def test_disconnect_mid_handler_rolls_back_shielded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with (
        TestClient(orders_app(log)) as client,
        client.stream("POST", "/orders?sleep=60", **ORDER) as call,
    ):
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["connect", "handler ann tea"]
        await call.disconnect()
        await call.wait_app_done()
    assert call.outcome == "disconnected"
    assert call.status_code is None
    # The rollback and the disconnect each sleep 1 s in a cancelled scope: shielded.
    assert log == ["connect", "handler ann tea", "rollback (Cancelled)", "disconnect"]


async def test_token_reason_is_readable_in_teardown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App()
    seen: list[object] = []

    async def watcher(token: DisconnectToken) -> AsyncIterator[None]:
        try:
            yield
        finally:
            seen.append(token.reason)

    @app.get("/")
    async def handler(_: Annotated[None, Depends(watcher)]) -> str:
        await trio.sleep(60)
        return "never"

    async with TestClient(app) as client, client.stream("GET", "/") as call:
        await trio.testing.wait_all_tasks_blocked()
        await call.disconnect()
        await call.wait_app_done()
    assert len(seen) == 1
    assert seen[0] is not None
    assert "CLIENT" in str(seen[0]).upper()


async def test_route_timeout_rolls_back_and_answers_504(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with TestClient(orders_app(log, timeout=5)) as client:
        response = await client.post("/orders?sleep=60", **ORDER)
    assert response.status_code == 504
    assert log == ["connect", "handler ann tea", "rollback (Cancelled)", "disconnect"]


async def test_commit_raising_gives_500_not_201(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    async with TestClient(orders_app(log, fail_commit=True)) as client:
        response = await client.post("/orders", **ORDER)
    assert response.status_code == 500
    assert log == ["connect", "handler ann tea", "disconnect"]
    [record] = warnings_and_errors(caplog)
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "commit failed"


async def test_teardown_overrunning_its_deadline_is_cut_off_and_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(teardown_timeout=30)
    log: list[str] = []

    async def slow_teardown() -> AsyncIterator[None]:
        yield
        started = trio.current_time()
        try:
            await trio.sleep(3600)
        finally:
            log.append(f"cut off after {trio.current_time() - started:g}s")

    @app.get("/")
    async def handler(_: Annotated[None, Depends(slow_teardown, teardown_timeout=2)]) -> str:
        return "ok"

    async with TestClient(app) as client:
        response = await client.get("/")
    assert log == ["cut off after 2s"]
    assert response.status_code == 500  # never success for work that did not finish
    messages = [r.getMessage() for r in warnings_and_errors(caplog)]
    assert any("cut off by its 2s teardown_timeout" in m for m in messages)


async def test_app_teardown_timeout_is_the_default(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(teardown_timeout=7)
    cut: list[float] = []

    async def slow_teardown() -> AsyncIterator[None]:
        yield
        started = trio.current_time()
        try:
            await trio.sleep(3600)
        finally:
            cut.append(trio.current_time() - started)

    @app.get("/")
    async def handler(_: Annotated[None, Depends(slow_teardown)]) -> str:
        return "ok"

    async with TestClient(app) as client:
        await client.get("/")
    assert cut == [7]


async def test_teardown_failing_during_a_cancellation_is_logged_not_masking(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()

    async def broken() -> AsyncIterator[None]:
        try:
            yield
        finally:
            raise RuntimeError("teardown broke")

    @app.get("/")
    async def handler(_: Annotated[None, Depends(broken)]) -> str:
        await trio.sleep(60)
        return "never"

    async with TestClient(app) as client, client.stream("GET", "/") as call:
        await trio.testing.wait_all_tasks_blocked()
        await call.disconnect()
        await call.wait_app_done()
    assert call.outcome == "disconnected"  # still a disconnect, not a failure
    [record] = warnings_and_errors(caplog)
    assert "teardown of dependency" in record.getMessage()
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "teardown broke"


def stream_app(log: list[str], chunks: int) -> App:
    app = App()

    async def resource() -> AsyncIterator[list[str]]:
        log.append("open")
        try:
            yield log
        except BaseException as error:
            log.append(f"teardown saw {type(error).__name__}")
            raise
        finally:
            await trio.sleep(1)
            log.append("closed")

    @app.get("/stream")
    async def stream(res: Annotated[list[str], Depends(resource)]) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for i in range(chunks):
                res.append(f"chunk {i}")  # the stream uses the dependency
                yield f"{i}\n".encode()
                await trio.sleep(1)

        return StreamingResponse(body())

    return app


async def test_streaming_teardown_runs_after_the_last_chunk(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with TestClient(stream_app(log, 3)) as client:
        response = await client.get("/stream")
    assert response.text == "0\n1\n2\n"
    assert log == ["open", "chunk 0", "chunk 1", "chunk 2", "closed"]


async def test_streaming_teardown_runs_on_a_disconnect_mid_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with TestClient(stream_app(log, 1000)) as client, client.stream("GET", "/stream") as call:
        assert await call.next_chunk() == b"0\n"
        await call.disconnect()
        await call.wait_app_done()
    assert log[0] == "open"
    assert log[-2:] == ["teardown saw Cancelled", "closed"]
    assert len(log) < 10


async def test_cache_false_runs_twice_and_order_is_reversed() -> None:
    app = App()
    log: list[str] = []
    made = 0

    async def counter() -> AsyncIterator[int]:
        nonlocal made
        made += 1
        mine = made
        log.append(f"setup {mine}")
        yield mine
        log.append(f"teardown {mine}")

    async def first(n: Annotated[int, Depends(counter, cache=False)]) -> int:
        return n

    async def second(n: Annotated[int, Depends(counter, cache=False)]) -> int:
        return n

    @app.get("/")
    async def handler(
        a: Annotated[int, Depends(first)], b: Annotated[int, Depends(second)]
    ) -> list[int]:
        return [a, b]

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.json() == [1, 2]
    assert log == ["setup 1", "setup 2", "teardown 2", "teardown 1"]


def test_a_cycle_names_the_chain() -> None:
    app = App()

    async def a(x: Annotated[int, Depends(lambda: 0)]) -> int:  # replaced below
        return x

    async def b(x: Annotated[int, Depends(a)]) -> int:
        return x

    a.__annotations__["x"] = Annotated[int, Depends(b)]

    async def create(x: Annotated[int, Depends(a)]) -> str:
        return ""

    with pytest.raises(RouteDefinitionError, match=r"cycle: create → a → b → a$"):
        app.get("/")(create)


def test_an_unbindable_parameter_names_the_chain() -> None:
    app = App()

    async def connection(pool: object) -> int:
        return 0

    async def transaction(conn: Annotated[int, Depends(connection)]) -> int:
        return conn

    async def create(tx: Annotated[int, Depends(transaction)]) -> str:
        return ""

    with pytest.raises(
        RouteDefinitionError,
        match=r"create → transaction → connection: parameter 'pool' of dependency",
    ):
        app.get("/")(create)


def test_two_bodies_across_the_graph_name_the_chain() -> None:
    app = App()

    async def audit(body: bytes) -> int:
        return len(body)

    async def create(order: Order, size: Annotated[int, Depends(audit)]) -> str:
        return ""

    with pytest.raises(
        RouteDefinitionError, match=r"more than one body.*create → audit \(parameter 'body'\)"
    ):
        app.post("/")(create)


def test_a_blocking_sync_dependency_is_refused() -> None:
    app = App()

    async def create(_: Annotated[None, Depends(time.sleep)]) -> str:
        return ""

    with pytest.raises(RouteDefinitionError, match="blocks"):
        app.get("/")(create)


async def test_a_dependency_parameter_error_has_its_loc() -> None:
    log: list[str] = []
    async with TestClient(orders_app(log)) as client:
        response = await client.post("/orders", json={"item": 3})
    assert response.status_code == 422
    locs = [error["loc"] for error in response.json()["detail"]]
    assert ["header", "authorization"] in locs  # current_user's parameter
    assert ["body", "item"] in locs  # the handler's, in the same 422
    assert log == []  # no dependency ran


async def test_overrides_replace_a_dependency_without_editing_the_app(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    app = orders_app(log)
    fake_log: list[str] = []

    async def fake_connection() -> AsyncIterator[Conn]:
        fake_log.append("fake connect")
        yield Conn(fake_log)

    app.dependency_overrides[app.state.connection] = fake_connection
    async with TestClient(app) as client:
        response = await client.post("/orders", **ORDER)
        assert response.status_code == 201
        app.dependency_overrides.clear()
        assert (await client.post("/orders", **ORDER)).status_code == 201
    assert fake_log == ["fake connect", "commit"]
    assert log.count("connect") == 1  # the real one again, once the override is gone


async def test_app_state_and_request_state() -> None:
    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        app.state.pool = "the pool"
        yield

    app = App(lifespan=lifespan)

    def pool(app: App) -> str:  # a sync dependency that cannot block
        return str(app.state.pool)

    @app.before_request
    async def mark(request: Request) -> None:
        request.state.user = "ann"

    @app.get("/")
    async def handler(request: Request, p: Annotated[str, Depends(pool)]) -> list[str]:
        return [p, request.state.user]

    assert isinstance(app.state, State)
    async with TestClient(app) as client:
        assert (await client.get("/")).json() == ["the pool", "ann"]
    with pytest.raises(AttributeError, match="missing"):
        _ = app.state.missing


async def test_async_context_manager_factory() -> None:
    app = App()
    log: list[str] = []

    @asynccontextmanager
    async def session(request: Request) -> AsyncIterator[str]:
        log.append("enter")
        yield request.path
        log.append("exit")

    @app.get("/cm")
    async def handler(path: Annotated[str, Depends(session)]) -> str:
        return path

    async with TestClient(app) as client:
        assert (await client.get("/cm")).text == "/cm"
    assert log == ["enter", "exit"]


async def test_router_and_app_dependencies_run_after_before_request() -> None:
    log: list[str] = []

    async def app_wide() -> None:
        log.append("app dependency")

    async def auth(authorization: Annotated[str, Header()]) -> None:
        log.append("router dependency")
        if authorization != "yes":
            from trioweb import HTTPError

            raise HTTPError(401)

    app = App(dependencies=[Depends(app_wide)])
    api = Router(prefix="/api", dependencies=[Depends(auth)])

    @app.before_request
    async def before(request: Request) -> None:
        log.append("before_request")

    @api.get("/x")
    async def handler() -> str:
        log.append("handler")
        return "x"

    app.include(api)
    async with TestClient(app) as client:
        assert (await client.get("/api/x", headers={"authorization": "no"})).status_code == 401
        assert log == ["before_request", "app dependency", "router dependency"]
        log.clear()
        assert (await client.get("/api/x", headers={"authorization": "yes"})).text == "x"
        assert log == ["before_request", "app dependency", "router dependency", "handler"]


async def test_view_attribute_dependency_is_bound_per_request() -> None:
    app = App()
    made: list[int] = []

    async def counter() -> AsyncIterator[int]:
        made.append(len(made) + 1)
        yield made[-1]

    @app.route("/view")
    class View:
        number: Annotated[int, Depends(counter)]

        async def get(self) -> str:
            return str(self.number)

    async with TestClient(app) as client:
        assert (await client.get("/view")).text == "1"
        assert (await client.get("/view")).text == "2"


# ---- over the wire ----


WIRE_LOG = EventLog()


@pytest.fixture
def app() -> App:
    return orders_app(WIRE_LOG)


async def test_over_the_wire_commit_and_rollback_on_a_real_disconnect(
    live_server: Server,
) -> None:
    WIRE_LOG.clear()
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        response = await http.post("/orders", **ORDER)
    assert response.status_code == 201
    assert "commit" in WIRE_LOG
    WIRE_LOG.clear()
    host, port = live_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        body = b'{"item": "tea"}'
        sock.sendall(
            b"POST /orders?sleep=30 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer bo\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        )
        await WIRE_LOG.wait_for("handler bo tea")
    await WIRE_LOG.wait_for("disconnect")  # the socket is closed: teardown completes, shielded
    assert WIRE_LOG == ["connect", "handler bo tea", "rollback (Cancelled)", "disconnect"]


async def test_dependencies_that_cannot_suspend_need_no_scope_and_still_tear_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()
    log: list[str] = []

    async def quick(fail: bool = False) -> AsyncIterator[str]:  # no await: cannot suspend
        log.append("setup")
        yield "quick"
        log.append("teardown")
        if fail:
            raise RuntimeError("quick teardown failed")

    @app.get("/")
    async def handler(value: Annotated[str, Depends(quick)]) -> str:
        return value

    route = app._routes._by_name["handler"]  # a look inside: decided at declaration
    assert not route.endpoint.needs_scope  # the fast path: no request scope

    async def slow() -> AsyncIterator[str]:  # a stand-in that suspends needs the scope
        await trio.lowlevel.checkpoint()
        yield "slow"

    async with TestClient(app) as client:
        assert (await client.get("/")).text == "quick"
        assert (await client.get("/?fail=true")).status_code == 500
        app.dependency_overrides[quick] = slow
        assert (await client.get("/")).text == "slow"
    assert log == ["setup", "teardown", "setup", "teardown"]
    [record] = warnings_and_errors(caplog)
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "quick teardown failed"


async def test_shutdown_mid_handler_rolls_back_once_shielded() -> None:
    log = EventLog()
    app = orders_app(log)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server: Server = await nursery.start(
                functools.partial(serve, app, "127.0.0.1", 0, graceful_timeout=0.2)
            )
            host, port = server.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port))) as sock:
                body = b'{"item": "tea"}'
                sock.sendall(
                    b"POST /orders?sleep=60 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer cy\r\n"
                    b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
                await log.wait_for("handler cy tea")
                server.shutdown()  # the graceful period ends long before the handler
                await log.wait_for("disconnect")
    # Cancelled by the shutdown: rolled back (1 s, shielded), then disconnected, once each.
    assert log[:4] == ["connect", "handler cy tea", "rollback (Cancelled)", "disconnect"]
    assert len(log) == 4


def test_depends_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="callable"):
        Depends(3)  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(ValueError, match="teardown_timeout"):
        Depends(lambda: 0, teardown_timeout=0)
    with pytest.raises(ValueError, match="teardown_timeout"):
        App(teardown_timeout=-1)


async def test_app_scoped_dependencies_live_from_startup_to_shutdown() -> None:
    log: list[str] = []

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        log.append("lifespan entered")
        yield
        log.append("lifespan left")

    app = App(lifespan=lifespan)

    async def pool(app: App) -> AsyncIterator[str]:
        log.append("pool up")
        yield "pool"
        log.append("pool down")

    async def cache() -> AsyncIterator[str]:
        log.append("cache up")
        yield "cache"
        log.append("cache down")

    async def background() -> None:
        try:
            await trio.sleep_forever()
        finally:
            log.append("app.nursery drained")

    @app.on_startup
    async def start() -> None:
        app.nursery.start_soon(background)

    @app.get("/")
    async def handler(
        p: Annotated[str, Depends(pool, scope="app")],
        c: Annotated[str, Depends(cache, scope="app")],
    ) -> list[str]:
        return [p, c]

    async with TestClient(app) as client:
        assert log == ["lifespan entered", "pool up", "cache up"]
        assert (await client.get("/")).json() == ["pool", "cache"]
        assert (await client.get("/")).json() == ["pool", "cache"]  # set up once
    assert log == [
        "lifespan entered",
        "pool up",
        "cache up",
        "app.nursery drained",
        "cache down",
        "pool down",
        "lifespan left",
    ]


async def test_an_override_set_before_startup_replaces_an_app_scoped_dependency() -> None:
    log: list[str] = []
    app = App()

    async def pool(app: App) -> AsyncIterator[str]:
        log.append("real pool")  # would connect to a database
        yield "real"

    async def fake_pool() -> AsyncIterator[str]:
        log.append("fake pool up")
        yield "fake"
        log.append("fake pool down")

    @app.get("/")
    async def handler(p: Annotated[str, Depends(pool, scope="app")]) -> str:
        return p

    app.dependency_overrides[pool] = fake_pool  # before the lifespan starts
    async with TestClient(app) as client:
        assert (await client.get("/")).text == "fake"
        assert (await client.get("/")).text == "fake"  # set up once, at startup
    assert log == ["fake pool up", "fake pool down"]


async def test_an_app_scoped_override_changed_after_startup_fails_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    async def pool() -> str:
        return "real"

    async def fake_pool() -> str:
        return "fake"

    @app.get("/")
    async def handler(p: Annotated[str, Depends(pool, scope="app")]) -> str:
        return p

    async with TestClient(app) as client:
        assert (await client.get("/")).text == "real"
        app.dependency_overrides[pool] = fake_pool  # too late: the value exists already
        assert (await client.get("/")).status_code == 500
        del app.dependency_overrides[pool]
        assert (await client.get("/")).text == "real"
    [record] = warnings_and_errors(caplog)
    assert record.exc_info is not None
    assert "changed after startup" in str(record.exc_info[1])


async def test_a_sync_dependency_returning_a_context_manager_is_its_value() -> None:
    app = App()
    entered: list[str] = []

    @asynccontextmanager
    async def session() -> AsyncIterator[str]:
        entered.append("entered")
        await trio.lowlevel.checkpoint()
        yield "session"

    def factory() -> object:
        return session()  # a plain function: what it returns is the value, not entered

    @app.get("/plain")
    async def plain(cm: Annotated[Any, Depends(factory)]) -> str:
        return type(cm).__name__

    @app.get("/factory")
    async def entered_one(s: Annotated[str, Depends(session)]) -> str:
        return s  # the @asynccontextmanager function itself: entered

    async with TestClient(app) as client:
        assert (await client.get("/plain")).text == "_AsyncGeneratorContextManager"
        assert entered == []
        assert (await client.get("/factory")).text == "session"
        assert entered == ["entered"]


async def test_a_dependency_may_take_the_requests_nursery() -> None:
    app = App()

    async def spawner(nursery: trio.Nursery) -> trio.Nursery:
        return nursery

    @app.get("/")
    async def handler(n: Annotated[trio.Nursery, Depends(spawner)]) -> str:
        return type(n).__name__

    async with TestClient(app) as client:
        assert (await client.get("/")).text == "Nursery"


def test_app_scoped_dependency_takes_the_app_or_nothing() -> None:
    app = App()

    async def pool(app: App, x: int) -> int:
        return x

    async def create(p: Annotated[int, Depends(pool, scope="app")]) -> str:
        return ""

    with pytest.raises(RouteDefinitionError, match=r"create → pool: a scope='app' dependency"):
        app.get("/")(create)
    with pytest.raises(ValueError, match="scope"):
        Depends(pool, scope="session")


async def test_hundreds_of_clients_leaving_at_every_point_each_tear_down_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    app = orders_app(log)
    count = 300
    async with TestClient(app) as client:

        async def one(i: int) -> None:
            async with client.stream("POST", f"/orders?sleep={i % 7}", **ORDER) as call:
                await trio.sleep(i % 5 + 0.5)  # virtual time: some leave, some finish
                if not call.response_done:
                    await call.disconnect()
                await call.wait_app_done()

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
    assert log.count("connect") == count
    assert log.count("disconnect") == count  # every teardown ran, once
    commits, rollbacks = log.count("commit"), log.count("rollback (Cancelled)")
    assert commits + rollbacks == count
    assert commits > 0
    assert rollbacks > 0


async def test_trios_asyncgen_hooks_are_back_when_a_generator_dependency_runs() -> None:
    # Its first asend() is made without Trio's first-iteration hook (_setup_code):
    # the hooks must be Trio's again before any code of the generator runs.
    app = App()
    seen: list[object] = []

    async def inner() -> AsyncIterator[int]:
        yield 1

    async def dependency() -> AsyncIterator[int]:
        seen.append(sys.get_asyncgen_hooks())
        async for value in inner():  # an async generator of its own: Trio registers it
            yield value

    @app.get("/")
    async def handler(value: Annotated[int, Depends(dependency)]) -> list[int]:
        seen.append(sys.get_asyncgen_hooks())
        return [value]

    hooks = sys.get_asyncgen_hooks()
    assert hooks.firstiter is not None  # Trio's
    async with TestClient(app) as client:
        assert (await client.get("/")).json() == [1]
    assert seen == [hooks, hooks]
    assert sys.get_asyncgen_hooks() == hooks
