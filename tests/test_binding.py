"""Binding plans: decided at decoration time, errors name the handler and parameter."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import trio

from trioweb import App, DisconnectToken, Request, RouteDefinitionError, WebSocket
from trioweb._binding import Binder, Source
from trioweb.testing import TestClient


async def uses_everything(
    item_id: int, request: Request, token: DisconnectToken, nursery: trio.Nursery, app: App
) -> None: ...


def test_plan_for_every_injectable() -> None:
    app = App()
    app.get("/items/{item_id:int}")(uses_everything)
    (route,) = app._routes.routes()
    assert route.endpoint.plan.binders == (
        Binder("item_id", Source.PATH, key="item_id"),
        Binder("request", Source.REQUEST),
        Binder("token", Source.TOKEN),
        Binder("nursery", Source.NURSERY),
        Binder("app", Source.APP),
    )
    assert route.endpoint.needs_nursery


class Mystery:
    pass


async def unbindable(item_id: int, mystery: Mystery) -> None: ...
async def star_args(*args: Any) -> None: ...
async def star_kwargs(**kwargs: Any) -> None: ...
async def positional_only(item_id: int, /) -> None: ...
async def wrong_type(item_id: str) -> None: ...
async def wants_websocket(ws: WebSocket) -> None: ...
def not_async(item_id: int) -> None: ...


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (unbindable, r"parameter 'mystery' of handler .*unbindable cannot be bound"),
        (star_args, r"parameter 'args' .*\*args and \*\*kwargs cannot be bound"),
        (star_kwargs, r"parameter 'kwargs' .*cannot be bound"),
        (positional_only, r"parameter 'item_id' .*positional-only"),
        (wrong_type, r"annotated str but its path converter 'int' produces int"),
        (wants_websocket, r"parameter 'ws' .*a WebSocket is not available here"),
        (not_async, r"handler .*not_async must be an async function"),
    ],
)
def test_decoration_time_errors(handler: Any, message: str) -> None:
    app = App()
    with pytest.raises(RouteDefinitionError, match=message):
        app.get("/items/{item_id:int}")(handler)


def test_unresolvable_annotation_is_a_definition_error() -> None:
    namespace: dict[str, Any] = {}
    exec("async def handler(x: 'Missing') -> None: ...", namespace)
    with pytest.raises(RouteDefinitionError, match="cannot resolve the annotations"):
        App().get("/{x}")(namespace["handler"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"methods": ["FETCH"]}, "unknown HTTP methods"),
        ({"methods": []}, "unknown HTTP methods"),
        ({"timeout": 0}, "timeout must be positive"),
    ],
)
def test_bad_route_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(RouteDefinitionError, match=message):
        App().route("/", **options)


async def test_annotation_implies_converter() -> None:
    app = App()

    @app.get("/n/{n}")
    async def number(n: int) -> dict[str, object]:
        return {"n": n, "type": type(n).__name__}

    @app.get("/u/{u}")
    async def ident(u: uuid.UUID) -> str:
        return u.hex

    async with TestClient(app) as client:
        assert (await client.get("/n/12")).json() == {"n": 12, "type": "int"}
        assert (await client.get("/n/twelve")).status_code == 404
        assert (await client.get(f"/u/{uuid.UUID(int=1)}")).text == uuid.UUID(int=1).hex


async def test_app_and_url_for() -> None:
    app = App()

    @app.get("/items/{item_id:int}", name="item")
    async def item(item_id: int, app: App) -> str:
        return app.url_for("item", item_id=item_id + 1)

    async with TestClient(app) as client:
        assert (await client.get("/items/1")).text == "/items/2"
