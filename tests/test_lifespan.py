"""The app's lifespan: startup order, the reverse at shutdown, and a crashing app.nursery task."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from trioweb import App, Server, serve
from trioweb._serve import LifespanFailed

from .wire import connect, fetch, read_response, request_bytes


class Pool:
    """A resource that records every use, and any use after it was closed."""

    def __init__(self, record: list[str]) -> None:
        self.record = record
        self.closed = False

    def use(self, who: str) -> None:
        self.record.append(f"USE AFTER CLOSE by {who}" if self.closed else f"{who} used the pool")

    def close(self) -> None:
        self.closed = True
        self.record.append("pool closed")


def pool_app(
    record: list[str], entered: trio.Event, release: trio.Event, *, shutdown_grace: float
) -> App:
    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        pool = Pool(record)
        app.state.pool = pool
        record.append("pool opened")
        try:
            yield
        finally:
            pool.close()

    app = App(lifespan=lifespan, shutdown_grace=shutdown_grace)

    def shutdown_started() -> None:
        record.append("shutdown started")
        release.set()

    app.shutdown_started = shutdown_started  # type: ignore[method-assign]  # a spy on the seam  # the serve() seam

    async def background() -> None:
        try:
            while True:
                app.state.pool.use("app.nursery task")
                await trio.sleep(0.01)
        except trio.Cancelled:
            app.state.pool.use("app.nursery task, cancelled")
            raise

    @app.on_startup
    async def start() -> None:
        record.append("startup hook")
        app.nursery.start_soon(background)

    @app.on_shutdown
    async def stop() -> None:
        app.state.pool.use("shutdown hook")

    @app.get("/slow")
    async def slow() -> str:
        entered.set()
        await release.wait()
        await trio.sleep(0.05)  # still working after shutdown began
        app.state.pool.use("in-flight request")
        return "done"

    return app


def _squash(record: list[str]) -> list[str]:
    """The record with runs of the background task's uses folded into one."""
    out: list[str] = []
    for entry in record:
        if not out or out[-1] != entry:
            out.append(entry)
    return out


async def test_shutdown_is_the_reverse_of_startup_and_nothing_uses_the_pool_after_close() -> None:
    record: list[str] = []
    entered, release = trio.Event(), trio.Event()
    app = pool_app(record, entered, release, shutdown_grace=0.2)
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(serve, app, "127.0.0.1", 0)
        stream = await connect(server.port)
        await stream.send_all(request_bytes("GET", "/slow"))
        with trio.fail_after(10):
            await entered.wait()
        server.shutdown()
        response = await read_response(stream)
        await stream.aclose()
    assert response.body == b"done"
    assert not any("AFTER CLOSE" in entry for entry in record), record
    squashed = [e for e in _squash(record) if e != "app.nursery task used the pool"]
    assert squashed == [
        "pool opened",
        "startup hook",
        "shutdown started",
        "in-flight request used the pool",
        "shutdown hook used the pool",
        "app.nursery task, cancelled used the pool",
        "pool closed",
    ]


async def test_app_nursery_tasks_get_their_grace_before_the_context_is_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    record: list[str] = []

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        yield
        record.append(f"context left at {trio.current_time():.0f}")

    app = App(lifespan=lifespan, shutdown_grace=3)

    async def finishes_in(seconds: float) -> None:
        try:
            await trio.sleep(seconds)
            record.append(f"task of {seconds:.0f}s finished")
        except trio.Cancelled:
            record.append(f"task of {seconds:.0f}s cancelled at {trio.current_time():.0f}")
            raise

    driver = _Driver(app)
    async with trio.open_nursery() as nursery:
        await driver.start(nursery)
        app.nursery.start_soon(finishes_in, 1)
        app.nursery.start_soon(finishes_in, 60)
        assert await driver.stop() == {"type": "lifespan.shutdown.complete"}
    assert record == ["task of 1s finished", "task of 60s cancelled at 3", "context left at 3"]


