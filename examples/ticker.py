"""A price ticker over Server-Sent Events that resumes where a reconnecting browser left off.

Every tick has an id (its number). When the connection drops, the browser's
``EventSource`` reconnects by itself and sends the last id it saw as
``Last-Event-ID``; the stream then starts right after it, so nothing is
missed and nothing repeated. When the client goes away for good, the
generator is closed where it waits and its ``finally`` runs.

Run it with ``trioweb run examples.ticker:app`` and open http://127.0.0.1:8000/.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import final

import attrs
import trio

from trioweb import App, EventStream, HTTPError, Request, Response, ServerSentEvent

logger = logging.getLogger("ticker")

INTERVAL = 0.2  # seconds between ticks

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Ticker</title></head>
<body>
  <p>Price: <span id="price">...</span> (tick <span id="tick">none yet</span>)</p>
  <script>
    const source = new EventSource("/ticks");
    source.addEventListener("price", (event) => {
      document.getElementById("price").textContent = event.data;
      document.getElementById("tick").textContent = event.lastEventId;
    });
  </script>
</body>
</html>
"""


def price(tick: int) -> str:
    """A made-up price for tick number ``tick``: the same number always gets the same price."""
    return f"{100 + (tick * 37) % 23 - 11 + tick / 100:.2f}"


@final
@attrs.define
class Streams:
    """What the app's streams are doing, for tests and for the curious."""

    open: int = 0
    ended: int = 0


def create_app(streams: Streams | None = None) -> App:
    """The ticker app; a test passes its own ``Streams`` to watch them open and end."""
    streams = streams or Streams()
    app = App()

    @app.get("/")
    async def page() -> Response:
        return Response(PAGE, media_type="text/html; charset=utf-8")

    @app.get("/ticks")
    async def ticks(request: Request, limit: int | None = None) -> EventStream:
        last = request.last_event_id
        if last is not None and not last.isdigit():
            raise HTTPError(400, "Last-Event-ID must be a tick number")
        first = 0 if last is None else int(last) + 1
        return EventStream(tick_events(streams, first, limit))

    return app


async def tick_events(
    streams: Streams, first: int, limit: int | None
) -> AsyncIterator[ServerSentEvent]:
    """The ticks from number ``first`` on (``limit`` of them, or forever).

    Cancellation:
        When the client leaves, trioweb closes this generator where it waits
        (in ``trio.sleep`` or at a ``yield``): its ``finally`` runs.
    """
    streams.open += 1
    tick = first
    try:
        while limit is None or tick < first + limit:
            yield ServerSentEvent(price(tick), event="price", id=str(tick))
            tick += 1
            await trio.sleep(INTERVAL)
    finally:
        streams.open -= 1
        streams.ended += 1
        logger.info("ticker stream ended after tick %d", tick - 1)


app = create_app()

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(host="127.0.0.1", port=8000)
