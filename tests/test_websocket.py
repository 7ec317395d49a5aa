"""WebSockets: the pure close state machine, then the socket in-process and over the wire."""

from __future__ import annotations

import logging
from typing import Annotated

import pytest
import trio
import trio.testing
from trio_websocket import open_websocket_url
from wsproto.events import AcceptConnection, CloseConnection, RejectConnection, TextMessage

from trioweb import (
    App,
    DisconnectReason,
    DisconnectToken,
    Header,
    RouteDefinitionError,
    Server,
    WebSocket,
    WebSocketAbortedError,
    WebSocketClosed,
    WebSocketDisposedError,
    WebSocketStateError,
)
from trioweb._websocket_state import Op, WebSocketState, transition
from trioweb.testing import TestClient, WebSocketRejected

from .conftest import Probe
from .wire import RawWebSocket

S, OP = WebSocketState, Op


@pytest.mark.parametrize(
    ("state", "op", "expected"),
    [
        (S.CONNECTING, OP.ACCEPT, S.CONNECTED),
        (S.CONNECTING, OP.REJECT, S.REJECTED),
        (S.CONNECTING, OP.CLOSE, S.REJECTED),
        (S.CONNECTING, OP.SEND, "call accept() before sending"),
        (S.CONNECTING, OP.RECEIVE, "call accept() before receiving"),
        (S.CONNECTING, OP.PEER_GONE, S.CLOSED),
        (S.CONNECTED, OP.SEND, S.CONNECTED),
        (S.CONNECTED, OP.RECEIVE, S.CONNECTED),
        (S.CONNECTED, OP.ACCEPT, "accept() was already called"),
        (S.CONNECTED, OP.REJECT, "already accepted"),
        (S.CONNECTED, OP.CLOSE, S.CLOSE_SENT),
        (S.CONNECTED, OP.PEER_GONE, S.CLOSED),
        (S.CLOSE_SENT, OP.SEND, "cannot send: close() or close_output() was called"),
        (S.CLOSE_SENT, OP.RECEIVE, S.CLOSE_SENT),
        (S.CLOSE_SENT, OP.CLOSE, S.CLOSE_SENT),
        (S.CLOSE_SENT, OP.PEER_GONE, S.CLOSED),
        (S.CLOSED, OP.SEND, "the WebSocket is closed"),
        (S.CLOSED, OP.RECEIVE, S.CLOSED),
        (S.CLOSED, OP.CLOSE, S.CLOSED),
        (S.REJECTED, OP.SEND, "not allowed while the WebSocket is rejected"),
        (S.REJECTED, OP.PEER_GONE, S.REJECTED),
        (S.CONNECTED, OP.ABORT, S.ABORTED),
        (S.ABORTED, OP.SEND, WebSocketAbortedError),
        (S.ABORTED, OP.RECEIVE, WebSocketAbortedError),
        (S.ABORTED, OP.PEER_GONE, S.ABORTED),
        (S.ABORTED, OP.DISPOSE, S.DISPOSED),
        (S.CONNECTED, OP.DISPOSE, S.DISPOSED),
        (S.DISPOSED, OP.SEND, WebSocketDisposedError),
        (S.DISPOSED, OP.RECEIVE, WebSocketDisposedError),
        (S.DISPOSED, OP.ABORT, WebSocketDisposedError),
    ],
)
def test_transition(state: WebSocketState, op: Op, expected: object) -> None:
    if isinstance(expected, WebSocketState):
        assert transition(state, op) is expected
    elif isinstance(expected, str):
        with pytest.raises(
            WebSocketStateError, match=expected.replace("(", r"\(").replace(")", r"\)")
        ):
            transition(state, op)
    else:
        assert isinstance(expected, type)
        with pytest.raises(expected):
            transition(state, op)


def test_every_pair_is_decided() -> None:
    """Each (state, op) pair gives a state, or an error of the right kind said once."""
    for state in WebSocketState:
        for op in Op:
            error: WebSocketStateError | None = None
            try:
                result = transition(state, op)
            except WebSocketStateError as raised:
                error = raised
            if error is None:
                assert isinstance(result, WebSocketState)
                assert op is not Op.SEND or state is WebSocketState.CONNECTED
                continue
            message = str(error)
            assert message.startswith(f"cannot {op.value}: "), message
            assert message.count("cannot") == 1, message  # not "cannot send: cannot send"
            if state is WebSocketState.DISPOSED:
                assert isinstance(error, WebSocketDisposedError)
            elif state is WebSocketState.ABORTED and op is not Op.DISPOSE:
                assert isinstance(error, WebSocketAbortedError)


