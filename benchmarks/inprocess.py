"""Per-request time of trioweb and its peers, driven in-process through ASGI.

Run: ``pip install -e '.[bench]' && python benchmarks/inprocess.py``

Each app serves the same routes; every request is one ``await app(scope,
receive, send)`` with a no-op ``send``, so what is measured is the framework
alone: routing, the request scope, binding and the response. All apps run in
one process, in one Trio run, interleaved round by round so that machine noise
hits them alike; the table shows the median of the rounds and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def bare_app() -> ASGI:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # no lifespan support
        path = scope["path"]
        if path == "/plain":
            body, kind = b"hello, world", b"text/plain; charset=utf-8"
        elif path.startswith("/items/"):
            body, kind = b'{"id":%d}' % int(path[7:]), b"application/json"
        else:
            body, kind = b"Not Found", b"text/plain"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", kind), (b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def trioweb_app() -> ASGI:
    from trioweb import App

    app = App()

    @app.get("/plain")
    async def plain() -> str:
        return "hello, world"

    @app.get("/items/{item_id:int}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


def starlette_app() -> ASGI:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello, world")

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["item_id"]})

    return Starlette(routes=[Route("/plain", plain), Route("/items/{item_id:int}", item)])


def quart_trio_app() -> ASGI:
    from quart_trio import QuartTrio

    app = QuartTrio(__name__)

    @app.route("/plain")
    async def plain() -> str:
        return "hello, world"

    @app.route("/items/<int:item_id>")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return cast(ASGI, app)


PEERS: dict[str, Callable[[], ASGI]] = {
    "bare ASGI": bare_app,
    "trioweb": trioweb_app,
    "starlette": starlette_app,
    "quart-trio": quart_trio_app,
}
ROUTES = {"plain text": "/plain", "JSON + int param": "/items/42"}


def make_scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }


class Exchange:
    """One request's receive/send, behaving as hypercorn's do.

    ``receive()`` gives the (empty) body once, then blocks until the response
    is complete and says ``http.disconnect``, as hypercorn does after every
    response. Apps that never call ``receive()`` (Starlette on a GET) pay
    nothing for it.
    """

    __slots__ = ("done", "received", "statuses")

    def __init__(self, statuses: list[int]) -> None:
        self.received = False
        self.done: trio.Event | None = None
        self.statuses = statuses

    async def receive(self) -> dict[str, Any]:
        if not self.received:
            self.received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if self.done is None:
            self.done = trio.Event()
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.statuses.append(message["status"])
        elif not message.get("more_body", False) and self.done is not None:
            self.done.set()


async def time_app(app: ASGI, path: str, count: int) -> float:
    """Seconds per request over ``count`` sequential requests."""
    statuses: list[int] = []
    template = make_scope(path)
    start = time.perf_counter()
    for _ in range(count):
        exchange = Exchange(statuses)
        await app(dict(template), exchange.receive, exchange.send)
    elapsed = time.perf_counter() - start
    if set(statuses) != {200}:
        raise RuntimeError(f"{path} answered {sorted(set(statuses))}, not 200")
    return elapsed / count


async def lifespan_startup(app: ASGI, nursery: trio.Nursery) -> None:
    """Run the app's lifespan startup (quart needs it), leaving it running."""
    to_app, inbox = trio.open_memory_channel[dict[str, Any]](10)
    started = trio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    async def run() -> None:
        await app(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.receive, send
        )
        started.set()  # an app without lifespan support just returns

    nursery.start_soon(run)
    await to_app.send({"type": "lifespan.startup"})
    with trio.fail_after(10):
        await started.wait()


async def measure(rounds: int, count: int) -> dict[tuple[str, str], float]:
    results: dict[tuple[str, str], list[float]] = {}
    async with trio.open_nursery() as nursery:
        apps = {name: factory() for name, factory in PEERS.items()}
        for app in apps.values():
            await lifespan_startup(app, nursery)
        for app in apps.values():  # warm up every code path once
            for path in ROUTES.values():
                await time_app(app, path, 200)
        for _ in range(rounds):
            for name, app in apps.items():
                # quart-trio is ~50x slower: fewer requests keep the run short.
                n = max(count // 20, 100) if name == "quart-trio" else count
                for route, path in ROUTES.items():
                    results.setdefault((name, route), []).append(await time_app(app, path, n))
        nursery.cancel_scope.cancel()
    return {key: statistics.median(values) for key, values in results.items()}


def table(results: dict[tuple[str, str], float]) -> str:
    lines = [
        "| app | route | µs/request | vs bare ASGI | vs starlette | quart-trio time / app time |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in PEERS:
        for route in ROUTES:
            value = results[name, route]
            bare, starlette = results["bare ASGI", route], results["starlette", route]
            lines.append(
                f"| {name} | {route} | {value * 1e6:.1f} | {value / bare:.1f} "
                f"| {value / starlette:.2f} | {results['quart-trio', route] / value:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--count", type=int, default=10_000, help="requests per app, route and round"
    )
    args = parser.parse_args()
    results = trio.run(measure, args.rounds, args.count)
    print(table(results))
    for route in ROUTES:
        ratio = results["trioweb", route] / results["starlette", route]
        speedup = results["quart-trio", route] / results["trioweb", route]
        print(
            f"{route}: trioweb is {ratio:.2f}x Starlette's time (target <= 2) "
            f"and {speedup:.0f}x faster than quart-trio (target >= 10)"
        )


if __name__ == "__main__":
    main()
