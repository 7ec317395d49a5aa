"""Attacks on the in-process driver: leaving at every point, many at once, garbage bodies."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing

from trioweb import App, Request, StreamingResponse
from trioweb.testing import ASGITransport, TestClient

from .tasks import task_count

CHUNKS = 8


def make_app(record: list[str]) -> App:
    app = App()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def produce() -> AsyncIterator[bytes]:
            try:
                for i in range(CHUNKS):
                    await trio.sleep(1)
                    yield b"%d" % i
            finally:
                record.append("closed")

        return StreamingResponse(produce())

    @app.post("/upload", max_body_size=1_000_000)
    async def upload(request: Request) -> str:
        return str(len(await request.body()))

    @app.get("/hold")
    async def hold() -> str:
        await trio.sleep(random.random() * 10)
        return "held"

    return app


@pytest.mark.parametrize("leave_after", range(CHUNKS))
async def test_leaving_at_every_chunk(
    leave_after: int, autojump_clock: trio.testing.MockClock
) -> None:
    record: list[str] = []
    async with TestClient(make_app(record)) as client, client.stream("GET", "/stream") as call:
        for _ in range(leave_after):
            assert await call.next_chunk()
        await call.disconnect()
    assert call.outcome == "disconnected"
    assert record == ["closed"]


@pytest.mark.parametrize("at_byte", [0, 1, 4095, 4096, 99_999])
async def test_leaving_mid_upload_at_a_chosen_byte(at_byte: int) -> None:
    async with (
        TestClient(make_app([])) as client,
        client.stream("POST", "/upload", headers={"content-length": "100000"}, upload=True) as call,
    ):
        if at_byte:
            await call.send_body(b"x" * at_byte)
        await trio.testing.wait_all_tasks_blocked()
        await call.disconnect()
    assert call.status_code is None
    assert call.outcome == "disconnected"


async def test_a_thousand_requests_some_cancelled_leave_no_task_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    random.seed(7)
    baseline = task_count()
    answered: list[int] = []
    transport = ASGITransport(make_app([]))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await trio.testing.wait_all_tasks_blocked()
        idle = task_count()  # the lifespan's tasks, before any request

        async def one(i: int) -> None:
            with trio.move_on_after(random.random() * 10):  # about half leave early
                response = await http.get("/hold")
                assert response.text == "held"
                answered.append(i)

        async with trio.open_nursery() as nursery:
            for i in range(1000):
                nursery.start_soon(one, i)
        await trio.testing.wait_all_tasks_blocked()
        assert task_count() == idle  # the transport's nursery holds only the lifespan again
    assert 300 < len(answered) < 700
    assert task_count() == baseline


async def test_the_transport_forgets_calls_that_ended() -> None:
    transport = ASGITransport(make_app([]))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for _ in range(50):
            assert (await http.post("/upload", content=b"abc")).text == "3"
        assert len(transport._calls) <= 2  # pruned as requests start


async def test_a_body_generator_that_fails_is_raised_and_the_app_sees_a_client_leave() -> None:
    record: list[str] = []
    app = App()

    @app.post("/upload")
    async def upload(request: Request) -> str:
        try:
            return str(len(await request.body()))
        except trio.Cancelled:
            record.append("upload cancelled")
            raise

    async def body() -> AsyncIterator[bytes]:
        yield b"part"
        await trio.testing.wait_all_tasks_blocked()  # the app is reading
        raise OSError("the test's own upload broke")

    async with httpx.AsyncClient(transport=ASGITransport(app), base_url="http://t") as http:
        with pytest.raises(OSError, match="upload broke"):
            await http.post("/upload", content=body())
        assert (await http.post("/upload", content=b"fine")).text == "4"
    assert record == ["upload cancelled"]
