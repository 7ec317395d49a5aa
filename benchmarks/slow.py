"""Clients that vanish, stall or trickle: trioweb beside Starlette and quart-trio, in one run.

Run: ``bash benchmarks/setup.sh && .venv/bin/python benchmarks/wire.py --parts slow``
(as root, for the vanished client; without root that row says why it was not run).

trioweb is served by ``trioweb.serve`` with its default settings; Starlette and
quart-trio by plain ``hypercorn.trio.serve``, as they are deployed (see
``servers.py``). The three servers run side by side, and each scenario runs
against all three at once, one scenario after the other, each bounded by
``--slow-bound`` seconds:

1. **A vanished client.** The servers listen on the host end of a veth pair; a
   client process in a network namespace made here holds an idle request on
   each. Then iptables drops every packet inside that namespace: the client is
   gone without a FIN or RST. Measured: from the drop to the end of each
   handler (``trio.Cancelled``, as the app records it).
2. **A stalled reader.** A client with a 4 KiB receive buffer asks for a
   1 GiB stream (64 KiB chunks) and never reads. Measured: from the stream's
   start to its generator's end, and the bytes it produced meanwhile.
3. **A slow upload** at 1 byte/s of a 100 kB body. Measured: from the request
   head to the response (408) or the connection's close, on the client, and
   when the handler ended, on the server.

The apps record on their own side when their handler saw its end (their
``/stats``); ``CLOCK_MONOTONIC`` is one clock for every process here, network
namespaces included. The namespace, its veth pair and iptables rules (inside it)
are removed in a ``finally``, and every process started here is ended by its
own handle, on an error or Ctrl-C too.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

import trio
from wire import get_json, running

WAIT = 60  # seconds: the bound of any wait that is not a measurement
POLL = 0.05  # seconds between two looks at a server's /stats
UPLOAD = 100_000  # bytes the slow upload promises

#: The peers: the name servers.py knows, and how it is served.
PEERS = {
    "trioweb": ("trioweb", ["--trioweb-serve"]),
    "Starlette": ("starlette", []),
    "quart-trio": ("quart-trio", []),
}

# A network of its own (10.214.N.0/30; tests/test_deadpeer.py uses 10.213).
_N = os.getpid() % 250
NAMESPACE = f"trioweb-bench-{os.getpid()}"
HOST_IF, PEER_IF = f"twbh{os.getpid() % 100000}", f"twbp{os.getpid() % 100000}"
SERVER_ADDRESS, CLIENT_ADDRESS = f"10.214.{_N}.1", f"10.214.{_N}.2"

# Runs inside the namespace: one idle request on each server, then silence.
CLIENT = r"""
import socket, sys, time
held = []
for port in sys.argv[2:]:
    sock = socket.create_connection((sys.argv[1], int(port)), timeout=30)
    sock.sendall(b"GET /idle?id=vanish HTTP/1.1\r\nhost: x\r\n\r\n")
    held.append(sock)
