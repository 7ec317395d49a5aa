"""App: route decorators, lifespan, middleware, and the ASGI entry point."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, final

import attrs
import trio

from ._binding import BindingPlan, Source, annotations_of, implicit_converters, make_plan
from ._errors import HTTPError, RouteDefinitionError
from ._lifespan import run_lifespan
from ._request import Request
from ._response import Response, status_response
from ._router import Declaration, RouteDecorators, Router
from ._routing import MethodNotAllowed, Route, RouteTable, compile_path
from ._scope import HTTPExchange, Receive, Send, never_suspends
from ._token import DisconnectToken
from ._views import view_endpoints
from ._websocket import WebSocket, WebSocketExchange

logger = logging.getLogger("trioweb")

H = TypeVar("H", bound=Callable[..., Any])
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
Lifespan = Callable[["App"], contextlib.AbstractAsyncContextManager[object]]


@attrs.frozen
class Endpoint:
    """A handler with everything decided about it at decoration time."""

    handler: Callable[..., Any]
    plan: BindingPlan
    cancel_on_disconnect: bool
    timeout: float | None
    max_body_size: int
    websocket: bool = False
    # Decided here, not per request: the hot path only reads them.
    needs_nursery: bool = attrs.field(init=False)
    # False for a handler that cannot be cancelled: its code cannot suspend,
    # nothing is awaited before it, and no deadline or nursery applies.
    needs_scope: bool = attrs.field(init=False)

    @needs_nursery.default
    def _needs_nursery(self) -> bool:
        return Source.NURSERY in self.plan.sources

    @needs_scope.default
    def _needs_scope(self) -> bool:
        return (
            self.needs_nursery
            or self.plan.needs_body
            or self.timeout is not None
            or not never_suspends(self.handler)
        )


@final
class App(RouteDecorators):
    """A trioweb application: an ASGI callable with route decorators.

    Args:
        debug: Send tracebacks in 500 responses (never in production).
        callback_budget: Seconds a disconnect callback may take before it is
            reported as slow.
        max_body_size: Default limit, in bytes, of a request body; a larger
            one is answered 413. Routes may override it.
        shutdown_grace: Seconds that shutdown waits for tasks in
            :attr:`nursery` before cancelling them.
        lifespan: ``lifespan(app)`` returns an async context manager entered
            at startup (before the startup hooks) and left at shutdown (after
            the shutdown hooks).
    """

    def __init__(
        self,
        *,
        debug: bool = False,
        callback_budget: float = 0.001,
        max_body_size: int = 1024 * 1024,
        shutdown_grace: float = 5.0,
        lifespan: Lifespan | None = None,
    ) -> None:
        if callback_budget <= 0:
            raise ValueError("callback_budget must be a positive number of seconds")
        if max_body_size < 0:
            raise ValueError("max_body_size must be >= 0")
        self.debug = debug
        self.callback_budget = callback_budget
        self.max_body_size = max_body_size
        self.shutdown_grace = shutdown_grace
        self._routes: RouteTable[Endpoint] = RouteTable()
        self._websocket_routes: RouteTable[Endpoint] = RouteTable()
        self._lifespan_context = lifespan
        self._on_startup: list[Callable[[], Awaitable[object]]] = []
        self._on_shutdown: list[Callable[[], Awaitable[object]]] = []
        self._before_request: list[Callable[[Request], Awaitable[object]]] = []
        self._after_request: list[Callable[[Request, Any], Awaitable[object]]] = []
        self._error_handlers: dict[type[BaseException] | int, Callable[..., Awaitable[object]]] = {}
        # Whether any hook or error handler exists: requests without one skip them all.
        self._hooked = False
        self._nursery: trio.Nursery | None = None
        self._middleware: ASGIApp | None = None

    # ---- declaring routes ----

    def _declare(self, declaration: Declaration) -> None:
        options = dict(declaration.options)
        if options["max_body_size"] is None:
            options["max_body_size"] = self.max_body_size
        handler, path = declaration.handler, declaration.path
        annotations = annotations_of(handler)
        pattern = compile_path(path, implicit_converters(annotations))
        path_params = {param: c.name for param, c in pattern.converters.items()}
        name = declaration.name or handler.__name__
        if isinstance(handler, type):
            if declaration.websocket:
                raise RouteDefinitionError(
                    f"WebSocket route {path!r} needs a function, not a class"
                )
            for method, (view_handler, plan) in view_endpoints(
                handler, path_params=path_params, injectable=_INJECTABLE, allowed=_HTTP_SOURCES
            ).items():
                endpoint = Endpoint(view_handler, plan, **options)
                self._routes.add(Route(pattern, frozenset({method}), handler, endpoint, name))
            return
        plan = make_plan(
            handler,
            path_params=path_params,
            injectable=_INJECTABLE,
            annotations=annotations,
            allowed=_WEBSOCKET_SOURCES if declaration.websocket else _HTTP_SOURCES,
        )
        endpoint = Endpoint(handler, plan, websocket=declaration.websocket, **options)
        # WebSocket routes live in a table of their own: the same path may serve both.
        table = self._websocket_routes if declaration.websocket else self._routes
        table.add(Route(pattern, declaration.methods, handler, endpoint, name))

    def include(self, router: Router) -> None:
        """Add the routes declared on ``router``, under its prefix."""
        for declaration in router.declarations:
            self._declare(attrs.evolve(declaration, path=router.prefix + declaration.path))

    # ---- hooks ----

    def before_request(self, hook: H) -> H:
        """Run ``await hook(request)`` before each handler, inside the request's scope.

        A hook that returns something other than None answers the request
        with it, and the handler does not run.
        """
        self._before_request.append(hook)
        self._hooked = True
        return hook

    def after_request(self, hook: H) -> H:
        """Run ``await hook(request, response)`` after each handler; it may return
        a replacement response (None keeps the one it was given)."""
        self._after_request.append(hook)
        self._hooked = True
        return hook

    def errorhandler(self, key: type[BaseException] | int) -> Callable[[H], H]:
        """Answer an exception from a handler or hook with ``await handler(request, error)``.

        ``key`` is an exception type (subclasses match too; the closest wins),
        or an HTTP status, which matches an :class:`~trioweb.HTTPError` with it.
        """
        if not (isinstance(key, int) or (isinstance(key, type) and issubclass(key, BaseException))):
            raise TypeError(f"errorhandler() takes an exception type or a status, not {key!r}")

        def decorate(handler: H) -> H:
            self._error_handlers[key] = handler
            self._hooked = True
            return handler

        return decorate

    def _error_handler_for(self, error: BaseException) -> Callable[..., Awaitable[object]] | None:
        if isinstance(error, HTTPError) and error.status in self._error_handlers:
            return self._error_handlers[error.status]
        for kind in type(error).__mro__:
            if kind in self._error_handlers:
                return self._error_handlers[kind]
        return None

    def url_for(self, name: str, **params: object) -> str:
        """The path of the route called ``name``, with ``params`` filled in.

        Raises:
            KeyError: No route has that name.
            ValueError: The parameters do not fit the route's path.
        """
        try:
            return self._routes.url_for(name, params)
        except KeyError:
            return self._websocket_routes.url_for(name, params)

    # ---- lifespan ----

    def on_startup(self, hook: H) -> H:
        """Run ``await hook()`` at startup, before the first request."""
        self._on_startup.append(hook)
        return hook

    def on_shutdown(self, hook: H) -> H:
        """Run ``await hook()`` at shutdown, after the last request."""
        self._on_shutdown.append(hook)
        return hook

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
        return run_lifespan(self, scope, receive, send)

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
            found = self._routes.match(scope["path"], scope["method"])
            if found is None:
                return _send_plain(send, status_response(404))
            if isinstance(found, MethodNotAllowed):
                return _send_plain(
                    send, status_response(405, headers={"allow": found.allow_header})
                )
            return HTTPExchange(
                self, found.route.endpoint, found.params, scope, receive, send
            ).run()
        if kind == "websocket":
            found = self._websocket_routes.match(scope["path"], "GET")
            if found is None or isinstance(found, MethodNotAllowed):
                return _reject_websocket(send, scope)
            endpoint = found.route.endpoint
            return WebSocketExchange(self, endpoint, found.params, scope, receive, send).run()
        if kind == "lifespan":
            return self._lifespan(scope, receive, send)
        raise ValueError(f"trioweb cannot serve ASGI scope type {kind!r}")

    def run(self, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
        """Serve the app on hypercorn until SIGINT or SIGTERM (blocking).

        See :func:`trioweb.serve` for ``options``.
        """
        from ._serve import run

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
_WEBSOCKET_SOURCES = frozenset(Source) - {Source.REQUEST, Source.JSON, Source.RAW, Source.FORM}


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
