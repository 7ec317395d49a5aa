"""The app that the process-level serving tests run with ``trioweb run tests.serve_app:app``."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

import trio

from trioweb import App, StreamingResponse

app = App(shutdown_grace=1)
logger = logging.getLogger("trioweb")


@app.get("/plain")
async def plain() -> str:
    return "plain"


@app.get("/pid")
async def pid() -> dict[str, int]:
    return {"pid": os.getpid()}


@app.get("/hold")
async def hold() -> StreamingResponse:
    """Streams the worker's PID, then holds the request open until cancelled."""

    async def body() -> AsyncIterator[bytes]:
        yield f"{os.getpid()}\n".encode()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            logger.info("hold in %d cancelled", os.getpid())
            raise

    return StreamingResponse(body())


@app.get("/big")
async def big() -> StreamingResponse:
    """A 1 GiB response, for a client that never reads it."""

    async def body() -> AsyncIterator[bytes]:
        chunk = b"x" * (1 << 20)
        for _ in range(1024):
            yield chunk

    return StreamingResponse(body())


@app.post("/crash")
async def crash(app: App) -> str:
    async def doomed() -> None:
        await trio.sleep(0.05)
        raise RuntimeError("a background task failed on purpose")

    app.nursery.start_soon(doomed)
    return "scheduled"
