"""The lottery from the seed article, the trioweb way.

Five draws, half a second apart; the last one is the lucky number. If the
visitor closes the tab meanwhile, the draws stop: the handler is cancelled
where it sleeps, the callback says so, and nothing is sent. No polling of
``IsCancellationRequested`` is needed, since cancellation is structural.

Run it with ``trioweb run examples.lottery:app`` and open
http://127.0.0.1:8000/lottery (or press the browser's stop button midway).
"""

from __future__ import annotations

import logging
import random

import trio
import trio.lowlevel

from trioweb import App, DisconnectToken, Request

logger = logging.getLogger("lottery")

app = App()

DRAWS = 5
PAUSE = 0.5


@app.get("/")
async def index() -> str:
    return "Welcome to the lottery shop: GET /lottery draws your lucky number.\n"


@app.get("/lottery")
async def lottery(token: DisconnectToken) -> dict[str, int]:
    token.register(logger.info, "client left: the draw was called off")
    result = 0
    for _ in range(DRAWS):
        await trio.sleep(PAUSE)  # cancelled here if the client leaves
        result = random.randint(0, 999)
    return {"lucky": result}


@app.get("/items/{item_id:int}")
async def item(item_id: int, request: Request, nursery: trio.Nursery) -> dict[str, object]:
    nursery.start_soon(audit, item_id)  # a child of the request: cancelled with it
    return {"id": item_id, "path": request.path}


async def audit(item_id: int) -> None:
    await trio.lowlevel.checkpoint()
    logger.info("item %d was looked at", item_id)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(host="127.0.0.1", port=8000)
