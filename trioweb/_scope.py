"""The structured request scope: one HTTP request from routing to the last byte.

Theory of operation
-------------------
Every request runs inside one ``trio.CancelScope``, the request scope. When the
handler asks for a ``trio.Nursery`` the scope is that nursery's cancel scope,
so its child tasks live and die with the request. A disconnect cancels that
scope, and the handler and its children unwind the way Trio cancels anything.

This module is the thin Trio driver of the exchange; the decisions are made
elsewhere:

* ``_http_state``: the phase, the outcome and the body, as a pure table;
* ``_http_receive``: who drains ``receive()``, the lazy watcher, body reads;
* ``_http_send``: every response lowered, one send path;
* ``_pipeline``: hooks, binding, the handler, error handlers.

Watching for a disconnect needs a task that keeps draining ``receive()``, and
a task per request would cost more than the rest of the framework together,
so the watcher starts lazily: user code is driven by hand through
:func:`watched`, and code that finishes without ever yielding to Trio (the
common case for plain routes) never gets one, since it cannot be cancelled
anyway. At the first yield the watcher starts and the code continues, every
Trio trap forwarded unchanged. The request scope is entered *before* the first
step, so the cancel-scope stack stays properly nested (the driving itself is
``_drive.watched``). The one exception is a handler whose own code has no
``await`` at all (``never_suspends``, decided at decoration) on a route with
nothing to await before it: it runs to its end at once, outside any scope; a
stream or file it returns is still sent inside one. A body it binds is no
reason for a scope when the server has queued all of it: it is taken without
a checkpoint first (``Receiver.take_queued``). Otherwise (part of it is still
to come, it overflowed, the client left) the scope is entered as usual, and
cancelled at once if what was taken says so, exactly as a body read inside it
would have.
"""

from __future__ import annotations

import math
import sys
import time
import traceback
from typing import Any

import trio

from ._drive import watched
from ._endpoint import Endpoint, Hooks
from ._errors import HTTPError, IOCancelledError
from ._exchange import Exchange, Receive, Send
from ._files import FileResponse
from ._http_receive import Owner, PendingIO, Receiver
from ._http_send import (
    incomplete_head,
    lower,
    lower_file,
    send_lowered,
    send_response,
    send_result,
)
from ._http_state import COMPLETE, FINISH, Effect, Event, HTTPState, Phase
from ._hypercorn import MULTIPLEXED
from ._outcome import DisconnectReason, Outcome
from ._pipeline import AnyResponse, answer_status, call_now, outcome_error, run_pipeline
from ._request import Request
from ._response import Response, error_response, to_response
from ._solve import Teardowns
from ._token import DisconnectToken

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


_NOT_RUN = object()  # the result of a handler not run yet


def overridden(exchange: Exchange) -> bool:
    """Whether ``app.dependency_overrides`` may replace the route's dependencies
    (stand-ins may suspend where the real ones cannot: they need a scope)."""
    return exchange.endpoint.dependencies is not None and bool(
        getattr(exchange.app, "dependency_overrides", None)
    )


