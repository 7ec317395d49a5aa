"""The request pipeline: hooks, binding, the handler, error handlers, in that order.

routing → ``before_request`` → binding → handler → ``after_request``. An auth
hook therefore answers (a 401, say) before binding could reveal a route's
parameters in a 422. Whatever answers the request, the handler, an early hook,
an error handler or trioweb itself (404, 405, 413, 422, 500, 504), the
``after_request`` hooks see the response.

Everything here runs inside the request scope and is driven by the exchange
through ``watched()``: the first time any of it yields to Trio, the disconnect
watcher starts. It reads the exchange only through :class:`PipelineSide`.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._binding import extract
from ._endpoint import Endpoint, Hooks
from ._errors import HTTPError
from ._files import FileResponse
from ._outcome import Outcome
from ._response import Response, StreamingResponse, error_response, to_response
from ._solve import Teardowns, call_with_dependencies

AnyResponse = Response | StreamingResponse | FileResponse


class DataSide(Protocol):
    """What binding the request's data needs of an exchange."""

    endpoint: Endpoint
    scope: dict[str, Any]
    app: Any


class PipelineSide(DataSide, Protocol):
    """What the pipeline needs of an exchange."""

    hooks: Hooks
    params: dict[str, object]
    #: Teardowns left for the exchange to run after the last byte of a stream or file.
    teardowns: Teardowns | None

    def get_request(self) -> Any: ...
    async def read_body(self) -> bytes: ...


def request_data(side: DataSide, body: bytes | None) -> dict[str, object]:
    """The values of the handler's query, header, cookie and body parameters.

    Raises:
        HTTPError: 400, 415 or 422 (RequestValidationError) for bad data.
    """
    scope = side.scope
    return extract(
        side.endpoint.plan,
        query_string=scope.get("query_string", b""),
        raw_headers=scope.get("headers", ()),
        body=body,
    )


async def arguments(side: PipelineSide) -> dict[str, object]:
    """The handler's keyword arguments: injected objects, then the request's data.

    Raises:
        HTTPError: 400, 415 or 422 (RequestValidationError) for bad data.

    Cancellation:
        A body read (see ``Request.body()``), if the handler binds the body.
    """
    endpoint = side.endpoint
    kwargs = endpoint.injected(side)
    plan = endpoint.plan
    if plan.data_binders:
        scope = side.scope
        kwargs.update(
            extract(
                plan,
                query_string=scope.get("query_string", b""),
                raw_headers=scope.get("headers", ()),
                body=await side.read_body() if plan.needs_body else None,
            )
        )
    return kwargs


def call_now(side: PipelineSide, body: bytes | None) -> object:
    """Run a handler that cannot suspend (see ``never_suspends``) to its end, now.

    For a route without hooks, outside any scope: nothing in it can be
    cancelled. Dependencies run too, when none of them can suspend either.

    Args:
        side: The exchange.
        body: The whole body, for a handler that binds it (None if it does not).

    Returns:
        What the handler returned, or the response to an HTTPError it (or
        binding) raised.

    Raises:
        Exception: What the handler raised, but an HTTPError.
    """
    endpoint = side.endpoint
    handler = endpoint.handler
    try:
        if endpoint.dependencies is not None:
            coro = call_with_dependencies(side)
        elif endpoint.params_are_kwargs:  # the common case: path parameters, or nothing
            coro = handler(**side.params)
        else:
            kwargs = endpoint.injected(side)
            if endpoint.plan.data_binders:
                kwargs.update(request_data(side, body))
            coro = handler(**kwargs)
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value
        coro.close()
        raise RuntimeError(f"{handler!r} suspended, though its code has no await")
    except HTTPError as error:
        return error_response(error)


async def run_pipeline(side: PipelineSide) -> AnyResponse:
    """Answer the request: hooks, binding, the handler, error handlers, then after hooks.

    Raises:
        Exception: Whatever a hook, the handler or an error handler raised
            and no error handler answered (the exchange makes it a 500).

    Cancellation:
        Runs in the request scope: a disconnect, the route's deadline or an
        abort cancel it wherever it is.
    """
    hooks = side.hooks
    status = None  # the route's status_code applies to what the handler returns only
    try:
        for before in hooks.before_request:
            early = await before(side.get_request())
            if early is not None:
                result: object = early
                break
        else:
            if side.endpoint.dependencies is None:
                result = await side.endpoint.handler(**await arguments(side))
            else:
                result = await call_with_dependencies(side)
            status = side.endpoint.status_code
    except Exception as error:
        result = await answer_error(side, error)
        status = None
    response = to_response(result, status)
    return await after_hooks(side, response) if hooks.after_request else response


async def answer_error(side: PipelineSide, error: Exception) -> object:
    """What an error handler (or, for an HTTPError, trioweb) answers to ``error``.

    Raises:
        Exception: ``error`` itself, when nothing answers it.
    """
    handler = side.hooks.error_handler_for(error)
    if handler is not None:
        return await handler(side.get_request(), error)
    if isinstance(error, HTTPError):
        return error_response(error)
    raise error


async def after_hooks(side: PipelineSide, response: AnyResponse) -> AnyResponse:
    """Let each ``after_request`` hook see, and maybe replace, the response."""
    for after in side.hooks.after_request:
        replaced = await after(side.get_request(), response)
        if replaced is not None:
            response = to_response(replaced)
    return response


async def answer_status(side: PipelineSide, error: HTTPError) -> AnyResponse:
    """A response trioweb makes itself (404, 405, 413, 504), through the app's hooks.

    An ``errorhandler`` for its status may answer instead, and the
    ``after_request`` hooks see it, as for any other response.
    """
    try:
        result = await answer_error(side, error)
    except HTTPError as raised:  # the error handler raised one of its own
        result = error_response(raised)
    return await after_hooks(side, to_response(result))


def outcome_error(outcome: Outcome | None, max_body_size: int) -> HTTPError | None:
    """What trioweb answers for an outcome it set itself: 504, 413 or 408.

    None for the others: after an abort or a disconnect nothing is sent, and
    a failure is answered where it is caught.
    """
    if outcome is Outcome.TIMED_OUT:
        return HTTPError(504, "the handler did not answer in time")
    if outcome is Outcome.TOO_LARGE:
        return HTTPError(413, f"the body exceeds {max_body_size} bytes")
    if outcome is Outcome.TOO_SLOW:
        return HTTPError(408, "the request body arrived too slowly")
    return None
