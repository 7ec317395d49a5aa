"""How a user tests a trioweb app: pytest-trio in trio_mode, and trioweb's fixtures.

Nothing here imports test machinery beyond the app: ``client`` and
``live_server`` come from trioweb's pytest plugin.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from examples.lottery import app as lottery_app
from trioweb import App, Server
from trioweb.testing import TestClient


@pytest.fixture
def app() -> App:  # the plugin's fixtures build on a fixture named `app`
    return lottery_app


async def test_draw(client: TestClient, autojump_clock: trio.testing.MockClock) -> None:
    r = await client.get("/lottery")
    assert r.status_code == 200
    assert 0 <= r.json()["lucky"] < 1000
    assert trio.current_time() >= 2.5  # five draws, half a second apart (virtual time)


async def test_leaving_cancels(client: TestClient, autojump_clock: trio.testing.MockClock) -> None:
    async with client.stream("GET", "/lottery") as call:  # entered before any response exists
        await trio.sleep(0.7)
        await call.disconnect()
    assert call.handler_cancelled
    assert call.status_code is None


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
    assert response.endswith(
        b"Welcome to the lottery shop: GET /lottery draws your lucky number.\n"
    )
