"""Mistakes caught when a route or hook is declared, status codes, url_for and namespaces."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

import attrs
import httpx
import pytest

from trioweb import (
    App,
    DisconnectToken,
    JSONResponse,
    Query,
    Request,
    Response,
    RouteDefinitionError,
    Router,
    Server,
    StreamingResponse,
    WebSocket,
)
from trioweb.testing import TestClient


@attrs.frozen
class Item:
    name: str


# ---- hooks ----


def sync_hook(*args: object) -> None: ...
async def no_args() -> None: ...
async def one_arg(request: Request) -> None: ...
async def two_args(request: Request, response: object) -> None: ...
async def three_args(request: Request, response: object, extra: object) -> None: ...
async def flexible(*args: object) -> None: ...
async def with_default(request: Request, response: object = None) -> None: ...


class AsyncCallable:
    async def __call__(self, request: Request, error: BaseException) -> None: ...


def register(app: App, kind: str, hook: Any) -> None:
    if kind == "errorhandler":
        app.errorhandler(ValueError)(hook)
    else:
        getattr(app, kind)(hook)


@pytest.mark.parametrize(
    ("kind", "hook", "message"),
    [
        ("before_request", sync_hook, r"before_request hook .*sync_hook must be an async"),
        ("after_request", sync_hook, r"after_request hook .*sync_hook must be an async"),
        ("errorhandler", sync_hook, r"errorhandler .*sync_hook must be an async"),
        ("on_startup", sync_hook, r"on_startup hook .*sync_hook must be an async"),
        ("on_shutdown", sync_hook, r"on_shutdown hook .*sync_hook must be an async"),
        ("after_request", one_arg, r"after_request hook .*one_arg is called with 2 arg"),
        ("after_request", three_args, r"after_request hook .*three_args is called with 2"),
        ("before_request", two_args, r"before_request hook .*two_args is called with 1"),
        ("errorhandler", no_args, r"errorhandler .*no_args is called with 2 arguments"),
        ("on_startup", one_arg, r"on_startup hook .*one_arg is called with 0 arguments"),
        ("on_shutdown", one_arg, r"on_shutdown hook .*one_arg is called with 0 arguments"),
        ("before_request", "not callable", r"before_request hook 'not callable' is not callable"),
    ],
)
def test_bad_hooks_are_refused_when_registered(kind: str, hook: Any, message: str) -> None:
    app = App()
    with pytest.raises(RouteDefinitionError, match=message):
        register(app, kind, hook)
    assert not app._hooks.hooked


@pytest.mark.parametrize(
    ("kind", "hook"),
    [
        ("after_request", two_args),
        ("after_request", flexible),
        ("after_request", with_default),
        ("before_request", with_default),
        ("before_request", functools.partial(two_args, response=None)),
        ("errorhandler", AsyncCallable()),
        ("on_startup", no_args),
        ("on_startup", flexible),
    ],
)
def test_good_hooks_are_accepted(kind: str, hook: Any) -> None:
    register(App(), kind, hook)


def test_errorhandler_for_a_status_that_is_never_an_error() -> None:
    with pytest.raises(RouteDefinitionError, match="never raised"):
        App().errorhandler(200)


# ---- routes ----


async def plain() -> None: ...
async def wrong_name(userid: int) -> None: ...
async def takes_it(user_id: int) -> None: ...
async def no_socket(room: str) -> None: ...
async def socket(ws: WebSocket, room: str) -> None: ...
async def returns_int() -> int:
    return 1


async def returns_tuple() -> tuple[str, int]:
    return ("a", 1)


async def returns_optional_int() -> int | None:
    return None


async def returns_generator() -> AsyncIterator[str]:
    raise NotImplementedError  # an async generator would need a StreamingResponse around it


def test_path_parameter_that_no_parameter_takes() -> None:
    with pytest.raises(
        RouteDefinitionError,
        match=r"route '/users/\{user_id\}': no parameter of handler .*wrong_name takes "
        r"path parameter 'user_id' \(did you mean 'userid'\?\)",
    ):
        App().get("/users/{user_id}")(wrong_name)
    App().get("/users/{user_id}")(takes_it)


def test_websocket_handler_without_a_websocket_parameter() -> None:
    with pytest.raises(
        RouteDefinitionError, match=r"WebSocket handler .*no_socket takes no WebSocket"
    ):
        App().websocket("/chat/{room}")(no_socket)
    App().websocket("/chat/{room}")(socket)


def test_decorator_without_parentheses() -> None:
    app = App()
    for decorator in (app.get, app.post, app.put, app.patch, app.delete, app.route, app.websocket):
        with pytest.raises(RouteDefinitionError, match=r"needs a path: write @app\.\w+\(\"/"):
            decorator(plain)  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(RouteDefinitionError, match=r"needs a path: write @router\.get\("):
        Router().get(plain)  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(RouteDefinitionError, match="path must be a str, not int"):
        app.get(5)  # type: ignore[arg-type]  # the mistake under test


async def test_methods_as_a_single_string() -> None:
    app = App()

    @app.route("/one", methods="post")
    async def one() -> str:
        return "posted"

    async with TestClient(app) as client:
        assert (await client.post("/one")).text == "posted"
        assert (await client.get("/one")).headers["allow"] == "POST"
    with pytest.raises(RouteDefinitionError, match=r"unknown HTTP methods \['FETCH'\]$"):
        App().route("/", methods="FETCH")


@pytest.mark.parametrize(
    ("handler", "shown"),
    [
        (returns_int, "int"),
        (returns_tuple, r"tuple\[str, int\]"),
        (returns_optional_int, r"int \| None"),
        (returns_generator, r"collections.abc.AsyncIterator\[str\]"),
    ],
)
def test_unsupported_return_annotation(handler: Any, shown: str) -> None:
    with pytest.raises(
        RouteDefinitionError,
        match=rf"handler .*{handler.__name__} is annotated to return {shown}, which "
        "trioweb cannot send; return str",
    ):
        App().get("/")(handler)


async def ok_1() -> dict[str, int]:
    raise NotImplementedError


async def ok_2() -> list[Item] | None: ...
async def ok_3() -> Item:
    raise NotImplementedError


async def ok_4() -> Response:
    raise NotImplementedError


async def ok_5() -> JSONResponse:
    raise NotImplementedError


async def ok_6() -> StreamingResponse | str:
    raise NotImplementedError


async def ok_7() -> Any: ...
async def ok_8() -> object: ...
async def ok_9() -> Mapping[str, int]:  # a dict would do
    raise NotImplementedError


async def ok_10() -> Annotated[bytes, "doc"]:
    raise NotImplementedError


async def ok_11(): ...  # type: ignore[no-untyped-def]  # unannotated: nothing to check


@pytest.mark.parametrize(
    "handler", [ok_1, ok_2, ok_3, ok_4, ok_5, ok_6, ok_7, ok_8, ok_9, ok_10, ok_11]
)
def test_supported_return_annotations(handler: Any) -> None:
    App().get("/")(handler)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"status_code": 99}, "status_code must be an int from 200 to 599"),
        ({"status_code": 600}, "status_code must be an int from 200 to 599"),
        ({"status_code": "201"}, "status_code must be an int from 200 to 599"),
        ({"status_code": True}, "status_code must be an int from 200 to 599"),
        ({"name": 5}, "name must be a str"),
    ],
)
def test_bad_route_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(RouteDefinitionError, match=message):
        App().post("/", **options)


def test_status_code_is_an_endpoint_field() -> None:
    app = App()

    @app.post("/items", status_code=201)
    async def create(item: Item) -> Item:
        return item

    @app.route("/things", status_code=202)
    class Things:
        async def get(self) -> str:
            return "later"

        async def post(self, item: Item) -> Item:
            return item

    assert sorted(route.endpoint.status_code or 0 for route in app._routes.routes()) == [
        201,
        202,
        202,
    ]


# The exchange passes the endpoint's status to to_response() for what the handler returns.
async def test_status_code_of_a_returned_value() -> None:
    app = App()

    @app.post("/items", status_code=201)
    async def create(item: Item) -> Item:
        return item

    async with TestClient(app) as client:
        response = await client.post("/items", json={"name": "a"})
    assert (response.status_code, response.json()) == (201, {"name": "a"})


# ---- url_for and namespaces ----


@pytest.fixture
def app() -> App:
    app = App()

    @app.get("/users/{name}/files/{rest:path}")
    async def user_file(name: str, rest: str, v: str) -> str:
        return f"{name}:{rest}:{v}"

    return app


def test_url_for_takes_a_parameter_called_name(app: App) -> None:
    url = app.url_for("user_file", name="a b", rest="x y/z", _query={"v": "1 2"})
    assert url == "/users/a%20b/files/x%20y/z?v=1+2"


async def test_url_for_leads_back_to_its_route_over_the_wire(app: App, server: Server) -> None:
    # In-process, the TestClient passes the path undecoded; hypercorn decodes it.
    url = app.url_for("user_file", name="é ?#%", rest="x y/z", _query={"v": "1&2"})
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        response = await http.get(url)
    assert (response.status_code, response.text) == (200, "é ?#%:x y/z:1&2")


def test_router_names_are_namespaced() -> None:
    app = App()
    api = Router(prefix="/api")
    admin = Router(prefix="/admin", name="staff")
    plain_router = Router()

    for router in (api, admin):

        @router.get("/items")
        async def list_items() -> list[str]:
            return []

    @plain_router.get("/health")
    async def health() -> str:
        return "ok"

    app.include(api)
    app.include(admin)
    app.include(plain_router)
    assert app.url_for("api.list_items") == "/api/items"
    assert app.url_for("staff.list_items") == "/admin/items"
    assert app.url_for("health") == "/health"
    with pytest.raises(KeyError, match="no route is named 'list_items'"):
        app.url_for("list_items")


def test_nested_routers_namespaces() -> None:
    app = App()
    api = Router(prefix="/api")
    v1 = Router(prefix="/v1/{tenant}")  # parameter segments do not make the name

    @v1.get("/items/{item_id:int}", name="item")
    async def item(tenant: str, item_id: int) -> str:
        return ""

    @v1.websocket("/feed")
    async def feed(ws: WebSocket, tenant: str) -> None: ...

    api.include(v1)
    app.include(api)
    assert app.url_for("api.v1.item", tenant="t", item_id=3) == "/api/v1/t/items/3"
    assert app.url_for("api.v1.feed", tenant="t") == "/api/v1/t/feed"
    assert [Router(prefix=p).name for p in ("", "/a-b/c", "/{x}")] == ["", "a-b.c", ""]


def test_router_name_is_checked() -> None:
    with pytest.raises(RouteDefinitionError, match="router name 'a b' must be"):
        Router(name="a b")


# ---- class-based views keep all of it ----


def test_views_are_checked_like_functions() -> None:
    class WrongName:
        async def get(self, userid: int) -> str:
            return ""

    class BadReturn:
        async def get(self, user_id: int) -> int:
            return 1

    class Fine:
        token: DisconnectToken

        async def get(self, user_id: int, verbose: Annotated[bool, Query()] = False) -> dict:  # type: ignore[type-arg]  # a bare dict annotation is the point
            return {}

    class TakenByAttribute:
        user_id: int

        async def get(self) -> str:
            return str(self.user_id)

    with pytest.raises(RouteDefinitionError, match=r"WrongName.get takes path parameter"):
        App().get("/users/{user_id:int}")(WrongName)
    with pytest.raises(RouteDefinitionError, match=r"BadReturn.get is annotated to return int"):
        App().get("/users/{user_id:int}")(BadReturn)
    App().route("/users/{user_id:int}")(Fine)
    App().route("/users/{user_id:int}")(TakenByAttribute)


async def test_view_in_a_router_with_status_and_namespace() -> None:
    app = App()
    api = Router(prefix="/api")

    @api.route("/items/{item_id:int}")
    class Items:
        item_id: int

        async def get(self) -> JSONResponse:
            return JSONResponse({"id": self.item_id}, status=203)

    app.include(api)
    assert app.url_for("api.Items", item_id=5) == "/api/items/5"
    async with TestClient(app) as client:
        response = await client.get("/api/items/5")
    assert (response.status_code, response.json()) == (203, {"id": 5})
