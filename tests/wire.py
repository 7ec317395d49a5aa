"""A raw-socket HTTP/1.1 client for integration tests, parsing with h11."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import CloseConnection, Event, TextMessage
from wsproto.events import Request as WSRequest


@attrs.frozen
class WireResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    complete: bool  # False: the server closed before the promised body


async def connect(port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", port)


def request_bytes(
    method: str, path: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers)]
    if body and not any(k.lower() == "content-length" for k, _ in headers):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


WAIT = 10  # seconds: the bound of every read here


async def read_response(stream: trio.SocketStream, method: str = "GET") -> WireResponse:
    """Read one response; ``complete`` tells whether it ended properly."""
    connection = h11.Connection(h11.CLIENT)
    # Put the client side in the state "request sent" so h11 parses a response.
    connection.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    connection.send(h11.EndOfMessage())
    status, body = 0, b""
    headers: dict[str, str] = {}
    with trio.fail_after(WAIT):
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                connection.receive_data(data)
                if not data and connection.their_state is not h11.DONE:
                    try:
                        event = connection.next_event()
                    except h11.RemoteProtocolError:
                        return WireResponse(status, headers, body, complete=False)
                    if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                        return WireResponse(status, headers, body, complete=False)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return WireResponse(status, headers, body, complete=True)
            elif isinstance(event, h11.ConnectionClosed):
                return WireResponse(status, headers, body, complete=False)


async def fetch(
    port: int, method: str, path: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
) -> WireResponse:
    stream = await connect(port)
    async with stream:
        await stream.send_all(request_bytes(method, path, headers, body))
        return await read_response(stream, method)


async def wait_closed_by_peer(stream: trio.SocketStream) -> bool:
    """True once the server closed the connection (reads until EOF, bounded)."""
    with trio.fail_after(WAIT):
        while True:
            try:
                if not await stream.receive_some(65536):
                    return True
            except trio.BrokenResourceError:
                return True


class RawWebSocket:
    """A WebSocket client made of wsproto and a socket, fully under the test's control.

    Unlike a library client it never answers a close by itself, so tests can
    hold back the acknowledgement, send after the server's close, or drop the
    TCP connection without any close frame.
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.connection = WSConnection(ConnectionType.CLIENT)
        self._pending: list[Event] = []

    @classmethod
    async def connect(cls, port: int, path: str) -> tuple[RawWebSocket, Event]:
        """Open the socket and handshake; returns the client and the server's answer."""
        client = cls(await trio.open_tcp_stream("127.0.0.1", port))
        await client._send(WSRequest(host="127.0.0.1", target=path))
        return client, await client.next_event()

    async def _send(self, event: Event) -> None:
        await self.stream.send_all(self.connection.send(event))

    async def next_event(self) -> Event:
        with trio.fail_after(WAIT):
            while not self._pending:
                data = await self.stream.receive_some(65536)
                self.connection.receive_data(data or None)
                self._pending.extend(self.connection.events())
                if not data and not self._pending:
                    raise trio.BrokenResourceError("the server closed the connection")
        return self._pending.pop(0)

    async def send_text(self, text: str) -> None:
        await self._send(TextMessage(data=text))

    async def close(self, code: int = 1000) -> None:
        await self._send(CloseConnection(code=code))

    async def acknowledge(self, event: CloseConnection) -> None:
        await self._send(event.response())

    async def drop(self) -> None:
        """Close TCP with no close frame: a client that vanished."""
        await self.stream.aclose()
