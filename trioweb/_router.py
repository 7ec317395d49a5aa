"""Route decorators, shared by App and Router, and Router itself."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar, final

import attrs

from ._data_rate import MinDataRate
from ._errors import RouteDefinitionError
from ._util import describe_callable

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
    #: Route-wide dependencies of the routers it was declared on (outermost first).
    dependencies: tuple[Any, ...] = ()


class RouteDecorators:
    """``route``, ``get``, ``post``, ..., ``websocket``: each declares a route."""

    #: How the decorators are spelled in error messages (``@app.get``).
    _spelled = "app"

    def _declare(self, declaration: Declaration) -> None:
        raise NotImplementedError

    def route(
        self,
        path: str,
        *,
        methods: str | Iterable[str] = ("GET",),
        name: str | None = None,
        status_code: int | None = None,
        cancel_on_disconnect: bool = True,
        timeout: float | None = None,
        max_body_size: int | None = None,
        min_response_rate: MinDataRate | Literal[False] | None = None,
        min_request_rate: MinDataRate | Literal[False] | None = None,
    ) -> Callable[[H], H]:
        """Route ``methods`` on ``path`` to the decorated handler (or class-based view).

        Args:
            path: The path, with ``{name}`` or ``{name:converter}`` parameters
                (converters: str, int, float, uuid, path).
            methods: The HTTP methods (one as a str, or several). GET also
                answers HEAD. For a class, its ``get``/``post``/... methods
                decide instead.
            name: The name for ``url_for`` (default: the handler's name). In a
                :class:`Router`, it is prefixed with the router's name.
            status_code: The status of a value the handler returns (default
                200, and 204 for None). A returned response object keeps its own.
            cancel_on_disconnect: When False, a disconnect sets the token and
                runs its callbacks but the handler runs to completion; its
                response is then discarded.
            timeout: Seconds before the handler is cancelled and the client
                gets 504.
            max_body_size: This route's request body limit (413 past it).
            min_response_rate: The slowest a client may read the response
                before it is abandoned as too slow (default: the app's);
                False for none, as for a long poll.
            min_request_rate: The slowest a client may send the request body
                before it is answered 408 (default: the app's); False for none.

        Raises:
            RouteDefinitionError: The path is malformed, a parameter cannot be
                bound, a path parameter is taken by no handler parameter, the
                return annotation is something trioweb cannot send, or the
                method and path are already routed.
        """
        return self._route_decorator(
            "route",
            path,
            methods,
            name,
            status_code,
            cancel_on_disconnect,
            timeout,
            max_body_size,
            {"min_response_rate": min_response_rate, "min_request_rate": min_request_rate},
        )

    def _route_decorator(
        self,
        decorator: str,
        path: str,
        methods: str | Iterable[str],
        name: str | None,
        status_code: int | None,
        cancel_on_disconnect: bool,
        timeout: float | None,
        max_body_size: int | None,
        rates: dict[str, MinDataRate | Literal[False] | None],
    ) -> Callable[[H], H]:
        self._check_path(decorator, path)
        for option, rate in rates.items():
            if rate is not None and rate is not False and not isinstance(rate, MinDataRate):
                raise RouteDefinitionError(
                    f"route {path!r}: {option} must be a trioweb.MinDataRate, False or None, "
                    f"not {rate!r}"
                )
        if isinstance(methods, str):
            methods = (methods,)  # not its letters
        method_set = frozenset(method.upper() for method in methods)
        unknown = method_set - HTTP_METHODS
        if not method_set or unknown:
            raise RouteDefinitionError(f"route {path!r}: unknown HTTP methods {sorted(unknown)}")
        if timeout is not None and timeout <= 0:
            raise RouteDefinitionError(f"route {path!r}: timeout must be positive")
        if status_code is not None and (
            type(status_code) is not int or not 200 <= status_code <= 599
        ):
            raise RouteDefinitionError(
                f"route {path!r}: status_code must be an int from 200 to 599, not {status_code!r}"
            )
        _check_name(path, name)
        options = {
            "cancel_on_disconnect": cancel_on_disconnect,
            "timeout": timeout,
            "max_body_size": max_body_size,
            "status_code": status_code,
            **rates,
        }

        def decorate(handler: H) -> H:
            self._declare(Declaration(path, method_set, handler, name, False, options))
            return handler

        return decorate

    def _check_path(self, decorator: str, path: object) -> None:
        if isinstance(path, str):
            return
        if callable(path):
            # @app.get without parentheses: the handler arrived as the path.
            raise RouteDefinitionError(
                f"@{self._spelled}.{decorator} needs a path: write "
                f'@{self._spelled}.{decorator}("/path"), with parentheses, above '
                f"{describe_callable(path)}"
            )
        raise RouteDefinitionError(
            f"@{self._spelled}.{decorator}: the path must be a str, not {type(path).__name__}"
        )

    def get(self, path: str, **options: Any) -> Callable[[H], H]:
        """``route(path, methods=["GET"], ...)``; also answers HEAD."""
        return self._shortcut("get", path, options)

    def post(self, path: str, **options: Any) -> Callable[[H], H]:
        """``route(path, methods=["POST"], ...)``."""
        return self._shortcut("post", path, options)

    def put(self, path: str, **options: Any) -> Callable[[H], H]:
        """``route(path, methods=["PUT"], ...)``."""
        return self._shortcut("put", path, options)

    def patch(self, path: str, **options: Any) -> Callable[[H], H]:
        """``route(path, methods=["PATCH"], ...)``."""
        return self._shortcut("patch", path, options)

    def delete(self, path: str, **options: Any) -> Callable[[H], H]:
        """``route(path, methods=["DELETE"], ...)``."""
        return self._shortcut("delete", path, options)

    def _shortcut(self, method: str, path: str, options: dict[str, Any]) -> Callable[[H], H]:
        if "methods" in options:
            raise RouteDefinitionError(
                f"@{self._spelled}.{method} takes no methods=; use @{self._spelled}.route"
            )
        self._check_path(method, path)
        return self.route(path, methods=(method.upper(),), **options)

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

        Raises:
            RouteDefinitionError: As for :meth:`route`, and a handler with no
                ``WebSocket`` parameter.
        """
        self._check_path("websocket", path)
        _check_name(path, name)
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size must be >= 0")
        options = {
            "cancel_on_disconnect": cancel_on_disconnect,
            "timeout": None,
            # An Endpoint's body limit is a WebSocket route's message limit.
            "max_body_size": max_message_size,
            "status_code": None,
        }

        def decorate(handler: H) -> H:
            self._declare(Declaration(path, frozenset({"GET"}), handler, name, True, options))
            return handler

        return decorate


def _check_name(path: str, name: object) -> None:
    if name is not None and (not isinstance(name, str) or not name):
        raise RouteDefinitionError(f"route {path!r}: name must be a str, not {name!r}")


_NAMESPACE = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")


def default_namespace(prefix: str) -> str:
    """A router's name when it is given none: its prefix's literal segments, dotted.

    ``/api/v1`` gives ``api.v1``; parameter segments (``{tenant}``) are left out.
    """
    return ".".join(segment for segment in prefix.split("/") if segment and "{" not in segment)


def included(
    declaration: Declaration, prefix: str, namespace: str, dependencies: tuple[Any, ...] = ()
) -> Declaration:
    """``declaration`` as it is once its router (``prefix``, ``namespace``,
    route-wide ``dependencies``) is included."""
    name = declaration.name
    if namespace:
        name = f"{namespace}.{name or handler_name(declaration.handler)}"
    return attrs.evolve(
        declaration,
        path=prefix + declaration.path,
        name=name,
        dependencies=(*dependencies, *declaration.dependencies),
    )


def handler_name(handler: Callable[..., Any]) -> str:
    """A route's default name: its handler's (or view class's) ``__name__``."""
    return getattr(handler, "__name__", None) or type(handler).__name__


@final
class Router(RouteDecorators):
    """A group of routes under a common prefix and name, included into an App later.

    ::

        api = Router(prefix="/api")

        @api.get("/items/{item_id:int}")
        async def item(item_id: int) -> dict: ...

        app.include(api)
        app.url_for("api.item", item_id=1)  # "/api/items/1"

    Args:
        prefix: The path every route's path is appended to.
        name: The namespace of its routes' names (``"api.item"``), so that two
            routers can each have an ``item``. By default, the prefix's
            literal segments joined by dots (``/api/v1`` gives ``api.v1``); an
            empty name leaves the names as they are. A router included into
            another has both names (``"api.v1.item"``).
        dependencies: ``Depends(...)`` run for each of its routes, after
            ``before_request`` and before the route's own (auth, say).

    Raises:
        RouteDefinitionError: The prefix does not start with ``/`` or ends with
            one, or the name is not dotted letters, digits, ``_`` and ``-``.
    """

    _spelled = "router"

    def __init__(
        self, prefix: str = "", *, name: str | None = None, dependencies: Sequence[Any] = ()
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise RouteDefinitionError(
                f"router prefix {prefix!r} must start with '/' and not end with one"
            )
        if name is None:
            name = default_namespace(prefix)
        if name and not _NAMESPACE.fullmatch(name):
            raise RouteDefinitionError(
                f"router name {name!r} must be letters, digits, '_' and '-', dotted"
            )
        self.prefix = prefix
        self.name = name
        self.dependencies = tuple(dependencies)
        self.declarations: list[Declaration] = []

    def _declare(self, declaration: Declaration) -> None:
        self.declarations.append(declaration)

    def include(self, router: Router) -> None:
        """Add ``router``'s routes to this one, under this router's prefix and name."""
        for declaration in router.declarations:
            self.declarations.append(
                included(declaration, router.prefix, router.name, router.dependencies)
            )
