"""Per request: a route's dependency graph set up, in order, and torn down, shielded.

See :mod:`._depends` for the theory of operation: the graph is decided when the
route is declared; this module only computes values and runs teardowns.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Awaitable
from typing import Any, final

import trio

from ._depends import Graph, Kind, Node
from ._getters import extract
from ._response import Response, to_response

logger = logging.getLogger("trioweb")


# Module globals: the cheapest lookup there is.
_GENERATOR, _COROUTINE, _CONTEXT, _APP = Kind.GENERATOR, Kind.COROUTINE, Kind.CONTEXT, Kind.APP
_NO_VALUES: dict[str, object] = {}
_get_hooks, _set_hooks = sys.get_asyncgen_hooks, sys.set_asyncgen_hooks
#: A dependency's exit: (its node, the generator or context manager to finish).
Exit = tuple[Node, Any]


@final
class Teardowns:
    """The exits of one request's dependencies, unwound in reverse order."""

    __slots__ = ("_exits",)

    def __init__(self, exits: list[Exit] | None = None) -> None:
        self._exits: list[Exit] = [] if exits is None else exits

    def push(self, node: Node, handle: Any) -> None:
        self._exits.append((node, handle))

    async def after(self, sending: Awaitable[None] | None) -> None:
        """Await ``sending`` (a stream or file, to its last byte), then unwind.

        Cancellation:
            A cancellation while sending is thrown into the teardowns (shielded).
        """
        try:
            if sending is not None:
                await sending
        except BaseException as error:
            await self.unwind(error)
            raise
        await self.unwind(None)

    async def unwind(self, error: BaseException | None) -> None:
        """Run every teardown, last set up first, each shielded with its deadline.

        Args:
            error: What ended the request (thrown into each generator), or None.

        Raises:
            Exception: The first teardown failure, when ``error`` is None.

        Cancellation:
            Shielded: each teardown runs to its end or its ``teardown_timeout``.
        """
        failure: Exception | None = None
        while self._exits:
            node, handle = self._exits.pop()
            if not node.suspends:  # it cannot yield to Trio, so nothing can cancel it
                try:
                    await _exit(node, handle, error)
                except Exception as raised:
                    failure = _failed(node, raised, error, failure)
                continue
            with trio.CancelScope(
                shield=True, deadline=trio.current_time() + node.teardown_timeout
            ) as scope:
                try:
                    await _exit(node, handle, error)
                except BaseException as raised:
                    if isinstance(raised, trio.Cancelled) and scope.cancel_called:
                        raise  # our deadline: the scope absorbs it
                    failure = _failed(node, raised, error, failure)
            if scope.cancelled_caught:
                logger.warning(
                    "teardown of dependency %s was cut off by its %.3gs teardown_timeout",
                    node.name,
                    node.teardown_timeout,
                )
                if error is None and failure is None:  # never success for work cut off
                    failure = trio.TooSlowError(f"teardown of dependency {node.name} timed out")
        if failure is not None:
            raise failure


def unwind_now(exits: list[Exit]) -> None:
    """:meth:`Teardowns.unwind` after a success, for exits that cannot suspend.

    Every exit of a graph none of whose nodes can suspend is an async
    generator with no ``await``: each is driven to its end here, synchronously,
    with no coroutine, shield or deadline, which nothing could use.

    Raises:
        Exception: The first teardown failure (the others are logged).
    """
    failure: Exception | None = None
    while exits:
        node, generator = exits.pop()
        try:
            generator.asend(None).send(None)
        except StopAsyncIteration:
            continue
        except StopIteration:  # it yielded again: close it, it is a bug
            failure = _failed(node, _yielded_twice(node, generator), None, failure)
        except Exception as raised:
            failure = _failed(node, raised, None, failure)
    if failure is not None:
        raise failure


def _yielded_twice(node: Node, generator: Any) -> RuntimeError:
    with contextlib.suppress(StopIteration, StopAsyncIteration):
        generator.aclose().send(None)
    return RuntimeError(f"dependency {node.name} yielded more than once")


def _failed(
    node: Node, raised: BaseException, error: BaseException | None, failure: Exception | None
) -> Exception | None:
    """The request's failure once ``node``'s teardown raised ``raised``.

    After a success, the first teardown failure is the request's (a 500);
    during an exception or a cancellation, it is logged and does not mask it.
    """
    if raised is error:
        return failure  # the generator let the request's own exception through
    if error is None and failure is None and isinstance(raised, Exception):
        return raised
    logger.error("teardown of dependency %s failed", node.name, exc_info=raised)
    return failure


async def _exit(node: Node, handle: Any, error: BaseException | None) -> None:
    if node.kind is _GENERATOR:
        try:
            if error is None:
                await handle.asend(None)
            else:
                await handle.athrow(error)
        except StopAsyncIteration:
            return
        await handle.aclose()
        raise RuntimeError(f"dependency {node.name} yielded more than once")
    if error is None:
        await handle.__aexit__(None, None, None)
    elif not await handle.__aexit__(type(error), error, error.__traceback__):
        raise error


