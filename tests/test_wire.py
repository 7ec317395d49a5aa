"""The core promises, over the wire: a real hypercorn on 127.0.0.1:0 and raw sockets."""

from __future__ import annotations

import logging
import time

import pytest
import trio
import trio.lowlevel
import trio.testing

from trioweb import (
    App,
    DisconnectReason,
    DisconnectToken,
    Request,
    Server,
    TokenDisposedError,
    serve,
)

from .conftest import Probe
from .wire import connect, fetch, read_response, request_bytes, wait_closed_by_peer

HANDLER_WAIT = 10  # bound, in seconds, of every wait on the server's side


@pytest.fixture
def app(probe: Probe) -> App:
    app = App(callback_budget=0.005)

    @app.get("/slow")
    async def slow(token: DisconnectToken, nursery: trio.Nursery) -> str:
        nursery.start_soon(probe.child)
        token.register(probe.record.append, "callback")
        probe.objects.append(token)
        await probe.hold(HANDLER_WAIT)
        return "too late"

    @app.get("/quick")
    async def quick(token: DisconnectToken) -> str:
        token.register(probe.record.append, "callback")
        probe.record.append("tokens")
        probe.objects.append(token)
        await trio.lowlevel.checkpoint()
        return f"set={token.is_set()}"

    @app.get("/messy")
    async def messy(token: DisconnectToken) -> str:
        def explode() -> None:
            raise RuntimeError("callback bug")

        def slow_callback() -> None:
            end = time.perf_counter() + 0.02
            while time.perf_counter() < end:  # 20 ms of real work, bounded
                pass

        token.register(explode)
        token.register(probe.record.append, "after the raising one")
        token.register(slow_callback)
        await probe.hold(HANDLER_WAIT)
        return "too late"

    @app.post("/pay", cancel_on_disconnect=False)
    async def pay(token: DisconnectToken) -> str:
        probe.entered.set()
        with trio.fail_after(HANDLER_WAIT):
            await token.wait()
        await trio.sleep(0.05)  # the rest of the unit of work
        probe.record.append(f"paid, token set={token.is_set()}")
        probe.done.set()
        return "receipt"

    @app.get("/deadline", timeout=0.2)
    async def deadline() -> str:
        await trio.sleep(HANDLER_WAIT)
        return "too late"

    @app.post("/upload", max_body_size=100 * 1024 * 1024)
    async def upload() -> str:
        await probe.hold(HANDLER_WAIT)  # never reads the body
        return "too late"

    @app.get("/items/{item_id:int}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/files/{rest:path}")
    async def files(rest: str) -> str:
        return rest

    @app.post("/items/{item_id:int}")
    async def create(item_id: int, request: Request) -> dict[str, object]:
        return {"id": item_id, "body": (await request.body()).decode()}

    return app


async def leave_mid_handler(server: Server, probe: Probe, request: bytes) -> None:
    stream = await connect(server.port)
    await stream.send_all(request)
    with trio.fail_after(HANDLER_WAIT):
        await probe.entered.wait()
    await stream.aclose()
    with trio.fail_after(HANDLER_WAIT):
        await probe.done.wait()
        # The FIN was processed; the rest of the request's unwinding is scheduling.
        await trio.testing.wait_all_tasks_blocked()


