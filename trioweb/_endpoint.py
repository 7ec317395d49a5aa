"""Endpoints and hooks: everything decided about a route when it is declared (pure).

Per request, the exchange only reads what is here. An :class:`Endpoint` holds
the handler, its binding plan and its policy, and the getters that fetch each
injected argument from the exchange, compiled once, so that binding is a loop
over functions rather than an if-chain per parameter. :class:`Hooks` is the
frozen value of an app's hooks and error handlers that the app hands to every
exchange, so that no exchange reads the app's private attributes.
"""

from __future__ import annotations

import dis
import inspect
import operator
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._binding import Binder, BindingPlan, Source
from ._data_rate import DEFAULT_MIN_RATE, MinDataRate
from ._errors import HTTPError

if TYPE_CHECKING:
    from ._depends import Graph  # cycle-ok: annotation only

#: Fetches one injected argument from the exchange (see ``_exchange.Exchange``).
Getter = Callable[[Any], object]

# What a suspension point compiles to, in every supported Python (a superset:
# the names of other versions' opcodes simply never occur).
_SUSPENDING_OPS = frozenset(
    {
        "YIELD_VALUE",
        "YIELD_FROM",
        "SEND",
        "GET_AWAITABLE",
        "GET_AITER",
        "GET_ANEXT",
        "BEFORE_ASYNC_WITH",
        "SETUP_ASYNC_WITH",
    }
)


def never_awaits(generator: Callable[..., Any]) -> bool:
    """Whether ``generator`` is an async generator function whose code has no ``await``,
    ``async for`` or ``async with``: it suspends to its caller at its ``yield`` only,
    never to Trio, so nothing can cancel its setup or its teardown."""
    function = generator.__func__ if isinstance(generator, types.MethodType) else generator
    if not isinstance(function, types.FunctionType):
        return False
    code = function.__code__
    if not code.co_flags & inspect.CO_ASYNC_GENERATOR:
        return False
    awaiting = _SUSPENDING_OPS - {"YIELD_VALUE"}  # a yield hands the value back: no trap
    return not any(op.opname in awaiting for op in dis.get_instructions(code))


