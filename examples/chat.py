"""Chat rooms over WebSockets, where a slow client cannot stall the room.

Each member has a bounded queue of messages to deliver, drained by a task of
its own (in the request's nursery, so it dies with the connection). A
broadcast never waits: it puts the message in each member's queue with
``send_nowait()``. A member whose queue is full is too slow: it is put out of
the room (it gets nothing more) and its connection is closed with 1008.

The two ways to close, each where it fits (ASP.NET's ``CloseAsync`` and
``CloseOutputAsync``):

* a client that sends ``/quit`` asked to leave: ``close()`` sends the close
  and waits (bounded) for the client's acknowledgement; nothing it sends
  meanwhile matters any more;
* a member put out for being slow gets ``close_output()``: the close goes out
  at once, and what the client had already sent before it saw the close is
  still received and relayed to the room, until it acknowledges or a grace
  period ends.

Run it with ``trioweb run examples.chat:app`` and open http://127.0.0.1:8000/.
"""

from __future__ import annotations

import logging
from typing import final

import attrs
import trio

from trioweb import App, Response, WebSocket, WebSocketStateError

logger = logging.getLogger("chat")

QUEUE_SIZE = 64  # messages waiting for one member before it counts as too slow
CLOSE_GRACE = 2.0  # seconds a closed member may still send before we stop listening

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Chat</title></head>
<body>
  <ul id="log"></ul>
  <form id="say"><input id="text" autocomplete="off"><button>Send</button></form>
  <script>
    const params = new URLSearchParams(location.search);
    const room = params.get("room") || "lobby", name = params.get("name") || "guest";
    const ws = new WebSocket(`ws://${location.host}/chat/${room}?name=${name}`);
    const log = document.getElementById("log");
    ws.onopen = () => document.body.dataset.state = "open";
    ws.onmessage = (event) => {
      const item = document.createElement("li");
      item.textContent = event.data;
      log.append(item);
    };
    ws.onclose = (event) => document.body.dataset.state = "closed " + event.code;
    document.getElementById("say").onsubmit = (event) => {
      event.preventDefault();
      ws.send(document.getElementById("text").value);
      document.getElementById("text").value = "";
    };
  </script>
</body>
</html>
"""


@final
@attrs.define(eq=False)
class Member:
    """One connection in a room, with its bounded queue of messages to deliver."""

    name: str
    outbox: trio.MemorySendChannel[str]
    inbox: trio.MemoryReceiveChannel[str]
    too_slow: bool = False


@final
@attrs.define(eq=False)
class Room:
    """The members of one room; ``broadcast`` never waits for any of them."""

    name: str
    queue_size: int
    members: set[Member] = attrs.field(factory=set)

    def join(self, name: str) -> Member:
        outbox, inbox = trio.open_memory_channel[str](self.queue_size)
        member = Member(name, outbox, inbox)
        self.members.add(member)
        return member

    def leave(self, member: Member) -> None:
        self.members.discard(member)
        member.outbox.close()  # its delivery task ends once the queue is drained

    def broadcast(self, text: str) -> None:
        for member in list(self.members):
            try:
                member.outbox.send_nowait(text)
            except trio.BrokenResourceError:
                self.leave(member)  # its delivery task has ended: the member is on its way out
            except trio.WouldBlock:
                logger.info("%s is too slow for room %s: put out", member.name, self.name)
                member.too_slow = True
                self.leave(member)


@final
@attrs.define(eq=False)
class Chat:
    """All rooms of one app."""

    queue_size: int = QUEUE_SIZE
    rooms: dict[str, Room] = attrs.field(factory=dict)

    def room(self, name: str) -> Room:
        if name not in self.rooms:
            self.rooms[name] = Room(name, self.queue_size)
        return self.rooms[name]


def create_app(chat: Chat | None = None) -> App:
    """The chat app; tests pass a ``Chat`` with a small ``queue_size`` to look inside."""
    chat = chat or Chat()
    app = App()

    @app.get("/")
    async def page() -> Response:
        return Response(PAGE, media_type="text/html; charset=utf-8")

    @app.websocket("/chat/{room}")
    async def talk(ws: WebSocket, room: str, nursery: trio.Nursery, name: str = "guest") -> None:
        await ws.accept()
        here = chat.room(room)
        member = here.join(name)
        here.broadcast(f"{name} joined")
        try:
            with trio.CancelScope() as listening:
                nursery.start_soon(deliver, ws, member, listening)
                async for message in ws:  # ends when the client leaves or acknowledges our close
                    text = message if isinstance(message, str) else message.decode(errors="replace")
                    if text == "/quit":
                        here.leave(member)
                        # The client asked: wait for its ack; the loop then ends by itself.
                        await ws.close(1000, "bye")
                        continue
                    here.broadcast(f"{name}: {text}")
        finally:
            here.leave(member)
            here.broadcast(f"{name} left")
            if not here.members:
                chat.rooms.pop(room, None)
            logger.info("%s left room %s", name, room)

    return app


async def deliver(ws: WebSocket, member: Member, listening: trio.CancelScope) -> None:
    """Send the member its queued messages; close with 1008 if the room put it out.

    Cancellation:
        Cancelled with the request when the client goes away. A send to a
        client that does not read waits inside the server (hypercorn shields
        its socket writes), but only this member's task waits: the room does not.
    """
    async with member.inbox:
        async for text in member.inbox:
            if member.too_slow:
                break  # what is still queued would only keep a slow client busier
            try:
                await ws.send(text)
            except WebSocketStateError:
                return  # the conversation is closing (/quit): what is queued is moot
    if member.too_slow:
        try:
            await ws.close_output(1008, "too slow: messages were dropped")
        except WebSocketStateError:
            return  # the client had already gone
        # Keep relaying what the client sent before it saw our close, for a while.
        listening.deadline = trio.current_time() + CLOSE_GRACE


app = create_app()

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(host="127.0.0.1", port=8000)
