"""The scope of one WebSocket connection: a reader beside the handler, in one request scope.

See ``_websocket`` for the theory of operation. The reader drains
``receive()`` into the WebSocket's inbox, refuses messages over the route's
limit with 1009, and turns ``websocket.disconnect`` into the token being set
and the scope cancelled, as a disconnect does for HTTP.

The first way the session was abandoned stays, with its reason (what the
token says and the log line names): the client leaving (what the connection
layer says it meant: gone, dead peer, a write cut as too slow), the shutdown
(1001), an abort. A message over the limit abandons nothing: like a 413 it
sets no token, and is the session's outcome.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

import trio

from ._binding import Source
from ._depends import Graph
from ._endpoint import Endpoint, Hooks
from ._errors import HTTPError, WebSocketStateError
from ._exchange import Exchange, Receive, Send
from ._http_state import Effect
from ._hypercorn import disconnect_reason
from ._outcome import DisconnectReason, Outcome
from ._pipeline import request_data
from ._response import error_response, to_response
from ._solve import Exit, Teardowns, request_values
from ._websocket import WebSocket, WebSocketState

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


class LiveWebSockets(set["WebSocketExchange"]):
    """The open WebSocket sessions of an app, so that a shutdown can reach each one."""

    def going_away(self) -> None:
        for exchange in list(self):
            exchange.going_away()


class WebSocketExchange(Exchange):
    """The scope of one WebSocket connection."""

    __slots__ = (
        "_detail",
        "_nursery",
        "_outcome",
        "_reader_scope",
        "_reason",
        "buffer_size",
        "sessions",
        "websocket",
    )

    def __init__(
        self,
        app: object,
        hooks: Hooks,
        endpoint: Endpoint,
        params: dict[str, object],
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        sessions: LiveWebSockets | None = None,
    ) -> None:
        super().__init__(app, hooks, endpoint, params, scope, receive, send)
        self.sessions = sessions
        self._nursery: trio.Nursery | None = None
        self.buffer_size: int = getattr(app, "websocket_buffer_size", 4 * 1024 * 1024)
        self._outcome: Outcome | None = None
        self._reason: DisconnectReason | None = None  # the first; what the token says
        self._detail = ""  # what the log line says of a message over the limit
        self._reader_scope = trio.CancelScope()
        self.websocket = WebSocket._create(self)

    async def run(self) -> None:
        """Run the handler with a reader alongside.

        Cancellation:
            The client leaving cancels the handler and its nursery (unless the
            route opts out); a cancellation from outside propagates unchanged.
        """
        self.started_at = time.perf_counter()
        websocket = self.websocket
        handler_cancelled = False
        ended = False
        if self.sessions is not None:
            self.sessions.add(self)
        try:
            async with trio.open_nursery() as reader_nursery:
                self._nursery = reader_nursery
                reader_nursery.start_soon(self._read)
                try:
                    handler_cancelled = await self._run_handler(websocket)
                finally:
                    self._reader_scope.cancel()
            ended = True
        finally:
            self._nursery = None
            if self.sessions is not None:
                self.sessions.discard(self)
            if not ended and self.shutting_down():
                # Cancelled from outside: the server's graceful period is over.
                handler_cancelled = True
                if self._outcome is None:
                    self._abandon(Outcome.SHUTDOWN, DisconnectReason.SERVER_SHUTDOWN)
            websocket._dispose()
            self.finish(self._outcome, handler_cancelled, quiet=not handler_cancelled)

    def going_away(self) -> None:
        """The server shuts down: set the token, and close with 1001 "going away".

        The client's acknowledgement ends the handler's ``receive()`` (an
        ``async for`` loop ends), so a well-behaved session ends within the
        server's graceful period; one that does not is cancelled at its end.
        """
        if self._outcome is not None or self._nursery is None:
            return
        self._abandon(Outcome.SHUTDOWN, DisconnectReason.SERVER_SHUTDOWN)
        if self.websocket.state is WebSocketState.CONNECTED:
            self._nursery.start_soon(self._send_going_away)

    def _abandon(
        self, outcome: Outcome, reason: DisconnectReason, effect: int = Effect.TRIP_TOKEN
    ) -> None:
        """Record how and why the session was abandoned (the first stays), then ``effect``."""
        if self._outcome is None:
            self._outcome = outcome
        if self._reason is None:
            self._reason = reason
        self.apply(effect)

    async def _send_going_away(self) -> None:
        with contextlib.suppress(WebSocketStateError):  # the handler closed it meanwhile
            await self.websocket.close_output(1001, "server shutting down")

    async def _refuse(self, response: Any) -> None:
        response = to_response(response)
        headers = {"content-type": response.media_type or "text/plain"}
        await self.websocket.reject(response.status, response.body, headers)

    async def _run_handler(self, websocket: WebSocket) -> bool:
        failed = False
        endpoint = self.endpoint
        graph = endpoint.dependencies
        try:
            for before in self.hooks.before_websocket:
                refusal = await before(websocket)
                if refusal is not None:
                    await self._refuse(refusal)
                    return False
            # Checked before the handshake; injected objects are bound in the scope.
            if graph is not None:
                if self.app.dependency_overrides:  # type: ignore[attr-defined]
                    graph = self.app.graph_with_overrides(graph)  # type: ignore[attr-defined]
                data = request_values(self, graph, None)
            else:
                data = request_data(self, None) if endpoint.plan.data_binders else {}
        except HTTPError as error:
            # Query, header or cookie values that do not fit: refuse the handshake.
            await self._refuse(error_response(error))
            return False
        try:
            with trio.CancelScope() as cancel_scope:
                self.cancel_scope = cancel_scope
                if graph is not None:
                    await self._with_dependencies(graph, data)
                elif endpoint.needs_nursery:
                    async with trio.open_nursery() as nursery:
                        self.nursery = nursery
                        await endpoint.handler(**endpoint.injected(self), **data)
                else:
                    await endpoint.handler(**endpoint.injected(self), **data)
        except Exception as error:
            failed = True
            self._fail(error)
        except BaseExceptionGroup as group:
            failures, others = group.split(Exception)
            if failures is not None:
                failed = True
                self._fail(failures)
            if others is not None:
                raise others from None
        state = websocket.state
        if state is WebSocketState.CONNECTING:
            # Ending before accept() is a refusal: the server answers 403.
            await self.send({"type": "websocket.close", "code": 1008})
        elif state is WebSocketState.CONNECTED:
            await self.send({"type": "websocket.close", "code": 1011 if failed else 1000})
        return cancel_scope.cancelled_caught

    async def _with_dependencies(self, graph: Graph, values: dict[str, object]) -> None:
        """Set the dependencies up, run the handler, tear them down (shielded).

        They are set up after the ``before_websocket`` hooks and before the
        handler, so before the handshake is accepted: an HTTPError raised in a
        setup (an auth dependency's 401) refuses it with that status. They are
        torn down when the handler has ended, and the tasks of its nursery
        with it, before trioweb's close: one that fails makes it 1011. A
        dependency that takes the nursery needs it open first, so then the
        nursery holds the whole graph, and the teardown runs when the handler
        returns, before the nursery's tasks end.

        Cancellation:
            The client leaving, an abort or shutdown cancel the setup or the
            handler; ``trio.Cancelled`` is thrown into each generator, and
            every teardown runs shielded, bounded by its ``teardown_timeout``.
        """
        if graph.needs_nursery:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                await self._set_up_and_run(graph, values, ())
        else:
            await self._set_up_and_run(graph, values, self._nursery_parameters)

    async def _set_up_and_run(
        self, graph: Graph, values: dict[str, object], nursery_parameters: tuple[str, ...]
    ) -> None:
        exits: list[Exit] = []
        try:
            try:
                kwargs = await graph.set_up(self, values, exits)
            except HTTPError as error:
                if self.websocket.state is not WebSocketState.CONNECTING:
                    raise
                await Teardowns(exits).unwind(error)
                await self._refuse(error_response(error))
                return
            if nursery_parameters:  # the handler's own nursery, open while it runs
                async with trio.open_nursery() as nursery:
                    self.nursery = nursery
                    kwargs.update(dict.fromkeys(nursery_parameters, nursery))
                    await self.endpoint.handler(**kwargs)
            else:
                await self.endpoint.handler(**kwargs)
        except BaseException as error:
            await Teardowns(exits).unwind(error)
            raise
        await Teardowns(exits).unwind(None)

    @property
    def _nursery_parameters(self) -> tuple[str, ...]:
        plan = self.endpoint.plan
        return tuple(b.name for b in plan.binders if b.source is Source.NURSERY)

    def _fail(self, error: BaseException) -> None:
        self._outcome = Outcome.FAILED
        self.log_failure(error)

    async def _read(self) -> None:
        """Drain receive() into the WebSocket's inbox; notice the client leaving."""
        websocket = self.websocket
        limit = self.endpoint.max_body_size  # a WebSocket route's max_message_size
        with self._reader_scope:
            while True:
                message = await self.receive()
                kind = message.get("type")
                if kind == "websocket.receive":
                    text = message.get("text")
                    payload = text if text is not None else message.get("bytes") or b""
                    if len(payload) > limit:
                        await self._too_big(len(payload), limit)
                        return
                    # Waits while the inbox is full: backpressure to the client.
                    await websocket._inbox.put(payload)
                elif kind == "websocket.disconnect":
                    self._on_disconnect(int(message.get("code", 1006)), message.get("reason") or "")
                    return

    async def _too_big(self, size: int, limit: int) -> None:
        # The server ends it, the client is still there: as a 413, no token is set.
        if self._outcome is None:
            self._outcome = Outcome.TOO_LARGE
            self._detail = (
                f"closed with 1009, a message of {size} bytes exceeds max_message_size {limit}"
            )
        reason = f"message too big (over {limit} bytes)"
        await self.send({"type": "websocket.close", "code": 1009, "reason": reason})
        if self.websocket._on_peer_gone(1009, reason) and self.endpoint.cancel_on_disconnect:
            self.apply(Effect.CANCEL_SCOPE)

    def _on_disconnect(self, code: int, reason: str) -> None:
        if self.websocket._on_peer_gone(code, reason):
            effect = Effect.TRIP_TOKEN
            if self.endpoint.cancel_on_disconnect:
                effect |= Effect.CANCEL_SCOPE
            self._abandon(Outcome.DISCONNECTED, self._why_gone(), effect)

    def _why_gone(self) -> DisconnectReason:
        """What the client leaving meant, as far as a WebSocket can tell (see DisconnectReason)."""
        reason = disconnect_reason(self.scope)
        # Over HTTP/2 a close frame ends the stream with the connection open,
        # exactly as a reset does (both 1006): the client left.
        if reason is DisconnectReason.STREAM_RESET:
            return DisconnectReason.CLIENT_DISCONNECTED
        return reason

    def abandoned(self) -> DisconnectReason | None:
        return self._reason

    def outcome_text(self, outcome: Outcome) -> str:
        return self._detail if outcome is Outcome.TOO_LARGE else outcome.value

    def abort(self) -> None:
        effect = Effect.TRIP_TOKEN | Effect.CANCEL_SCOPE
        self._abandon(Outcome.ABORTED, DisconnectReason.ABORTED, effect)
