"""Conditional and range requests on FileResponse (RFC 9110, sections 13 and 14)."""

from __future__ import annotations

import email.utils
import functools
import os
from pathlib import Path

import httpx
import pytest
import trio

from trioweb import App, FileResponse, Server
from trioweb._datastructures import Headers
from trioweb._files import etag, plan_file

SIZE = 1000
MTIME = 1_700_000_000  # whole seconds: Last-Modified carries no fraction
MTIME_NS = MTIME * 10**9 + 250_000_000  # ... though the file's mtime has one
TAG = etag(SIZE, MTIME_NS)
OTHER_TAG = '"0-0"'


def date(seconds: float) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


LAST_MODIFIED = date(MTIME)


@pytest.mark.parametrize(
    ("headers", "method", "status"),
    [
        ({}, "GET", 200),
        # If-None-Match: weak comparison, lists, *.
        ({"if-none-match": TAG}, "GET", 304),
        ({"if-none-match": TAG}, "HEAD", 304),
        ({"if-none-match": f"W/{TAG}"}, "GET", 304),
        ({"if-none-match": f'{OTHER_TAG}, "x", {TAG}'}, "GET", 304),
        ({"if-none-match": "*"}, "GET", 304),
        ({"if-none-match": OTHER_TAG}, "GET", 200),
        ({"if-none-match": TAG}, "POST", 412),
        # If-Modified-Since: equal or later is 304; earlier, garbage or non-GET is ignored.
        ({"if-modified-since": LAST_MODIFIED}, "GET", 304),
        ({"if-modified-since": date(MTIME + 3600)}, "GET", 304),
        ({"if-modified-since": date(MTIME - 1)}, "GET", 200),
        ({"if-modified-since": "yesterday"}, "GET", 200),
        ({"if-modified-since": ""}, "GET", 200),
        ({"if-modified-since": LAST_MODIFIED}, "POST", 200),
        # If-None-Match takes precedence over If-Modified-Since, both ways.
        ({"if-none-match": OTHER_TAG, "if-modified-since": LAST_MODIFIED}, "GET", 200),
        ({"if-none-match": TAG, "if-modified-since": date(MTIME - 60)}, "GET", 304),
        # If-Match: strong comparison; If-Unmodified-Since when there is none.
        ({"if-match": TAG}, "GET", 200),
        ({"if-match": "*"}, "GET", 200),
        ({"if-match": f"W/{TAG}"}, "GET", 412),
        ({"if-match": OTHER_TAG}, "GET", 412),
        ({"if-unmodified-since": date(MTIME - 1)}, "GET", 412),
        ({"if-unmodified-since": LAST_MODIFIED}, "GET", 200),
        ({"if-match": TAG, "if-unmodified-since": date(MTIME - 1)}, "GET", 200),
        ({"if-match": OTHER_TAG, "if-none-match": TAG}, "GET", 412),
        # Range, and If-Range with a current or stale validator.
        ({"range": "bytes=0-9"}, "GET", 206),
        ({"range": "bytes=0-9", "if-range": TAG}, "GET", 206),
        ({"range": "bytes=0-9", "if-range": OTHER_TAG}, "GET", 200),
        ({"range": "bytes=0-9", "if-range": f"W/{TAG}"}, "GET", 200),  # weak: never for ranges
        ({"range": "bytes=0-9", "if-range": LAST_MODIFIED}, "GET", 206),
        ({"range": "bytes=0-9", "if-range": date(MTIME - 1)}, "GET", 200),
        ({"range": "bytes=0-9", "if-range": date(MTIME + 1)}, "GET", 200),  # exact only
        ({"range": "bytes=0-9", "if-range": "garbage"}, "GET", 200),
        ({"range": "bytes=5000-", "if-range": OTHER_TAG}, "GET", 200),  # no 416 either
        ({"range": "bytes=5000-", "if-range": TAG}, "GET", 416),
        ({"if-range": OTHER_TAG}, "GET", 200),
        ({"range": "bytes=0-9"}, "HEAD", 200),  # ranges are for GET only
        ({"range": "bytes=0-9"}, "POST", 200),
    ],
)
def test_plan(headers: dict[str, str], method: str, status: int) -> None:
    plan = plan_file(FileResponse("f.txt"), SIZE, MTIME_NS, Headers(headers.items()), method=method)
    sent = dict(plan.headers)
    assert plan.status == status
    assert sent[b"etag"] == TAG.encode()
    assert sent[b"last-modified"] == LAST_MODIFIED.encode()
    if status in (304, 412):
        assert plan.length == 0
        assert b"content-range" not in sent
    if status == 412:
        assert sent[b"content-length"] == b"0"
    if status == 200:
        assert (plan.start, plan.length, sent[b"content-length"]) == (0, SIZE, b"1000")
    if status == 206:
        assert (plan.start, plan.length, sent[b"content-range"]) == (0, 10, b"bytes 0-9/1000")


