"""How a user tests a trioweb app: pytest-trio in trio_mode, and trioweb's fixtures.

Nothing here imports test machinery beyond the app: ``client`` and
``live_server`` come from trioweb's pytest plugin, ``autojump_clock`` from
pytest-trio. The tutorial (docs/tutorial.rst) shows these tests one by one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from examples.lottery import app as lottery_app
from trioweb import App, Server
from trioweb.testing import TestClient


@pytest.fixture
def app() -> App:  # the plugin's fixtures build on a fixture named `app`
    return lottery_app


async def test_front_page_links_to_the_draw_in_a_new_tab(client: TestClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert '<a id="draw" target="_blank" href="/lottery">' in r.text


async def test_draw(client: TestClient, autojump_clock: trio.testing.MockClock) -> None:
    r = await client.get("/lottery")
    assert r.status_code == 200
    lucky = int(r.text.split('<p id="lucky">')[1].split("</p>")[0])
    assert 0 <= lucky < 1000
    assert trio.current_time() >= 2.5  # five draws, half a second apart (virtual time)


async def test_leaving_cancels(
    client: TestClient, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with client.stream("GET", "/lottery") as call:  # entered before any response exists
        await trio.sleep(0.7)  # the visitor waits a little, then closes the tab
        await call.disconnect()
    assert call.handler_cancelled
    assert call.status_code is None  # nothing was sent
    messages = [record.getMessage() for record in caplog.records]
    assert "client left: the draw was called off" in messages  # the token's callback ran
    assert not any(m.startswith("drew lucky number") for m in messages)  # never completed
    assert any(m.startswith("GET /lottery cancelled: client disconnected") for m in messages)


async def test_class_based_view(client: TestClient, autojump_clock: trio.testing.MockClock) -> None:
    r = await client.get("/api/draw")
    assert r.status_code == 200
    assert 0 <= r.json()["lucky"] < 1000


async def test_class_based_view_binds_the_token(
    client: TestClient, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with client.stream("GET", "/api/draw") as call:
        await trio.sleep(1.2)
        await call.disconnect()
    assert call.handler_cancelled
    assert "client left: the draw was called off" in caplog.messages


async def test_buy_a_ticket(client: TestClient) -> None:
    r = await client.post("/api/tickets", json={"holder": "Ada", "numbers": [7, 3, 999]})
    assert r.status_code == 200
    ticket = r.json()
    assert ticket["holder"] == "Ada"
    assert ticket["numbers"] == [3, 7, 999]
    r = await client.get(f"/api/tickets/{ticket['id']}")
    assert r.json() == ticket


async def test_a_bad_ticket_is_a_clear_4xx(client: TestClient) -> None:
    r = await client.post("/api/tickets", json={"holder": "Ada", "numbers": [1, 1, 2]})
    assert r.status_code == 422
    # An attrs validator's message, reported at the field it checks.
    assert r.json()["detail"] == [
        {"loc": ["body", "numbers"], "msg": "pick three different numbers"}
    ]
    r = await client.post("/api/tickets", json={"holder": 5, "numbers": [1, 2, 3]})
    assert r.status_code == 422  # nothing is coerced: 5 is not a name
    assert r.json()["detail"][0]["loc"] == ["body", "holder"]
    r = await client.post(
        "/api/tickets", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400


async def test_an_unknown_ticket_is_404(client: TestClient) -> None:
    assert (await client.get("/api/tickets/999999")).status_code == 404
    assert (await client.get("/api/tickets/seven")).status_code == 404


async def test_items_and_their_audit(client: TestClient) -> None:
    r = await client.get("/items/7")
    assert r.json() == {"id": 7, "path": "/items/7"}
    assert (await client.get("/items/seven")).status_code == 404


async def test_over_the_wire(live_server: Server) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", live_server.port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        response = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                response += chunk
    assert response.startswith(b"HTTP/1.1 200")
    assert b'target="_blank"' in response


async def test_a_ticket_is_stored_only_when_its_request_commits(client: TestClient) -> None:
    from examples import lottery

    async def broken_book() -> AsyncIterator[lottery.TicketBook]:
        async for book in lottery.ticket_book():  # the real one, failing after the handler
            yield book
            raise RuntimeError("the store went away")

    before = dict(lottery.TICKETS)
    lottery.app.dependency_overrides[lottery.ticket_book] = broken_book
    try:
        r = await client.post("/api/tickets", json={"holder": "Bo", "numbers": [4, 5, 6]})
    finally:
        del lottery.app.dependency_overrides[lottery.ticket_book]
    assert r.status_code == 500  # the failed commit is an error, never a ticket
    assert lottery.TICKETS == before  # noqa: SIM300  # TICKETS is a variable