class HTTPExchange(Exchange):
    """The scope of one HTTP request. Built by :class:`~trioweb.App` per request."""

    __slots__ = ("_io", "_receiver", "_request", "close_connection", "state", "teardowns")

    def __init__(
        self,
        app: object,
        hooks: Hooks,
        endpoint: Endpoint,
        params: dict[str, object],
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> None:
        # Exchange.__init__, written out: one is made per request, and the call
        # through super() costs as much as all these assignments
        # (tests/test_scope.py checks that every slot is set).
        self.app = app
        self.hooks = hooks
        self.endpoint = endpoint
        self.params = params
        self.scope = scope
        self.receive = receive
        self.send = send
        self.cancel_scope: trio.CancelScope | None = None
        self.nursery: trio.Nursery | None = None
        self.started_at = 0.0
        self._token: DisconnectToken | None = None
        self.state = HTTPState(
            endpoint.max_body_size,
            endpoint.cancel_on_disconnect,
            scope.get("http_version") in MULTIPLEXED,  # watch_from_start(), inlined
        )
        self._io: PendingIO | None = None  # made when a read or a guarded send needs it
        self.close_connection = False
        self._receiver: Receiver | None = None
        self._request: Request | None = None
        self.teardowns: Teardowns | None = None  # a stream's: run after its last byte

    # ---- the request's life ----

    async def run(self) -> None:
        """Run the handler and send its response.

        Cancellation:
            A disconnect before the response is complete cancels the handler
            and its nursery, and nothing is sent. The route's ``timeout``
            cancels them too and answers 504. A cancellation from outside
            (server shutdown) propagates unchanged.
        """
        self.started_at = time.perf_counter()
        endpoint, state = self.endpoint, self.state
        handler_cancelled = False
        ended = False
        try:
            try:
                result: object = _NOT_RUN
                pending = Effect.NONE  # what taking the queued body asks of the scope
                as_declared = endpoint.dependencies is None or not overridden(self)
                if as_declared and not self.hooks.hooked:
                    # The handler cannot suspend, so nothing can cancel it: it
                    # runs outside any scope, which would cost more than the
                    # rest of the request. Only a stream or a file still needs one.
                    if not endpoint.needs_scope:
                        result = call_now(self, None)
                    elif endpoint.unscoped_with_body:
                        # Nor can the body read, when the server has it all queued.
                        pending = self.receiver.take_queued()
                        if state.body_state is COMPLETE:
                            result = call_now(self, state.body)
                if result is _NOT_RUN:
                    handler_cancelled = await self._in_scope(None, pending)
                else:  # sent now, unless it is a stream or a file: they need a scope
                    unsent = await send_result(self, result, endpoint.status_code)
                    if unsent is not None:
                        handler_cancelled = await self._in_scope(unsent)
                if state.outcome is not None and not state.peer_gone:
                    await self._answer_outcome()
            except Exception as error:
                await self._answer_failure(error)
            except BaseExceptionGroup as group:
                failures, others = group.split(Exception)
                if failures is not None:
                    await self._answer_failure(failures)
                if others is not None:
                    raise others from None
            ended = True
        finally:
            if not ended and self.shutting_down():
                # Cancelled from outside: the server's graceful period is over.
                handler_cancelled = True
                self.apply(state.on_shutdown())
            state.handle(FINISH)
            if self._receiver is not None:
                self._receiver.release(abnormal=state.outcome is not None)
            # The receiver calls back into this exchange: let go of it, or the
            # pair is a reference cycle only the cyclic GC frees (a watcher
            # still draining keeps it alive until it ends).
            self._receiver = None
            self._request = None  # likewise: a Request points back at its exchange
            self.finish(state.outcome, handler_cancelled)

    async def _in_scope(self, ready: AnyResponse | None, pending: int = Effect.NONE) -> bool:
        """Run the handler (unless its response is ``ready``) in the request scope.

        Args:
            ready: The response, if the handler already ran.
            pending: Effects asked for before the scope existed (by a body
                that overflowed, or a client that left, while the queued body
                was taken): the scope is cancelled at once if they say so.

        Returns:
            Whether the scope was cancelled.
        """
        endpoint = self.endpoint
        timeout = endpoint.timeout
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        try:
            with trio.CancelScope(deadline=deadline) as cancel_scope:
                self.cancel_scope = cancel_scope
                if pending & Effect.CANCEL_SCOPE:
                    cancel_scope.cancel()
                if endpoint.needs_nursery:
                    async with trio.open_nursery() as nursery:
                        self.nursery = nursery
                        await self._respond(ready)
                else:
                    await self._respond(ready)
        finally:
            self.cancel_scope = None  # left: what is sent now (a 504, a 500) is not bound by it
        if cancel_scope.cancelled_caught:
            # Nobody else cancels this scope without saying why: its deadline passed.
            self.state.set_outcome(Outcome.TIMED_OUT)
        return cancel_scope.cancelled_caught

    async def _respond(self, response: AnyResponse | None) -> None:
        """Run the handler, unless its ``response`` is given, and send that."""
        state = self.state
        if response is None:
            endpoint = self.endpoint
            try:
                if endpoint.plan.data_binders or self.hooks.hooked or endpoint.dependencies:
                    response = await watched(self, run_pipeline(self))
                else:  # nothing to await before the handler: no pipeline frame to keep
                    result = await watched(self, endpoint.handler(**endpoint.injected(self)))
                    response = to_response(result, endpoint.status_code)
            except HTTPError as error:
                response = error_response(error)
            state.handle(Event.RETURNED)
        teardowns, self.teardowns = self.teardowns, None
        if teardowns is not None:  # a stream or file may use them: they end after its last byte
            await teardowns.after(None if state.stopped else self._send_any(response))
        elif not state.stopped:  # else aborted, or the client is gone: discard
            await self._send_any(response)

    async def _answer_outcome(self) -> None:
        """After an abort, a 413 or a timeout: what the client gets, if anything."""
        state = self.state
        if state.phase is Phase.HANDLER:
            state.handle(Event.RETURNED)
        if state.response_started:
            return
        if state.outcome is Outcome.ABORTED:
            await send_lowered(self, incomplete_head(), incomplete=True)
            return
        error = outcome_error(state.outcome, self.endpoint.max_body_size)
        if error is None:
            return
        if state.outcome is Outcome.TOO_SLOW:
            # The rest of the body may still trickle in: the connection cannot be reused.
            self.close_connection = True
        await self._send_framework_response(error)

    async def _send_framework_response(self, error: HTTPError) -> None:
        if self.hooks.hooked:
            # The hooks run in a scope of their own, which a disconnect cancels.
            with trio.CancelScope() as self.cancel_scope:
                response = await answer_status(self, error)
                await self._send_any(response)
        else:
            await send_response(self, error_response(error))

    async def _send_any(self, response: AnyResponse) -> None:
        if isinstance(response, Response):  # the common case, first
            await send_response(self, response)
        elif isinstance(response, FileResponse):
            request = self.get_request()
            await send_lowered(self, await lower_file(response, request.headers, request.method))
        else:
            await send_lowered(self, lower(response))

    async def _answer_failure(self, error: BaseException) -> None:
        state = self.state
        if isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        if isinstance(error, HTTPError) and not state.response_started:
            if state.phase is Phase.HANDLER:
                state.handle(Event.RETURNED)
            await send_response(self, error_response(error))
            return
        if state.peer_gone and isinstance(error, IOCancelledError):
            return  # the client left mid-body: a disconnect, already said so
        self.log_failure(error)
        state.set_outcome(Outcome.FAILED)
        if state.response_started or state.peer_gone:
            return
        if state.phase is Phase.HANDLER:
            state.handle(Event.RETURNED)
        if getattr(self.app, "debug", False):
            text = "".join(traceback.format_exception(error))
            await send_response(self, Response(text, 500))
        else:
            await send_response(self, error_response(HTTPError(500)))

    # ---- the drivers' side ----

    def abandoned(self) -> DisconnectReason | None:
        return self.state.reason

    def apply(self, effect: int) -> None:
        super().apply(effect)
        if effect & Effect.CANCEL_IO and self._io is not None:
            self._io.cancel(by_app=False)
        if effect & Effect.WAKE_READERS and self._receiver is not None:
            self._receiver.wake_readers()

    @property
    def io(self) -> PendingIO:
        """The body read or response write under way, which cancel_io() cancels."""
        if self._io is None:
            self._io = PendingIO(self.endpoint.min_response_rate, self.endpoint.min_request_rate)
        return self._io

    @property
    def receiver(self) -> Receiver:
        if self._receiver is None:
            self._receiver = Receiver(
                self.receive, self.scope, self.state, self.apply, self.io, self._expired
            )
        return self._receiver

    def _expired(self) -> bool:
        """Whether the route's deadline has passed (its scope was cancelled by it)."""
        scope = self.cancel_scope
        return scope is not None and scope.cancel_called and trio.current_time() >= scope.deadline

    @property
    def watched(self) -> bool:
        receiver = self._receiver
        return receiver is not None and receiver.owner is not Owner.NOBODY

    def watch(self) -> None:
        self.receiver.start_watcher()

    # ---- what Request reaches ----

    def get_request(self) -> Request:
        if self._request is None:
            self._request = Request._create(self)
        return self._request

    async def read_body(self) -> bytes:
        """The whole body (what ``Request.body()`` returns); see there for cancellation."""
        return await self.receiver.read_body()

    def cancel_io(self) -> None:
        if self._io is not None:
            self._io.cancel(by_app=True)

    def abort(self) -> None:
        self.apply(self.state.on_abort())

    def close_after_response(self) -> None:
        self.close_connection = True
