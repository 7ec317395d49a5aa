"""One app for the parity and httpx-transport tests: every kind of request the wire sees."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Annotated

import trio
import trio.lowlevel

from trioweb import (
    App,
    Cookie,
    EventStream,
    Form,
    Request,
    Response,
    ServerSentEvent,
    StreamingResponse,
    redirect,
)


def make_app(record: list[str] | None = None) -> App:
    """The app; ``record`` hears what handlers and their children did."""
    notes = record if record is not None else []
    app = App()

    @app.get("/hello/{name}")
    async def hello(name: str) -> str:
        return f"hello {name}"

    @app.get("/echo/{rest:path}")
    async def echo(request: Request, rest: str) -> dict[str, object]:
        return {
            "path": request.path,
            "rest": rest,
            "query_string": request.query_string.decode("latin-1"),
            "query": request.query_params.multi_items(),
        }

    @app.get("/set-cookie")
    async def set_cookie() -> Response:
        response = Response("cookies set")
        response.set_cookie("session", "abc123")
        response.set_cookie("theme", "dark", httponly=True)
        return response

    @app.get("/whoami")
    async def whoami(
        session: Annotated[str | None, Cookie("session")] = None,
        theme: Annotated[str | None, Cookie("theme")] = None,
    ) -> dict[str, str | None]:
        return {"session": session, "theme": theme}

    @app.get("/old")
    async def old() -> Response:
        return redirect("/hello/moved", status=302)

    @app.post("/form")
    async def form(data: Annotated[dict[str, str], Form()]) -> dict[str, str]:
        return data

    @app.post("/raw", max_body_size=10_000_000)
    async def raw(request: Request, body: bytes) -> dict[str, object]:
        return {
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "content_type": request.headers.get("content-type"),
            "has_boundary": b"--" in body,
        }

    @app.post("/small", max_body_size=10)
    async def small(body: bytes) -> str:
        return str(len(body))

    @app.post("/only-post")
    async def only_post() -> str:
        return "posted"

    @app.get("/typed")
    async def typed(limit: int) -> dict[str, int]:
        return {"limit": limit}

    @app.get("/items/{item_id:int}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def produce() -> AsyncIterator[bytes]:
            for i in range(5):
                await trio.lowlevel.checkpoint()
                yield b"line %d\n" % i

        return StreamingResponse(produce(), media_type="text/plain")

    @app.get("/events")
    async def events() -> EventStream:
        async def produce() -> AsyncIterator[ServerSentEvent]:
            for i in range(3):
                await trio.lowlevel.checkpoint()
                yield ServerSentEvent(f"tick {i}", event="tick", id=str(i))

        return EventStream(produce(), keepalive=None)

    @app.get("/background")
    async def background(nursery: trio.Nursery) -> str:
        async def child() -> None:
            await trio.sleep(0.2)
            notes.append("child done")

        nursery.start_soon(child)
        return "answered"

    @app.get("/bye")
    async def bye(request: Request) -> str:
        request.close_after_response()
        return "bye"

    @app.get("/empty")
    async def empty() -> None:
        return None

    return app
