"""The structured request scope, driven in-process (deterministic, virtual time)."""

from __future__ import annotations

import functools
import gc
import logging
import types
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

import trioweb
from trioweb import (
    App,
    DisconnectToken,
    HTTPError,
    IOCancelledError,
    Request,
    Response,
    StreamingResponse,
)
from trioweb._endpoint import never_suspends
from trioweb.testing import TestClient


def trioweb_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "trioweb"]


async def test_disconnect_cancels_handler_and_child_and_runs_callbacks_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    app = App()
    record: list[str] = []

    async def child() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            record.append("child cancelled")
            raise

    @app.get("/slow")
    async def slow(token: DisconnectToken, nursery: trio.Nursery) -> str:
        token.register(record.append, "callback 1")
        token.register(record.append, "callback 2")
        nursery.start_soon(child)
        try:
            await trio.sleep(60)
        except trio.Cancelled:
            record.append(f"handler cancelled, token set={token.is_set()}")
            raise
        return "never"

    async with TestClient(app) as client, client.stream("GET", "/slow") as call:
        await trio.testing.wait_all_tasks_blocked()
        await call.disconnect()
    assert sorted(record) == sorted(
        ["callback 1", "callback 2", "child cancelled", "handler cancelled, token set=True"]
    )
    # Callbacks run before the scope is cancelled, in registration order.
    assert record[:2] == ["callback 1", "callback 2"]
    assert call.status_code is None
    assert call.outcome == "disconnected"
    assert call.handler_cancelled
    logs = trioweb_records(caplog)
    assert [r.levelno for r in logs] == [logging.INFO]
    assert logs[0].getMessage().startswith("GET /slow cancelled: client disconnected after ")
    assert logs[0].exc_info is None


async def test_normal_request_never_sets_token_and_disposes_it() -> None:
    app = App()
    tokens: list[DisconnectToken] = []
    ran: list[str] = []

    @app.get("/quick")
    async def quick(token: DisconnectToken) -> dict[str, bool]:
        tokens.append(token)
        token.register(ran.append, "callback")
        await trio.lowlevel.checkpoint()  # blocks once: the watcher is running
        return {"set": token.is_set()}

    async with TestClient(app) as client:
        response = await client.get("/quick")
    assert response.json() == {"set": False}
    (token,) = tokens
    assert not token.is_set()
    assert token.disposed
    assert ran == []
    stats = token.statistics()
    assert (stats.callbacks_registered, stats.callbacks_run, stats.disposed) == (0, 0, True)


async def test_timeout_answers_504(autojump_clock: trio.testing.MockClock) -> None:
    app = App()

    @app.get("/slow", timeout=2)
    async def slow(nursery: trio.Nursery) -> str:
        nursery.start_soon(trio.sleep_forever)
        await trio.sleep_forever()
        return "never"

    async with TestClient(app) as client, client.stream("GET", "/slow") as call:
        response = await call.read()
    assert response.status_code == 504
    assert call.outcome == "timed out"
    assert call.handler_cancelled
    assert trio.current_time() == pytest.approx(2)


