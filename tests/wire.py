"""A raw-socket HTTP/1.1 client for integration tests, parsing with h11."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import h11
import trio


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
