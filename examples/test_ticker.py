"""The ticker example: SSE, resuming after Last-Event-ID, and the generator's end."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from examples.ticker import Streams, create_app, price
from trioweb import App
from trioweb.testing import TestClient


@pytest.fixture
def streams() -> Streams:
    return Streams()


@pytest.fixture
def app(streams: Streams) -> App:
    return create_app(streams)


async def test_the_page_listens_with_eventsource(client: TestClient) -> None:
    r = await client.get("/")
    assert 'new EventSource("/ticks")' in r.text


async def test_ticks_are_numbered_from_zero(
    client: TestClient, autojump_clock: trio.testing.MockClock
) -> None:
    async with client.stream("GET", "/ticks", params={"limit": 3}) as call:
        events = [event async for event in call.aiter_events()]
    assert call.headers["content-type"] == "text/event-stream"
    assert events == [{"event": "price", "id": str(n), "data": price(n)} for n in range(3)]


async def test_a_reconnect_resumes_after_the_last_event_id(
    client: TestClient, autojump_clock: trio.testing.MockClock, streams: Streams
) -> None:
    seen: list[str] = []
    async with client.stream("GET", "/ticks") as call:
        async for event in call.aiter_events():
            seen.append(event["id"])
            if len(seen) == 4:
                break
        await call.disconnect()  # the connection drops
    assert streams.open == 0  # the generator's finally ran
    async with client.stream("GET", "/ticks", headers={"last-event-id": seen[-1]}) as call:
        async for event in call.aiter_events():
            seen.append(event["id"])
            if len(seen) == 7:
                break
    assert seen == [str(n) for n in range(7)]  # nothing missed, nothing repeated
    assert (streams.open, streams.ended) == (0, 2)


async def test_leaving_closes_the_generator_where_it_waits(
    client: TestClient, autojump_clock: trio.testing.MockClock, streams: Streams
) -> None:
    async with client.stream("GET", "/ticks") as call:
        assert (await call.aiter_events().__anext__())["id"] == "0"
        await trio.testing.wait_all_tasks_blocked()  # the generator sleeps until the next tick
        assert streams.open == 1
        await call.disconnect()
    assert call.handler_cancelled
    assert (streams.open, streams.ended) == (0, 1)


@pytest.mark.parametrize("bad", ["soon", "-1", "1e3", ""])
async def test_a_bad_last_event_id_is_400(client: TestClient, bad: str) -> None:
    r = await client.get("/ticks", headers={"last-event-id": bad})
    assert r.status_code == 400