async def set_up(
    side: Any, graph: Graph, values: dict[str, object], exits: list[Exit]
) -> list[object]:
    """Set up every dependency of ``graph``, in order; their exits appended to ``exits``.

    Args:
        side: The exchange (what injected parameters are fetched from).
        graph: The route's graph, overrides applied.
        values: The request's data, extracted with ``graph.plan``.
        exits: Where each teardown is pushed, as soon as its setup succeeded.

    Returns:
        The value of each node, by index.

    Raises:
        Exception: What a dependency raised (an HTTPError answers the request).

    Cancellation:
        Anywhere in a setup; what was set up is on ``exits``, for the caller
        to unwind, shielded.
    """
    results: list[object] = []
    append = results.append
    for node in graph.nodes:
        kind = node.kind
        if kind is _APP:
            append(side.app.app_value(node.call))
            continue
        if node.bare:
            made = node.call()
        else:
            kwargs = {name: get(side) for name, get in node.getters} if node.getters else {}
            for name, key in node.data:
                kwargs[name] = values[key]
            for name, index in node.needs:
                kwargs[name] = results[index]
            made = node.call(**kwargs)
        if kind is _GENERATOR:
            # The first asend() without Trio's first-iteration hook: it registers
            # each async generator (a WeakSet entry and its weakref callback, half
            # a dependency's cost), so that one abandoned half-way is finalized at
            # the end of the run, and a dependency's never is: its exit is pushed
            # at once, and every exit is run to its end or closed (Teardowns).
            # asend() only reads the hooks: no Python code runs while they are unset.
            hooks = _get_hooks()
            _set_hooks(None, None)
            try:
                step = made.asend(None)
            finally:
                _set_hooks(*hooks)
            try:
                append(await step)
            except StopAsyncIteration:
                raise RuntimeError(f"dependency {node.name} did not yield") from None
            exits.append((node, made))
        elif kind is _COROUTINE:
            append(await made)
        elif kind is _CONTEXT:
            append(await made.__aenter__())
            exits.append((node, made))
        else:  # _SYNC: what it returned is the value
            append(made)
    return results


def handler_arguments(
    side: Any, graph: Graph, values: dict[str, object], results: list[object]
) -> dict[str, object]:
    """The handler's keyword arguments: injected, its own data, its dependencies' values."""
    endpoint = side.endpoint
    kwargs: dict[str, object] = endpoint.injected(side) if endpoint.getters else {}
    for name, key in graph.data:
        kwargs[name] = values[key]
    for name, index in graph.handler_needs:
        kwargs[name] = results[index]
    return kwargs


def request_values(side: Any, graph: Graph, body: bytes | None) -> dict[str, object]:
    """The request's query, header, cookie and body values for the whole graph.

    Raises:
        HTTPError: 400, 415 or 422 for bad data anywhere in the graph.
    """
    if not graph.plan.getters:
        return _NO_VALUES
    scope = side.scope
    return extract(
        graph.plan,
        query_string=scope.get("query_string", b""),
        raw_headers=scope.get("headers", ()),
        body=body,
    )


async def call_with_dependencies(side: Any) -> Any:
    """Set up the handler's dependencies, call it, and tear them down.

    For a plain response the teardowns run here, before it is sent; for a
    stream or a file they are left on ``side.teardowns`` for after its last
    byte. Per request, this only loops over what was decided at declaration.

    Raises:
        HTTPError: 400, 415 or 422 for bad data anywhere in the graph (before
            any dependency runs).
        Exception: What the handler or a dependency raised (thrown into each
            generator's teardown first), or a teardown's failure.

    Cancellation:
        Anywhere in setup or the handler; teardowns still run, shielded.
    """
    endpoint = side.endpoint
    graph: Graph = endpoint.dependencies
    app = side.app
    if app.dependency_overrides:
        graph = app.graph_with_overrides(graph)
    exits: list[Exit] = []
    try:
        plan = graph.plan
        if plan.getters:
            body = await side.read_body() if plan.needs_body else None
            values = request_values(side, graph, body)
        else:
            values = _NO_VALUES
        results = await set_up(side, graph, values, exits)
        # handler_arguments(), written out: this is every request's path.
        kwargs = endpoint.injected(side) if endpoint.getters else {}
        for name, key in graph.data:
            kwargs[name] = values[key]
        for name, index in graph.handler_needs:
            kwargs[name] = results[index]
        response = to_response(await endpoint.handler(**kwargs), endpoint.status_code)
    except BaseException as error:
        await Teardowns(exits).unwind(error)
        raise
    if exits:
        if not isinstance(response, Response):
            side.teardowns = Teardowns(exits)  # a stream or file: after its last byte
        elif graph.suspends:
            await Teardowns(exits).unwind(None)
        else:
            unwind_now(exits)
    return response
