"""Apps the end-to-end tests serve besides the examples."""

from __future__ import annotations

from examples.ticker import Streams, tick_events
from trioweb import App, EventStream

# The ticker's stream with the header nginx needs set by hand: shows that the
# nginx harness delivers SSE promptly once the header is there, whatever
# trioweb's EventStream sends by itself.
ticker_with_header = App()


@ticker_with_header.get("/ticks")
async def ticks() -> EventStream:
    return EventStream(tick_events(Streams(), 0, None), headers={"x-accel-buffering": "no"})