time.sleep(600)  # never reads, never closes: the benchmark kills it
"""


class Unavailable(Exception):
    """Network namespaces cannot be made here; the message says why."""


def _ip(*args: str, namespace: bool = False) -> None:
    command = ["ip", "netns", "exec", NAMESPACE, *args] if namespace else ["ip", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


@contextmanager
def network() -> Iterator[None]:
    """A namespace with a veth pair to the host, removed afterwards (Ctrl-C included).

    Raises:
        Unavailable: Not root, iproute2 or iptables missing, or namespaces refused.
    """
    if os.geteuid() != 0:
        raise Unavailable("network namespaces need root")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            raise Unavailable(f"{tool} is missing (apt-get install iproute2 iptables)")
    try:
        _ip("netns", "add", NAMESPACE)
    except subprocess.CalledProcessError as error:
        raise Unavailable(f"cannot make a network namespace: {error.stderr.decode()}") from None
    try:
        _ip("link", "add", HOST_IF, "type", "veth", "peer", "name", PEER_IF)
        _ip("link", "set", PEER_IF, "netns", NAMESPACE)
        _ip("addr", "add", f"{SERVER_ADDRESS}/30", "dev", HOST_IF)
        _ip("link", "set", HOST_IF, "up")
        _ip("ip", "addr", "add", f"{CLIENT_ADDRESS}/30", "dev", PEER_IF, namespace=True)
        _ip("ip", "link", "set", PEER_IF, "up", namespace=True)
        _ip("ip", "link", "set", "lo", "up", namespace=True)
        yield
    finally:
        # The iptables rules live in the namespace and go with it, and so does the pair.
        subprocess.run(["ip", "netns", "del", NAMESPACE], capture_output=True, timeout=30)
        # Only matters if the pair was made but never moved into the namespace.
        subprocess.run(["ip", "link", "del", HOST_IF], capture_output=True, timeout=30)


@asynccontextmanager
async def serving(name: str, host: str, args: list[str]) -> AsyncIterator[int]:
    """Start ``servers.py NAME`` on ``host``; yield its port; end that process afterwards."""
    async with running(name, "--host", host, *args) as (port, _pid):
        yield port


async def seen(host: str, port: int) -> dict[str, dict[str, Any]]:
    """What the server's handlers recorded (``Holds.seen`` in servers.py)."""
    result: dict[str, dict[str, Any]] = (await get_json(port, "/stats", host))["seen"]
    return result


async def wait_seen(host: str, port: int, key: str, field: str, limit: float) -> dict[str, Any]:
    """Poll until the record under ``key`` has ``field``; what it has after ``limit`` s if not."""
    record: dict[str, Any] = {}
    with trio.move_on_after(limit):
        for _ in range(int(limit / POLL) + 1):  # bounded; the timeout ends it sooner
            record = (await seen(host, port)).get(key, {})
            if field in record:
                break
            await trio.sleep(POLL)
    return record


def how(record: dict[str, Any]) -> str:
    """What the handler saw, and the token's reason where there is one."""
    reason = f": {record['reason']}" if "reason" in record else ""
    return f"{record['how']}{reason}"


# ---- 1. a vanished client ----


