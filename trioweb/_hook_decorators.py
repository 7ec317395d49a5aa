"""The hook decorators of an app: before and after requests, errors, startup, shutdown.

Each registration is checked when it is made (an async callable taking the
right arguments, or :class:`~trioweb.RouteDefinitionError` naming it), and
the HTTP and WebSocket hooks are kept as one frozen :class:`Hooks` value,
replaced on each registration, which every exchange is handed as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs

from ._declare import check_hook
from ._endpoint import ErrorHandler, Hooks
from ._errors import RouteDefinitionError

H = TypeVar("H", bound=Callable[..., Any])


class HookDecorators:
    """The hook registrations :class:`~trioweb.App` offers."""

    def __init__(self) -> None:
        # One frozen value, handed to every exchange; replaced when a hook is added.
        self._hooks = Hooks()
        self._on_startup: list[Callable[[], Awaitable[object]]] = []
        self._on_shutdown: list[Callable[[], Awaitable[object]]] = []

    def before_request(self, hook: H) -> H:
        """Run ``await hook(request)`` before each handler, inside the request's scope.

        A hook that returns something other than None answers the request
        with it, and the handler does not run.

        Raises:
            RouteDefinitionError: ``hook`` is not async, or cannot take one argument.
        """
        check_hook(hook, "before_request hook", ("request",))
        self._hooks = attrs.evolve(self._hooks, before_request=(*self._hooks.before_request, hook))
        return hook

    def before_websocket(self, hook: H) -> H:
        """Run ``await hook(websocket)`` before each WebSocket handler, before the handshake.

        ``before_request`` hooks take a :class:`~trioweb.Request` and run for
        HTTP requests only; a WebSocket has no request body or response, so it
        gets hooks of its own. A hook that returns something other than None
        refuses the handshake with it as an HTTP response (a
        :class:`~trioweb.Response`, or anything a handler may return), and the
        handler does not run.

        Raises:
            RouteDefinitionError: ``hook`` is not async, or cannot take one argument.
        """
        check_hook(hook, "before_websocket hook", ("websocket",))
        hooks = self._hooks
        self._hooks = attrs.evolve(hooks, before_websocket=(*hooks.before_websocket, hook))
        return hook

    def after_request(self, hook: H) -> H:
        """Run ``await hook(request, response)`` after each handler; it may return
        a replacement response (None keeps the one it was given).

        Raises:
            RouteDefinitionError: ``hook`` is not async, or cannot take two arguments.
        """
        check_hook(hook, "after_request hook", ("request", "response"))
        self._hooks = attrs.evolve(self._hooks, after_request=(*self._hooks.after_request, hook))
        return hook

    def errorhandler(self, key: type[BaseException] | int) -> Callable[[H], H]:
        """Answer an exception from a handler or hook with ``await handler(request, error)``.

        ``key`` is an exception type (subclasses match too; the closest wins),
        or an HTTP status, which matches an :class:`~trioweb.HTTPError` with it.

        Raises:
            TypeError: ``key`` is neither.
            RouteDefinitionError: ``key`` is a status no HTTPError has, or the
                handler is not async or cannot take two arguments.
        """
        if not (isinstance(key, int) or (isinstance(key, type) and issubclass(key, BaseException))):
            raise TypeError(f"errorhandler() takes an exception type or a status, not {key!r}")
        if isinstance(key, int) and not 400 <= key <= 599:
            raise RouteDefinitionError(
                f"errorhandler({key}): an HTTPError has a status from 400 to 599, "
                f"so {key} is never raised"
            )

        def decorate(handler: H) -> H:
            check_hook(handler, "errorhandler", ("request", "error"))
            handlers: dict[type[BaseException] | int, ErrorHandler] = {
                **self._hooks.error_handlers,
                key: handler,
            }
            self._hooks = attrs.evolve(self._hooks, error_handlers=handlers)
            return handler

        return decorate

    def on_startup(self, hook: H) -> H:
        """Run ``await hook()`` at startup, before the first request.

        Raises:
            RouteDefinitionError: ``hook`` is not async, or needs arguments.
        """
        check_hook(hook, "on_startup hook", ())
        self._on_startup.append(hook)
        return hook

    def on_shutdown(self, hook: H) -> H:
        """Run ``await hook()`` at shutdown, after the last request.

        Raises:
            RouteDefinitionError: ``hook`` is not async, or needs arguments.
        """
        check_hook(hook, "on_shutdown hook", ())
        self._on_shutdown.append(hook)
        return hook
