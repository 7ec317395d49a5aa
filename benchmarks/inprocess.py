"""Per-request time of trioweb and its peers, driven in-process through ASGI.

Run: ``pip install -e '.[bench]' && python benchmarks/inprocess.py``

To compare a change with what it replaces, in the same run: export the old
package (``git archive <commit> trioweb | tar -x -C /tmp/old``) and add
``--baseline /tmp/old/trioweb``; it is imported under another name and measured
as one more peer. ``--peers`` and ``--routes`` measure only some (``--routes
dependencies --peers trioweb,fastapi``), and ``--clock cpu`` reads this
process's CPU time instead of the wall clock, steadier on a shared machine.

Each app serves the same routes; every request is one ``await app(scope,
receive, send)`` whose ``receive``/``send`` behave like hypercorn's, so what is
measured is the framework alone: routing, the request scope, binding and the
response. All apps run in one process and one Trio run, interleaved round by
round so that machine noise hits them alike; the table shows the median of the
rounds and ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, cast
from urllib.parse import parse_qsl

import attrs
import trio

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@attrs.define
class Order:
    """The JSON body of the binding route."""

    item: str
    quantity: int
    note: str | None = None


BODY = b'{"item": "ticket", "quantity": 3, "note": "lucky"}'
TARGET_ROUTES = ("plain text", "JSON + int param")
#: The "JSON + int param" route with one async-generator dependency and one plain
#: one (FastAPI's ``Depends`` with ``yield``); peers without dependencies serve
#: it with their plain item handler.
DEPENDS_ROUTE = "JSON + int param + 2 dependencies"
ROUTES = {
    "plain text": "GET /plain",
    "JSON + int param": "GET /items/42",
    DEPENDS_ROUTE: "GET /deps/42",
    "binding: path + 2 query + attrs body": "POST /orders/7?limit=20&page=2",
}


def bare_app() -> ASGI:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # no lifespan support
        path = scope["path"]
        if path == "/plain":
            body, kind = b"hello, world", b"text/plain; charset=utf-8"
        elif path.startswith("/orders/"):
            order = json.loads((await receive())["body"])
            query = dict(parse_qsl(scope["query_string"].decode()))
            result = {
                "shop": int(path[8:]),
                "quantity": order["quantity"],
                "limit": int(query["limit"]),
                "page": int(query.get("page", 1)),
            }
            body, kind = json.dumps(result).encode(), b"application/json"
        else:
            body, kind = b'{"id":%d}' % int(path.rpartition("/")[2]), b"application/json"
        headers = [(b"content-type", kind), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def trioweb_app(package: ModuleType | None = None) -> ASGI:
    from trioweb import App as CurrentApp

    App = CurrentApp if package is None else package.App
    app = App()

    @app.get("/plain")
    async def plain() -> str:
        return "hello, world"

    @app.get("/items/{item_id:int}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/orders/{shop:int}")
    async def order(shop: int, order: Order, limit: int, page: int = 1) -> dict[str, int]:
        return {"shop": shop, "quantity": order.quantity, "limit": limit, "page": page}

    depends = getattr(package or sys.modules["trioweb"], "Depends", None)
    if depends is None:  # a baseline from before dependencies: the same route without
        app.get("/deps/{item_id:int}")(item)
        return app

    async def connection() -> AsyncIterator[int]:
        try:
            yield 0
        finally:
            pass  # a teardown, as a connection's release would be

    async def user(conn: Annotated[int, depends(connection)]) -> int:
        return conn

    async def with_dependencies(
        item_id: int,
        conn: Annotated[int, depends(connection)],
        current: Annotated[int, depends(user)],
    ) -> dict[str, int]:
        return {"id": item_id + conn + current}

    # This module's annotations are strings that name these local functions.
    with_dependencies.__annotations__.update(
        conn=Annotated[int, depends(connection)], current=Annotated[int, depends(user)]
    )
    user.__annotations__["conn"] = Annotated[int, depends(connection)]
    app.get("/deps/{item_id:int}")(with_dependencies)
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

    async def order(request: Request) -> JSONResponse:
        # Starlette has no binding: this is what its users write by hand.
        data = Order(**await request.json())
        limit = int(request.query_params["limit"])
        page = int(request.query_params.get("page", 1))
        shop = request.path_params["shop"]
        return JSONResponse({"shop": shop, "quantity": data.quantity, "limit": limit, "page": page})

    return Starlette(
        routes=[
            Route("/plain", plain),
            Route("/items/{item_id:int}", item),
            Route("/deps/{item_id:int}", item),  # no dependency system
            Route("/orders/{shop:int}", order, methods=["POST"]),
        ]
    )


def fastapi_app() -> ASGI:
    from fastapi import Depends, FastAPI
    from fastapi.responses import PlainTextResponse
    from pydantic import BaseModel, ConfigDict

    class OrderModel(BaseModel):
        # Strict, as trioweb's binding is: "3" is not an int in the JSON body.
        model_config = ConfigDict(strict=True)

        item: str
        quantity: int
        note: str | None = None

    app = FastAPI()

    # response_model=None: FastAPI would otherwise validate what the handler returns.
    @app.get("/plain", response_class=PlainTextResponse, response_model=None)
    async def plain() -> str:
        return "hello, world"

    @app.get("/items/{item_id}", response_model=None)
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    async def order(shop: int, order: OrderModel, limit: int, page: int = 1) -> dict[str, int]:
        return {"shop": shop, "quantity": order.quantity, "limit": limit, "page": page}

    async def connection() -> AsyncIterator[int]:
        try:
            yield 0
        finally:
            pass

    async def user(conn: int = Depends(connection)) -> int:
        return conn

    async def with_dependencies(
        item_id: int,
        conn: int = Depends(connection),
        current: int = Depends(user),
    ) -> dict[str, int]:
        return {"id": item_id + conn + current}

    for function in (user, with_dependencies):  # string annotations: give FastAPI the types
        function.__annotations__.update(
            {name: int for name in function.__annotations__ if name != "return"}
        )
    app.get("/deps/{item_id}", response_model=None)(with_dependencies)

    # This module's annotations are strings, and FastAPI resolves them in the
    # module's globals, where the local model is not: give it the class itself.
    order.__annotations__["order"] = OrderModel
    app.post("/orders/{shop}", response_model=None)(order)

    return cast(ASGI, app)


def quart_trio_app() -> ASGI:
    from quart import request
    from quart_trio import QuartTrio

    app = QuartTrio(__name__)

    @app.route("/plain")
    async def plain() -> str:
        return "hello, world"

    @app.route("/items/<int:item_id>")
    @app.route("/deps/<int:item_id>")  # no dependency system
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.route("/orders/<int:shop>", methods=["POST"])
    async def order(shop: int) -> dict[str, int | None]:
        data = Order(**(await request.get_json()))
        limit = request.args.get("limit", type=int)
        page = request.args.get("page", 1, type=int)
        return {"shop": shop, "quantity": data.quantity, "limit": limit, "page": page}

    return cast(ASGI, app)


PEERS: dict[str, Callable[[], ASGI]] = {
    "bare ASGI": bare_app,
    "trioweb": trioweb_app,
    "starlette": starlette_app,
    "fastapi": fastapi_app,
    "quart-trio": quart_trio_app,
}


def load_baseline(directory: Path) -> ModuleType:
    """Import the trioweb package in ``directory`` as ``trioweb_baseline``."""
    spec = importlib.util.spec_from_file_location(
        "trioweb_baseline", directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"{directory} is not a package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_scope(route: str) -> dict[str, Any]:
    method, _, target = route.partition(" ")
    path, _, query = target.partition("?")
    headers = [(b"host", b"bench")]
    if method == "POST":
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }


class Exchange:
    """One request's receive/send, behaving as hypercorn's do, minus the I/O.

    Hypercorn's ``receive`` is a Trio memory channel's, with the body queued
    before the app runs, and ``http.disconnect`` follows every complete
    response. This gives the same answers, ``receive_nowait()`` included, at a
    fraction of a channel's setup cost, so the table shows the frameworks
    rather than the harness. Apps that never call ``receive()`` (Starlette on a
    GET) pay nothing for it.
    """

    __slots__ = ("body", "done", "received", "statuses")

    def __init__(self, statuses: list[int], body: bytes) -> None:
        self.received = False
        self.done: trio.Event | None = None
        self.statuses = statuses
        self.body = body

    def receive_nowait(self) -> dict[str, Any]:
        if not self.received:
            self.received = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        raise trio.WouldBlock

    async def receive(self) -> dict[str, Any]:
        if not self.received:
            return self.receive_nowait()
        if self.done is None:
            self.done = trio.Event()
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.statuses.append(message["status"])
        elif not message.get("more_body", False) and self.done is not None:
            self.done.set()


#: The clock time_app() reads: wall time, or with --clock cpu this process's CPU
#: time, which leaves out the time other processes of a busy machine take.
CLOCK: list[Callable[[], float]] = [time.perf_counter]


async def time_app(app: ASGI, route: str, count: int) -> float:
    """Seconds per request over ``count`` sequential requests."""
    statuses: list[int] = []
    template = make_scope(route)
    body = BODY if template["method"] == "POST" else b""
    start = CLOCK[0]()
    for _ in range(count):
        exchange = Exchange(statuses, body)
        await app(dict(template), exchange.receive, exchange.send)
    elapsed = CLOCK[0]() - start
    if set(statuses) != {200}:
        raise RuntimeError(f"{route} answered {sorted(set(statuses))}, not 200")
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


async def measure(
    rounds: int, count: int, peers: dict[str, Callable[[], ASGI]], routes: dict[str, str]
) -> dict[tuple[str, str], float]:
    results: dict[tuple[str, str], list[float]] = {}
    async with trio.open_nursery() as nursery:
        apps = {name: factory() for name, factory in peers.items()}
        for app in apps.values():
            await lifespan_startup(app, nursery)
        for app in apps.values():  # warm up every code path once
            for route in routes.values():
                await time_app(app, route, 200)
        for _ in range(rounds):
            for name, app in apps.items():
                # quart-trio is ~15x slower: fewer requests keep the run short.
                n = max(count // 15, 100) if name == "quart-trio" else count
                for label, route in routes.items():
                    results.setdefault((name, label), []).append(await time_app(app, route, n))
        nursery.cancel_scope.cancel()
    return {key: statistics.median(values) for key, values in results.items()}


def _ratio(results: dict[tuple[str, str], float], top: str, bottom: str, route: str) -> str:
    if (top, route) not in results or (bottom, route) not in results:
        return "-"  # a peer left out with --peers
    return f"{results[top, route] / results[bottom, route]:.2f}"


def table(
    results: dict[tuple[str, str], float], peers: dict[str, Callable[[], ASGI]], routes: list[str]
) -> str:
    lines = [
        "| app | route | µs/request | vs bare ASGI | vs starlette | quart-trio time / app time |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in peers:
        for route in routes:
            lines.append(
                f"| {name} | {route} | {results[name, route] * 1e6:.1f} "
                f"| {_ratio(results, name, 'bare ASGI', route)} "
                f"| {_ratio(results, name, 'starlette', route)} "
                f"| {_ratio(results, 'quart-trio', name, route)} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", type=int, default=10_000, help="requests per app, route, round")
    parser.add_argument(
        "--baseline", type=Path, help="another trioweb package directory, measured as a peer"
    )
    parser.add_argument(
        "--peers",
        help=f"comma-separated peers to measure (default all: {', '.join(PEERS)})",
    )
    parser.add_argument(
        "--routes",
        help="comma-separated routes, each by a part of its label: plain, JSON, dependencies, "
        "binding (default all; 'dependencies' brings 'JSON + int param' along, its twin)",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time (the default), or this process's CPU time: steadier on a shared machine",
    )
    args = parser.parse_args()
    if args.clock == "cpu":
        CLOCK[0] = time.process_time
    peers = dict(PEERS)
    if args.peers:
        wanted = args.peers.split(",")
        unknown = set(wanted) - set(PEERS)
        if unknown:
            parser.error(f"unknown peers {sorted(unknown)}; known: {list(PEERS)}")
        peers = {name: PEERS[name] for name in wanted}
    routes = dict(ROUTES)
    if args.routes:
        words = args.routes.split(",")
        routes = {
            label: target
            for label, target in ROUTES.items()
            if any(word.lower() in label.lower() for word in words)
        }
        if DEPENDS_ROUTE in routes:
            routes["JSON + int param"] = ROUTES["JSON + int param"]
        if not routes:
            parser.error(f"no route matches {words}; routes: {list(ROUTES)}")
    if args.baseline:
        baseline = load_baseline(args.baseline)
        peers["trioweb (baseline)"] = lambda: trioweb_app(baseline)
    results = trio.run(measure, args.rounds, args.count, peers, routes)
    print(table(results, peers, [label for label in ROUTES if label in routes]))
    for route in routes:
        if ("trioweb", route) not in results:
            break
        parts = [
            f"{_ratio(results, 'trioweb', peer, route)}x {peer}'s time"
            for peer in ("starlette", "fastapi")
            if (peer, route) in results
        ]
        # The targets are set for the plain and JSON routes; the binding route
        # compares strict validation with the peers' hand parsing.
        targets = (
            " (targets: <= 2 Starlette's, >= 10 quart-trio's)" if route in TARGET_ROUTES else ""
        )
        if ("quart-trio", route) in results:
            speedup = results["quart-trio", route] / results["trioweb", route]
            parts.append(f"{speedup:.0f}x faster than quart-trio")
        print(f"{route}: trioweb takes {', '.join(parts)}{targets}")
        if args.baseline:
            now = results["trioweb", route] / results["trioweb (baseline)", route]
            print(f"  trioweb/baseline {now:.3f}")
    if DEPENDS_ROUTE in routes:
        for name in peers:
            if name in ("bare ASGI", "starlette", "quart-trio"):
                continue  # no dependency system: the same handler on both routes
            cost = results[name, DEPENDS_ROUTE] - results[name, "JSON + int param"]
            target = " (target <= 3)" if name == "trioweb" else ""
            print(
                f"dependencies: {name} {results[name, DEPENDS_ROUTE] * 1e6:.1f} µs, "
                f"{cost * 1e6:+.2f} µs over the same route without{target}"
            )


if __name__ == "__main__":
    main()
