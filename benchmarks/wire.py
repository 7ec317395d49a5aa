"""trioweb and its peers over the wire, on hypercorn's Trio worker, side by side.

Run: ``bash benchmarks/setup.sh && .venv/bin/python benchmarks/wire.py``

Five parts, each a table (``--parts`` picks some):

1. throughput: wrk (1 thread, 32 connections) against a plain-text and a JSON
   route, and a plain-text route whose handler waits once (one checkpoint, so
   trioweb must give it a scope and a disconnect watcher); requests/s, latency
   p50/p99, and the ratio to the bare ASGI callable.
   Without wrk, a Python load generator stands in (and the table says so).
2. latency: clients close their socket while the handler sleeps; the time from
   the client's ``close()`` to the handler's ``trio.Cancelled``, both read on
   ``CLOCK_MONOTONIC`` (one clock for all processes), p50/p99; with clients
   closing one at a time, and in bursts where many close at once.
3. scale: thousands of held requests on one server: its RSS per held request;
   then every client closes at once: the time until every handler was
   cancelled, and whether the task count is back to its baseline.
4. callbacks: a DisconnectToken with 10,000 callbacks is set; the dispatch time.
5. slow: clients that vanish (network namespaces, so root), stall or trickle;
   trioweb on ``trioweb.serve`` against Starlette and quart-trio on plain
   hypercorn, each scenario bounded by ``--slow-bound`` (see ``slow.py``).

Every server is a child process on 127.0.0.1, on a port the OS chose; each
loop is bounded in count and time, and only the processes started here are
ended, through their own handles.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import trio

SERVERS = Path(__file__).with_name("servers.py")
WAIT = 60  # seconds: the bound of any single wait on a server


@asynccontextmanager
async def running(name: str, *args: str) -> AsyncIterator[tuple[int, int]]:
    """Start ``servers.py NAME ARGS...``; yield its port and PID; end that process afterwards."""
    process = await trio.lowlevel.open_process(
        [sys.executable, str(SERVERS), name, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        output = b""
        with trio.fail_after(WAIT):
            while (found := re.search(rb"PORT (\d+)", output)) is None:
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    raise RuntimeError(f"the {name} server exited before listening")
                output += chunk
        yield int(found.group(1)), process.pid
    finally:
        process.terminate()  # the process started here, by its handle
        with trio.CancelScope(shield=True):  # even when the run is cancelled (Ctrl-C)
            with trio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.stdout.aclose()


async def get_json(port: int, path: str, host: str = "127.0.0.1") -> Any:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
        # Read by content-length: not every peer closes after "connection: close".
        with trio.fail_after(WAIT):
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(1 << 20)
            head, _, body = data.partition(b"\r\n\r\n")
            found = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
            if found is None:
                raise RuntimeError(f"no content-length in {head!r}")
            while len(body) < int(found.group(1)):
                body += await stream.receive_some(1 << 20)
    return json.loads(body)


async def wait_active(port: int, predicate: Any, limit: float) -> dict[str, Any] | None:
    """Poll /stats until ``predicate(stats)``; None if ``limit`` seconds pass first."""
    with trio.move_on_after(limit):
        for _ in range(100_000):  # bounded; the timeout ends it sooner
            stats: dict[str, Any] = await get_json(port, "/stats")
            if predicate(stats):
                return stats
            await trio.sleep(0.01)
    return None


async def open_held(port: int, key: str) -> trio.socket.SocketType:
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", port))
    await sock.send(f"GET /hold?id={key} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
    return sock


# ---- 1. throughput ----

_WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


async def wrk(
    port: int, path: str, duration: float, connections: int
) -> tuple[float, float, float]:
    result = await trio.run_process(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--latency",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_stdout=True,
        capture_stderr=True,
    )
    out = result.stdout.decode()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {p: float(v) * _UNIT[u] for p, v, u in _WRK_LATENCY.findall(out)}
    return rps, latency["50"], latency["99"]


async def python_load(
    port: int, path: str, duration: float, connections: int
) -> tuple[float, float, float]:
    """Fallback load generator: keep-alive connections in a closed loop."""
    latencies: list[float] = []
    request = f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode()

    async def client() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            while True:
                start = time.perf_counter()
                await stream.send_all(request)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await stream.receive_some(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
                while len(body) < length:
                    body += await stream.receive_some(65536)
                latencies.append((time.perf_counter() - start) * 1e3)

    with trio.move_on_after(duration):
        async with trio.open_nursery() as nursery:
            for _ in range(connections):
                nursery.start_soon(client)
    latencies.sort()
    return (
        len(latencies) / duration,
        latencies[len(latencies) // 2],
        latencies[int(len(latencies) * 0.99)],
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def throughput(apps: list[str], duration: float, connections: int, rounds: int) -> str:
    load = wrk if shutil.which("wrk") else python_load
    routes = {"plain text": "/plain", "JSON": "/items/42", "plain text, waits once": "/wait"}
    samples: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    cpus = sorted(os.sched_getaffinity(0))
    async with AsyncExitStack() as stack:
        # All servers run side by side and the rounds interleave, so machine
        # noise falls on every app alike; the table shows medians.
        servers = {name: await stack.enter_async_context(running(name)) for name in apps}
        if len(cpus) >= 2:
            # The servers on one core and the load generator (this process's
            # child) on another: neither migrates nor steals the other's core.
            for _, pid in servers.values():
                os.sched_setaffinity(pid, {cpus[1]})
            os.sched_setaffinity(0, {cpus[0]})
            stack.callback(os.sched_setaffinity, 0, cpus)
        for port, _ in servers.values():
            for path in routes.values():
                await load(port, path, 1, connections)  # warm up
        for _ in range(rounds):
            for name, (port, pid) in servers.items():
                for label, path in routes.items():
                    cpu = cpu_seconds(pid)
                    rps, p50, p99 = await load(port, path, duration, connections)
                    cpu_per_request = (cpu_seconds(pid) - cpu) / (rps * duration) * 1e6
                    samples.setdefault((name, label), []).append((rps, cpu_per_request, p50, p99))
    results = {
        key: tuple(statistics.median(column) for column in zip(*values, strict=True))
        for key, values in samples.items()
    }
    generator = (
        f"wrk -t1 -c{connections} -d{duration:g}s"
        if load is wrk
        else "Python load generator (wrk not found)"
    )
    pinning = (
        f"servers pinned to CPU {cpus[1]}, the load generator to CPU {cpus[0]}"
        if len(cpus) >= 2
        else "one CPU shared"
    )
    lines = [
        f"Throughput over loopback, {generator}, median of {rounds} interleaved rounds "
        f"({pinning}):",
        "",
        "| app | route | requests/s | x bare ASGI | server CPU µs/request | bare CPU / app CPU "
        "| p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in apps:
        for label in routes:
            rps, cpu, p50, p99 = results[name, label]
            bare_rps, bare_cpu = results["bare ASGI", label][:2]
            lines.append(
                f"| {name} | {label} | {rps:,.0f} | {rps / bare_rps:.2f} | {cpu:.0f} "
                f"| {bare_cpu / cpu:.2f} | {p50:.2f} | {p99:.2f} |"
            )
    return "\n".join(lines)


# ---- 2. disconnect-to-cancel latency ----


async def latency(apps: list[str], count: int, batch: int = 50, spacing: float = 0.002) -> str:
    """Each app twice: clients closing one at a time, ``spacing`` apart (the latency
    of one disconnect), and ``batch`` clients closing at once (a burst, where the
    last waits for the server to get through the others)."""
    lines = [
        f"Disconnect to trio.Cancelled in the handler ({batch} requests held at a time):",
        "",
        "| app | clients close | disconnects | cancelled | p50 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    modes = {f"one at a time, {spacing * 1e3:g} ms apart": spacing, f"{batch} at once": 0.0}
    for name in apps:
        for mode, gap in modes.items():
            async with running(name) as (port, _):
                closes: dict[str, float] = {}
                never = False
                for round_ in range(count // batch):
                    socks = [await open_held(port, f"{round_}-{i}") for i in range(batch)]
                    if await wait_active(port, lambda s, n=batch: s["active"] >= n, WAIT) is None:
                        raise RuntimeError(f"{name}: the held requests never all arrived")
                    for i, sock in enumerate(socks):
                        closes[f"{round_}-{i}"] = time.monotonic()
                        sock.close()
                        if gap:
                            await trio.sleep(gap)
                    if await wait_active(port, lambda s: s["active"] == 0, 2) is None:
                        never = True  # nothing cancels these handlers
                        break
                cancelled = (await get_json(port, "/stats"))["cancelled"]
            delays = sorted((cancelled[k] - t) * 1e3 for k, t in closes.items() if k in cancelled)
            if never or not delays:
                lines.append(f"| {name} | {mode} | {len(closes)} | 0 | never cancels | | |")
                break
            lines.append(
                f"| {name} | {mode} | {len(closes)} | {len(delays)} "
                f"| {statistics.median(delays):.2f} | {delays[int(len(delays) * 0.99) - 1]:.2f} "
                f"| {delays[-1]:.2f} |"
            )
    return "\n".join(lines)


# ---- 3. scale ----


async def storm(name: str, held: int) -> tuple[float, float | None, bool, str]:
    """One server, ``held`` held requests, every client closing at once.

    Returns the RSS KiB per held request, the seconds from the first close to
    the last cancellation (None if not all within WAIT), whether the task count
    came back to its baseline, and how it did.
    """
    async with running(name) as (port, _):
        # Warm up first: some system tasks (Trio's run_sync_soon task) start lazily.
        warm = await open_held(port, "warm-up")
        await wait_active(port, lambda s: s["active"] == 1, WAIT)
        warm.close()
        await wait_active(port, lambda s: s["active"] == 0, WAIT)
        base = await get_json(port, "/stats")
        socks: list[trio.socket.SocketType] = []

        async def open_some(start: int, n: int) -> None:
            for i in range(start, start + n):
                socks.append(await open_held(port, str(i)))

        with trio.fail_after(WAIT * 2):
            for start in range(0, held, 500):
                async with trio.open_nursery() as nursery:
                    for part in range(start, min(start + 500, held), 50):
                        nursery.start_soon(open_some, part, min(50, held - part))
        loaded = await wait_active(port, lambda s: s["active"] >= held, WAIT)
        if loaded is None:
            raise RuntimeError(f"{name}: the {held} held requests never all arrived")
        per_request = (loaded["rss_kib"] - base["rss_kib"]) / held
        first_close = time.monotonic()
        for sock in socks:
            sock.close()
        done = await wait_active(port, lambda s: s["active"] == 0, WAIT)
        if done is None:
            return per_request, None, False, f"handlers still running after {WAIT} s"
        last_cancel = max(done["cancelled"].values())
        # A few tasks belong to the /stats polls' own connections; a leak
        # would leave thousands.
        baseline = base["tasks"]
        settled = await wait_active(port, lambda s: s["tasks"] <= baseline + 5, WAIT)
        left = settled or await get_json(port, "/stats")
        how = (
            f"{left['tasks']} vs {baseline}, after {time.monotonic() - first_close:.1f} s"
            if settled
            else f"{left['tasks']} tasks vs {baseline} after {WAIT} s"
        )
        return per_request, last_cancel - first_close, settled is not None, how


async def scale(apps: list[str], held: int, repeats: int) -> str:
    lines = [
        f"{held:,} held requests on one server process, then every client closes at once "
        f"(median of {repeats} fresh servers per app, interleaved; range in brackets):",
        "",
        "| app | RSS KiB per held request | all cancelled after s | tasks back to baseline |",
        "|---|---:|---:|---|",
    ]
    runs: dict[str, list[tuple[float, float | None, bool, str]]] = {name: [] for name in apps}
    for _ in range(repeats):
        for name in apps:
            runs[name].append(await storm(name, held))
    for name, results in runs.items():
        rss = [r[0] for r in results]
        seconds = [r[1] for r in results if r[1] is not None]
        cancelled = (
            f"{statistics.median(seconds):.2f} ({min(seconds):.2f} to {max(seconds):.2f})"
            if len(seconds) == len(results)
            else f"not all within {WAIT} s in {len(results) - len(seconds)} of {len(results)}"
        )
        back = sum(r[2] for r in results)
        lines.append(
            f"| {name} | {statistics.median(rss):.1f} ({min(rss):.1f} to {max(rss):.1f}) "
            f"| {cancelled} | {'yes' if back == len(results) else 'no'} in {back} of "
            f"{len(results)} (last: {results[-1][3]}) |"
        )
    return "\n".join(lines)


# ---- 4. callback dispatch ----


async def callbacks(count: int = 10_000, rounds: int = 7) -> str:
    from trioweb import DisconnectToken

    timings = []
    for _ in range(rounds):
        token = DisconnectToken._create("GET /bench", 1.0)
        fired: list[int] = []
        for i in range(count):
            token.register(fired.append, i)
        start = time.perf_counter()
        token._trip()
        timings.append(time.perf_counter() - start)
        assert len(fired) == count
    return (
        f"A DisconnectToken with {count:,} callbacks fires them all in "
        f"{statistics.median(timings) * 1e3:.2f} ms (median of {rounds}; target < 10 ms)."
    )


async def main(args: argparse.Namespace) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parts = set(args.parts.split(","))
    if "throughput" in parts:
        print(
            await throughput(
                ["bare ASGI", "trioweb", "starlette", "quart-trio"],
                args.duration,
                args.connections,
                args.rounds,
            ),
            "\n",
            flush=True,
        )
    if "latency" in parts:
        print(
            await latency(["trioweb", "quart-trio", "starlette"], args.disconnects),
            "\n",
            flush=True,
        )
    if "scale" in parts:
        print(
            await scale(
                ["bare ASGI + nursery watcher", "trioweb", "quart-trio"], args.held, args.storms
            ),
            "\n",
            flush=True,
        )
    if "callbacks" in parts:
        print(await callbacks(), "\n", flush=True)
    if "slow" in parts:
        from slow import slow_clients

        print(await slow_clients(args.slow_bound), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--parts", default="throughput,latency,scale,callbacks,slow")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved throughput rounds")
    parser.add_argument("--disconnects", type=int, default=1000)
    parser.add_argument("--held", type=int, default=10_000)
    parser.add_argument("--storms", type=int, default=3, help="scale runs per app (median)")
    parser.add_argument(
        "--slow-bound", type=float, default=40.0, help="seconds each slow-client scenario waits"
    )
    trio.run(main, parser.parse_args())
