"""Route decorators, shared by App and Router, and Router itself."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, final

import attrs

from ._errors import RouteDefinitionError

H = TypeVar("H", bound=Callable[..., Any])

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
VIEW_METHODS = ("get", "post", "put", "patch", "delete", "options")


@attrs.frozen
class Declaration:
    """One route as declared: what ``App`` registers, or ``Router`` keeps for later."""

    path: str
    methods: frozenset[str]
    handler: Callable[..., Any]
    name: str | None
    websocket: bool
    options: dict[str, Any]


class RouteDecorators:
    """``route``, ``get``, ``post``, ..., ``websocket``: each declares a route."""

    def _declare(self, declaration: Declaration) -> None:
        raise NotImplementedError

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
        """Route ``methods`` on ``path`` to the decorated handler (or class-based view).

        Args:
            path: The path, with ``{name}`` or ``{name:converter}`` parameters
                (converters: str, int, float, uuid, path).
            methods: The HTTP methods. GET also answers HEAD. For a class, its
                ``get``/``post``/... methods decide instead.
            name: The name for ``url_for`` (default: the handler's name).
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
        unknown = method_set - HTTP_METHODS
        if not method_set or unknown:
            raise RouteDefinitionError(f"route {path!r}: unknown HTTP methods {sorted(unknown)}")
        if timeout is not None and timeout <= 0:
            raise RouteDefinitionError(f"route {path!r}: timeout must be positive")
        options = {
            "cancel_on_disconnect": cancel_on_disconnect,
            "timeout": timeout,
            "max_body_size": max_body_size,
        }

        def decorate(handler: H) -> H:
            self._declare(Declaration(path, method_set, handler, name, False, options))
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
        self,
        path: str,
        *,
        name: str | None = None,
        cancel_on_disconnect: bool = True,
        max_message_size: int | None = None,
    ) -> Callable[[H], H]:
        """Route WebSocket connections on ``path`` to the decorated handler.

        The handler gets a :class:`~trioweb.WebSocket` by annotation and runs in
        the same structured scope as an HTTP handler: a client that goes away
        sets its token and cancels it.

        Args:
            max_message_size: Bytes a message from the client may have; a larger
                one closes the conversation with 1009 (default: the app's
                ``websocket_max_message_size``).
        """
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size must be >= 0")
        options = {
            "cancel_on_disconnect": cancel_on_disconnect,
            "timeout": None,
            # An Endpoint's body limit is a WebSocket route's message limit.
            "max_body_size": max_message_size,
        }

        def decorate(handler: H) -> H:
            self._declare(Declaration(path, frozenset({"GET"}), handler, name, True, options))
            return handler

        return decorate


@final
class Router(RouteDecorators):
    """A group of routes under a common prefix, included into an App later.

    ::

        api = Router(prefix="/api")

        @api.get("/items/{item_id:int}")
        async def item(item_id: int) -> dict: ...

        app.include(api)
    """

    def __init__(self, prefix: str = "") -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise RouteDefinitionError(
                f"router prefix {prefix!r} must start with '/' and not end with one"
            )
        self.prefix = prefix
        self.declarations: list[Declaration] = []

    def _declare(self, declaration: Declaration) -> None:
        self.declarations.append(declaration)

    def include(self, router: Router) -> None:
        """Add ``router``'s routes to this one, under this router's prefix."""
        for declaration in router.declarations:
            self.declarations.append(
                attrs.evolve(declaration, path=router.prefix + declaration.path)
            )