@pytest.fixture
def app(probe: Probe) -> App:
    app = App()

    @app.websocket("/echo/{room}")
    async def echo(ws: WebSocket, room: str) -> None:
        await ws.accept(subprotocol=ws.subprotocols[0] if ws.subprotocols else None)
        async for message in ws:
            await ws.send(f"{room}: {message!r}")
        probe.record.append("loop ended")
        probe.done.set()

    @app.websocket("/busy")
    async def busy(ws: WebSocket, token: DisconnectToken, nursery: trio.Nursery) -> None:
        await ws.accept()
        token.register(probe.record.append, "token set")
        probe.objects.append(token)
        nursery.start_soon(probe.child)
        await probe.hold(10)

    @app.websocket("/close")
    async def close(ws: WebSocket) -> None:
        await ws.accept()
        await ws.close(4000, "bye", timeout=float(ws.query_params.get("timeout", "5")))
        probe.record.append("close returned")
        try:
            await ws.receive()
        except WebSocketClosed as closed:
            probe.record.append(f"then closed {closed.code}")
        probe.done.set()

    @app.websocket("/close_output")
    async def close_output(ws: WebSocket) -> None:
        await ws.accept()
        await ws.close_output(1000, "done")
        probe.record.append("close_output returned")
        probe.entered.set()
        probe.record.append(f"received {await ws.receive()!r}")
        try:
            await ws.receive()
        except WebSocketClosed as closed:
            probe.record.append(f"then closed {closed.code}")
        probe.done.set()

    @app.websocket("/misuse")
    async def misuse(ws: WebSocket) -> None:
        probe.objects.append(ws)
        try:
            await ws.send("too early")
        except WebSocketStateError as error:
            probe.errors.append(str(error))
        await ws.accept()
        try:
            await ws.accept()
        except WebSocketStateError as error:
            probe.errors.append(str(error))
        await ws.close_output()
        try:
            await ws.send("too late")
        except WebSocketStateError as error:
            probe.errors.append(str(error))

    @app.websocket("/abort")
    async def abort(ws: WebSocket) -> None:
        await ws.accept()
        ws.abort()
        try:
            await ws.send("after abort")
        except WebSocketAbortedError as error:
            probe.errors.append(str(error))
        await trio.lowlevel.checkpoint()
        probe.record.append("not reached: the scope is cancelled")

    @app.websocket("/reject")
    async def reject(ws: WebSocket) -> None:
        await ws.reject(401, "go away")

    @app.websocket("/silent")
    async def silent(ws: WebSocket) -> None:
        pass  # never accepts: a refusal

    @app.websocket("/crash")
    async def crash(ws: WebSocket) -> None:
        await ws.accept()
        raise RuntimeError("handler bug")

    return app


# ---- in-process ----


async def test_echo_in_process(app: App, probe: Probe) -> None:
    async with (
        TestClient(app) as client,
        client.websocket("/echo/lobby", subprotocols=["chat"]) as ws,
    ):
        assert ws.subprotocol == "chat"
        await ws.send_text("hi")
        assert await ws.receive_text() == "lobby: 'hi'"
        await ws.send_bytes(b"\x01")
        assert await ws.receive_text() == "lobby: b'\\x01'"
        await ws.close()
    assert probe.record == ["loop ended"]


async def test_misuse_errors_name_what_happened(app: App, probe: Probe) -> None:
    async with TestClient(app) as client, client.websocket("/misuse") as ws:
        with pytest.raises(WebSocketClosed):
            await ws.receive()
    assert probe.errors == [
        "cannot send: call accept() before sending",
        "cannot accept: accept() was already called",
        "cannot send: close() or close_output() was called",
    ]
    (socket,) = probe.objects
    with pytest.raises(WebSocketDisposedError, match="handler has returned"):
        await socket.send("after the handler")


async def test_abort(app: App, probe: Probe) -> None:
    async with TestClient(app) as client, client.websocket("/abort") as ws:
        with pytest.raises(WebSocketClosed):
            await ws.receive()
    assert probe.errors == ["cannot send: the WebSocket was aborted"]
    assert probe.record == []


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/reject", 401, b"go away"),
        ("/silent", 403, b""),
        ("/nowhere", 404, b'{"detail":"Not Found"}'),
    ],
)
async def test_rejections(app: App, path: str, status: int, body: bytes) -> None:
    async with TestClient(app) as client:
        with pytest.raises(WebSocketRejected) as rejected:
            async with client.websocket(path):
                pass
    assert (rejected.value.status, rejected.value.body) == (status, body)