def never_suspends(handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` is a coroutine function whose own code cannot suspend.

    Such a handler has no ``await``, ``async for`` or ``async with``: it runs
    to its end in one step, so nothing can cancel it and it needs no request
    scope. Anything else (wrappers, partials, classes) counts as suspending.
    """
    function = handler.__func__ if isinstance(handler, types.MethodType) else handler
    if not isinstance(function, types.FunctionType):
        return False
    code = function.__code__
    if not code.co_flags & inspect.CO_COROUTINE:
        return False
    return not any(op.opname in _SUSPENDING_OPS for op in dis.get_instructions(code))


# How each injected source is fetched from an exchange: attribute reads and
# bound-method calls, the cheapest things Python does.
_INJECTED_GETTERS: Mapping[Source, Getter] = {
    Source.REQUEST: lambda exchange: exchange.get_request(),
    Source.TOKEN: lambda exchange: exchange.get_token(),
    Source.NURSERY: operator.attrgetter("nursery"),
    Source.APP: operator.attrgetter("app"),
    Source.WEBSOCKET: operator.attrgetter("websocket"),
}


def getter_of(binder: Binder) -> Getter | None:
    """How the exchange fetches a path parameter or injected object (None for the rest)."""
    if binder.source is Source.PATH:
        key = binder.key
        return lambda exchange: exchange.params[key]
    return _INJECTED_GETTERS.get(binder.source)


@attrs.frozen
class Endpoint:
    """A handler with everything decided about it at decoration time."""

    handler: Callable[..., Any]
    plan: BindingPlan
    cancel_on_disconnect: bool
    timeout: float | None
    max_body_size: int
    websocket: bool = False
    #: The status of a plain value the handler returns (None: 200, or 204 for None).
    status_code: int | None = None
    #: Its dependencies (see ``_depends``), None if it has none.
    dependencies: Graph | None = None
    #: The slowest a client may read the response (None: no minimum).
    min_response_rate: MinDataRate | None = DEFAULT_MIN_RATE
    #: The slowest a client may send the request body (None: no minimum).
    min_request_rate: MinDataRate | None = DEFAULT_MIN_RATE
    #: The handler's name, for log lines and errors.
    name: str = attrs.field(init=False)
    #: (parameter name, getter) for every path parameter and injected object.
    getters: tuple[tuple[str, Getter], ...] = attrs.field(init=False)
    needs_nursery: bool = attrs.field(init=False)
    #: Whether the handler takes the path parameters and nothing else, so that
    #: the route's match is its keyword arguments as it is (every path
    #: parameter is taken: ``_declare.check_endpoint``).
    params_are_kwargs: bool = attrs.field(init=False)
    # False for a handler that cannot be cancelled: its code cannot suspend,
    # nothing is awaited before it, and no deadline or nursery applies.
    needs_scope: bool = attrs.field(init=False)
    #: True when reading the body it binds is all that may suspend: with the
    #: whole body already queued by the server, it too runs without a scope.
    unscoped_with_body: bool = attrs.field(init=False)

    @name.default
    def _name(self) -> str:
        return getattr(self.handler, "__qualname__", None) or repr(self.handler)

    @getters.default
    def _getters(self) -> tuple[tuple[str, Getter], ...]:
        compiled = ((binder.name, getter_of(binder)) for binder in self.plan.binders)
        return tuple((name, getter) for name, getter in compiled if getter is not None)

    @needs_nursery.default
    def _needs_nursery(self) -> bool:
        # A dependency's nursery is the request's too: open before the setup.
        graph = self.dependencies
        return Source.NURSERY in self.plan.sources or (graph is not None and graph.needs_nursery)

    @params_are_kwargs.default
    def _params_are_kwargs(self) -> bool:
        return all(
            binder.source is Source.PATH and binder.key == binder.name
            for binder in self.plan.binders
        )

    @needs_scope.default
    def _needs_scope(self) -> bool:
        return self.plan.needs_body or self._suspends()

    @unscoped_with_body.default
    def _unscoped_with_body(self) -> bool:
        # Not with dependencies: they read the body themselves (see _solve).
        return self.plan.needs_body and self.dependencies is None and not self._suspends()

    def _suspends(self) -> bool:
        """Whether anything but a body read may suspend or be cancelled."""
        return (
            (self.dependencies is not None and self.dependencies.suspends)
            or self.needs_nursery
            or self.timeout is not None
            or not never_suspends(self.handler)
        )

    def injected(self, exchange: object) -> dict[str, object]:
        """The handler's path parameters and injected objects, fetched from ``exchange``."""
        return {name: getter(exchange) for name, getter in self.getters}


BeforeHook = Callable[[Any], Awaitable[object]]
AfterHook = Callable[[Any, Any], Awaitable[object]]
ErrorHandler = Callable[[Any, BaseException], Awaitable[object]]


@attrs.frozen
class Hooks:
    """An app's hooks and error handlers, as one value every exchange shares."""

    before_request: tuple[BeforeHook, ...] = ()
    after_request: tuple[AfterHook, ...] = ()
    before_websocket: tuple[BeforeHook, ...] = ()
    error_handlers: Mapping[type[BaseException] | int, ErrorHandler] = attrs.field(factory=dict)
    #: Whether any HTTP hook or error handler exists: requests without one skip them all.
    hooked: bool = attrs.field(init=False)

    @hooked.default
    def _hooked(self) -> bool:
        return bool(self.before_request or self.after_request or self.error_handlers)

    def error_handler_for(self, error: BaseException) -> ErrorHandler | None:
        """The handler registered for ``error``: its status, else the closest type."""
        if isinstance(error, HTTPError) and error.status in self.error_handlers:
            return self.error_handlers[error.status]
        for kind in type(error).__mro__:
            if kind in self.error_handlers:
                return self.error_handlers[kind]
        return None

    def status_handler_for(self, status: int) -> ErrorHandler | None:
        """The handler registered for a status trioweb answers itself (404, 405, 413...)."""
        return self.error_handlers.get(status)
