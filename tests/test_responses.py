"""Responses beyond JSON: streams, Server-Sent Events, files, redirects, cookies, middleware."""

from __future__ import annotations

import datetime
import gc
import logging
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from trioweb import (
    App,
    EventStream,
    FileResponse,
    JSONResponse,
    Request,
    Response,
    ServerSentEvent,
    StreamingResponse,
    redirect,
)
from trioweb._files import parse_range
from trioweb._json_encoding import json_bytes
from trioweb._response import to_response
from trioweb._sse import encode_comment, encode_event
from trioweb.testing import TestClient

from .conftest import Probe


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        (ServerSentEvent("hello"), b"data: hello\n\n"),
        (ServerSentEvent(""), b"data: \n\n"),
        (ServerSentEvent("a\nb"), b"data: a\ndata: b\n\n"),
        (ServerSentEvent("a\r\nb\rc"), b"data: a\ndata: b\ndata: c\n\n"),
        (ServerSentEvent("x", event="tick"), b"event: tick\ndata: x\n\n"),
        (ServerSentEvent("x", id="7"), b"id: 7\ndata: x\n\n"),
        (ServerSentEvent("x", retry=1500), b"retry: 1500\ndata: x\n\n"),
        (
            ServerSentEvent("é", event="e", id="1", retry=0),
            "event: e\nid: 1\nretry: 0\ndata: é\n\n".encode(),
        ),
    ],
)
def test_sse_encoder(event: ServerSentEvent, wire: bytes) -> None:
    assert encode_event(event) == wire


@pytest.mark.parametrize(
    "kwargs", [{"event": "a\nb"}, {"id": "1\r"}, {"retry": -1}, {"retry": 1.5}, {"retry": True}]
)
def test_sse_event_rejects_what_cannot_be_encoded(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="SSE"):
        ServerSentEvent("x", **kwargs)


def test_sse_comment() -> None:
    assert encode_comment("keep-alive") == b": keep-alive\n\n"
    assert encode_comment("a\nb") == b": a\n: b\n\n"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=90-200", (90, 99)),
        ("bytes=100-", False),
        ("bytes=9-3", False),
        ("bytes=-0", False),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_parse_range(header: str, expected: object) -> None:
    assert parse_range(header, 100) == expected


@attrs.frozen
class Ticket:
    number: int
    holder: str | None = None


_SELF: list[object] = []
_SELF.append(_SELF)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"id": 42}, b'{"id":42}'),
        ([1, 2.5, None, True], b"[1,2.5,null,true]"),
        ("é ☃", '"é ☃"'.encode()),  # UTF-8, not \u escapes
        ({"nested": {"k": []}}, b'{"nested":{"k":[]}}'),
        (Ticket(7), b'{"number":7,"holder":null}'),
        (uuid.UUID(int=1), b'"00000000-0000-0000-0000-000000000001"'),
        (datetime.date(2026, 11, 22), b'"2026-11-22"'),
        (float("nan"), ValueError),
        ({"x": float("inf")}, ValueError),
        ({"x": object()}, TypeError),
        (_SELF, ValueError),  # "contains itself or is nested too deeply"
    ],
)
def test_json_bytes(value: object, expected: bytes | type[Exception]) -> None:
    if isinstance(expected, bytes):
        assert json_bytes(value) == expected
    else:
        with pytest.raises(expected):
            json_bytes(value)
    assert json_bytes({"after": "a failure"}) == b'{"after":"a failure"}'


@pytest.fixture
def app(probe: Probe, tmp_path: Path) -> App:
    app = App()
    data = tmp_path / "data.txt"
    data.write_bytes(bytes(range(256)) * 4)  # 1024 bytes

    @app.get("/events")
    async def events(request: Request) -> EventStream:
        start = int(request.last_event_id or 0)

        async def produce() -> AsyncIterator[ServerSentEvent | str]:
            try:
                for i in range(start, start + 3):
                    yield ServerSentEvent(f"tick {i}", event="tick", id=str(i))
                    await trio.sleep(10)  # long silences: keep-alives fill them
                yield "done"
            finally:
                probe.record.append("events closed")

        return EventStream(produce(), keepalive=4)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def produce() -> AsyncIterator[str]:
            try:
                for i in range(1000):
                    yield f"{i}\n"
                    await trio.sleep(1)
            finally:
                probe.record.append("stream closed")

        return StreamingResponse(produce(), media_type="text/plain")

    @app.get("/file")
    async def file() -> FileResponse:
        return FileResponse(data)

    @app.get("/download")
    async def download() -> FileResponse:
        return FileResponse(data, filename='re"port.txt')

    @app.get("/missing")
    async def missing() -> FileResponse:
        return FileResponse(tmp_path / "nope.bin")

    @app.get("/old")
    async def old() -> Response:
        return redirect("/new", status=308)

    @app.get("/cookies")
    async def cookies() -> Response:
        response = Response("set")
        response.set_cookie("session", "abc", max_age=60, httponly=True, secure=True)
        response.delete_cookie("old")
        return response

    return app