def test_plan_defaults_to_get() -> None:
    # What the exchange calls today, without a method.
    headers = Headers([("range", "bytes=1-2"), ("if-range", TAG)])
    assert plan_file(FileResponse("f.txt"), SIZE, MTIME_NS, headers).status == 206


# ---- over a real hypercorn, with httpx ----

CONTENT = bytes(range(256)) * 4


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(CONTENT)
    os.utime(path, ns=(MTIME_NS, MTIME_NS))
    return path


@pytest.fixture
def app(data: Path) -> App:
    app = App()

    @app.get("/file")
    async def file() -> FileResponse:
        return FileResponse(data)

    return app


async def test_conditional_requests_over_the_wire(server: Server, data: Path) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        full = await http.get("/file")
        assert (full.status_code, full.content) == (200, CONTENT)
        tag, modified = full.headers["etag"], full.headers["last-modified"]
        assert modified == LAST_MODIFIED

        current = await http.get("/file", headers={"range": "bytes=10-19", "if-range": tag})
        assert (current.status_code, current.content) == (206, CONTENT[10:20])
        assert current.headers["content-range"] == "bytes 10-19/1024"

        by_date = await http.get("/file", headers={"range": "bytes=-4", "if-range": modified})
        assert (by_date.status_code, by_date.content) == (206, CONTENT[-4:])

        stale = await http.get("/file", headers={"range": "bytes=10-19", "if-range": OTHER_TAG})
        assert (stale.status_code, stale.content) == (200, CONTENT)
        assert "content-range" not in stale.headers

        for since in (modified, date(MTIME + 86400)):
            cached = await http.get("/file", headers={"if-modified-since": since})
            assert (cached.status_code, cached.content) == (304, b"")
            assert cached.headers["etag"] == tag
        older = await http.get("/file", headers={"if-modified-since": date(MTIME - 1)})
        assert (older.status_code, older.content) == (200, CONTENT)

        wins = await http.get(
            "/file", headers={"if-none-match": OTHER_TAG, "if-modified-since": modified}
        )
        assert (wins.status_code, wins.content) == (200, CONTENT)

        refused = await http.get("/file", headers={"if-match": OTHER_TAG})
        assert (refused.status_code, refused.content) == (412, b"")

        # The file changes: the old validators are stale, in both directions.
        await trio.Path(data).write_bytes(CONTENT[::-1])
        later = MTIME_NS + 10**9
        await trio.to_thread.run_sync(functools.partial(os.utime, data, ns=(later, later)))
        changed = await http.get("/file", headers={"range": "bytes=0-3", "if-range": tag})
        assert (changed.status_code, changed.content) == (200, CONTENT[::-1])
        again = await http.get("/file", headers={"if-modified-since": modified})
        assert again.status_code == 200
        assert (await http.get("/file", headers={"if-none-match": tag})).status_code == 200
