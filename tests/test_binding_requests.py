"""Binding from the request's data: every kind, every error status (table-driven)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import attrs
import pytest
import trio
import trio.testing

from trioweb import (
    App,
    Cookie,
    DisconnectToken,
    Form,
    Header,
    HTTPError,
    Query,
    Request,
    Response,
    RouteDefinitionError,
)
from trioweb.testing import TestClient, TestResponse

U = uuid.UUID(int=7)


@attrs.define
class Tag:
    name: str


@attrs.define
class Item:
    name: str
    quantity: int = attrs.field(validator=attrs.validators.ge(1))
    price: float = 0.0
    tags: list[Tag] = attrs.Factory(list)
    note: str | None = None


@attrs.define
class Login:
    user: str
    remember: bool = False
    age: int | None = None


def make_app() -> App:
    app = App()

    @app.get("/query")
    async def query(
        s: str,
        i: int,
        f: float,
        b: bool,
        u: uuid.UUID,
        many: list[int],
        maybe: int | None,
        default: str = "fallback",
        alias: Annotated[str, Query("other-name")] = "none",
    ) -> dict[str, object]:
        return {
            "s": s,
            "i": i,
            "f": f,
            "b": b,
            "u": str(u),
            "many": many,
            "maybe": maybe,
            "default": default,
            "alias": alias,
        }

    @app.get("/headers")
    async def headers(
        request_id: Annotated[str, Header("x-request-id")],
        user_agent: Annotated[str, Header()] = "none",
        session: Annotated[str | None, Cookie("session")] = None,
        count: Annotated[int, Cookie()] = 0,
    ) -> dict[str, object]:
        return {
            "request_id": request_id,
            "user_agent": user_agent,
            "session": session,
            "count": count,
        }

    @app.post("/items/{shelf:int}")
    async def create(shelf: int, item: Item, verbose: bool = False) -> Item:
        assert isinstance(item, Item)
        return attrs.evolve(item, note=f"shelf {shelf}, verbose={verbose}")

    @app.post("/raw")
    async def raw(body: bytes) -> bytes:
        return body[::-1]

    @app.post("/form")
    async def form(data: Annotated[dict[str, str], Form()]) -> dict[str, str]:
        return data

    @app.post("/login")
    async def login(data: Annotated[Login, Form()]) -> Login:
        return data

    return app


def ok(body: object) -> tuple[int, object]:
    return 200, body


QUERY = "s=x&i=3&f=1.5&b=yes&u=" + str(U) + "&many=1&many=2"


@pytest.mark.parametrize(
    ("method", "path", "options", "expected"),
    [
        (
            "GET",
            "/query?" + QUERY,
            {},
            ok(
                {
                    "s": "x",
                    "i": 3,
                    "f": 1.5,
                    "b": True,
                    "u": str(U),
                    "many": [1, 2],
                    "maybe": None,
                    "default": "fallback",
                    "alias": "none",
                }
            ),
        ),
        (
            "GET",
            "/query?" + QUERY + "&maybe=4&default=d&other-name=o",
            {},
            ok(
                {
                    "s": "x",
                    "i": 3,
                    "f": 1.5,
                    "b": True,
                    "u": str(U),
                    "many": [1, 2],
                    "maybe": 4,
                    "default": "d",
                    "alias": "o",
                }
            ),
        ),
        (
            "GET",
            "/query?s=x&i=three&f=nan&b=maybe&u=nope",
            {},
            (422, [["query", "i"], ["query", "f"], ["query", "b"], ["query", "u"]]),
        ),
        (
            "GET",
            "/query",
            {},
            (422, [["query", "s"], ["query", "i"], ["query", "f"], ["query", "b"], ["query", "u"]]),
        ),
        (
            "GET",
            "/headers",
            {
                "headers": {"x-request-id": "r1", "user-agent": "ua"},
                "cookies": {"session": "abc", "count": "5"},
            },
            ok({"request_id": "r1", "user_agent": "ua", "session": "abc", "count": 5}),
        ),
        (
            "GET",
            "/headers",
            {"headers": {"x-request-id": "r1"}},
            ok({"request_id": "r1", "user_agent": "none", "session": None, "count": 0}),
        ),
        (
            "GET",
            "/headers",
            {"cookies": {"count": "many"}},
            (422, [["header", "x-request-id"], ["cookie", "count"]]),
        ),
        (
            "POST",
            "/items/2?verbose=1",
            {"json": {"name": "n", "quantity": 3, "tags": [{"name": "t"}]}},
            ok(
                {
                    "name": "n",
                    "quantity": 3,
                    "price": 0.0,
                    "tags": [{"name": "t"}],
                    "note": "shelf 2, verbose=True",
                }
            ),
        ),
        ("POST", "/items/2", {"json": {"name": "n", "quantity": 0}}, (422, [["body", "quantity"]])),
        (
            "POST",
            "/items/2",
            {"json": {"name": 5, "quantity": "3", "price": True}},
            (422, [["body", "name"], ["body", "quantity"], ["body", "price"]]),
        ),
        (
            "POST",
            "/items/2",
            {"json": {"quantity": 1, "tags": [{"nom": "t"}]}},
            (422, [["body", "name"], ["body", "tags", 0, "name"], ["body", "tags", 0, "nom"]]),
        ),
        (
            "POST",
            "/items/2",
            {"json": {"name": "n", "quantity": 1, "extra": 1}},
            (422, [["body", "extra"]]),
        ),
        ("POST", "/items/2", {"json": [1, 2]}, (422, [["body"]])),
        (
            "POST",
            "/items/2",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            (400, None),
        ),
        (
            "POST",
            "/items/2",
            {"content": b"name=n", "headers": {"content-type": "text/plain"}},
            (415, None),
        ),
        ("POST", "/items/x", {"json": {"name": "n", "quantity": 1}}, (404, None)),
        ("POST", "/raw", {"content": b"abc"}, (200, "cba")),
        (
            "POST",
            "/form",
            {
                "content": b"a=1&b=two",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            ok({"a": "1", "b": "two"}),
        ),
        ("POST", "/form", {"json": {"a": 1}}, (415, None)),
        (
            "POST",
            "/login",
            {
                "content": b"user=bob&remember=on&age=7",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            ok({"user": "bob", "remember": True, "age": 7}),
        ),
        (
            "POST",
            "/login",
            {
                "content": b"user=bob&age=old&x=1",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            (422, [["body", "age"], ["body", "x"]]),
        ),
        (
            "POST",
            "/login",
            {
                "content": b"remember=no",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            (422, [["body", "user"]]),
        ),
    ],
)
async def test_binding(
    method: str, path: str, options: dict[str, Any], expected: tuple[int, object]
) -> None:
    async with TestClient(make_app()) as client:
        response = await client.request(method, path, **options)
    status, body = expected
    assert response.status_code == status, response.text
    if status == 422:
        assert response.headers["content-type"] == "application/json"
        detail = response.json()["detail"]
        assert [entry["loc"] for entry in detail] == body
        assert all(entry["msg"] for entry in detail)
    elif status == 200 and isinstance(body, str):
        assert response.text == body
    elif status == 200:
        assert response.json() == body


async def test_422_messages_say_why() -> None:
    async with TestClient(make_app()) as client:
        response = await client.get("/query?s=x&i=three&f=1&b=1&u=" + str(U))
        (entry,) = response.json()["detail"]
        assert entry == {"loc": ["query", "i"], "msg": "expected an integer, got 'three'"}
        response = await client.post("/items/1", json={"name": "n", "quantity": 0})
        assert "'quantity' must be >= 1: 0" in response.json()["detail"][0]["msg"]


class NotBindable:
    pass


async def two_bodies(a: Item, b: bytes) -> None: ...
async def bad_form(data: Annotated[int, Form()]) -> None: ...
async def two_markers(x: Annotated[str, Header(), Cookie()]) -> None: ...
async def unknown_type(x: NotBindable) -> None: ...


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (two_bodies, "more than one body parameter"),
        (bad_form, "a Form\\(\\) must be an attrs class or dict"),
        (two_markers, "more than one of Header/Cookie/Query/Form"),
        (unknown_type, "parameter 'x' of handler .*unknown_type cannot be bound"),
    ],
)
def test_definition_errors(handler: Any, message: str) -> None:
    with pytest.raises(RouteDefinitionError, match=message):
        App().post("/")(handler)


# ---- class-based views ----


async def test_class_based_view_binds_attributes_per_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App()
    seen: list[object] = []

    @app.route("/lottery/{draws:int}")
    class Lottery:
        token: DisconnectToken
        request: Request
        draws: int
        verbose: bool = False

        async def get(self) -> dict[str, object]:
            seen.append(self.token)
            return {"draws": self.draws, "path": self.request.path, "verbose": self.verbose}

        async def post(self, item: Item) -> str:
            await trio.sleep(1)
            return f"{item.name} x{self.draws}"

    async with TestClient(app) as client:
        response = await client.get("/lottery/5?verbose=true")
        assert response.json() == {"draws": 5, "path": "/lottery/5", "verbose": True}
        response = await client.post("/lottery/2", json={"name": "ticket", "quantity": 1})
        assert response.text == "ticket x2"
        assert (await client.delete("/lottery/2")).headers["allow"] == "GET, HEAD, POST"
    (token,) = seen
    assert isinstance(token, DisconnectToken)
    assert token.disposed


def test_view_without_methods_is_an_error() -> None:
    class Empty:
        token: DisconnectToken

    with pytest.raises(RouteDefinitionError, match="defines none of get, post"):
        App().route("/")(Empty)


# ---- hooks, error handlers, routers, lifespan ----


async def test_hooks_and_error_handlers_run_in_the_request_scope() -> None:
    app = App()
    record: list[str] = []

    @app.before_request
    async def before(request: Request) -> Response | None:
        record.append(f"before {request.path}, token set={request.token.is_set()}")
        if request.path == "/blocked":
            return Response("blocked", status=403)
        return None

    @app.after_request
    async def after(request: Request, response: Response) -> Response:
        response.headers["x-after"] = "yes"
        return response

    class Teapot(Exception):
        pass

    @app.errorhandler(Teapot)
    async def teapot(request: Request, error: Exception) -> Response:
        return Response(f"teapot: {error}", status=418)

    @app.errorhandler(404)
    async def not_here(request: Request, error: Exception) -> dict[str, str]:
        return {"missing": request.path}

    @app.get("/ok")
    async def ok_route() -> str:
        return "fine"

    @app.get("/blocked")
    async def blocked() -> str:
        return "never"

    @app.get("/teapot")
    async def brew() -> str:
        raise Teapot("short and stout")

    @app.get("/gone")
    async def gone() -> str:
        raise HTTPError(404, "gone")

    async with TestClient(app) as client:
        response = await client.get("/ok")
        assert (response.text, response.headers["x-after"]) == ("fine", "yes")
        assert (await client.get("/blocked")).status_code == 403
        response = await client.get("/teapot")
        assert (response.status_code, response.text) == (418, "teapot: short and stout")
        response = await client.get("/gone")
        assert (response.status_code, response.json()) == (200, {"missing": "/gone"})
    assert record[:2] == ["before /ok, token set=False", "before /blocked, token set=False"]


async def test_router_prefix_and_url_for() -> None:
    from trioweb import Router

    api = Router(prefix="/api")
    v1 = Router(prefix="/v1")

    @v1.get("/items/{item_id:int}", name="item")
    async def item(item_id: int, app: App) -> str:
        return app.url_for("api.v1.item", item_id=item_id + 1)

    api.include(v1)
    app = App()
    app.include(api)
    async with TestClient(app) as client:
        assert (await client.get("/api/v1/items/1")).text == "/api/v1/items/2"
    with pytest.raises(RouteDefinitionError, match="must start with '/'"):
        Router(prefix="api")


async def test_lifespan_context_and_app_nursery_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    record: list[str] = []

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        record.append("enter")
        yield
        record.append("exit")

    app = App(lifespan=lifespan, shutdown_grace=2)

    async def background(seconds: float) -> None:
        try:
            await trio.sleep(seconds)
            record.append(f"background {seconds} finished")
        except trio.Cancelled:
            record.append(f"background {seconds} cancelled")
            raise

    @app.post("/later/{seconds:float}")
    async def later(seconds: float, app: App) -> None:
        app.nursery.start_soon(background, seconds)

    async with TestClient(app) as client:
        assert (await client.post("/later/1")).status_code == 204
        assert (await client.post("/later/60")).status_code == 204
    # app.nursery's tasks end (grace, then cancel) before the lifespan context is left.
    assert record == ["enter", "background 1.0 finished", "background 60.0 cancelled", "exit"]
    with pytest.raises(RuntimeError, match="exists only between lifespan startup and shutdown"):
        _ = app.nursery


async def test_returned_attrs_instances_are_json() -> None:
    app = App()

    @app.get("/tag")
    async def tag() -> Tag:
        return Tag("x")

    async with TestClient(app) as client:
        response: TestResponse = await client.get("/tag")
    assert (response.json(), response.headers["content-type"]) == (
        {"name": "x"},
        "application/json",
    )