async def test_event_stream_with_keepalive_and_last_event_id(
    app: App, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestClient(app, timeout=60) as client:
        async with client.stream("GET", "/events", headers={"last-event-id": "5"}) as call:
            assert await call.wait_response_start() == 200
            assert call.headers["content-type"] == "text/event-stream"
            events = [event async for event in call.aiter_events()]
        async with client.stream("GET", "/events") as call:
            await call.wait_response_start()
            raw = b"".join([chunk async for chunk in call.aiter_bytes()])
    assert events == [
        {"event": "tick", "id": "5", "data": "tick 5"},
        {"event": "tick", "id": "6", "data": "tick 6"},
        {"event": "tick", "id": "7", "data": "tick 7"},
        {"data": "done"},
    ]
    assert raw.count(b": keep-alive\n\n") == 6  # two in each 10 s silence, at 4 s and 8 s


@pytest.mark.parametrize(
    ("path", "closed"), [("/stream", "stream closed"), ("/events", "events closed")]
)
async def test_disconnect_cancels_and_closes_the_generator(
    app: App,
    probe: Probe,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    path: str,
    closed: str,
) -> None:
    caplog.set_level(logging.INFO)
    async with TestClient(app) as client, client.stream("GET", path) as call:
        assert await call.next_chunk()
        await trio.sleep(2.5)
        await call.disconnect()
    assert probe.record == [closed]
    assert call.outcome == "disconnected"
    lines = [r for r in caplog.records if r.name == "trioweb"]
    assert [r.levelno for r in lines] == [logging.INFO]
    assert "cancelled: client disconnected" in lines[0].getMessage()


async def test_file_response(app: App) -> None:
    expected = bytes(range(256)) * 4
    async with TestClient(app) as client:
        full = await client.get("/file")
        assert (full.status_code, full.content) == (200, expected)
        assert full.headers["content-length"] == "1024"
        assert full.headers["content-type"] == "text/plain"
        assert full.headers["accept-ranges"] == "bytes"
        tag = full.headers["etag"]
        assert "last-modified" in full.headers

        part = await client.get("/file", headers={"range": "bytes=10-19"})
        assert (part.status_code, part.content) == (206, expected[10:20])
        assert part.headers["content-range"] == "bytes 10-19/1024"

        tail = await client.get("/file", headers={"range": "bytes=-4"})
        assert (tail.status_code, tail.content) == (206, expected[-4:])

        beyond = await client.get("/file", headers={"range": "bytes=2000-"})
        assert (beyond.status_code, beyond.headers["content-range"]) == (416, "bytes */1024")

        cached = await client.get("/file", headers={"if-none-match": tag})
        assert (cached.status_code, cached.content, cached.headers["etag"]) == (304, b"", tag)
        assert (await client.get("/file", headers={"if-none-match": '"other"'})).status_code == 200

        head = await client.head("/file")
        assert (head.status_code, head.content, head.headers["content-length"]) == (
            200,
            b"",
            "1024",
        )

        download = await client.get("/download")
        assert download.headers["content-disposition"] == 'attachment; filename="re\\"port.txt"'
        assert (await client.get("/missing")).status_code == 404


async def test_redirect_and_cookies(app: App) -> None:
    async with TestClient(app) as client:
        moved = await client.get("/old")
        assert (moved.status_code, moved.headers["location"]) == (308, "/new")
        response = await client.get("/cookies")
    assert response.headers.getlist("set-cookie") == [
        "session=abc; Max-Age=60; Path=/; Secure; HttpOnly; SameSite=Lax",
        "old=; Max-Age=0; Path=/; SameSite=Lax",
    ]
    with pytest.raises(ValueError, match="not a redirect"):
        redirect("/x", status=200)
    with pytest.raises(ValueError, match="invalid cookie value"):
        Response().set_cookie("a", "b c")


class HeaderMiddleware:
    """A plain ASGI middleware: passes receive through, decorates the response."""

    def __init__(self, app: Any, header: str) -> None:
        self.app = app
        self.header = header.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def tagged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-mw", self.header)]}
            await send(message)

        await self.app(scope, receive, tagged)


async def test_middleware_wrapped_app_still_cancels_on_disconnect(
    app: App, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    app.add_middleware(HeaderMiddleware, header="outer")
    cancelled: list[bool] = []

    @app.get("/slow")
    async def slow() -> str:
        try:
            await trio.sleep(60)
        except trio.Cancelled:
            cancelled.append(True)
            raise
        return "never"

    async with TestClient(app) as client:
        assert (await client.get("/old")).headers["x-mw"] == "outer"
        async with client.stream("GET", "/slow") as call:
            await trio.sleep(1)
            await call.disconnect()
    assert cancelled == [True]
    assert call.handler_cancelled


def test_json_response() -> None:
    response = JSONResponse({"id": 1}, status=201, headers={"location": "/items/1"})
    assert (response.status, response.media_type, response.body) == (
        201,
        "application/json",
        b'{"id":1}',
    )
    assert dict(response.raw_headers())[b"location"] == b"/items/1"
    assert JSONResponse(Ticket(3)).body == b'{"number":3,"holder":null}'
    with pytest.raises(TypeError, match="not JSON serializable"):
        JSONResponse({"x": object()})


@pytest.mark.parametrize(
    ("value", "status", "expected"),
    [
        ({"a": 1}, 201, (201, "application/json", b'{"a":1}')),
        ("made", 202, (202, "text/plain; charset=utf-8", b"made")),
        (b"\x00", 201, (201, "application/octet-stream", b"\x00")),
        (Ticket(1), 201, (201, "application/json", b'{"number":1,"holder":null}')),
        (None, 201, (201, None, b"")),
        (None, None, (204, None, b"")),
        (None, 204, (204, None, b"")),
        ({"a": 1}, None, (200, "application/json", b'{"a":1}')),
        # A response object keeps its own status: the route's is for plain values.
        (Response("x", status=409), 201, (409, "text/plain; charset=utf-8", b"x")),
        (JSONResponse([], status=200), 201, (200, "application/json", b"[]")),
    ],
)
def test_to_response_status(
    value: object, status: int | None, expected: tuple[int, str | None, bytes]
) -> None:
    response = to_response(value, status=status)
    assert isinstance(response, Response)
    assert (response.status, response.media_type, response.body) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (42, "a handler returned int; return str"),
        ((1, 2), "a handler returned tuple;"),
        (Path("x"), "a handler returned pathlib.PosixPath;"),
        ((i for i in range(0)), "generator: wrap an async one in StreamingResponse"),
    ],
)
def test_to_response_names_the_unsupported_type(value: object, message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        to_response(value)


async def test_to_response_closes_an_unawaited_coroutine() -> None:
    async def forgot() -> str:
        return "x"

    # filterwarnings=error: a "never awaited" RuntimeWarning would fail the test.
    with pytest.raises(TypeError, match="did you forget an await"):
        to_response(forgot())
    gc.collect()


def test_no_body_for_a_status_that_has_none() -> None:
    with pytest.raises(TypeError, match="status_code is 204, which has no body"):
        to_response({"a": 1}, status=204)
    with pytest.raises(ValueError, match="a 304 response cannot have a body"):
        Response(b"x", status=304)
    assert Response(b"", status=204).status == 204


def test_event_stream_headers_for_proxies() -> None:
    async def nothing() -> AsyncIterator[str]:
        yield "x"

    stream = EventStream(nothing())
    assert (b"x-accel-buffering", b"no") in stream.raw_headers()
    assert (b"cache-control", b"no-cache") in stream.raw_headers()
    # A header of the caller's, in any case, replaces the default: no duplicate.
    replaced = EventStream(nothing(), headers={"Cache-Control": "no-store"}).raw_headers()
    assert [value for name, value in replaced if name == b"cache-control"] == [b"no-store"]


async def test_event_stream_sends_proxy_headers_in_process(
    app: App, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestClient(app, timeout=60) as client, client.stream("GET", "/events") as call:
        assert await call.wait_response_start() == 200
        assert call.headers["x-accel-buffering"] == "no"
        assert call.headers["cache-control"] == "no-cache"


# ---- the common results, lowered without a Response ----


class _Text(str):
    pass


@pytest.mark.parametrize(
    "value",
    ["hello", "", "héllo ✓", "\ud800", {"id": 1}, {}, [1, "two", None], [], {"a": [{"b": 1.5}]}],
)
def test_lower_value_is_what_to_response_sends(value: object) -> None:
    from trioweb._response import lower_value, to_response

    lowered = lower_value(value)
    response = to_response(value)
    assert isinstance(response, Response)
    assert response.status == 200
    assert lowered == (response.raw_headers(), response.body)


@pytest.mark.parametrize(
    "value", [None, b"bytes", _Text("sub"), Response("x"), (1, 2), 3, uuid.UUID(int=0)]
)
def test_lower_value_leaves_everything_else_to_to_response(value: object) -> None:
    from trioweb._response import lower_value

    assert lower_value(value) is None


def test_lower_value_refuses_what_json_cannot_say() -> None:
    from trioweb._response import lower_value

    with pytest.raises(ValueError, match="NaN"):
        lower_value({"x": float("nan")})