class _Driver:
    """A minimal lifespan driver without the trioweb.shutdown extension (like a test client)."""

    def __init__(self, app: App, extensions: dict[str, Any] | None = None) -> None:
        self.app = app
        self.to_app, self.inbox = trio.open_memory_channel[dict[str, Any]](math.inf)
        self.from_app, self.outbox = trio.open_memory_channel[dict[str, Any]](math.inf)
        self.scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}}
        if extensions is not None:
            self.scope["extensions"] = extensions
        self.error: BaseException | None = None
        self.done = trio.Event()

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self.inbox.receive, self.from_app.send)
        except Exception as error:
            self.error = error
        finally:
            self.done.set()

    async def start(self, nursery: trio.Nursery) -> dict[str, Any]:
        nursery.start_soon(self._run)
        await self.to_app.send({"type": "lifespan.startup"})
        return await self.outbox.receive()

    async def stop(self) -> dict[str, Any] | None:
        await self.to_app.send({"type": "lifespan.shutdown"})
        with trio.fail_after(60):
            await self.done.wait()
        try:
            return self.outbox.receive_nowait()
        except trio.WouldBlock:
            return None


def crashing_app(record: list[str]) -> tuple[App, trio.Event]:
    go = trio.Event()

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        yield
        record.append("context left")

    app = App(lifespan=lifespan)

    async def doomed() -> None:
        await go.wait()
        raise RuntimeError("boom")

    @app.on_startup
    async def start() -> None:
        app.nursery.start_soon(doomed)

    @app.on_shutdown
    async def stop() -> None:
        record.append("shutdown hook")

    return app, go


async def test_without_the_extension_a_crash_ends_the_lifespan_and_raises_the_original(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record: list[str] = []
    app, go = crashing_app(record)
    driver = _Driver(app)
    async with trio.open_nursery() as nursery:
        assert await driver.start(nursery) == {"type": "lifespan.startup.complete"}
        go.set()
        with trio.fail_after(10):
            await driver.done.wait()  # no lifespan.shutdown was sent: the app ended by itself
    assert isinstance(driver.error, RuntimeError)
    assert str(driver.error) == "boom"
    assert record == ["shutdown hook", "context left"]
    crashed = [r for r in caplog.records if "app.nursery crashed" in r.getMessage()]
    assert crashed[0].levelno == logging.ERROR
    assert crashed[0].exc_info is not None
    assert crashed[0].exc_info[1] is driver.error


async def test_with_the_extension_a_crash_asks_for_shutdown_and_waits_for_it() -> None:
    record: list[str] = []
    app, go = crashing_app(record)
    asked = trio.Event()
    driver = _Driver(app, {"trioweb.shutdown": {"request": asked.set}})
    async with trio.open_nursery() as nursery:
        await driver.start(nursery)
        go.set()
        with trio.fail_after(10):
            await asked.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert record == []  # still serving: the driver decides when the shutdown runs
        assert await driver.stop() is None  # no shutdown.complete: it raised instead
    assert isinstance(driver.error, RuntimeError)
    assert record == ["shutdown hook", "context left"]


async def test_serve_shuts_down_gracefully_when_an_app_nursery_task_crashes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record: list[str] = []
    app, go = crashing_app(record)
    entered, release = trio.Event(), trio.Event()

    @app.get("/slow")
    async def slow() -> str:
        entered.set()
        await release.wait()
        return "finished"

    app.shutdown_started = release.set  # type: ignore[method-assign]  # a spy on the seam  # the serve() seam
    failures: list[LifespanFailed] = []

    async def serve_and_catch(*, task_status: trio.TaskStatus[Server]) -> None:
        try:
            await serve(app, "127.0.0.1", 0, task_status=task_status)
        except LifespanFailed as error:
            failures.append(error)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server: Server = await nursery.start(serve_and_catch)
            stream = await connect(server.port)
            await stream.send_all(request_bytes("GET", "/slow"))
            await entered.wait()
            go.set()
            response = await read_response(stream)
            await stream.aclose()
    [failure] = failures
    assert isinstance(failure.__cause__, RuntimeError)
    assert response.body == b"finished"  # the in-flight request got its graceful time
    assert record == ["shutdown hook", "context left"]
    assert not [r for r in caplog.records if "Lifespan" in r.getMessage()]


async def test_a_startup_failure_ends_serve_with_lifespan_failed() -> None:
    app = App()

    @app.on_startup
    async def start() -> None:
        raise ValueError("no database")

    with pytest.raises(LifespanFailed, match="no database"):
        await serve(app, "127.0.0.1", 0)


async def test_a_bare_asgi_app_without_lifespan_is_served() -> None:
    async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"bare"})

    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(serve, bare, "127.0.0.1", 0)
        assert (await fetch(server.port, "GET", "/")).body == b"bare"
        server.shutdown()
