"""httpx over trioweb.testing.ASGITransport: a real httpx client, in-process."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing

from trioweb import App, DisconnectToken, EventStream, ServerSentEvent
from trioweb.testing import AppDidNotRespond, ASGITransport

from .parity_app import make_app

BASE = "http://testserver"


@pytest.fixture
def record() -> list[str]:
    return []


@pytest.fixture
def app(record: list[str]) -> App:
    app = make_app(record)

    @app.on_startup
    async def startup() -> None:
        record.append("startup")

    @app.on_shutdown
    async def shutdown() -> None:
        record.append("shutdown")

    @app.get("/slow")
    async def slow(token: DisconnectToken) -> str:
        token.register(record.append, "token set")
        try:
            await trio.sleep(60)
        except trio.Cancelled:
            record.append("slow cancelled")
            raise
        return "slow done"

    @app.get("/never")
    async def never() -> str:
        await trio.Event().wait()
        return "unreachable"

    @app.get("/ticks")
    async def ticks() -> EventStream:
        async def produce() -> AsyncIterator[ServerSentEvent]:
            try:
                for i in range(1000):
                    yield ServerSentEvent(f"tick {i}")
                    await trio.sleep(1)
            finally:
                record.append("ticks closed")

        return EventStream(produce(), keepalive=None)

    return app


@pytest.fixture
async def http(app: App) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=ASGITransport(app), base_url=BASE) as client:
        yield client


async def test_the_lifespan_is_the_transports(app: App, record: list[str]) -> None:
    async with httpx.AsyncClient(transport=ASGITransport(app), base_url=BASE) as client:
        assert record == ["startup"]
        assert (await client.get("/hello/x")).text == "hello x"
    assert record == ["startup", "shutdown"]


async def test_cookies_persist_across_requests(http: httpx.AsyncClient) -> None:
    assert (await http.get("/whoami")).json() == {"session": None, "theme": None}
    response = await http.get("/set-cookie")
    assert response.cookies["session"] == "abc123"
    assert (await http.get("/whoami")).json() == {"session": "abc123", "theme": "dark"}
    http.cookies.delete("theme")
    assert (await http.get("/whoami")).json() == {"session": "abc123", "theme": None}


async def test_redirects_followed_or_not(http: httpx.AsyncClient) -> None:
    response = await http.get("/old", follow_redirects=True)
    assert (response.status_code, response.text) == (200, "hello moved")
    assert [r.status_code for r in response.history] == [302]
    assert response.url == f"{BASE}/hello/moved"
    not_followed = await http.get("/old")
    assert not_followed.is_redirect
    assert not_followed.headers["location"] == "/hello/moved"


async def test_data_and_params(http: httpx.AsyncClient) -> None:
    response = await http.post("/form", data={"name": "a b", "sign": "+&="})
    assert response.json() == {"name": "a b", "sign": "+&="}
    echoed = await http.get("/echo/x", params={"q": ["1", "2"], "s": "a b"})
    assert echoed.json()["query"] == [["q", "1"], ["q", "2"], ["s", "a b"]]


async def test_files_reach_a_raw_body_route(http: httpx.AsyncClient) -> None:
    payload = bytes(range(256)) * 100
    response = await http.post("/raw", files={"upload": ("blob.bin", payload)})
    body = response.json()
    assert body["content_type"].startswith("multipart/form-data; boundary=")
    assert body["has_boundary"]
    assert body["length"] > len(payload)
    assert body["sha256"] != hashlib.sha256(payload).hexdigest()  # framed, not bare


async def test_raise_for_status_and_auth(http: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.HTTPStatusError, match="404"):
        (await http.get("/nowhere")).raise_for_status()
    response = await http.get("/echo/x", auth=("user", "pass"))
    assert response.request.headers["authorization"].startswith("Basic ")


async def test_streaming_with_aiter_lines(http: httpx.AsyncClient) -> None:
    async with http.stream("GET", "/stream") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        lines = [line async for line in response.aiter_lines()]
    assert lines == [f"line {i}" for i in range(5)]


# httpx's own chain of async generators under aiter_lines() cannot be closed when
# the reader breaks out (over a socket too); only those warnings are ignored.
@pytest.mark.filterwarnings("ignore:Async generator 'httpx.:ResourceWarning")
async def test_sse_read_incrementally_then_closed_early(
    http: httpx.AsyncClient, record: list[str], autojump_clock: trio.testing.MockClock
) -> None:
    async with http.stream("GET", "/ticks") as response:
        assert response.headers["content-type"] == "text/event-stream"
        seen = []
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                seen.append(line)
            if len(seen) == 3:
                break  # 997 events are still to come: the response is not complete
    assert seen == ["data: tick 0", "data: tick 1", "data: tick 2"]
    assert "ticks closed" in record
    assert response.extensions["trioweb.outcome"]["outcome"] == "disconnected"


async def test_cancelling_the_request_task_is_a_disconnect(
    http: httpx.AsyncClient,
    record: list[str],
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    with trio.move_on_after(5) as scope:
        await http.get("/slow")
    assert scope.cancelled_caught
    await trio.testing.wait_all_tasks_blocked()
    assert record == ["startup", "token set", "slow cancelled"]
    assert "GET /slow cancelled: client disconnected after" in caplog.text


async def test_cancelling_while_reading_the_body_is_a_disconnect(
    http: httpx.AsyncClient, record: list[str], autojump_clock: trio.testing.MockClock
) -> None:
    chunks: list[bytes] = []
    with trio.move_on_after(2.5):
        async with http.stream("GET", "/ticks") as response:
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
    assert len(chunks) == 3  # at 0, 1 and 2 s
    await trio.testing.wait_all_tasks_blocked()
    assert "ticks closed" in record
    assert response.extensions["trioweb.outcome"] == {
        "outcome": "disconnected",
        "handler_cancelled": True,
    }


async def test_the_outcome_is_on_the_response(http: httpx.AsyncClient) -> None:
    response = await http.get("/hello/x")
    assert response.extensions["trioweb.outcome"] == {
        "outcome": "completed",
        "handler_cancelled": False,
    }


async def test_the_read_timeout_is_the_wall_clock_bound(
    http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    assert (await http.get("/slow")).text == "slow done"  # 60 virtual s, httpx's 5 s bound
    with pytest.raises(AppDidNotRespond, match=r"start the response within 0.2s of wall-clock"):
        await http.get("/never", timeout=0.2)


async def test_sending_before_entering_says_how() -> None:
    client = httpx.AsyncClient(transport=ASGITransport(make_app()), base_url=BASE)
    with pytest.raises(RuntimeError, match=r"async with httpx.AsyncClient\(transport="):
        await client.get("/hello/x")
