"""App: route decorators, lifespan, middleware, and the ASGI entry point."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, final

import attrs
import trio

from ._binding import BindingPlan, Source, annotations_of, implicit_converters, make_plan
from ._errors import RouteDefinitionError
from ._request import Request
from ._response import Response, status_response
from ._routing import MethodNotAllowed, Route, RouteTable, compile_path
from ._scope import HTTPExchange, Receive, Send
from ._token import DisconnectToken
from ._websocket import WebSocket, WebSocketExchange

logger = logging.getLogger("trioweb")

H = TypeVar("H", bound=Callable[..., Awaitable[object]])
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@attrs.frozen
class Endpoint:
    """A handler with everything decided about it at decoration time."""

    handler: Callable[..., Any]
    plan: BindingPlan
    cancel_on_disconnect: bool
    timeout: float | None
    max_body_size: int
    websocket: bool = False
    # Decided here, not per request: the hot path only reads it.
    needs_nursery: bool = attrs.field(init=False)

    @needs_nursery.default
    def _needs_nursery(self) -> bool:
        return Source.NURSERY in self.plan.sources


@final
class App:
    """A trioweb application: an ASGI callable with route decorators.

    Args:
        debug: Send tracebacks in 500 responses (never in production).
        callback_budget: Seconds a disconnect callback may take before it is
            reported as slow.
        max_body_size: Default limit, in bytes, of a request body; a larger
            one is answered 413. Routes may override it.
        shutdown_grace: Seconds that shutdown waits for tasks in
            :attr:`nursery` before cancelling them.
    """

    def __init__(
        self,
        *,
        debug: bool = False,
        callback_budget: float = 0.001,
        max_body_size: int = 1024 * 1024,
        shutdown_grace: float = 5.0,
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
        self._on_startup: list[Callable[[], Awaitable[object]]] = []
        self._on_shutdown: list[Callable[[], Awaitable[object]]] = []
        self._nursery: trio.Nursery | None = None
        self._asgi: ASGIApp = self._dispatch

    # ---- declaring routes ----

    def route(
        self,
        path: str,
        *,
        methods: Iterable[str] = ("GET",),
        name: str | None = None,
        cancel_on_disconnect: bool = True,
        timeout: float | None = None,
        max_body_size: int | None = None,
    ) -> Callable[[H], H]:
        """Route ``methods`` on ``path`` to the decorated handler.

        Args:
            path: The path, with ``{name}`` or ``{name:converter}`` parameters
                (converters: str, int, float, uuid, path).
            methods: The HTTP methods. GET also answers HEAD.
            name: The name for :meth:`url_for` (default: the handler's name).
            cancel_on_disconnect: When False, a disconnect sets the token and
                runs its callbacks but the handler runs to completion; its
                response is then discarded.
            timeout: Seconds before the handler is cancelled and the client
                gets 504.
            max_body_size: This route's request body limit (413 past it).

        Raises:
            RouteDefinitionError: The path is malformed, a parameter cannot be
                bound, or the method and path are already routed.
        """
        method_set = frozenset(method.upper() for method in methods)
        unknown = method_set - _HTTP_METHODS
        if not method_set or unknown:
            raise RouteDefinitionError(f"route {path!r}: unknown HTTP methods {sorted(unknown)}")
        if timeout is not None and timeout <= 0:
            raise RouteDefinitionError(f"route {path!r}: timeout must be positive")

        def decorate(handler: H) -> H:
            self._add(
                path,
                method_set,
                handler,
                name=name,
                cancel_on_disconnect=cancel_on_disconnect,
                timeout=timeout,
                max_body_size=self.max_body_size if max_body_size is None else max_body_size,
            )
            return handler

        return decorate

    def get(self, path: str, **options: Any) -> Callable[[H], H]:
        """``route(path, methods=["GET"], ...)``; also answers HEAD."""
        return self.route(path, methods=("GET",), **options)

    def post(self, path: str, **options: Any) -> Callable[[H], H]:
        """``route(path, methods=["POST"], ...)``."""
        return self.route(path, methods=("POST",), **options)

    def put(self, path: str, **options: Any) -> Callable[[H], H]:
        """``route(path, methods=["PUT"], ...)``."""
        return self.route(path, methods=("PUT",), **options)

    def patch(self, path: str, **options: Any) -> Callable[[H], H]:
        """``route(path, methods=["PATCH"], ...)``."""
        return self.route(path, methods=("PATCH",), **options)

    def delete(self, path: str, **options: Any) -> Callable[[H], H]:
        """``route(path, methods=["DELETE"], ...)``."""
        return self.route(path, methods=("DELETE",), **options)

    def websocket(
        self, path: str, *, name: str | None = None, cancel_on_disconnect: bool = True
    ) -> Callable[[H], H]:
        """Route WebSocket connections on ``path`` to the decorated handler.

        The handler gets a :class:`~trioweb.WebSocket` by annotation, and runs
        in the same structured scope as an HTTP handler: a client that goes
        away sets its token and cancels it (see :class:`~trioweb.WebSocket`).
        """

        def decorate(handler: H) -> H:
            self._add(
                path,
                frozenset({"GET"}),
                handler,
                name=name,
                cancel_on_disconnect=cancel_on_disconnect,
                timeout=None,
                max_body_size=0,
                websocket=True,
            )
            return handler

        return decorate

    def _add(
        self,
        path: str,
        methods: frozenset[str],
        handler: Callable[..., Any],
        *,
        name: str | None,
        websocket: bool = False,
        **options: Any,
    ) -> None:
        annotations = annotations_of(handler)
        pattern = compile_path(path, implicit_converters(annotations))
        plan = make_plan(
            handler,
            path_params={param: c.name for param, c in pattern.converters.items()},
            injectable=_INJECTABLE,
            annotations=annotations,
            allowed=_WEBSOCKET_SOURCES if websocket else _HTTP_SOURCES,
        )
        endpoint = Endpoint(handler, plan, websocket=websocket, **options)
        # WebSocket routes live in a table of their own: the same path may serve both.
        table = self._websocket_routes if websocket else self._routes
        table.add(Route(pattern, methods, handler, endpoint, name or handler.__name__))

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

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        failure: str | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    for hook in self._on_startup:
                        await hook()
                except Exception as error:
                    logger.exception("startup hook failed")
                    await send({"type": "lifespan.startup.failed", "message": repr(error)})
                    nursery.cancel_scope.cancel()
                    return
                await send({"type": "lifespan.startup.complete"})
                await receive()
                try:
                    for hook in self._on_shutdown:
                        await hook()
                except Exception as error:
                    logger.exception("shutdown hook failed")
                    failure = repr(error)
                nursery.cancel_scope.deadline = trio.current_time() + self.shutdown_grace
        finally:
            self._nursery = None
        if failure is None:
            await send({"type": "lifespan.shutdown.complete"})
        else:
            await send({"type": "lifespan.shutdown.failed", "message": failure})

    # ---- middleware and the ASGI entry ----

    def add_middleware(self, middleware: Callable[..., ASGIApp], **options: Any) -> None:
        """Wrap the app in a plain ASGI middleware: ``middleware(app, **options)``.

        The last one added is the outermost. Middleware must pass ``receive``
        through (or wrap it without hiding ``http.disconnect``) for disconnects
        to reach the framework.
        """
        self._asgi = middleware(self._asgi, **options)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """The ASGI 3 entry point."""
        await self._asgi(scope, receive, send)

    async def _dispatch(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            found = self._routes.match(scope["path"], scope["method"])
            if isinstance(found, MethodNotAllowed):
                await _send_plain(send, status_response(405, headers={"allow": found.allow_header}))
            elif found is None:
                await _send_plain(send, status_response(404))
            else:
                endpoint = found.route.endpoint
                await HTTPExchange(self, endpoint, found.params, scope, receive, send).run()
        elif kind == "websocket":
            found = self._websocket_routes.match(scope["path"], "GET")
            if found is None or isinstance(found, MethodNotAllowed):
                await _reject_websocket(send, scope)
            else:
                endpoint = found.route.endpoint
                await WebSocketExchange(self, endpoint, found.params, scope, receive, send).run()
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
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
_WEBSOCKET_SOURCES = frozenset(Source) - {Source.REQUEST}


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
