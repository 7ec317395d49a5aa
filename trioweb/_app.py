"""App: route decorators, lifespan, middleware, and the ASGI entry point."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, final

import trio

from ._app_depends import DependencySettings
from ._binding import BindingPlan, Depends, Source, annotations_of, implicit_converters, make_plan
from ._data_rate import DEFAULT_MIN_RATE, MinDataRate
from ._declare import check_endpoint
from ._depends import route_graph
from ._endpoint import Endpoint
from ._errors import HTTPError, RouteDefinitionError
from ._exchange import Receive, Send
from ._hook_decorators import HookDecorators
from ._lifespan import LifespanPlan, run_lifespan
from ._request import Request
from ._response import Response, status_response
from ._router import Declaration, RouteDecorators, Router, handler_name, included
from ._routing import MethodNotAllowed, Route, RouteTable, compile_path
from ._scope import HTTPExchange
from ._token import DisconnectToken
from ._util import describe_callable
from ._views import view_endpoints
from ._websocket import WebSocket
from ._websocket_exchange import LiveWebSockets, WebSocketExchange

logger = logging.getLogger("trioweb")

H = TypeVar("H", bound=Callable[..., Any])
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
Lifespan = Callable[["App"], contextlib.AbstractAsyncContextManager[object]]


@final
class App(RouteDecorators, HookDecorators, DependencySettings):
    """A trioweb application: an ASGI callable with route decorators.

    Args:
        debug: Send tracebacks in 500 responses (never in production).
        callback_budget: Seconds a disconnect callback may take before it is
            reported as slow.
        max_body_size: Default limit, in bytes, of a request body; a larger
            one is answered 413. Routes may override it.
        shutdown_grace: Seconds that shutdown waits for tasks in
            :attr:`nursery` before cancelling them.
        websocket_max_message_size: Default limit, in bytes, of a message
            from a WebSocket client; a larger one closes the conversation with
            1009. Routes may override it.
        websocket_buffer_size: Bytes of received WebSocket messages held for a
            handler that has not read them yet; past it, reading stops until
            the handler catches up (backpressure to the client).
        min_response_rate: The slowest a client may read a response: past
            it the connection is closed and the request abandoned as too slow
            (default: 240 bytes/s after 5 s, as Kestrel). None for no minimum.
            Routes may override it.
        min_request_rate: The slowest a client may send a request body: past
            it the request is answered 408 (default: 240 bytes/s after 5 s).
            None for no minimum. Routes may override it.
        lifespan: ``lifespan(app)`` returns an async context manager entered
            at startup (before the startup hooks) and left at shutdown (after
            the shutdown hooks).
        teardown_timeout: Default seconds a dependency's teardown may take (shielded).
        dependencies: :class:`Depends` run for every route, after ``before_request``.
    """

    def __init__(
        self,
        *,
        debug: bool = False,
        callback_budget: float = 0.001,
        max_body_size: int = 1024 * 1024,
        shutdown_grace: float = 5.0,
        websocket_max_message_size: int = 1024 * 1024,
        websocket_buffer_size: int = 4 * 1024 * 1024,
        lifespan: Lifespan | None = None,
        teardown_timeout: float = 5.0,
        dependencies: Sequence[Depends] = (),
        min_response_rate: MinDataRate | None = DEFAULT_MIN_RATE,
        min_request_rate: MinDataRate | None = DEFAULT_MIN_RATE,
    ) -> None:
        if callback_budget <= 0:
            raise ValueError("callback_budget must be a positive number of seconds")
        if max_body_size < 0:
            raise ValueError("max_body_size must be >= 0")
        if websocket_max_message_size < 0 or websocket_buffer_size <= 0:
            raise ValueError(
                "websocket_max_message_size must be >= 0 and websocket_buffer_size > 0"
            )
        self.websocket_max_message_size = websocket_max_message_size
        self.websocket_buffer_size = websocket_buffer_size
        self.debug = debug
        self.callback_budget = callback_budget
        self.max_body_size = max_body_size
        self.shutdown_grace = shutdown_grace
        DependencySettings.__init__(self, teardown_timeout, dependencies)
        self.min_response_rate = min_response_rate
        self.min_request_rate = min_request_rate
        super().__init__()
        self._routes: RouteTable[Endpoint] = RouteTable()
        self._websocket_routes: RouteTable[Endpoint] = RouteTable()
        self._lifespan_context = lifespan
        self._nursery: trio.Nursery | None = None
        self._shutting_down = False
        self._websockets = LiveWebSockets()
        self._middleware: ASGIApp | None = None

    # ---- declaring routes ----

    def _declare(self, declaration: Declaration) -> None:
        options = dict(declaration.options)
        if options["max_body_size"] is None:
            options["max_body_size"] = (
                self.websocket_max_message_size if declaration.websocket else self.max_body_size
            )
        for option in ("min_response_rate", "min_request_rate"):
            rate = options.get(option)  # None: the app's; False: none
            options[option] = getattr(self, option) if rate is None else rate or None
        handler, path = declaration.handler, declaration.path
        annotations = annotations_of(handler)
        pattern = compile_path(path, implicit_converters(annotations))
        path_params = {param: c.name for param, c in pattern.converters.items()}
        name = declaration.name or handler_name(handler)
        if isinstance(handler, type):
            if declaration.websocket:
                raise RouteDefinitionError(
                    f"WebSocket route {path!r} needs a function, not a class"
                )
            endpoints = view_endpoints(
                handler, path_params=path_params, injectable=_INJECTABLE, allowed=_HTTP_SOURCES
            )
            for view_handler, plan in endpoints.values():
                check_endpoint(path, pattern.param_names, inspect.unwrap(view_handler), plan)
            for method, (view_handler, plan) in endpoints.items():
                endpoint = _endpoint(self, view_handler, plan, path_params, declaration, options)
                self._routes.add(Route(pattern, frozenset({method}), handler, endpoint, name))
            return
        plan = make_plan(
            handler,
            path_params=path_params,
            injectable=_INJECTABLE,
            annotations=annotations,
            allowed=_WEBSOCKET_SOURCES if declaration.websocket else _HTTP_SOURCES,
        )
        if declaration.websocket:
            if Source.WEBSOCKET not in plan.sources:
                # Without one it could never accept: every client would get 403.
                raise RouteDefinitionError(
                    f"WebSocket handler {describe_callable(handler)} takes no WebSocket: "
                    "add a parameter annotated trioweb.WebSocket"
                )
            check_endpoint(path, pattern.param_names, handler, plan, annotations, returns=False)
        else:
            check_endpoint(path, pattern.param_names, handler, plan, annotations)
        endpoint = _endpoint(self, handler, plan, path_params, declaration, options)
        # WebSocket routes live in a table of their own: the same path may serve both.
        table = self._websocket_routes if declaration.websocket else self._routes
        table.add(Route(pattern, declaration.methods, handler, endpoint, name))

    def include(self, router: Router) -> None:
        """Add the routes declared on ``router``, under its prefix and name.

        A route named ``item`` in ``Router(prefix="/api")`` is ``"api.item"``
        here (see :class:`Router`).
        """
        for declaration in router.declarations:
            self._declare(included(declaration, router.prefix, router.name, router.dependencies))

    # ---- paths ----

    def url_for(
        self, name: str, /, *, _query: Mapping[str, object] | None = None, **params: object
    ) -> str:
        """The path of the route called ``name``, with ``params`` filled in.

        Values are percent-encoded (a ``{x:path}`` value keeps its slashes).
        ``name`` is positional-only, so a path parameter may be called ``name``.

        Args:
            name: The route's name; in a :class:`Router`, with the router's
                name first (``"api.list_items"``).
            _query: A query string to append (a list value repeats its key).
            params: The path parameters.

        Raises:
            KeyError: No route has that name.
            ValueError: The parameters do not fit the route's path.
        """
        try:
            return self._routes.url_for(name, params, _query)
        except KeyError:
            return self._websocket_routes.url_for(name, params, _query)

    # ---- lifespan ----

    @property
    def shutting_down(self) -> bool:
        """Whether the server has begun a graceful shutdown (see :meth:`shutdown_started`)."""
        return self._shutting_down

    def shutdown_started(self) -> None:
        """What :func:`trioweb.serve` calls when a graceful shutdown begins.

        From then on, a request still running when the server's graceful
        period ends is cancelled by shutdown: its token is set with
        :attr:`~trioweb.DisconnectReason.SERVER_SHUTDOWN`, and one INFO line
        names it. Every open WebSocket gets its token set and a 1001 "going
        away" close at once, so that its client can leave cleanly in time.
        Another server (or ``TestClient.shutdown()``) may call it too.
        """
        self._shutting_down = True
        self._websockets.going_away()

    @property
    def nursery(self) -> trio.Nursery:
        """A nursery for work that must outlive a request, open while the app runs.

        Shutdown waits ``shutdown_grace`` seconds for its tasks, then cancels them.

        Raises:
            RuntimeError: The app is not running (no lifespan startup yet).
        """
        if self._nursery is None:
            raise RuntimeError(
                "App.nursery exists only between lifespan startup and shutdown; "
                "serve the app with trioweb.serve or use it inside trioweb.testing.TestClient"
            )
        return self._nursery

    def _lifespan(self, scope: dict[str, Any], receive: Receive, send: Send) -> Awaitable[None]:
        self._shutting_down = False  # a new run of the app (served again, another test client)
        context = self._lifespan_context and functools.partial(self._lifespan_context, self)
        plan = LifespanPlan(
            context=self.lifespan_with_dependencies(context),
            on_startup=tuple(self._on_startup),
            on_shutdown=tuple(self._on_shutdown),
            shutdown_grace=self.shutdown_grace,
            set_nursery=self._set_nursery,
        )
        return run_lifespan(plan, scope, receive, send)

    def _set_nursery(self, nursery: trio.Nursery | None) -> None:
        self._nursery = nursery

    # ---- middleware and the ASGI entry ----

    def add_middleware(self, middleware: Callable[..., ASGIApp], **options: Any) -> None:
        """Wrap the app in a plain ASGI middleware: ``middleware(app, **options)``.

        The last one added is the outermost. Middleware must pass ``receive``
        through (or wrap it without hiding ``http.disconnect``) for disconnects
        to reach the framework.
        """
        self._middleware = middleware(self._middleware or self._dispatch, **options)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """The ASGI 3 entry point."""
        if self._middleware is None:
            # The common case, one frame shorter: every held request keeps its frames.
            await self._route(scope, receive, send)
        else:
            await self._middleware(scope, receive, send)

    async def _dispatch(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """The innermost app of the middleware chain."""
        await self._route(scope, receive, send)

    def _route(self, scope: dict[str, Any], receive: Receive, send: Send) -> Awaitable[None]:
        """What serves ``scope``, ready to await."""
        kind = scope["type"]
        if kind == "http":
            found = self._routes.find(scope["path"], scope["method"])
            hooks = self._hooks
            if found is None:
                if hooks.hooked:  # errorhandler(404) and after_request see it too
                    return HTTPExchange(self, hooks, _NOT_FOUND, {}, scope, receive, send).run()
                return _send_plain(send, status_response(404))
            if isinstance(found, MethodNotAllowed):
                allow = found.allow_header
                if hooks.hooked:
                    return HTTPExchange(
                        self, hooks, _NOT_ALLOWED, {"allow": allow}, scope, receive, send
                    ).run()
                return _send_plain(send, status_response(405, headers={"allow": allow}))
            route, params = found
            return HTTPExchange(self, hooks, route.endpoint, params, scope, receive, send).run()
        if kind == "websocket":
            found = self._websocket_routes.find(scope["path"], "GET")
            if found is None or isinstance(found, MethodNotAllowed):
                return _reject_websocket(send, scope)
            route, params = found
            return WebSocketExchange(
                self, self._hooks, route.endpoint, params, scope, receive, send, self._websockets
            ).run()
        if kind == "lifespan":
            return self._lifespan(scope, receive, send)
        raise ValueError(f"trioweb cannot serve ASGI scope type {kind!r}")

    def run(self, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
        """Serve the app on hypercorn until SIGINT or SIGTERM (blocking).

        See :func:`trioweb.serve` for ``options``.
        """
        from ._supervise import run

        run(self, host=host, port=port, **options)


_INJECTABLE = {
    Request: Source.REQUEST,
    DisconnectToken: Source.TOKEN,
    trio.Nursery: Source.NURSERY,
    App: Source.APP,
    WebSocket: Source.WEBSOCKET,
}
_HTTP_SOURCES = frozenset(Source) - {Source.WEBSOCKET}
# A WebSocket handshake has no body; everything else binds as for HTTP.
_WEBSOCKET_SOURCES = frozenset(Source) - {
    Source.REQUEST,
    Source.JSON,
    Source.RAW,
    Source.FORM,
}


def _endpoint(
    app: App,
    handler: Callable[..., Any],
    plan: BindingPlan,
    path_params: Mapping[str, str],
    declaration: Declaration,
    options: Mapping[str, Any],
) -> Endpoint:
    """The endpoint of one route (or one method of a view), its dependencies resolved."""
    # App-wide and router-wide dependencies run for WebSocket routes too (auth,
    # say), after the before_websocket hooks, as for HTTP after before_request.
    graph = route_graph(
        handler,
        plan,
        path_params=path_params,
        injectable=_INJECTABLE,
        allowed=_WEBSOCKET_SOURCES if declaration.websocket else _HTTP_SOURCES,
        teardown_timeout=app.teardown_timeout,
        extra=(*app.dependencies, *declaration.dependencies),
    )
    app.add_app_scoped(graph)
    return Endpoint(handler, plan, websocket=declaration.websocket, dependencies=graph, **options)


async def _not_found() -> None:
    raise HTTPError(404)


async def _method_not_allowed(allow: str) -> None:
    raise HTTPError(405, headers={"allow": allow})


def _routing_endpoint(handler: Callable[..., Awaitable[None]]) -> Endpoint:
    # What a request no route matched runs, when the app has hooks to run.
    plan = make_plan(handler, path_params={"allow": "str"}, injectable={}, allowed=_HTTP_SOURCES)
    return Endpoint(handler, plan, cancel_on_disconnect=True, timeout=None, max_body_size=0)


_NOT_FOUND = _routing_endpoint(_not_found)
_NOT_ALLOWED = _routing_endpoint(_method_not_allowed)


async def _send_plain(send: Send, response: Response) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": response.raw_headers(),
        }
    )
    await send({"type": "http.response.body", "body": response.body})


async def _reject_websocket(send: Send, scope: dict[str, Any]) -> None:
    # Without the http.response extension the server decides the status (403).
    if "websocket.http.response" in scope.get("extensions", {}):
        response = status_response(404)
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 404,
                "headers": response.raw_headers(),
            }
        )
        await send({"type": "websocket.http.response.body", "body": response.body})
    else:
        await send({"type": "websocket.close", "code": 1008})
