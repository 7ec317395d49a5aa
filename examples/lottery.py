"""The lottery shop from the seed article, the trioweb way.

The shop's front page has a link that opens the draw in a new tab. The draw
takes five rounds, half a second apart; the last one is the lucky number. If
the visitor closes the tab meanwhile, the draw stops: the handler is
cancelled where it sleeps, the token's callback says so, and nothing is sent.
Nothing polls ``IsCancellationRequested``: cancellation is structural.

The same draw is served three ways: as the page the link opens
(``/lottery``), from a class-based view that binds the token as an attribute
like the article's ``[BindProperty]`` controller property (``/api/draw``),
and next to it a small JSON API that takes a body (``/api/tickets``).

Run it with ``trioweb run examples.lottery:app`` and open
http://127.0.0.1:8000/.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import AsyncIterator
from typing import Annotated

import attrs
import trio
import trio.lowlevel

from trioweb import App, Depends, DisconnectToken, HTTPError, Request, Response

logger = logging.getLogger("lottery")

app = App()

DRAWS = 5
PAUSE = 0.5
HTML = "text/html; charset=utf-8"

INDEX = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>The lottery shop</title></head>
<body>
  <p>Click the link below to open the lucky draw of the year of the tiger.</p>
  <a id="draw" target="_blank" href="/lottery">Lucky draw</a>
</body>
</html>
"""


@app.get("/")
async def index() -> Response:
    """The shop's front: a page with the link that opens the draw in a new tab."""
    return Response(INDEX, media_type=HTML)


async def draw(token: DisconnectToken) -> int:
    """Five draws, half a second apart; the last is the lucky number.

    Cancellation:
        If the client leaves, the ``trio.sleep`` in progress raises
        ``trio.Cancelled`` and the draw ends there: nothing after it runs.
    """
    # A short, non-blocking callback that gets everything it needs as arguments.
    token.register(logger.info, "client left: the draw was called off")
    logger.info("drawing")
    result = 0
    for _ in range(DRAWS):
        await trio.sleep(PAUSE)  # cancelled here if the client leaves
        result = random.randint(0, 999)
    logger.info("drew lucky number %d", result)
    return result


@app.get("/lottery")
async def lottery(token: DisconnectToken) -> Response:
    """The draw, as the page that the front page's link opens."""
    lucky = await draw(token)
    page = f'<!doctype html><title>Lucky number</title><p id="lucky">{lucky}</p>\n'
    return Response(page, media_type=HTML)


@app.route("/api/draw")
class Draw:
    """The draw as JSON, from a class-based view.

    The token is bound to an annotated attribute for each request, like the
    article's ``[BindProperty(SupportsGet = true)] CancellationToken CancelTK``.
    """

    token: DisconnectToken

    async def get(self) -> dict[str, int]:
        return {"lucky": await draw(self.token)}


def _valid_numbers(
    instance: object, attribute: attrs.Attribute[list[int]], value: list[int]
) -> None:
    if len(value) != 3 or len(set(value)) != 3:
        raise ValueError("pick three different numbers")
    if not all(0 <= number <= 999 for number in value):
        raise ValueError("numbers go from 0 to 999")


@attrs.frozen
class TicketIn:
    """What a customer sends to buy a ticket."""

    holder: str
    numbers: list[int] = attrs.field(validator=_valid_numbers)


@attrs.frozen
class Ticket:
    """A ticket the shop sold."""

    id: int
    holder: str
    numbers: list[int]


TICKETS: dict[int, Ticket] = {}
_ticket_ids = itertools.count(1)


@attrs.define
class TicketBook:
    """The tickets a request sells, kept apart until the request commits them."""

    pending: list[Ticket] = attrs.Factory(list)

    def sell(self, ticket: Ticket) -> None:
        self.pending.append(ticket)


async def ticket_book() -> AsyncIterator[TicketBook]:
    """A transaction over the ticket store: commit after the handler, or roll back.

    Its teardown runs before the response is sent (so the client never sees a
    ticket that was not stored), shielded from a disconnect, and on an error
    or a cancellation nothing is stored.
    """
    book = TicketBook()
    try:
        yield book
    except BaseException:
        book.pending.clear()  # roll back
        raise
    for ticket in book.pending:  # commit
        TICKETS[ticket.id] = ticket


@app.post("/api/tickets")
async def buy_ticket(order: TicketIn, book: Annotated[TicketBook, Depends(ticket_book)]) -> Ticket:
    """Sell a ticket: the JSON body is checked against ``TicketIn`` before this runs."""
    ticket = Ticket(next(_ticket_ids), order.holder, sorted(order.numbers))
    book.sell(ticket)
    return ticket


@app.get("/api/tickets/{ticket_id:int}")
async def get_ticket(ticket_id: int) -> Ticket:
    try:
        return TICKETS[ticket_id]
    except KeyError:
        raise HTTPError(404, f"no ticket {ticket_id}") from None


@app.get("/items/{item_id:int}")
async def item(item_id: int, request: Request, nursery: trio.Nursery) -> dict[str, object]:
    """A handler with the request's nursery (tests/test_cli.py serves this one)."""
    nursery.start_soon(audit, item_id)  # a child of the request: cancelled with it
    return {"id": item_id, "path": request.path}


async def audit(item_id: int) -> None:
    await trio.lowlevel.checkpoint()
    logger.info("item %d was looked at", item_id)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(host="127.0.0.1", port=8000)
