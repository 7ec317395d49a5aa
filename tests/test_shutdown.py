"""A graceful shutdown reaches every request: short ones finish, long ones are told why.

100 requests in flight (60 short, 40 longer than the graceful period) and 20
WebSockets, over a real hypercorn, when the server is told to shut down:

* the short requests complete;
* the long ones are cancelled, each with its token set (reason: server
  shutting down) and one INFO line naming it ("cancelled: server shutting down");
* every WebSocket client receives a 1001 "going away" close;
* ``serve()`` returns within ``graceful_timeout + shutdown_grace + 2 s``.
"""

from __future__ import annotations

import functools
import logging
import time

import pytest
import trio
import trio.testing
from wsproto.events import CloseConnection

from trioweb import App, DisconnectReason, DisconnectToken, Server, WebSocket, serve

from .wire import RawWebSocket, connect, read_response, request_bytes

GRACEFUL, GRACE = 1.0, 1.0


def make_app(reasons: list[object], started: trio.Semaphore) -> App:
    app = App(shutdown_grace=GRACE)

    @app.get("/short")
    async def short() -> str:
        started.release()
        await trio.sleep(0.2)
        return "done"

    @app.get("/long")
    async def long(token: DisconnectToken) -> str:
        token.register(lambda: reasons.append(token.reason))
        started.release()
        await trio.sleep(30)
        return "too late"

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, token: DisconnectToken) -> None:
        token.register(lambda: reasons.append(token.reason))
        await websocket.accept()
        started.release()
        async for message in websocket:
            await websocket.send(message)

    return app


async def test_shutdown_reaches_every_request(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    reasons: list[object] = []
    started = trio.Semaphore(0, max_value=120)
    statuses: dict[str, list[int]] = {"short": [], "long": []}
    close_codes: list[int | None] = []
    app = make_app(reasons, started)

    async def http_client(port: int, kind: str) -> None:
        stream = await connect(port)
        async with stream:
            await stream.send_all(request_bytes("GET", f"/{kind}"))
            response = await read_response(stream)
            statuses[kind].append(response.status if response.complete else 0)

    async def websocket_client(port: int) -> None:
        client, _ = await RawWebSocket.connect(port, "/ws")
        try:
            with trio.fail_after(10):
                event = await client.next_event()
            assert isinstance(event, CloseConnection), event
            close_codes.append(event.code)
            await client.acknowledge(event)  # a well-behaved client answers the close
        finally:
            await client.drop()

    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            functools.partial(serve, app, "127.0.0.1", 0, graceful_timeout=GRACEFUL)
        )
        async with trio.open_nursery() as clients:
            for n in range(100):
                clients.start_soon(http_client, server.port, "short" if n < 60 else "long")
            for _ in range(20):
                clients.start_soon(websocket_client, server.port)
            with trio.fail_after(10):
                for _ in range(120):
                    await started.acquire()  # every handler is running
            began = time.monotonic()
            server.shutdown()
        with trio.fail_after(GRACEFUL + GRACE + 2):
            await trio.testing.wait_all_tasks_blocked()
    took = time.monotonic() - began
    assert took < GRACEFUL + GRACE + 2
    assert statuses["short"] == [200] * 60
    assert statuses["long"] == [0] * 40  # cut: no complete response
    assert close_codes == [1001] * 20
    assert reasons == [DisconnectReason.SERVER_SHUTDOWN] * 60
    lines = [r.getMessage() for r in caplog.records if "server shutting down" in r.getMessage()]
    assert len(lines) == 60  # one line each, naming the reason
    cancelled = [line for line in lines if line.startswith("GET /long cancelled: ")]
    assert len(cancelled) == 40
    long_line = "GET /long cancelled: server shutting down after"
    assert all(line.startswith(long_line) for line in cancelled)
    closed = [line for line in lines if line.startswith("WEBSOCKET /ws ended: ")]
    assert len(closed) == 20  # the WebSockets ended by themselves, after the 1001
    ws_line = "WEBSOCKET /ws ended: server shutting down after"
    assert all(line.startswith(ws_line) for line in closed)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
