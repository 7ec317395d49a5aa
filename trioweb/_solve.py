"""Per request: a route's dependency graph set up, in order, and torn down, shielded.

See :mod:`._depends` for the theory of operation: the graph is decided when the
route is declared; this module only computes values and runs teardowns.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, final

import trio

from ._depends import Graph, Kind, Node
from ._getters import extract
from ._response import Response, to_response

logger = logging.getLogger("trioweb")


@final
class Teardowns:
    """The exits of one request's dependencies, unwound in reverse order."""

    __slots__ = ("_exits",)

    def __init__(self) -> None:
        self._exits: list[tuple[Node, Any]] = []

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
                    if error is None and node.kind is Kind.GENERATOR:  # the hot path, inline
                        try:
                            await handle.__anext__()
                        except StopAsyncIteration:
                            continue
                        await handle.aclose()
                        raise RuntimeError(f"dependency {node.name} yielded more than once")
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
    if node.kind is Kind.GENERATOR:
        try:
            if error is None:
                await handle.__anext__()
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


async def enter(node: Node, kwargs: dict[str, object], teardowns: Teardowns) -> object:
    """Set up one dependency: its value, its teardown pushed on ``teardowns``."""
    kind = node.kind
    if kind is Kind.COROUTINE:
        return await node.call(**kwargs)
    if kind is Kind.GENERATOR:
        generator = node.call(**kwargs)
        try:
            value = await generator.__anext__()
        except StopAsyncIteration:
            raise RuntimeError(f"dependency {node.name} did not yield") from None
        teardowns.push(node, generator)
        return value
    made = node.call(**kwargs)
    if kind is Kind.CONTEXT or hasattr(made, "__aenter__"):
        value = await made.__aenter__()
        teardowns.push(node, made)
        return value
    return made


async def call_with_dependencies(side: Any) -> Any:
    """Set up the handler's dependencies, call it, and tear them down.

    For a plain response the teardowns run here, before it is sent; for a
    stream or a file they are left on ``side.teardowns`` for after its last
    byte. Per request, this only loops over what was decided at declaration;
    the common kinds are written out here, a frame less per dependency.

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
    if side.app.dependency_overrides:
        graph = graph.with_overrides(side.app.dependency_overrides)
    teardowns = Teardowns()
    try:
        if graph.plan.getters:
            scope = side.scope
            values = extract(
                graph.plan,
                query_string=scope.get("query_string", b""),
                raw_headers=scope.get("headers", ()),
                body=await side.read_body() if graph.plan.needs_body else None,
            )
        results: list[object] = []
        for node in graph.nodes:
            kwargs = {name: get(side) for name, get in node.getters} if node.getters else {}
            for name, key in node.data:
                kwargs[name] = values[key]
            for name, index in node.needs:
                kwargs[name] = results[index]
            kind = node.kind
            if kind is Kind.GENERATOR:
                generator = node.call(**kwargs)
                try:
                    results.append(await generator.__anext__())
                except StopAsyncIteration:
                    raise RuntimeError(f"dependency {node.name} did not yield") from None
                teardowns.push(node, generator)
            elif kind is Kind.COROUTINE:
                results.append(await node.call(**kwargs))
            elif kind is Kind.APP:
                results.append(side.app.app_value(node.call))
            else:
                results.append(await enter(node, kwargs, teardowns))
        handler_kwargs: dict[str, object] = endpoint.injected(side) if endpoint.getters else {}
        for name, key in graph.data:
            handler_kwargs[name] = values[key]
        for param, index in graph.needs:
            if param is not None:
                handler_kwargs[param] = results[index]
        response = to_response(await endpoint.handler(**handler_kwargs), endpoint.status_code)
    except BaseException as error:
        await teardowns.unwind(error)
        raise
    if isinstance(response, Response):
        await teardowns.unwind(None)
    else:
        side.teardowns = teardowns
    return response
