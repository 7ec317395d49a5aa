"""The test client's lifespan driver: whatever makes the lifespan fail reaches the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trioweb import App
from trioweb.testing import LifespanFailed, TestClient


def crashing_app() -> tuple[App, trio.Event]:
    """An app whose startup puts a task in app.nursery that crashes when told to."""
    app = App()
    go = trio.Event()

    async def doomed() -> None:
        await go.wait()
        raise ValueError("the app.nursery task crashed")

    @app.on_startup
    async def startup() -> None:
        app.nursery.start_soon(doomed)

    @app.get("/crash")
    async def crash() -> str:
        go.set()
        return "told it to"

    @app.get("/hello")
    async def hello() -> str:
        return "hello"

    return app, go


async def test_an_app_nursery_crash_surfaces_its_original_exception_at_close() -> None:
    app, _ = crashing_app()
    client = TestClient(app)
    await client.__aenter__()
    assert (await client.get("/crash")).text == "told it to"
    with pytest.raises(ValueError, match=r"the app\.nursery task crashed"):
        await client.__aexit__(None, None, None)


async def test_an_app_nursery_crash_fails_the_next_request_with_it() -> None:
    app, go = crashing_app()
    client = TestClient(app)
    await client.__aenter__()
    go.set()
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(ValueError, match=r"the app\.nursery task crashed"):
        await client.get("/hello")
    await client.__aexit__(None, None, None)  # raised once, not again


async def test_startup_failed_is_raised_with_the_apps_message() -> None:
    app = App()

    @app.on_startup
    async def startup() -> None:
        raise KeyError("no database")

    with pytest.raises(LifespanFailed, match=r"lifespan startup failed: KeyError\('no database'\)"):
        await TestClient(app).__aenter__()


async def test_shutdown_failed_is_raised_with_the_apps_message() -> None:
    app = App()

    @app.on_shutdown
    async def shutdown() -> None:
        raise OSError("disk gone")

    client = TestClient(app)
    await client.__aenter__()
    with pytest.raises(LifespanFailed, match=r"lifespan shutdown failed: OSError\('disk gone'\)"):
        await client.__aexit__(None, None, None)


async def test_a_lifespan_call_that_raises_is_raised_as_raised() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        raise ConnectionRefusedError("cache unreachable")

    with pytest.raises(ConnectionRefusedError, match="cache unreachable"):
        await TestClient(app).__aenter__()


async def test_a_lifespan_context_that_fails_in_its_exit() -> None:
    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        yield
        raise RuntimeError("could not flush")

    client = TestClient(App(lifespan=lifespan))
    await client.__aenter__()
    assert client.lifespan_supported
    with pytest.raises(LifespanFailed, match="could not flush"):
        await client.__aexit__(None, None, None)


async def test_an_app_without_lifespan_support_and_lifespan_off() -> None:
    calls: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope["type"])
        if scope["type"] == "lifespan":
            return  # returning without a word: no lifespan support
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with TestClient(app) as client:
        assert not client.lifespan_supported
        assert (await client.get("/")).status_code == 204
    async with TestClient(app, lifespan=False) as client:
        assert (await client.get("/")).status_code == 204
    assert calls == ["lifespan", "http", "http"]
