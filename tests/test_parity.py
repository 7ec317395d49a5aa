"""Parity: the same requests, in-process (ASGITransport) and over a real socket, answer alike.

Each row runs through two httpx clients with the same ``base_url`` (so Host,
cookies and absolute redirects match): one on :class:`trioweb.testing.ASGITransport`,
one on the wire to ``live_server``. Status, headers (but ``date`` and
``server``, which hypercorn adds), body and the redirect history must be equal.
Nothing is compared to fixed strings, so the rows survive changes to the
app's error bodies. A difference found later gets a row here and a fix, not
an exclusion.
"""

from __future__ import annotations

from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.lowlevel

from trioweb import App, Server
from trioweb.testing import ASGITransport

from .parity_app import make_app

BOUNDARY = "parityboundary0123456789"


@attrs.frozen
class Step:
    method: str
    url: str
    options: dict[str, Any] = attrs.field(factory=dict)


# (row id, requests sent in order through one client)
ROWS: list[tuple[str, list[Step]]] = [
    ("percent-encoded path", [Step("GET", "/hello/hello%20world")]),
    ("encoded slash in a path parameter", [Step("GET", "/echo/a%2Fb/c")]),
    ("unicode path", [Step("GET", "/hello/héllo wörld ✓")]),
    ("pre-encoded unicode path", [Step("GET", "/hello/%C3%A9t%C3%A9")]),
    ("percent-encoded query and a plus", [Step("GET", "/echo/q?a=%20b&c=d+e&f=%2B&g=%26")]),
    ("params= encoding", [Step("GET", "/echo/q", {"params": {"q": "a b+c&d", "é": "ü"}})]),
    ("repeated query keys", [Step("GET", "/echo/q?x=1&x=2&x=&y")]),
    ("cookies set and sent back", [Step("GET", "/set-cookie"), Step("GET", "/whoami")]),
    ("redirect followed", [Step("GET", "/old", {"follow_redirects": True})]),
    ("redirect not followed", [Step("GET", "/old")]),
    ("form post", [Step("POST", "/form", {"data": {"name": "a b", "plus": "+", "uni": "é"}})]),
    (
        "multipart post to a raw-body route",
        [
            Step(
                "POST",
                "/raw",
                {
                    "files": {"upload": ("notes.txt", b"line one\nline two\n", "text/plain")},
                    "data": {"field": "value"},
                    "headers": {"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
                },
            )
        ],
    ),
    ("streamed request body", [Step("POST", "/raw", {"content": "chunks"})]),
    ("HEAD", [Step("HEAD", "/hello/head")]),
    ("HEAD of a stream", [Step("HEAD", "/stream")]),
    ("404 unknown path", [Step("GET", "/nowhere")]),
    ("404 converter mismatch", [Step("GET", "/items/seven")]),
    ("405 wrong method", [Step("GET", "/only-post")]),
    ("413 body too large", [Step("POST", "/small", {"content": b"x" * 100})]),
    ("422 bad query", [Step("GET", "/typed?limit=many")]),
    ("422 missing query", [Step("GET", "/typed")]),
    ("204 no content", [Step("GET", "/empty")]),
    ("streaming response", [Step("GET", "/stream")]),
    ("server-sent events", [Step("GET", "/events")]),
    ("request-nursery child outlives the response", [Step("GET", "/background")]),
    ("connection close after the response", [Step("GET", "/bye")]),
]


async def _chunks() -> Any:
    for part in (b"first,", b"second,", b"third"):
        await trio.lowlevel.checkpoint()
        yield part


def summary(response: httpx.Response) -> dict[str, object]:
    """What must match: status, headers but date/server, body, the redirects taken."""
    return {
        "status": response.status_code,
        "headers": [
            (name.lower(), value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("date", "server")
        ],
        "body": response.content,
        "history": [(r.status_code, r.headers.get("location")) for r in response.history],
        "url": str(response.url),
    }


async def run_steps(client: httpx.AsyncClient, steps: list[Step]) -> list[dict[str, object]]:
    results = []
    for step in steps:
        options = dict(step.options)
        if options.get("content") == "chunks":
            options["content"] = _chunks()  # a generator is single-use: one per client
        response = await client.request(step.method, step.url, **options)
        results.append(summary(response))
    return results


@pytest.fixture
def app() -> App:
    return make_app()  # the live server's; the in-process side gets its own App


@pytest.mark.parametrize("steps", [steps for _, steps in ROWS], ids=[name for name, _ in ROWS])
async def test_in_process_matches_the_wire(live_server: Server, steps: list[Step]) -> None:
    base = live_server.url
    async with (
        httpx.AsyncClient(transport=ASGITransport(make_app()), base_url=base) as in_process,
        httpx.AsyncClient(base_url=base) as wire,
    ):
        local = await run_steps(in_process, steps)
        remote = await run_steps(wire, steps)
    assert local == remote


def test_every_row_is_named_once() -> None:
    names = [name for name, _ in ROWS]
    assert len(names) == len(set(names))
