"""The apps the over-the-wire benchmarks load, each served by hypercorn's Trio worker.

Run one: ``python benchmarks/servers.py NAME``; it prints ``PORT <n>`` once it
listens on 127.0.0.1 (a port the OS chose) and serves until terminated.

Every app answers the same routes:

* ``GET /plain`` -> ``hello, world``; ``GET /items/{id}`` -> ``{"id": id}``
* ``GET /wait`` -> ``hello, world`` after one Trio checkpoint: a handler that
  waits once, so trioweb gives it a scope and a disconnect watcher
* ``GET /hold?id=K`` holds the request (a long sleep) and, when cancelled,
  records ``time.monotonic()`` under K. ``CLOCK_MONOTONIC`` is one clock for
  every process on the machine, so the client can subtract its own close time.
* ``GET /stats`` -> ``{"active": held now, "cancelled": {K: t}, "tasks": n,
  "rss_kib": n}``.
"""

from __future__ import annotations

import collections
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
HOLD = 600.0  # seconds a held request waits: far longer than any benchmark


class Holds:
    """What the /hold and /stats routes share, in every app."""

    def __init__(self) -> None:
        self.active = 0
        self.cancelled: dict[str, float] = {}

    async def hold(self, key: str) -> None:
        self.active += 1
        try:
            await trio.sleep(HOLD)
        except trio.Cancelled:
            self.cancelled[key] = time.monotonic()
            raise
        finally:
            self.active -= 1

    def stats(self) -> bytes:
        names = task_names()
        return json.dumps(
            {
                "active": self.active,
                "cancelled": self.cancelled,
                "tasks": names.total(),
                "most_common_tasks": names.most_common(4),
                "rss_kib": rss_kib(),
            }
        ).encode()


def task_names() -> collections.Counter[str]:
    """The name of every task in this Trio run, system tasks included."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    stack, names = [root], collections.Counter[str]()
    while stack:
        task = stack.pop()
        names[task.name] += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return names


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def query_id(scope: dict[str, Any]) -> str:
    query: bytes = scope["query_string"]
    for pair in query.decode().split("&"):
        name, _, value = pair.partition("=")
        if name == "id":
            return value
    return ""


def bare_app(holds: Holds, *, nursery_watcher: bool = False) -> ASGI:
    """A bare ASGI callable; with ``nursery_watcher``, the classic per-request
    nursery with a task draining receive() that cancels the handler on disconnect."""

    async def respond(send: Any, body: bytes, kind: bytes) -> None:
        headers = [(b"content-type", kind), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def handle(scope: dict[str, Any], send: Any) -> None:
        path = scope["path"]
        if path == "/plain":
            await respond(send, b"hello, world", b"text/plain; charset=utf-8")
        elif path == "/wait":
            await trio.lowlevel.checkpoint()
            await respond(send, b"hello, world", b"text/plain; charset=utf-8")
        elif path.startswith("/items/"):
            await respond(send, b'{"id":%d}' % int(path[7:]), b"application/json")
        elif path == "/hold":
            await holds.hold(query_id(scope))
        elif path == "/stats":
            await respond(send, holds.stats(), b"application/json")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            # Returning at once would race hypercorn's startup message: answer it.
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if not nursery_watcher:
            await handle(scope, send)
            return
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            await handle(scope, send)
            nursery.cancel_scope.cancel()

    return app


def trioweb_app(holds: Holds) -> ASGI:
    from trioweb import App

    app = App()

    @app.get("/plain")
    async def plain() -> str:
        return "hello, world"

    @app.get("/wait")
    async def wait() -> str:
        await trio.lowlevel.checkpoint()
        return "hello, world"

    @app.get("/items/{item_id:int}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/hold")
    async def hold(id: str = "") -> None:
        await holds.hold(id)

    @app.get("/stats")
    async def stats() -> bytes:
        return holds.stats()

    return app


def starlette_app(holds: Holds) -> ASGI:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    async def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello, world")

    async def wait(request: Request) -> PlainTextResponse:
        await trio.lowlevel.checkpoint()
        return PlainTextResponse("hello, world")

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["item_id"]})

    async def hold(request: Request) -> Response:
        await holds.hold(request.query_params.get("id", ""))
        return Response(b"")

    async def stats(request: Request) -> Response:
        return Response(holds.stats(), media_type="application/json")

    return Starlette(
        routes=[
            Route("/plain", plain),
            Route("/wait", wait),
            Route("/items/{item_id:int}", item),
            Route("/hold", hold),
            Route("/stats", stats),
        ]
    )


def quart_trio_app(holds: Holds) -> ASGI:
    from quart import request
    from quart_trio import QuartTrio

    app = QuartTrio(__name__)

    @app.route("/plain")
    async def plain() -> str:
        return "hello, world"

    @app.route("/wait")
    async def wait() -> str:
        await trio.lowlevel.checkpoint()
        return "hello, world"

    @app.route("/items/<int:item_id>")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.route("/hold")
    async def hold() -> str:
        await holds.hold(request.args.get("id", ""))
        return ""

    @app.route("/stats")
    async def stats() -> tuple[bytes, int, dict[str, str]]:
        return holds.stats(), 200, {"content-type": "application/json"}

    return cast(ASGI, app)


APPS: dict[str, Callable[[Holds], ASGI]] = {
    "bare ASGI": bare_app,
    "bare ASGI + nursery watcher": lambda holds: bare_app(holds, nursery_watcher=True),
    "trioweb": trioweb_app,
    "starlette": starlette_app,
    "quart-trio": quart_trio_app,
}


async def main(name: str) -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.backlog = 4096  # thousands of clients connect at once in the scale run
    config.read_timeout = None  # it fires false disconnects
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.5
    app = APPS[name](Holds())
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve, app, config)
        print("PORT", binds[0].rpartition(":")[2], flush=True)


if __name__ == "__main__":
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    trio.run(main, sys.argv[1])