async def test_client_closing_cancels_handler_and_child(
    server: Server, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await leave_mid_handler(server, probe, request_bytes("GET", "/slow"))
    assert sorted(probe.record) == ["callback", "child cancelled", "handler cancelled"]
    assert probe.record[0] == "callback"  # the token is set before the scope is cancelled
    lines = [r for r in caplog.records if r.name == "trioweb" and "GET /slow" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert lines[0].exc_info is None
    assert "GET /slow cancelled: client disconnected after" in lines[0].getMessage()
    (token,) = probe.objects
    assert token.reason is DisconnectReason.CLIENT_DISCONNECTED
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if "500" in r.getMessage()]


async def test_normal_request_never_trips_token(server: Server, probe: Probe) -> None:
    response = await fetch(server.port, "GET", "/quick")
    assert (response.status, response.body, response.complete) == (200, b"set=False", True)
    await trio.testing.wait_all_tasks_blocked()  # the request ends after its last byte left
    (token,) = probe.objects
    assert probe.record == ["tokens"]  # the callback never ran
    assert not token.is_set()
    assert token.disposed
    with pytest.raises(TokenDisposedError):
        token.register(print)


async def test_callback_errors_are_contained_and_slow_ones_reported(
    server: Server, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    await leave_mid_handler(server, probe, request_bytes("GET", "/messy"))
    assert probe.record == ["after the raising one", "handler cancelled"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "explode" in errors[0].getMessage()
    assert errors[0].exc_info is not None  # logged with its traceback
    assert any(
        "slow_callback" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )
    # The server keeps serving.
    assert (await fetch(server.port, "GET", "/items/1")).status == 200


async def test_cancel_on_disconnect_false_completes_after_client_left(
    server: Server, probe: Probe
) -> None:
    await leave_mid_handler(server, probe, request_bytes("POST", "/pay", body=b"{}"))
    assert probe.record == ["paid, token set=True"]


async def test_timeout_is_504(server: Server) -> None:
    response = await fetch(server.port, "GET", "/deadline")
    assert response.status == 504
    assert response.complete


async def test_disconnect_during_large_upload_is_detected(server: Server, probe: Probe) -> None:
    stream = await connect(server.port)
    await stream.send_all(
        request_bytes("POST", "/upload", [("content-length", str(50 * 1024 * 1024))])
    )
    await stream.send_all(b"x" * 256 * 1024)  # far more than hypercorn's 10-message queue
    with trio.fail_after(HANDLER_WAIT):
        await probe.entered.wait()
    await stream.aclose()
    with trio.fail_after(HANDLER_WAIT):
        await probe.done.wait()
        await trio.testing.wait_all_tasks_blocked()
    assert probe.record == ["handler cancelled"]


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "header"),
    [
        ("GET", "/items/42", 200, b'{"id":42}', None),
        ("GET", "/items/-3", 200, b'{"id":-3}', None),
        ("GET", "/items/abc", 404, b'{"detail":"Not Found"}', None),
        ("GET", "/files/a/b/c.txt", 200, b"a/b/c.txt", None),
        ("GET", "/nowhere", 404, b'{"detail":"Not Found"}', None),
        (
            "DELETE",
            "/items/1",
            405,
            b'{"detail":"Method Not Allowed"}',
            ("allow", "GET, HEAD, POST"),
        ),
        ("HEAD", "/items/7", 200, b"", ("content-length", "8")),
        ("POST", "/items/5", 200, b'{"id":5,"body":"hello"}', None),
    ],
)
async def test_routing_over_the_wire(
    server: Server, method: str, path: str, status: int, body: bytes, header: tuple[str, str] | None
) -> None:
    response = await fetch(server.port, method, path, body=b"hello" if method == "POST" else b"")
    assert (response.status, response.body, response.complete) == (status, body, True)
    if header is not None:
        assert response.headers[header[0]] == header[1]


async def test_keep_alive_serves_several_requests(server: Server) -> None:
    stream = await connect(server.port)
    async with stream:
        for item_id in range(3):
            await stream.send_all(request_bytes("GET", f"/items/{item_id}"))
            response = await read_response(stream)
            assert response.body == f'{{"id":{item_id}}}'.encode()


async def test_server_shutdown_is_graceful(app: App) -> None:
    async with trio.open_nursery() as nursery:
        running: Server = await nursery.start(serve, app, "127.0.0.1", 0)
        async with await connect(running.port) as stream:
            running.shutdown()
            assert await wait_closed_by_peer(stream)