async def test_handler_error_closes_with_1011(app: App) -> None:
    async with TestClient(app) as client, client.websocket("/crash") as ws:
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
    assert closed.value.code == 1011


# ---- over the wire ----


async def test_echo_and_client_close_ends_async_for(server: Server, probe: Probe) -> None:
    async with open_websocket_url(f"ws://127.0.0.1:{server.port}/echo/a") as ws:
        await ws.send_message("x")
        assert await ws.get_message() == "a: 'x'"
    with trio.fail_after(5):
        await probe.done.wait()
    assert probe.record == ["loop ended"]


async def test_client_drop_cancels_handler_and_child_and_sets_token(
    server: Server, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trioweb")
    client, answer = await RawWebSocket.connect(server.port, "/busy")
    assert isinstance(answer, AcceptConnection)
    with trio.fail_after(5):
        await probe.entered.wait()
    await client.drop()
    with trio.fail_after(5):
        await probe.done.wait()
        await trio.testing.wait_all_tasks_blocked()
    # The token is set first; the two cancellations then land in either order.
    assert probe.record[0] == "token set"
    assert sorted(probe.record[1:]) == ["child cancelled", "handler cancelled"]
    (token,) = probe.objects
    assert token.reason is DisconnectReason.CLIENT_DISCONNECTED
    (line,) = [r.getMessage() for r in caplog.records if "/busy" in r.getMessage()]
    assert line.startswith("WEBSOCKET /busy cancelled: client disconnected after"), line


async def test_close_returns_once_the_client_acknowledges(server: Server, probe: Probe) -> None:
    client, _ = await RawWebSocket.connect(server.port, "/close")
    close = await client.next_event()
    assert isinstance(close, CloseConnection)
    assert (close.code, close.reason) == (4000, "bye")
    assert probe.record == []  # close() is still waiting for us
    await client.acknowledge(close)
    with trio.fail_after(5):
        await probe.done.wait()
    assert probe.record == ["close returned", "then closed 4000"]
    await client.drop()


async def test_close_gives_up_after_its_timeout(server: Server, probe: Probe) -> None:
    client, _ = await RawWebSocket.connect(server.port, "/close?timeout=0.2")
    assert isinstance(await client.next_event(), CloseConnection)
    with trio.fail_after(5):
        # Never acknowledged: close() returns on its own, by its timeout (0.2 s);
        # without one it would wait forever, and this bound would fail the test.
        await probe.done.wait()
    assert probe.record[0] == "close returned"
    await client.drop()


async def test_close_output_returns_at_once_and_receive_still_works(
    server: Server, probe: Probe
) -> None:
    client, _ = await RawWebSocket.connect(server.port, "/close_output")
    with trio.fail_after(5):
        await probe.entered.wait()  # returned before the client did anything
    assert probe.record == ["close_output returned"]
    # A message already in flight when the client gets to the close frame:
    await client.send_text("sent before acknowledging")
    close = await client.next_event()
    assert isinstance(close, CloseConnection)
    await client.acknowledge(close)
    with trio.fail_after(5):
        await probe.done.wait()
    assert probe.record == [
        "close_output returned",
        "received 'sent before acknowledging'",
        "then closed 1000",
    ]
    await client.drop()


async def test_rejection_over_the_wire(server: Server) -> None:
    client, answer = await RawWebSocket.connect(server.port, "/reject")
    assert isinstance(answer, RejectConnection)
    assert answer.status_code == 401
    await client.drop()


async def test_messages_are_text(server: Server) -> None:
    client, _ = await RawWebSocket.connect(server.port, "/echo/b")
    await client.send_text("y")
    message = await client.next_event()
    assert isinstance(message, TextMessage)
    assert message.data == "b: 'y'"
    await client.drop()


async def test_websocket_query_and_header_binding_and_rejection() -> None:
    app = App()

    @app.websocket("/feed")
    async def feed(
        ws: WebSocket, since: int, client: Annotated[str, Header("x-client")] = "?"
    ) -> None:
        await ws.accept()
        await ws.send(f"{client} since {since}")

    async with TestClient(app) as client:
        async with client.websocket(
            "/feed", params={"since": 5}, headers={"x-client": "cli"}
        ) as ws:
            assert await ws.receive_text() == "cli since 5"
        with pytest.raises(WebSocketRejected) as rejected:
            async with client.websocket("/feed", params={"since": "soon"}):
                pass
    assert rejected.value.status == 422
    assert b'"loc":["query","since"]' in rejected.value.body

    async def with_body(ws: WebSocket, body: bytes) -> None: ...

    with pytest.raises(RouteDefinitionError, match="raw body is not available here"):
        app.websocket("/body")(with_body)