async def test_cancel_on_disconnect_false_runs_to_completion(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    app = App()
    record: list[str] = []

    @app.post("/pay", cancel_on_disconnect=False)
    async def pay(token: DisconnectToken) -> str:
        token.register(record.append, "callback")
        await trio.sleep(1)
        record.append(f"paid, token set={token.is_set()}")
        return "receipt"

    async with TestClient(app) as client, client.stream("POST", "/pay") as call:
        await trio.testing.wait_all_tasks_blocked()
        await call.disconnect()
    assert record == ["callback", "paid, token set=True"]
    assert call.status_code is None  # the response was discarded
    assert call.outcome == "disconnected"
    assert not call.handler_cancelled
    assert "ran to completion after the client disconnected" in caplog.text


async def test_body_over_limit_is_413_without_reading_it() -> None:
    app = App(max_body_size=10)
    record: list[str] = []

    @app.post("/upload")
    async def upload() -> str:
        try:
            await trio.sleep_forever()
        finally:
            record.append("handler ended")
        return "never"

    async with TestClient(app) as client, client.stream("POST", "/upload", upload=True) as call:
        await call.send_body(b"x" * 8)
        await trio.testing.wait_all_tasks_blocked()
        await call.send_body(b"x" * 8)
        response = await call.read()
    assert response.status_code == 413
    assert record == ["handler ended"]


async def test_body_is_buffered_by_the_framework() -> None:
    app = App()

    @app.post("/echo")
    async def echo(request: Request) -> bytes:
        return await request.body()

    async with TestClient(app) as client, client.stream("POST", "/echo", upload=True) as call:
        await call.send_body(b"hello ")
        await call.send_body(b"world", final=True)
        response = await call.read()
    assert response.content == b"hello world"


async def test_handler_error_is_500_with_generic_body_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.get("/boom")
    async def boom() -> str:
        raise ValueError("secret detail")

    async with TestClient(app) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert b"secret" not in response.content
    assert b"Traceback" not in response.content
    (record,) = trioweb_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None


async def test_child_task_error_is_500_not_an_exception_group_escaping() -> None:
    app = App()

    async def failing_child() -> None:
        await trio.lowlevel.checkpoint()
        raise KeyError("child")

    @app.get("/child")
    async def handler(nursery: trio.Nursery) -> str:
        nursery.start_soon(failing_child)
        await trio.sleep_forever()
        return "never"

    async with TestClient(app) as client:
        response = await client.get("/child")
    assert response.status_code == 500


async def test_debug_shows_traceback() -> None:
    app = App(debug=True)

    @app.get("/boom")
    async def boom() -> str:
        raise ValueError("visible")

    async with TestClient(app) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert b"ValueError: visible" in response.content


@pytest.mark.parametrize(
    ("value", "status", "content_type", "body"),
    [
        ("text", 200, "text/plain; charset=utf-8", b"text"),
        (b"\x00raw", 200, "application/octet-stream", b"\x00raw"),
        ({"a": [1, "é"]}, 200, "application/json", '{"a":[1,"é"]}'.encode()),
        ([1, 2], 200, "application/json", b"[1,2]"),
        (None, 204, None, b""),
        (
            Response("made", status=201, headers={"x-a": "b"}),
            201,
            "text/plain; charset=utf-8",
            b"made",
        ),
    ],
)
async def test_return_values(
    value: object, status: int, content_type: str | None, body: bytes
) -> None:
    app = App()

    @app.get("/")
    async def handler() -> object:
        return value

    async with TestClient(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.headers.get("content-type"), response.content) == (
        status,
        content_type,
        body,
    )


async def test_http_error_from_handler_and_from_child() -> None:
    app = App()

    @app.get("/direct")
    async def direct() -> str:
        raise HTTPError(404, "no such lottery", headers={"x-why": "gone"})

    async def child() -> None:
        raise HTTPError(409, "conflict")

    @app.get("/child")
    async def via_child(nursery: trio.Nursery) -> str:
        nursery.start_soon(child)
        await trio.sleep_forever()
        return "never"

    async with TestClient(app) as client:
        direct_response = await client.get("/direct")
        child_response = await client.get("/child")
    assert (direct_response.status_code, direct_response.json()) == (
        404,
        {"detail": "no such lottery"},
    )
    assert direct_response.headers["x-why"] == "gone"
    assert child_response.status_code == 409


async def test_unsupported_return_value_is_500() -> None:
    app = App()

    @app.get("/")
    async def handler() -> object:
        return object()

    async with TestClient(app) as client:
        assert (await client.get("/")).status_code == 500


async def test_cancel_io_interrupts_body_read_and_handler_still_answers() -> None:
    app = App()

    @app.post("/upload")
    async def upload(request: Request, nursery: trio.Nursery) -> str:
        async def cancel_soon() -> None:
            await trio.testing.wait_all_tasks_blocked()
            request.cancel_io()

        nursery.start_soon(cancel_soon)
        try:
            await request.body()
        except IOCancelledError as error:
            return f"gave up: {error}"
        return "read it all"

    async with TestClient(app) as client, client.stream("POST", "/upload", upload=True) as call:
        await call.send_body(b"partial")
        response = await call.read()
    assert response.status_code == 200
    assert response.text == "gave up: the pending body read was cancelled by cancel_io()"
    assert call.outcome == "completed"


async def test_abort_ends_without_a_complete_response(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    app = App()

    @app.get("/abort")
    async def abort(request: Request) -> str:
        request.abort()
        await trio.lowlevel.checkpoint()
        return "never"

    async with TestClient(app) as client, client.stream("GET", "/abort") as call:
        await call.wait_response_start()
        await call.wait_app_done()
    assert call.outcome == "aborted"
    assert call.headers["content-length"] == "1"
    assert call.headers["connection"] == "close"
    assert "GET /abort cancelled: aborted by the app after" in caplog.text


async def test_close_after_response_sends_connection_close() -> None:
    app = App()

    @app.get("/bye")
    async def bye(request: Request) -> str:
        request.close_after_response()
        return "bye"

    @app.get("/bye2")
    async def bye2() -> Response:
        return Response("bye", close_connection=True)

    async with TestClient(app) as client:
        for path in ("/bye", "/bye2"):
            response = await client.get(path)
            assert response.headers["connection"] == "close"
            assert response.text == "bye"


async def test_late_token_request_after_disconnect_is_already_set(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App()
    seen: list[bool] = []

    @app.post("/late", cancel_on_disconnect=False)
    async def late(request: Request) -> str:
        await trio.sleep(1)
        seen.append(request.token.is_set())
        return "x"

    async with TestClient(app) as client, client.stream("POST", "/late") as call:
        await trio.testing.wait_all_tasks_blocked()
        await call.disconnect()
    assert seen == [True]


async def _returns() -> str:
    return "at once"


async def _awaits() -> None:
    await trio.lowlevel.checkpoint()


async def _iterates(items: AsyncIterator[int]) -> list[int]:
    return [item async for item in items]


async def _enters() -> None:
    async with trio.open_nursery():
        pass


async def _generates() -> AsyncIterator[int]:
    yield 1


def _sync() -> str:
    return "sync"


class _View:
    async def method(self) -> str:
        return "at once"


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (_returns, True),
        (_View().method, True),  # a bound method runs its function's code
        (_awaits, False),
        (_iterates, False),
        (_enters, False),
        (_generates, False),  # an async generator is not a handler's coroutine
        (_sync, False),
        (functools.partial(_returns), False),  # the code that runs is not inspectable
        (_View, False),
    ],
)
def test_never_suspends(handler: Callable[..., Any], expected: bool) -> None:
    assert never_suspends(handler) is expected


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.enable()


def _cyclic_app() -> App:
    app = App()

    @app.get("/sleep")
    async def sleep() -> str:
        await trio.sleep_forever()
        return "never"

    @app.get("/token")
    async def token(token: DisconnectToken) -> str:
        await token.wait()  # returns once set; the next checkpoint is cancelled
        await trio.lowlevel.checkpoint()
        return "never"

    async def child() -> None:
        await trio.sleep_forever()

    @app.get("/child")
    async def with_child(nursery: trio.Nursery) -> str:
        nursery.start_soon(child)
        await trio.sleep_forever()
        return "never"

    @app.post("/upload")
    async def upload(request: Request) -> bytes:
        return await request.body()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            await trio.sleep_forever()

        return StreamingResponse(chunks())

    return app


@pytest.mark.usefixtures("no_gc")
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sleep"),
        ("GET", "/token"),
        ("GET", "/child"),
        ("POST", "/upload"),
        ("GET", "/stream"),
    ],
)
async def test_a_cancelled_request_leaves_no_reference_cycle_behind(method: str, path: str) -> None:
    # Under thousands of disconnects, every cycle left for the cyclic GC
    # costs a full collection's share: a cancelled request must be freed by
    # reference counting alone.
    async with TestClient(_cyclic_app()) as client:
        async with client.stream(method, path, upload=method == "POST") as call:
            if method == "POST":
                await call.send_body(b"part of it")
            await trio.testing.wait_all_tasks_blocked()
            await call.disconnect()
        assert call.outcome == "disconnected"
        assert call.handler_cancelled
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    package = str(Path(trioweb.__file__).parent)
    left = [
        f"{o.f_code.co_name} ({o.f_code.co_filename})"
        for o in gc.garbage
        if isinstance(o, types.FrameType) and o.f_code.co_filename.startswith(package)
    ]
    gc.garbage.clear()
    assert left == []


