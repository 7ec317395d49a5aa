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


# ---- a never-suspending handler that binds the body, run outside the scope ----


async def serve_queued(
    app: App, messages: list[dict[str, Any]], *, then: list[dict[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """POST /echo with ``messages`` queued before the app runs (``then`` once it waits)."""
    to_app, inbox = trio.open_memory_channel[dict[str, Any]](20)
    for message in messages:
        to_app.send_nowait(message)
    sent: list[dict[str, Any]] = []
    report: dict[str, Any] = {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": "/echo",
        "query_string": b"",
        "headers": [(b"content-type", b"application/octet-stream")],
        "extensions": {"trioweb.outcome": report},
    }
    async with trio.open_nursery() as nursery:
        nursery.start_soon(app, scope, inbox.receive, send)
        await trio.testing.wait_all_tasks_blocked()
        for message in then or []:
            to_app.send_nowait(message)
            await trio.testing.wait_all_tasks_blocked()
        to_app.send_nowait({"type": "http.disconnect"})  # as hypercorn, after the response
    return sent, report


def echo_app(record: list[bytes], **options: Any) -> App:
    app = App(max_body_size=8)

    @app.post("/echo", **options)
    async def echo(body: bytes) -> bytes:
        record.append(body)
        return body

    assert never_suspends(echo)
    return app


def body_of(sent: list[dict[str, Any]]) -> tuple[int, bytes]:
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    return sent[0]["status"], sent[1]["body"]


async def test_a_queued_body_is_answered_without_a_checkpoint() -> None:
    record: list[bytes] = []
    to_app, inbox = trio.open_memory_channel[dict[str, Any]](5)
    to_app.send_nowait({"type": "http.request", "body": b"abc", "more_body": False})
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/echo", "headers": [], "query_string": b""}
    coro = echo_app(record)(scope, inbox.receive, send)
    # Stepped by hand: a request scope, a watcher or any await would yield to Trio here.
    with pytest.raises(StopIteration):
        coro.send(None)
    assert record == [b"abc"]
    assert body_of(sent) == (200, b"abc")


async def test_a_body_arriving_later_is_read_in_the_scope() -> None:
    record: list[bytes] = []
    first = {"type": "http.request", "body": b"ab", "more_body": True}
    rest = {"type": "http.request", "body": b"cd", "more_body": False}
    sent, report = await serve_queued(echo_app(record), [first], then=[rest])
    assert record == [b"abcd"]
    assert body_of(sent) == (200, b"abcd")
    assert report == {"outcome": "completed", "handler_cancelled": False}


async def test_a_queued_body_over_the_limit_is_413_and_the_handler_never_runs() -> None:
    record: list[bytes] = []
    big = {"type": "http.request", "body": b"x" * 9, "more_body": False}
    sent, report = await serve_queued(echo_app(record), [big])
    assert record == []
    status, body = body_of(sent)
    assert status == 413
    assert b"exceeds 8 bytes" in body
    assert report == {"outcome": "body too large", "handler_cancelled": True}


@pytest.mark.parametrize("cancel_on_disconnect", [True, False])
async def test_a_client_gone_mid_body_before_the_handler_gets_nothing(
    cancel_on_disconnect: bool, caplog: pytest.LogCaptureFixture
) -> None:
    record: list[bytes] = []
    app = echo_app(record, cancel_on_disconnect=cancel_on_disconnect)
    part = {"type": "http.request", "body": b"ab", "more_body": True}
    sent, report = await serve_queued(app, [part, {"type": "http.disconnect"}])
    assert record == []
    assert sent == []
    # Cancelled as if the body read had seen the disconnect itself; a route that
    # runs on after a disconnect still cannot run without its body, and says nothing.
    assert report == {"outcome": "disconnected", "handler_cancelled": cancel_on_disconnect}
    assert not [r for r in trioweb_records(caplog) if r.levelno >= logging.ERROR]


async def test_a_queued_body_goes_through_hooks_in_the_scope() -> None:
    record: list[bytes] = []
    app = echo_app(record)
    seen: list[str] = []

    @app.before_request
    async def before(request: Request) -> None:
        seen.append(f"before {request.method}")

    sent, _ = await serve_queued(app, [{"type": "http.request", "body": b"hi"}])
    assert seen == ["before POST"]
    assert body_of(sent) == (200, b"hi")


async def test_the_exchange_sets_every_slot_of_its_base() -> None:
    # HTTPExchange writes Exchange.__init__ out (one call less per request).
    from trioweb._exchange import Exchange
    from trioweb._scope import HTTPExchange

    app = App()

    @app.get("/")
    async def root() -> str:
        return ""

    endpoint = next(iter(app._routes.routes())).endpoint

    async def receive() -> dict[str, Any]:
        raise AssertionError("not called")

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("not called")

    exchange = HTTPExchange(app, app._hooks, endpoint, {}, {"type": "http"}, receive, send)
    for name in Exchange.__slots__:
        getattr(exchange, name)  # an unset slot raises AttributeError


@pytest.mark.parametrize("http_version", ["1.1", "2"])  # unwatched, and watched from the start
@pytest.mark.parametrize("path", ["/text", "/json", "/response", "/awaits"])
async def test_head_gets_the_head_of_get_and_an_empty_body(path: str, http_version: str) -> None:
    app = App()

    @app.get("/text")
    async def text() -> str:
        return "hello"

    @app.get("/json")
    async def json() -> dict[str, int]:
        return {"id": 1}

    @app.get("/response")
    async def response() -> Response:
        return Response("hello", headers={"x-kind": "response"})

    @app.get("/awaits")
    async def awaits() -> str:
        await trio.lowlevel.checkpoint()
        return "hello"

    async def serve(method: str) -> list[dict[str, Any]]:
        to_app, inbox = trio.open_memory_channel[dict[str, Any]](5)
        to_app.send_nowait({"type": "http.request", "body": b"", "more_body": False})
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                to_app.send_nowait({"type": "http.disconnect"})  # as hypercorn does

        scope = {"type": "http", "http_version": http_version, "method": method, "path": path}
        await app({**scope, "headers": [], "query_string": b""}, inbox.receive, send)
        return sent

    get, head = await serve("GET"), await serve("HEAD")
    assert [m["type"] for m in head] == ["http.response.start", "http.response.body"]
    assert head[0] == get[0]  # the same status and headers, content-length included
    assert get[1]["body"]
    assert head[1]["body"] == b""
    assert not head[1].get("more_body", False)
