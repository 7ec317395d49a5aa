"""The chat example: broadcast, both ways to close, and a slow client that cannot stall a room."""

from __future__ import annotations

import base64
import contextlib
import os

import pytest
import trio
import trio.testing
import trio_websocket

from examples.chat import Chat, Member, Room, create_app
from examples.conftest import LogWatch
from trioweb import App, Server, WebSocketClosed
from trioweb.testing import TestClient, WebSocketSession


@pytest.fixture
def chat() -> Chat:
    return Chat(queue_size=4)


@pytest.fixture
def app(chat: Chat) -> App:
    return create_app(chat)


def member_named(room: Room, name: str) -> Member:
    [member] = [m for m in room.members if m.name == name]
    return member


def fill(member: Member) -> None:
    with contextlib.suppress(trio.WouldBlock):
        while True:
            member.outbox.send_nowait("filler")


async def receive_until(session: WebSocketSession, text: str) -> list[str]:
    seen: list[str] = []
    while not seen or seen[-1] != text:
        message = await session.receive()
        assert isinstance(message, str)
        seen.append(message)
    return seen


async def closed_with(session: WebSocketSession) -> int:
    """Read until the app's close (acknowledging it); its code."""
    while True:
        try:
            assert await session.receive() != "one too many"  # the put-out member gets no more
        except WebSocketClosed as closed:
            return closed.code


async def test_broadcast_reaches_everyone_in_the_room(client: TestClient, chat: Chat) -> None:
    async with (
        client.websocket("/chat/lobby", params={"name": "alice"}) as alice,
        client.websocket("/chat/lobby", params={"name": "bob"}) as bob,
        client.websocket("/chat/kitchen", params={"name": "carol"}) as carol,
    ):
        await receive_until(alice, "bob joined")
        await alice.send_text("hello")
        assert await receive_until(bob, "alice: hello") == ["bob joined", "alice: hello"]
        await receive_until(alice, "alice: hello")  # the sender gets its own line too
        await carol.send_text("soup's on")
        assert await carol.receive() == "carol joined"
        assert await carol.receive() == "carol: soup's on"  # other rooms heard nothing
        await bob.disconnect()
        assert await receive_until(alice, "bob left") == ["bob left"]
    assert chat.rooms == {}  # everyone left: nothing kept


async def test_quit_closes_and_waits_for_the_acknowledgement(
    client: TestClient, chat: Chat
) -> None:
    async with client.websocket("/chat/lobby", params={"name": "alice"}) as alice:
        assert await alice.receive() == "alice joined"
        await alice.send_text("/quit")
        with pytest.raises(WebSocketClosed) as closed:
            await alice.receive()  # reading the close acknowledges it
        assert (closed.value.code, closed.value.reason) == (1000, "bye")
        await alice.wait_app_done()
    assert chat.rooms == {}


def test_a_full_queue_puts_the_member_out_and_the_others_keep_theirs() -> None:
    room = Room("lobby", queue_size=2)
    slow, fast = room.join("slow"), room.join("fast")
    for n in range(5):
        room.broadcast(f"message {n}")  # never waits, whoever is slow
        assert fast.inbox.receive_nowait() == f"message {n}"
    assert slow.too_slow
    assert room.members == {fast}
    assert [slow.inbox.receive_nowait() for _ in range(2)] == ["message 0", "message 1"]
    with pytest.raises(trio.EndOfChannel):
        slow.inbox.receive_nowait()  # put out: it gets nothing more


async def test_a_member_put_out_gets_close_output_and_its_last_words_still_count(
    client: TestClient, chat: Chat
) -> None:
    async with (
        client.websocket("/chat/lobby", params={"name": "alice"}) as alice,
        client.websocket("/chat/lobby", params={"name": "bob"}) as bob,
    ):
        await receive_until(alice, "bob joined")
        assert await bob.receive() == "bob joined"
        room = chat.rooms["lobby"]
        bob_member = member_named(room, "bob")
        fill(bob_member)  # without a checkpoint, so bob cannot catch up: he is "slow"
        room.broadcast("one too many")
        assert await alice.receive() == "one too many"
        await trio.testing.wait_all_tasks_blocked()  # bob's close was sent (close_output)
        await bob.send_text("wait, one more thing")  # sent before bob saw the close
        assert await alice.receive() == "bob: wait, one more thing"  # still relayed
        assert await closed_with(bob) == 1008
        await bob.wait_app_done()
        assert await alice.receive() == "bob left"


async def test_a_member_put_out_that_never_acknowledges_is_let_go_after_the_grace(
    client: TestClient, chat: Chat, autojump_clock: trio.testing.MockClock
) -> None:
    async with client.websocket("/chat/lobby", params={"name": "bob"}) as bob:
        assert await bob.receive() == "bob joined"
        room = chat.rooms["lobby"]
        bob_member = member_named(room, "bob")
        fill(bob_member)
        room.broadcast("one too many")
        started = trio.current_time()
        await bob.wait_app_done()  # bob never reads the close, nor acknowledges it
        assert trio.current_time() - started >= 2.0  # CLOSE_GRACE
    assert chat.rooms == {}


async def _raw_websocket(port: int, path: str) -> trio.SocketStream:
    """A client that does the handshake and then never reads: the slowest client there is."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    await stream.send_all(
        f"GET {path} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n\r\n".encode()
    )
    head = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(1)  # only the head: the frames stay unread
    assert head.startswith(b"HTTP/1.1 101")
    return stream


async def test_a_client_that_never_reads_does_not_stall_the_room(
    live_server: Server, chat: Chat, logs: LogWatch
) -> None:
    stalled = await _raw_websocket(live_server.port, "/chat/lobby?name=stalled")
    big = "x" * 65536  # fills the stalled client's socket buffers quickly
    count = 400
    async with trio_websocket.open_websocket_url(
        f"ws://127.0.0.1:{live_server.port}/chat/lobby?name=fast"
    ) as fast:
        with trio.fail_after(20):  # the room keeps going however stuck "stalled" is
            for _ in range(count):
                await fast.send_message(big)
                while (await fast.get_message()) != f"fast: {big}":
                    pass
        assert "stalled is too slow for room lobby: put out" in logs.messages
        assert {m.name for m in chat.rooms["lobby"].members} == {"fast"}
        stalled.socket.close()  # unread data: the kernel resets the connection
        await logs.wait_for("stalled left room lobby")
