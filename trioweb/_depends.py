"""Dependencies: a graph resolved when the route is declared, its values computed per request.

Theory of operation
-------------------
``Annotated[Tx, Depends(transaction)]`` marks a parameter (of a handler, or of
another dependency) as the value of ``transaction``. When the route is
declared, :func:`resolve` walks the graph from the handler: each dependency
gets a binding plan of its own (it takes what a handler takes), a cycle, an
unbindable parameter or a second body anywhere is a
:class:`~trioweb.RouteDefinitionError` naming the chain
(``create → transaction → connection``), and the nodes are put in dependency
order, a node used twice (with ``cache=True``) once. Every query, header,
cookie and body parameter of the whole graph is merged into one binding plan,
so that a request's data is parsed once and every bad field of the graph is
reported in one 422, at its own loc.

The graph's setup is then written out as one coroutine function
(``_setup_code``). Per request, it only computes values: one node at a time,
in order, each async generator run to its ``yield`` and each async context
manager entered, their exits pushed on a stack that ``_solve`` unwinds in
reverse order (:class:`~._solve.Teardowns`):

* after a handler returned a plain response, *before* it is sent, so that a
  failing commit becomes a 500 and the client never sees success for work
  not committed; after the last byte of a stream or file, which may use the
  dependency (the exchange does that); for a WebSocket, when the handler and
  its nursery's tasks have ended, before trioweb's close;
* on an exception or a cancellation (a disconnect, the route's timeout,
  shutdown, an abort): the exception is thrown into each generator at its
  ``yield`` (so ``async with conn.transaction()`` rolls back).

Every teardown runs shielded from cancellation, with a deadline (the
dependency's ``teardown_timeout``, else the app's): a disconnect cannot stop
it halfway, and one that overruns is cancelled and logged at WARNING. A
teardown that raises after a successful handler makes the request fail (a
500, logged); one that raises during an exception or cancellation is logged
and does not mask it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, final

import attrs

from ._binding import BODY_SOURCES, BindingPlan, Depends, Source, make_plan
from ._blocking import check_callback
from ._endpoint import getter_of, never_awaits, never_suspends
from ._errors import BlockingCallbackError, RouteDefinitionError
from ._setup_code import Getter, Kind, Node, SetUp, compile_setup
from ._util import describe_callable

#: Makes a plan for a callable: what the app's route kind offers.
Planner = Callable[[Callable[..., Any]], BindingPlan]


def _kind(call: Callable[..., Any], chain: str) -> Kind:
    if inspect.isasyncgenfunction(call):
        return Kind.GENERATOR
    if inspect.iscoroutinefunction(call):
        return Kind.COROUTINE
    if inspect.isasyncgenfunction(inspect.unwrap(call)) or (
        isinstance(call, type) and hasattr(call, "__aenter__")
    ):
        # @asynccontextmanager, or a class that is one: decided here, so that
        # what a sync function returns is its value, never entered per request.
        return Kind.CONTEXT
    try:
        check_callback(call)
    except (TypeError, BlockingCallbackError) as error:
        raise RouteDefinitionError(f"{chain}: a dependency {error}") from None
    return Kind.SYNC


@final
@attrs.frozen
class Graph:
    """A route's dependencies in dependency order, and how the handler takes them."""

    nodes: tuple[Node, ...]
    #: Every data parameter of the graph, the handler's included, renamed apart.
    plan: BindingPlan
    #: (parameter, key) of the handler's own request data.
    data: tuple[tuple[str, str], ...]
    #: (parameter or None for a route-wide dependency, node index).
    needs: tuple[tuple[str | None, int], ...]
    #: Re-resolves the graph with ``app.dependency_overrides`` applied.
    rebuild: Callable[[Mapping[Callable[..., Any], Callable[..., Any]]], Graph] = attrs.field(
        eq=False, repr=False
    )
    #: Sets the nodes up and returns the handler's arguments (see ``_setup_code``).
    set_up: SetUp = attrs.field(eq=False, repr=False)
    #: Whether any node may yield to Trio: if none does, and neither does the
    #: handler, the request needs no scope (see ``Endpoint.needs_scope``).
    suspends: bool = attrs.field(init=False)
    #: Each scope="app" dependency (as declared: the key of its value and override).
    app_scoped: tuple[Callable[..., Any], ...] = ()
    #: Whether a dependency takes the request's nursery.
    needs_nursery: bool = attrs.field(init=False)
    _overridden: dict[tuple[Any, ...], Graph] = attrs.field(
        factory=dict, eq=False, repr=False, init=False
    )

    @suspends.default
    def _suspends(self) -> bool:
        return any(node.suspends for node in self.nodes)

    @needs_nursery.default
    def _needs_nursery(self) -> bool:
        return any(node.takes_nursery for node in self.nodes)

    def with_overrides(self, overrides: Mapping[Callable[..., Any], Callable[..., Any]]) -> Graph:
        """This graph with ``overrides`` applied (resolved once per set of overrides)."""
        key = tuple(overrides.items())
        graph = self._overridden.get(key)
        if graph is None:
            graph = self._overridden[key] = self.rebuild(overrides)
        return graph


