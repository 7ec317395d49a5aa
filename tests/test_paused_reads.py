"""A client that leaves behind buffered bytes is still seen (h11 paused), over a real hypercorn.

After a complete request, h11 pauses on any bytes that follow (a stray CRLF,
which RFC 9112 §2.2 lets a server tolerate, or a pipelined request) until the
response is done. hypercorn stopped reading then, so a client's FIN behind
those bytes went unseen; trioweb reads on while paused.
"""

from __future__ import annotations

import h11
import pytest
import trio

from trioweb import App, DisconnectReason, DisconnectToken, Server

from .conftest import Probe
from .wire import WAIT, connect, request_bytes


@pytest.fixture
def app(probe: Probe) -> App:
    app = App()

    @app.get("/lottery")
    async def lottery(token: DisconnectToken) -> str:
        probe.entered.set()
        try:
            await trio.sleep(30)
        except trio.Cancelled:
            probe.record.append(f"cancelled: {token.reason}")
            raise
        finally:
            probe.done.set()
        return "you won"

    @app.get("/echo/{n}")
    async def echo(n: int) -> str:
        await trio.lowlevel.checkpoint()  # suspends; the next request waits in h11, paused
        return f"echo {n}"

    return app


LOTTERY = b"GET /lottery HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "after",
    [b"", b"\r\n", request_bytes("GET", "/echo/1"), b"\r\n" + request_bytes("GET", "/echo/1")],
    ids=["nothing", "stray CRLF", "pipelined request", "CRLF and pipelined request"],
)
@pytest.mark.parametrize("leave", ["close", "reset"])
async def test_a_client_that_leaves_behind_buffered_bytes_cancels_its_handler(
    server: Server, probe: Probe, after: bytes, leave: str
) -> None:
    stream = await connect(server.port)
    await stream.send_all(LOTTERY + after)
    with trio.fail_after(WAIT):
        await probe.entered.wait()
    await trio.testing.wait_all_tasks_blocked()  # the server has read what was sent
    if leave == "reset":
        import socket
        import struct

        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()
    with trio.fail_after(WAIT):
        await probe.done.wait()
    assert probe.record == [f"cancelled: {DisconnectReason.CLIENT_DISCONNECTED}"]


async def responses(stream: trio.SocketStream, count: int) -> list[bytes]:
    connection = h11.Connection(h11.CLIENT)
    bodies: list[bytes] = []
    body = b""
    with trio.fail_after(WAIT):
        while len(bodies) < count:
            if connection.our_state is h11.IDLE:  # h11 needs a request for each response
                connection.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
                connection.send(h11.EndOfMessage())
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                assert data, "the server closed the connection"
                connection.receive_data(data)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                bodies.append(body)
                body = b""
                connection.start_next_cycle()
    return bodies


@pytest.mark.parametrize("count", [2, 50, 900])
async def test_pipelined_requests_are_all_answered_in_order(server: Server, count: int) -> None:
    # 900 requests (~140 KiB; hypercorn closes after 1000) pass the 64 KiB
    # read while paused: reading stops there, and resumes once h11 takes the bytes.
    stream = await connect(server.port)
    pad = [("x-pad", "p" * 100)]
    await stream.send_all(b"".join(request_bytes("GET", f"/echo/{n}", pad) for n in range(count)))
    assert await responses(stream, count) == [f"echo {n}".encode() for n in range(count)]
    await stream.aclose()
