"""Soak: many requests over a real hypercorn, a share of clients leaving at random points.

Run: ``.venv/bin/python benchmarks/soak.py [--requests 20000] [--leave 0.3]``

The server (trioweb on hypercorn's Trio worker, 127.0.0.1, a port the OS
chose) runs in this process, so that its Trio tasks can be counted; the
clients are raw sockets (HTTP/1.1) and trio-websocket, ``--concurrency`` at a
time. A client either stays to the end, or leaves at one of these points,
chosen at random: before sending the body, mid-upload, mid-handler,
mid-stream, mid-WebSocket. At the end it prints:

* the live Trio task count against its baseline (it must come back);
* RSS after warm-up (the first tenth) and at the end, and the growth;
* 5xx responses seen by clients that stayed (must be 0);
* ERROR log lines (must be 0) and the count of each INFO line kind.

Every loop is bounded in count and time; it stops by itself.
"""

from __future__ import annotations

import argparse
import collections
import gc
import logging
import os
import random
import sys
import time
from collections.abc import AsyncIterator

import h11
import trio
import trio.testing
from trio_websocket import ConnectionClosed, open_websocket_url

from trioweb import App, Request, Server, StreamingResponse, WebSocket, serve

POINTS = ("before body", "mid-upload", "mid-handler", "mid-stream", "mid-websocket")
KINDS = ("upload", "handler", "stream", "websocket", "plain")


def make_app() -> App:
    app = App(max_body_size=256 * 1024)

    @app.get("/plain")
    async def plain() -> str:
        return "ok"

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/handler")
    async def handler() -> str:
        await trio.sleep(0.02)
        return "done"

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"x" * 1024
                await trio.sleep(0.002)

        return StreamingResponse(chunks())

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        async for message in websocket:
            await websocket.send(message)

    return app


class Tally:
    def __init__(self) -> None:
        self.statuses: collections.Counter[int] = collections.Counter()
        self.left: collections.Counter[str] = collections.Counter()
        self.server_errors = 0
        self.client_failures: collections.Counter[str] = collections.Counter()


async def read_status(stream: trio.SocketStream) -> int:
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    connection.send(h11.EndOfMessage())
    status = 0
    with trio.fail_after(10):
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                connection.receive_data(data)
                if not data:
                    return status
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status


def request_head(method: str, path: str, length: int | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", "connection: close"]
    if length is not None:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def http_client(port: int, kind: str, leave: str | None, tally: Tally) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        if kind == "upload":
            body = random.randbytes(random.randint(1, 64 * 1024))
            await stream.send_all(request_head("POST", "/upload", len(body)))
            if leave == "before body":
                return
            if leave == "mid-upload":
                await stream.send_all(body[: len(body) // 2])
                return
            await stream.send_all(body)
        else:
            await stream.send_all(request_head("GET", f"/{kind}"))
            if leave == "mid-handler":
                await trio.sleep(random.uniform(0, 0.02))
                return
            if leave == "mid-stream":
                await stream.receive_some(2048)
                return
        status = await read_status(stream)
        tally.statuses[status] += 1
        if status >= 500 or status == 0:
            tally.server_errors += 1


async def websocket_client(port: int, leave: bool, tally: Tally) -> None:
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as connection:
        for n in range(3):
            await connection.send_message(f"m{n}")
            if leave and n == 1:
                return  # closes mid-conversation
            assert await connection.get_message() == f"m{n}"
    tally.statuses[101] += 1


def live_tasks() -> int:
    count, pending = 0, [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is None:
            continue
        count += 1
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return count


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def settle() -> None:
    for _ in range(3):
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        gc.collect()


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.kinds: collections.Counter[str] = collections.Counter()
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.errors.append(message)
        words = message.split(" ", 2)
        self.kinds[f"{record.levelname} {words[-1].split(' after')[0][:60]}"] += 1


async def one(port: int, leave_share: float, tally: Tally) -> None:
    kind = random.choice(KINDS)
    leaves = random.random() < leave_share
    if kind == "websocket":
        if leaves:
            tally.left["mid-websocket"] += 1
        await websocket_client(port, leaves, tally)
        return
    leave = None
    if leaves:
        choices = {
            "upload": ("before body", "mid-upload"),
            "handler": ("mid-handler",),
            "stream": ("mid-stream",),
            "plain": ("mid-handler",),
        }[kind]
        leave = random.choice(choices)
        tally.left[leave] += 1
    await http_client(port, kind, leave, tally)


async def main(requests: int, leave_share: float, concurrency: int) -> int:
    recorder = Recorder()
    logging.getLogger("trioweb").addHandler(recorder)
    logging.getLogger("trioweb").setLevel(logging.INFO)
    tally = Tally()
    limiter = trio.CapacityLimiter(concurrency)
    started = time.perf_counter()

    async def guarded(port: int) -> None:
        async with limiter:
            try:
                with trio.fail_after(30):
                    await one(port, leave_share, tally)
            except (OSError, trio.BrokenResourceError, ConnectionClosed, trio.TooSlowError) as e:
                tally.client_failures[type(e).__name__] += 1

    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(serve, make_app(), "127.0.0.1", 0)
        await settle()
        baseline_tasks = live_tasks()
        warm = max(1, requests // 10)
        rss_warm = 0
        done = 0
        while done < requests:
            batch = min(1000, requests - done)
            async with trio.open_nursery() as clients:
                for _ in range(batch):
                    clients.start_soon(guarded, server.port)
            done += batch
            if done >= warm and not rss_warm:
                await settle()
                rss_warm = rss_kib()
            print(f"  {done} requests, {time.perf_counter() - started:.0f}s", file=sys.stderr)
        with trio.fail_after(60):
            while live_tasks() > baseline_tasks:
                await settle()
                await trio.sleep(0.5)  # bounded: watchers linger after abnormal ends
        await settle()
        rss_end = rss_kib()
        end_tasks = live_tasks()
        server.shutdown()
    growth = (rss_end - rss_warm) / rss_warm * 100
    print(f"requests: {requests}, {sum(tally.left.values())} left early: {dict(tally.left)}")
    print(f"statuses of clients that stayed: {dict(tally.statuses)}")
    print(f"client-side failures: {dict(tally.client_failures)}")
    print(f"5xx (or no answer) for clients that stayed: {tally.server_errors}")
    print(f"Trio tasks: baseline {baseline_tasks}, at the end {end_tasks}")
    print(f"RSS: {rss_warm} KiB after warm-up, {rss_end} KiB at the end ({growth:+.1f}%)")
    print(f"ERROR lines: {len(recorder.errors)} {recorder.errors[:3]}")
    print("log lines by kind:")
    for kind, count in recorder.kinds.most_common(12):
        print(f"  {count:6d}  {kind}")
    print(f"took {time.perf_counter() - started:.0f}s")
    ok = (
        tally.server_errors == 0
        and end_tasks == baseline_tasks
        and growth < 10
        and not recorder.errors
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--leave", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    random.seed(arguments.seed)
    sys.exit(trio.run(main, arguments.requests, arguments.leave, arguments.concurrency))
