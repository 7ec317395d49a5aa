"""Dead-peer detection over a real network path that goes dark (Linux network namespaces).

The test makes a network namespace and a veth pair, with addresses of its own
(10.213.N.0/30); the server listens on the host end, a client process runs in
the namespace. Once the client holds an idle request, an SSE stream and a
WebSocket, iptables in *that namespace* drops every packet: the client
vanishes without a FIN or RST, as behind a dead NAT or a pulled cable. The
server must cancel all three on its own. Nothing outside the namespace the
test made is touched, and it is removed in a finally.

Needs root, iproute2 and iptables (Debian packages ``iproute2``, ``iptables``);
otherwise skipped, saying why. Deselect with ``-m 'not netns'``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from functools import partial

import pytest
import trio

from trioweb import App, EventStream, Server, ServerSentEvent, WebSocket, serve

pytestmark = pytest.mark.netns

N = os.getpid() % 250
NAMESPACE = f"trioweb-test-{os.getpid()}"
HOST_IF, PEER_IF = f"twh{os.getpid() % 100000}", f"twp{os.getpid() % 100000}"
SERVER_ADDRESS, CLIENT_ADDRESS = f"10.213.{N}.1", f"10.213.{N}.2"

CLIENT = r"""
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
def connect(request):
    sock = socket.create_connection((host, port))
    sock.sendall(request.encode())
    return sock
held = [
    connect("GET /idle HTTP/1.1\r\nhost: x\r\n\r\n"),
    connect("GET /sse HTTP/1.1\r\nhost: x\r\n\r\n"),
    connect(
        "GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    ),
]
print("connected", flush=True)
time.sleep(600)  # never reads, never closes: the test kills it
"""


def ip(*args: str, namespace: bool = False) -> None:
    command = ["ip", "netns", "exec", NAMESPACE, *args] if namespace else ["ip", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


@pytest.fixture
def network() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing: apt-get install iproute2 iptables")
    try:
        ip("netns", "add", NAMESPACE)
    except subprocess.CalledProcessError as error:
        pytest.skip(f"cannot make a network namespace here: {error.stderr.decode().strip()}")
    try:
        ip("link", "add", HOST_IF, "type", "veth", "peer", "name", PEER_IF)
        ip("link", "set", PEER_IF, "netns", NAMESPACE)
        ip("addr", "add", f"{SERVER_ADDRESS}/30", "dev", HOST_IF)
        ip("link", "set", HOST_IF, "up")
        ip("ip", "addr", "add", f"{CLIENT_ADDRESS}/30", "dev", PEER_IF, namespace=True)
        ip("ip", "link", "set", PEER_IF, "up", namespace=True)
        ip("ip", "link", "set", "lo", "up", namespace=True)
        yield
    finally:
        subprocess.run(["ip", "netns", "del", NAMESPACE], capture_output=True, timeout=30)
        # Deleting the namespace deletes the pair; this only matters if the move failed.
        subprocess.run(["ip", "link", "del", HOST_IF], capture_output=True, timeout=30)


def dark_app(ended: dict[str, float], entered: dict[str, trio.Event], all_ended: trio.Event) -> App:
    app = App()

    def end(name: str) -> None:
        ended[name] = trio.current_time()
        if len(ended) == 3:
            all_ended.set()

    @app.get("/idle")
    async def idle() -> str:
        entered["idle"].set()
        try:
            await trio.sleep_forever()
        finally:
            end("idle")

    @app.get("/sse")
    async def sse() -> EventStream:
        async def ticks() -> AsyncIterator[ServerSentEvent]:
            try:
                while True:
                    yield ServerSentEvent("tick")
                    entered["sse"].set()
                    await trio.sleep(0.5)  # data in flight: TCP_USER_TIMEOUT's case
            finally:
                end("sse")

        return EventStream(ticks(), keepalive=None)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        entered["ws"].set()
        try:
            async for _ in websocket:  # silent: only keepalive probes can tell
                pass
        finally:
            end("ws")

    return app


async def measure(dead_peer_timeout: float | None, within: float) -> dict[str, float]:
    """Seconds from the drop to the end of each of the three, on the server."""
    ended: dict[str, float] = {}
    entered = {name: trio.Event() for name in ("idle", "sse", "ws")}
    all_ended = trio.Event()
    app = dark_app(ended, entered, all_ended)
    start = partial(serve, app, SERVER_ADDRESS, 0)
    if dead_peer_timeout is not None:
        start = partial(start, dead_peer_timeout=dead_peer_timeout)
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(start)
        in_namespace = ["ip", "netns", "exec", NAMESPACE]
        client = await trio.lowlevel.open_process(
            [*in_namespace, sys.executable, "-c", CLIENT, SERVER_ADDRESS, str(server.port)],
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            with trio.fail_after(15):
                for event in entered.values():
                    await event.wait()
            for chain in ("INPUT", "OUTPUT"):
                ip("iptables", "-A", chain, "-j", "DROP", namespace=True)
            dropped = trio.current_time()
            with trio.fail_after(within):
                await all_ended.wait()
            server.shutdown()
        finally:
            client.kill()  # the client this test started, by its handle
            await client.wait()
    return {name: round(at - dropped, 2) for name, at in ended.items()}


async def test_a_vanished_client_is_cancelled_within_5s_with_3s_settings(network: None) -> None:
    after = await measure(3, within=10)
    print(f"dead_peer_timeout=3: cancelled after {after}")
    assert all(seconds < 5 for seconds in after.values()), after


@pytest.mark.slow
async def test_a_vanished_client_is_cancelled_within_30s_by_default(network: None) -> None:
    after = await measure(None, within=40)
    print(f"default dead_peer_timeout: cancelled after {after}")
    assert all(seconds < 30 for seconds in after.values()), after
