"""The app's side of dependencies: defaults, overrides, and the scope="app" ones.

Theory of operation
-------------------
:class:`DependencySettings` is a base of :class:`~trioweb.App`. It holds the
app-wide ``teardown_timeout``, the route-wide ``dependencies``,
``dependency_overrides`` and ``app.state``, and runs the ``Depends(fn,
scope="app")`` dependencies: each is set up once, at startup, inside the
lifespan context, and torn down at shutdown in reverse order, after
``app.nursery`` has drained (the lifespan's order, see ``_lifespan``).

When overrides are read:

* a request-scoped dependency's override, at every request (the route's graph
  is re-resolved once per set of overrides, then cached);
* a scope="app" dependency's override, once, when the lifespan starts: its
  stand-in is what is set up, and every request gets its value. Changing it
  later cannot take effect (the value exists already), so a request that
  finds the override changed since startup fails loudly (a RuntimeError,
  hence a 500) rather than use the wrong one.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._depends import Graph, takes_app
from ._state import State
from ._util import describe_callable

if TYPE_CHECKING:
    from ._markers import Depends

Overrides = dict[Callable[..., Any], Callable[..., Any]]


class DependencySettings:
    """The app's side of dependencies (a base of :class:`~trioweb.App`).

    Attributes:
        teardown_timeout: Default seconds a teardown may take, shielded.
        dependencies: Run for every route, HTTP and WebSocket, after
            ``before_request`` / ``before_websocket``.
        dependency_overrides: ``{dependency: stand-in}``, for tests. Read at
            every request, but for scope="app" dependencies: once, at startup.
        state: App-wide resources, set up in lifespan.
    """

    def __init__(self, teardown_timeout: float, dependencies: Sequence[Depends]) -> None:
        if not teardown_timeout > 0:
            raise ValueError("teardown_timeout must be a positive number of seconds")
        self.teardown_timeout = teardown_timeout
        self.dependencies = tuple(dependencies)
        self.dependency_overrides: Overrides = {}
        self.state = State()
        self._app_scoped: list[Callable[..., Any]] = []  # in first-declared order
        self._app_values: dict[Callable[..., Any], object] = {}
        #: What was set up for each scope="app" dependency: itself or its stand-in.
        self._app_made_by: dict[Callable[..., Any], Callable[..., Any]] = {}

    def add_app_scoped(self, graph: Graph | None) -> None:
        """Remember the scope="app" dependencies of a route's graph, for startup."""
        if graph is not None:
            for call in graph.app_scoped:
                if call not in self._app_scoped:
                    self._app_scoped.append(call)

    def app_value(self, call: Callable[..., Any]) -> object:
        """The value of a scope="app" dependency, set up at startup."""
        try:
            return self._app_values[call]
        except KeyError:
            raise RuntimeError(
                f"app-scoped dependency {describe_callable(call)} is not set up: "
                "the app's lifespan has not started (serve it, or use TestClient)"
            ) from None

    def graph_with_overrides(self, graph: Graph) -> Graph:
        """``graph`` with ``dependency_overrides`` applied (only called when there are some).

        Raises:
            RuntimeError: The override of a scope="app" dependency changed
                since startup, which read it.
        """
        for call in graph.app_scoped:
            made_by = self._app_made_by.get(call)
            if made_by is not None and made_by is not self.dependency_overrides.get(call, call):
                raise RuntimeError(
                    f"dependency_overrides[{describe_callable(call)}] changed after startup: "
                    "a scope='app' dependency is set up once, when the lifespan starts; "
                    "set its override before (before entering the TestClient)"
                )
        return graph.with_overrides(self.dependency_overrides)

    def lifespan_with_dependencies(
        self, inner: Callable[[], contextlib.AbstractAsyncContextManager[object]] | None
    ) -> Callable[[], contextlib.AbstractAsyncContextManager[object]] | None:
        """The lifespan context, with the scope="app" dependencies inside it."""
        if not self._app_scoped:
            return inner

        @contextlib.asynccontextmanager
        async def context() -> AsyncIterator[None]:
            async with contextlib.AsyncExitStack() as stack:
                if inner is not None:
                    await stack.enter_async_context(inner())
                stack.callback(self._app_made_by.clear)
                stack.callback(self._app_values.clear)
                for call in self._app_scoped:
                    # Read here, once: the value is made now, for every request.
                    stand_in = self.dependency_overrides.get(call, call)
                    chain = f"dependency_overrides[{describe_callable(call)}]"
                    made = stand_in(self) if takes_app(stand_in, chain) else stand_in()
                    if inspect.isasyncgen(made):
                        value = await stack.enter_async_context(_generator_context(made))
                    elif hasattr(made, "__aenter__"):
                        value = await stack.enter_async_context(made)
                    else:
                        value = await made if inspect.isawaitable(made) else made
                    self._app_values[call] = value
                    self._app_made_by[call] = stand_in
                yield  # torn down in reverse, after app.nursery has drained

        return context


@contextlib.asynccontextmanager
async def _generator_context(generator: Any) -> AsyncIterator[object]:
    async with contextlib.aclosing(generator):
        value = await generator.__anext__()
        try:
            yield value
        except BaseException as error:
            with contextlib.suppress(StopAsyncIteration):
                await generator.athrow(error)
            raise
        with contextlib.suppress(StopAsyncIteration):
            await generator.__anext__()
