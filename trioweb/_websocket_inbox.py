"""A WebSocket's inbox: messages from the client, bounded in bytes, not messages.

A handler that never reads must not let one client fill the server's memory
(40 messages of 15 MiB held 598 MiB when the bound was 64 messages). The
reader waits while the inbox holds ``budget`` bytes, so the server stops
reading the connection and TCP pushes back on the client. One message always
fits, whatever its size: the route's ``max_message_size`` bounds that.
"""

from __future__ import annotations

import math
import sys
from typing import final

import attrs
import trio

from ._websocket_state import WebSocketState


def _size(message: str | bytes) -> int:
    # What a message holds in memory; O(1) for str, unlike encoding it.
    return sys.getsizeof(message) if isinstance(message, str) else len(message)


@final
@attrs.frozen
class WebSocketStatistics:
    """A snapshot of a :class:`WebSocket`, for debugging (``websocket.statistics()``).

    Attributes:
        state: Where the conversation stands.
        buffered_messages: Messages received and not read by the handler yet.
        buffered_bytes: Their size in memory, bounded by the app's
            ``websocket_buffer_size`` (plus one message).
    """

    state: WebSocketState
    buffered_messages: int
    buffered_bytes: int


class Inbox:
    """Messages from the client, bounded in bytes; the reader waits while it is full."""

    __slots__ = ("_budget", "_has_room", "_incoming", "_outgoing", "buffered")

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._outgoing, self._incoming = trio.open_memory_channel[str | bytes](math.inf)
        self._has_room: trio.Event | None = None
        self.buffered = 0

    async def put(self, message: str | bytes) -> None:
        """Queue ``message``, waiting while the inbox is full (one message always fits).

        Cancellation:
            A checkpoint; the wait ends with the reader's scope.
        """
        size = _size(message)
        while self.buffered and self.buffered + size > self._budget:
            self._has_room = trio.Event()
            await self._has_room.wait()
        await trio.lowlevel.checkpoint()
        self.buffered += size
        try:
            self._outgoing.send_nowait(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.buffered -= size  # close() stopped the handler's reading: dropped

    async def get(self) -> str | bytes:
        """The next message.

        Raises:
            trio.EndOfChannel: No more will come.
        """
        try:
            message = await self._incoming.receive()
        except trio.ClosedResourceError:
            raise trio.EndOfChannel from None
        self.buffered -= _size(message)
        if self._has_room is not None:
            self._has_room.set()
        return message

    def statistics(self) -> tuple[int, int]:
        return self._incoming.statistics().current_buffer_used, self.buffered

    def end(self) -> None:
        """No more messages will come (those queued are still delivered)."""
        self._outgoing.close()

    def stop_reading(self) -> None:
        """The handler reads no more: later messages are dropped."""
        self._incoming.close()