class _HypercornLike:
    """receive/send as hypercorn's behave: the body, then the normal-end disconnect."""

    def __init__(self, body: bytes) -> None:
        self.body: bytes | None = body
        self.done = trio.Event()

    async def receive(self) -> dict[str, Any]:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        await trio.lowlevel.checkpoint()
        if message["type"] == "http.response.body" and not message.get("more_body"):
            self.done.set()


def _completing_app() -> App:
    app = App()

    @app.get("/plain")
    async def plain() -> str:
        return "plain"

    @app.get("/waits")
    async def waits() -> str:
        await trio.lowlevel.checkpoint()
        return "waited"

    @app.post("/body")
    async def body(request: Request) -> bytes:
        return await request.body()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"one"
            await trio.lowlevel.checkpoint()
            yield b"two"

        return StreamingResponse(chunks())

    return app


@pytest.mark.usefixtures("no_gc")
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/plain"), ("GET", "/waits"), ("POST", "/body"), ("GET", "/stream")],
)
async def test_a_completed_request_leaves_no_reference_cycle_behind(method: str, path: str) -> None:
    # The same for the common case: a cycle per request (say, an exchange and
    # a helper that calls back into it) is a full collection's share each.
    app = _completing_app()
    for _ in range(20):
        server = _HypercornLike(b"some body" if method == "POST" else b"")
        scope: dict[str, Any] = {"type": "http", "method": method, "path": path}
        scope.update(headers=[], query_string=b"")
        await app(scope, server.receive, server.send)
    await trio.testing.wait_all_tasks_blocked()  # the watchers have ended
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    left = sorted(
        {type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("trioweb")}
    )
    gc.garbage.clear()
    assert left == []
