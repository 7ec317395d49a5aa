"""Per request: a route's dependency graph set up, in order, and torn down, shielded.

See :mod:`._depends` for the theory of operation: the graph is decided when the
route is declared; this module only computes values and runs teardowns.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, final

import trio

from ._depends import Graph
from ._getters import extract
from ._response import Response, to_response
from ._setup_code import Kind, Node

logger = logging.getLogger("trioweb")


_GENERATOR = Kind.GENERATOR
_NO_VALUES: dict[str, object] = {}
#: A dependency's exit: (its node, the generator or context manager to finish).
Exit = tuple[Node, Any]


@final
class Teardowns:
    """The exits of one request's dependencies, unwound in reverse order."""

    __slots__ = ("_exits",)

    def __init__(self, exits: list[Exit] | None = None) -> None:
        self._exits: list[Exit] = [] if exits is None else exits

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
        kwargs = await graph.set_up(side, values, exits)
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
