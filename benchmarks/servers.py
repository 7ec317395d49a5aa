"""The apps the over-the-wire benchmarks load, each served by hypercorn's Trio worker.

Run one: ``python benchmarks/servers.py NAME [--host ADDRESS] [--trioweb-serve]``;
it prints ``PORT <n>`` once it listens on 127.0.0.1 (or ADDRESS), on a port the
OS chose, and serves until terminated. ``--trioweb-serve`` serves the app with
``trioweb.serve`` and its default settings instead of ``hypercorn.trio.serve``.

Every app answers the same routes:

* ``GET /plain`` -> ``hello, world``; ``GET /items/{id}`` -> ``{"id": id}``
* ``GET /wait`` -> ``hello, world`` after one Trio checkpoint: a handler that
  waits once, so trioweb gives it a scope and a disconnect watcher
* ``GET /hold?id=K`` holds the request (a long sleep) and, when cancelled,
  records ``time.monotonic()`` under K. ``CLOCK_MONOTONIC`` is one clock for
  every process on the machine, so the client can subtract its own close time.
* ``GET /stats`` -> ``{"active": held now, "cancelled": {K: t}, "tasks": n,
  "rss_kib": n, "seen": {K: record}}``.

The three frameworks (not the bare callables) also answer the slow-client
routes of ``benchmarks/slow.py``. Each records, under K in ``seen``, when its
handler began (``entered``), when it ended (``ended``) and how (``how``: the
exception it saw, or ``returned``), and for trioweb the token's ``reason``:

* ``GET /idle?id=K`` holds the request, like ``/hold``;
* ``GET /stream?id=K`` streams up to 1 GiB in 64 KiB chunks, counting the
  ``bytes`` it handed over, its generator's ``finally`` being its end;
* ``POST /upload?id=K`` reads the whole request body.
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

# At module level: trioweb resolves its handlers' annotations in their module.
from trioweb import App, DisconnectToken, Request, StreamingResponse

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
HOLD = 600.0  # seconds a held request waits: far longer than any benchmark
CHUNK = 64 * 1024  # bytes per chunk of /stream
STREAM = 1024**3  # bytes /stream offers at most: far more than any buffer


class Holds:
    """What the /hold and /stats routes share, in every app."""

    def __init__(self) -> None:
        self.active = 0
        self.cancelled: dict[str, float] = {}
        self.seen: dict[str, dict[str, Any]] = {}

    @contextmanager
    def watch(
        self, key: str, reason: Callable[[], object] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Record when and how the handler (or its stream) under ``key`` began and ended."""
        record: dict[str, Any] = {"entered": time.monotonic()}
        self.seen[key] = record
        try:
            yield record
        except BaseException as error:  # Cancelled, GeneratorExit, a framework's own
            record["how"] = type(error).__name__
            raise
        else:
            record["how"] = "returned"
        finally:
            record["ended"] = time.monotonic()
            said = None if reason is None else reason()
            if said is not None:  # a DisconnectReason: its text, as the log line says it
                record["reason"] = str(getattr(said, "value", said))

    async def idle(self, key: str, reason: Callable[[], object] | None = None) -> None:
        with self.watch(key, reason):
            await trio.sleep(HOLD)

    async def stream(
        self, key: str, reason: Callable[[], object] | None = None
    ) -> AsyncIterator[bytes]:
        with self.watch(key, reason) as record:
            record["bytes"] = 0
            chunk = b"s" * CHUNK
            while record["bytes"] < STREAM:
                record["bytes"] += CHUNK  # handed to the framework, sent or not
                yield chunk

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
                "seen": self.seen,
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

    @app.get("/idle")
    async def idle(token: DisconnectToken, id: str = "") -> None:
        await holds.idle(id, lambda: token.reason)

    @app.get("/stream")
    async def stream(token: DisconnectToken, id: str = "") -> StreamingResponse:
        return StreamingResponse(holds.stream(id, lambda: token.reason))

    @app.post("/upload")
    async def upload(request: Request, token: DisconnectToken, id: str = "") -> str:
        with holds.watch(id, lambda: token.reason):
            return f"{len(await request.body())} bytes"

    return app


def starlette_app(holds: Holds) -> ASGI:
    from starlette.applications import Starlette
    from starlette.responses import (
        JSONResponse,
        PlainTextResponse,
        Response,
        StreamingResponse,
    )
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

    async def idle(request: Request) -> Response:
        await holds.idle(request.query_params.get("id", ""))
        return Response(b"")

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(holds.stream(request.query_params.get("id", "")))

    async def upload(request: Request) -> PlainTextResponse:
        with holds.watch(request.query_params.get("id", "")):
            return PlainTextResponse(f"{len(await request.body())} bytes")

    return Starlette(
        routes=[
            Route("/plain", plain),
            Route("/wait", wait),
            Route("/items/{item_id:int}", item),
            Route("/hold", hold),
            Route("/stats", stats),
            Route("/idle", idle),
            Route("/stream", stream),
            Route("/upload", upload, methods=["POST"]),
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

    @app.route("/idle")
    async def idle() -> str:
        await holds.idle(request.args.get("id", ""))
        return ""

    @app.route("/stream")
    async def stream() -> AsyncIterator[bytes]:
        return holds.stream(request.args.get("id", ""))

    @app.route("/upload", methods=["POST"])
    async def upload() -> str:
        with holds.watch(request.args.get("id", "")):
            return f"{len(await request.get_data())} bytes"

    return cast(ASGI, app)


APPS: dict[str, Callable[[Holds], ASGI]] = {
    "bare ASGI": bare_app,
    "bare ASGI + nursery watcher": lambda holds: bare_app(holds, nursery_watcher=True),
    "trioweb": trioweb_app,
    "starlette": starlette_app,
    "quart-trio": quart_trio_app,
}


async def main(name: str, host: str, trioweb_serve: bool) -> None:
    app = APPS[name](Holds())
    if trioweb_serve:
        from trioweb import Server
        from trioweb import serve as serve_trioweb

        async with trio.open_nursery() as nursery:
            server: Server = await nursery.start(serve_trioweb, app, host, 0)  # its defaults
            print("PORT", server.port, flush=True)
        return
    config = Config()
    config.bind = [f"{host}:0"]
    config.backlog = 4096  # thousands of clients connect at once in the scale run
    config.read_timeout = None  # it fires false disconnects
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.5
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve, app, config)
        print("PORT", binds[0].rpartition(":")[2], flush=True)


if __name__ == "__main__":
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("name", choices=sorted(APPS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--trioweb-serve", action="store_true", help="serve with trioweb.serve")
    args = parser.parse_args()
    trio.run(main, args.name, args.host, args.trioweb_serve)