async def vanished(ports: dict[str, int], bound: float) -> dict[str, str]:
    client = await trio.lowlevel.open_process(
        ["ip", "netns", "exec", NAMESPACE, sys.executable, "-c", CLIENT, SERVER_ADDRESS]
        + [str(port) for port in ports.values()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        for name, port in ports.items():
            if "entered" not in await wait_seen(SERVER_ADDRESS, port, "vanish", "entered", WAIT):
                raise RuntimeError(f"{name}: the idle request never arrived")
        for chain in ("INPUT", "OUTPUT"):
            _ip("iptables", "-A", chain, "-j", "DROP", namespace=True)
        dropped = time.monotonic()
        results: dict[str, str] = {}

        async def measure(name: str, port: int) -> None:
            left = dropped + bound - time.monotonic()
            record = await wait_seen(SERVER_ADDRESS, port, "vanish", "ended", left)
            results[name] = (
                f"{record['ended'] - dropped:.1f} s ({how(record)})"
                if "ended" in record
                else f"never within {bound:g} s"
            )

        async with trio.open_nursery() as nursery:
            for name, port in ports.items():
                nursery.start_soon(measure, name, port)
        return results
    finally:
        client.kill()  # the client started here, by its handle
        with trio.CancelScope(shield=True):
            await client.wait()


# ---- 2. a stalled reader ----


async def stalled(host: str, ports: dict[str, int], bound: float) -> dict[str, str]:
    results: dict[str, str] = {}

    async def measure(name: str, port: int) -> None:
        client = trio.socket.socket()
        with client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
            await client.connect((host, port))
            await client.send(b"GET /stream?id=stall HTTP/1.1\r\nhost: x\r\n\r\n")
            started = await wait_seen(host, port, "stall", "entered", WAIT)
            if not started:
                raise RuntimeError(f"{name}: the stream never started")
            left = started["entered"] + bound - time.monotonic()
            record = await wait_seen(host, port, "stall", "ended", left)
            kib = f"{record.get('bytes', started.get('bytes', 0)) // 1024:,} KiB handed over"
            results[name] = (
                f"{record['ended'] - record['entered']:.1f} s ({how(record)}; {kib})"
                if "ended" in record
                else f"never within {bound:g} s ({kib})"
            )

    async with trio.open_nursery() as nursery:
        for name, port in ports.items():
            nursery.start_soon(measure, name, port)
    return results


# ---- 3. a slow upload ----


async def trickle(host: str, port: int, bound: float) -> str:
    """Send the upload at 1 byte/s; what ended it, on the client and on the server."""
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        head = f"POST /upload?id=upload HTTP/1.1\r\nhost: x\r\ncontent-length: {UPLOAD}\r\n\r\n"
        await stream.send_all(head.encode())
        start = time.monotonic()
        ended = ""
        with trio.move_on_after(bound):
            for _ in range(UPLOAD):  # bounded; the timeout ends it sooner
                try:
                    await stream.send_all(b"x")
                    with trio.move_on_after(1):  # 1 byte/s; an answer cuts the wait short
                        data = await stream.receive_some(65536)
                        status = re.match(rb"HTTP/1\.1 (\d+)", data)
                        ended = status.group(1).decode() if status else "closed"
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    ended = "reset"
                if ended:
                    ended += f" after {time.monotonic() - start:.1f} s"
                    break
        # Looked at before this client closes: its leaving would end the handler.
        record = await wait_seen(host, port, "upload", "ended", 2 if ended else 0.2)
    handler = (
        f"handler ended after {record['ended'] - record['entered']:.1f} s ({how(record)})"
        if "ended" in record
        else "handler still running"
    )
    return f"{ended or f'nothing within {bound:g} s'}; {handler}"


async def slow_upload(host: str, ports: dict[str, int], bound: float) -> dict[str, str]:
    results: dict[str, str] = {}

    async def measure(name: str, port: int) -> None:
        results[name] = await trickle(host, port, bound)

    async with trio.open_nursery() as nursery:
        for name, port in ports.items():
            nursery.start_soon(measure, name, port)
    return results


async def slow_clients(bound: float) -> str:
    """The three scenarios against the three peers; a Markdown table and its legend."""
    rows: dict[str, dict[str, str]] = {}
    async with AsyncExitStack() as stack:
        try:
            stack.enter_context(network())
            host, why = SERVER_ADDRESS, ""
        except Unavailable as error:
            host, why = "127.0.0.1", str(error)
        ports = {
            label: await stack.enter_async_context(serving(name, host, args))
            for label, (name, args) in PEERS.items()
        }
        vanish = "a vanished client (idle request, packets dropped): drop to the handler's end"
        if why:
            rows[vanish] = dict.fromkeys(ports, f"not run: {why}")
        else:
            rows[vanish] = await vanished(ports, bound)
        stall = "a stalled reader (4 KiB receive buffer, 1 GiB stream): stream's start to its end"
        rows[stall] = await stalled(host, ports, bound)
        upload = "a slow upload (1 byte/s of 100 kB): request head to 408 or close"
        rows[upload] = await slow_upload(host, ports, bound)
    lines = [
        f"Clients that vanish, stall or trickle, each scenario bounded at {bound:g} s "
        "(trioweb on trioweb.serve with its defaults; Starlette and quart-trio on "
        "hypercorn.trio.serve):",
        "",
        "| scenario | " + " | ".join(PEERS) + " |",
        "|---|" + "---|" * len(PEERS),
    ]
    for scenario, cells in rows.items():
        lines.append(f"| {scenario} | " + " | ".join(cells[name] for name in PEERS) + " |")
    return "\n".join(lines)