def _suspends(call: Callable[..., Any], kind: Kind) -> bool:
    if kind is Kind.SYNC:
        return False
    if kind is Kind.COROUTINE:
        return not never_suspends(call)
    if kind is Kind.GENERATOR:
        return not never_awaits(call)
    return True  # a context manager's __aenter__/__aexit__: unknown


def takes_app(call: Callable[..., Any], chain: str) -> bool:
    """Whether a scope="app" dependency takes the App (it takes that or nothing).

    Raises:
        RouteDefinitionError: It takes more than one parameter.
    """
    try:
        count = len(inspect.signature(call).parameters)
    except (TypeError, ValueError):
        count = 0
    if count > 1:
        raise RouteDefinitionError(
            f"{chain}: a scope='app' dependency runs at startup; it takes the App or nothing"
        )
    return count == 1


def _short(function: Callable[..., Any]) -> str:
    """How a chain spells a function: its bare name (``create → transaction``)."""
    return getattr(function, "__name__", None) or describe_callable(function)


def resolve(
    root: str,
    root_plan: BindingPlan,
    *,
    planner: Planner,
    getter: Callable[[Any], Getter | None],
    teardown_timeout: float,
    extra: Sequence[Depends] = (),
    overrides: Mapping[Callable[..., Any], Callable[..., Any]] | None = None,
) -> Graph | None:
    """The dependency graph of a handler, or None if it has no dependencies.

    Args:
        root: The handler's name, first in chains.
        root_plan: The handler's plan.
        planner: Makes a dependency's plan (the route kind's sources).
        getter: The exchange getter of a path or injected binder.
        teardown_timeout: The app's default teardown deadline.
        extra: Route-wide dependencies (the app's, the router's): run, value unused.
        overrides: Replacements (``app.dependency_overrides``).

    Raises:
        RouteDefinitionError: A cycle, an unbindable parameter or two bodies in
            the graph, naming the chain.
    """
    wanted = [b for b in root_plan.binders if b.source is Source.DEPENDS]
    if not wanted and not extra:
        return None
    replace = dict(overrides or {})
    nodes: list[Node] = []
    cached: dict[Callable[..., Any], int] = {}
    data_binders = []
    bodies: list[str] = []

    def collect(plan: BindingPlan, prefix: str, chain: str) -> tuple[tuple[str, str], ...]:
        data = []
        for binder in plan.data_binders:
            key = f"{prefix}{binder.name}"
            data_binders.append(attrs.evolve(binder, name=key))
            data.append((binder.name, key))
            if binder.source in BODY_SOURCES:
                bodies.append(f"{chain} (parameter {binder.name!r})")
        return tuple(data)

    def visit(marker: Depends, chain: list[str]) -> int:
        call = replace.get(marker.dependency, marker.dependency)
        name = _short(marker.dependency)
        here = " → ".join([*chain, name])
        if marker.dependency in [c for c, _ in active]:
            raise RouteDefinitionError(f"dependency cycle: {here}")
        if marker.scope == "app":
            # Keyed by the dependency as declared: its override is applied once,
            # at startup (see _app_depends), never per request.
            call = marker.dependency
            if call not in app_scoped:
                takes_app(call, here)
                app_scoped[call] = len(nodes)
                nodes.append(Node(call, describe_callable(call), Kind.APP, (), (), (), 0.0, False))
            return app_scoped[call]
        if marker.cache and call in cached:
            return cached[call]
        kind = _kind(call, here)
        try:
            plan = planner(call)
        except RouteDefinitionError as error:
            raise RouteDefinitionError(f"{here}: {error}") from None
        active.append((marker.dependency, name))
        needs = tuple(
            (b.name, visit(b.body_type, [*chain, name]))  # type: ignore[arg-type]
            for b in plan.binders
            if b.source is Source.DEPENDS
        )
        active.pop()
        index = len(nodes)
        path, getters = _injected(plan, getter)
        nodes.append(
            Node(
                call,
                describe_callable(call),
                kind,
                getters,
                collect(plan, f"{index}:", here),
                needs,
                marker.teardown_timeout or teardown_timeout,
                _suspends(call, kind),
                Source.NURSERY in plan.sources,
                path,
            )
        )
        if marker.cache:
            cached[call] = index
        return index

    active: list[tuple[Callable[..., Any], str]] = []
    app_scoped: dict[Callable[..., Any], int] = {}
    needs: list[tuple[str | None, int]] = [(None, visit(marker, [root])) for marker in extra]
    needs += [(b.name, visit(b.body_type, [root])) for b in wanted]  # type: ignore[arg-type]
    data = collect(root_plan, "", root)
    if len(bodies) > 1:
        raise RouteDefinitionError(
            "the dependency graph has more than one body parameter: " + "; ".join(bodies)
        )

    def rebuild(new: Mapping[Callable[..., Any], Callable[..., Any]]) -> Graph:
        graph = resolve(
            root,
            root_plan,
            planner=planner,
            getter=getter,
            teardown_timeout=teardown_timeout,
            extra=extra,
            overrides=new,
        )
        assert graph is not None  # the same markers
        return graph

    path, getters = _injected(root_plan, getter)
    set_up = compile_setup(
        root,
        tuple(nodes),
        path=path,
        getters=getters,
        data=data,
        needs=tuple((name, index) for name, index in needs if name is not None),
    )
    plan = BindingPlan(tuple(data_binders))
    return Graph(tuple(nodes), plan, data, tuple(needs), rebuild, set_up, tuple(app_scoped))


def _injected(
    plan: BindingPlan, getter: Callable[[Any], Getter | None]
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, Getter], ...]]:
    """(parameter, key) of the path parameters and (parameter, getter) of the injected objects."""
    path = tuple((b.name, b.key) for b in plan.binders if b.source is Source.PATH)
    getters = tuple(
        (b.name, g)
        for b in plan.binders
        if b.source is not Source.PATH and (g := getter(b)) is not None
    )
    return path, getters


def route_graph(
    handler: Callable[..., Any],
    plan: BindingPlan,
    *,
    path_params: Mapping[str, str],
    injectable: Mapping[type, Source],
    allowed: frozenset[Source],
    teardown_timeout: float,
    extra: Sequence[Depends],
) -> Graph | None:
    """:func:`resolve` for a route: its dependencies take what its handler may."""

    def planner(call: Callable[..., Any]) -> BindingPlan:
        return make_plan(
            call, path_params=path_params, injectable=injectable, allowed=allowed, what="dependency"
        )

    return resolve(
        _short(handler),
        plan,
        planner=planner,
        getter=getter_of,
        teardown_timeout=teardown_timeout,
        extra=extra,
    )
