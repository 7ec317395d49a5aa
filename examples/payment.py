"""Payments: the money moves exactly once, whatever the client does.

A disconnect cancels a handler wherever it is, which is right for a lottery
draw and wrong for a transfer that debited one account and has yet to credit
the other (aiohttp's lesson: handlers cancelled half-way through their
writes). Three tools, each for its part:

* **A transaction dependency** (``transaction``): the handler stages the
  debit and the credit; the dependency's teardown commits them together,
  after the handler returned and before the response is sent (trioweb runs it
  shielded and bounded), so a 201 means committed and a commit that fails is
  a 500. On an exception or a cancellation it rolls back: nothing moves. The
  idempotency key is checked again at the commit, so a retry, or two tries at
  once, pay once.
* ``cancel_on_disconnect=False`` on both routes: once the money starts to
  move, a client that leaves does not stop it; the transfer commits, and the
  response is for nobody. The handler reads the token where leaving should
  still count: a client that left during the fraud check stops it there, and
  nothing moves.
* ``trioweb.shielded(timeout=...)`` around the staging: a disconnect no longer
  cancels these handlers, but the route's ``timeout`` and a server shutdown
  still do, and the shield keeps them from landing between the debit and the
  credit (on a real database, each a statement in flight). One that arrived
  meanwhile takes effect after the block: the transaction rolls back whole,
  and the client's retry, with the same key, pays once.

The ledger is in memory, with ``trio.sleep`` standing in for the database
round trips; with a real database, the dependency holds the database's
transaction (``async with conn.transaction()``).

Run it with ``trioweb run examples.payment:app``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, final

import attrs
import trio

import trioweb
from trioweb import App, Depends, DisconnectToken, HTTPError

logger = logging.getLogger("payment")

ROUND_TRIP = 0.05  # seconds a database statement takes, pretend
FRAUD_CHECK = 0.5  # seconds the fraud check takes
TIMEOUT = 5.0  # seconds a payment may take, fraud check included


class InsufficientFunds(Exception):
    pass


@attrs.frozen
class Payment:
    """A transfer that happened."""

    key: str
    source: str
    target: str
    cents: int


@final
@attrs.define(eq=False)
class Ledger:
    """Accounts, and the payments already made, by idempotency key.

    ``trace`` records each step, so a test can check that no transfer stopped
    half-way and none ran twice.
    """

    balances: dict[str, int] = attrs.field(factory=dict)
    payments: dict[str, Payment] = attrs.field(factory=dict)
    trace: list[str] = attrs.field(factory=list)
    _lock: trio.Lock = attrs.field(factory=trio.Lock)

    def begin(self) -> Transaction:
        return Transaction(self)

    async def apply(self, staged: list[Payment]) -> None:
        """Commit ``staged`` at once: every payment in it, or (raising) none.

        Raises:
            InsufficientFunds: An account no longer covers its debit (another
                payment spent the money after this one was staged).

        Cancellation:
            Not safe to cancel part-way: the commit runs in the transaction
            dependency's teardown, which trioweb shields.
        """
        async with self._lock:  # one commit at a time
            fresh = [p for p in staged if p.key not in self.payments]  # a retry pays once
            needed: dict[str, int] = {}
            for payment in fresh:
                needed[payment.source] = needed.get(payment.source, 0) + payment.cents
            for account, cents in needed.items():
                if self.balances.get(account, 0) < cents:
                    raise InsufficientFunds(account)
            await trio.sleep(ROUND_TRIP)  # the commit's round trip
            for payment in fresh:
                self.balances[payment.source] -= payment.cents
                self.balances[payment.target] = self.balances.get(payment.target, 0) + payment.cents
                self.payments[payment.key] = payment
                self.trace.append(f"commit {payment.key}")


@final
@attrs.define(eq=False)
class Transaction:
    """Transfers staged against a ledger: committed together, or rolled back."""

    ledger: Ledger
    staged: list[Payment] = attrs.field(factory=list)

    async def transfer(self, key: str, source: str, target: str, cents: int) -> Payment:
        """Stage moving ``cents`` from ``source`` to ``target``, once per ``key``.

        Raises:
            InsufficientFunds: ``source`` cannot pay it.

        Cancellation:
            Not safe to cancel between the debit and the credit (on a real
            database, a statement in flight): call it inside ``trioweb.shielded()``.
        """
        ledger = self.ledger
        if key in ledger.payments:  # paid already: a retry gets the same answer
            return ledger.payments[key]
        if ledger.balances.get(source, 0) < cents:
            raise InsufficientFunds(source)
        ledger.trace.append(f"debit {source} {cents}")
        await trio.sleep(ROUND_TRIP)  # the debit is written; the credit is next
        ledger.trace.append(f"credit {target} {cents}")
        await trio.sleep(ROUND_TRIP)
        payment = Payment(key, source, target, cents)
        self.staged.append(payment)
        return payment


async def transaction(app: App) -> AsyncIterator[Transaction]:
    """The request's transaction: committed after the handler, or rolled back.

    The teardown runs before the response is sent (a failed commit is a 500,
    never a 201), shielded from cancellation and bounded by the dependency's
    ``teardown_timeout``; on an exception or a cancellation nothing moves.
    """
    ledger: Ledger = app.state.ledger
    tx = ledger.begin()
    try:
        yield tx
    except BaseException:
        for payment in tx.staged:  # roll back
            ledger.trace.append(f"rollback {payment.key}")
        raise
    await ledger.apply(tx.staged)  # commit


Tx = Annotated[Transaction, Depends(transaction, teardown_timeout=2.0)]


@attrs.frozen
class PaymentIn:
    key: str  # the client's idempotency key: a retry sends the same one
    source: str
    target: str
    cents: int = attrs.field(validator=attrs.validators.gt(0))


@attrs.frozen
class RefundIn:
    key: str  # the key of the payment to refund


def create_app(ledger: Ledger | None = None, *, timeout: float = TIMEOUT) -> App:
    """The payment app over ``ledger`` (a fresh, funded one by default)."""
    app = App()
    app.state.ledger = ledger or Ledger(balances={"alice": 10_000, "shop": 0})

    async def check_fraud(payment: PaymentIn) -> None:
        await trio.sleep(FRAUD_CHECK)

    @app.post("/payments", status_code=201, cancel_on_disconnect=False, timeout=timeout)
    async def pay(payment: PaymentIn, tx: Tx, token: DisconnectToken) -> Payment:
        # No money has moved yet: a client that leaves now stops the check.
        with trio.CancelScope() as fraud_check, token.register(fraud_check.cancel):
            await check_fraud(payment)
        if token.is_set():
            raise HTTPError(499, "the client left before paying")  # nothing staged, nothing moves
        try:
            async with trioweb.shielded(timeout=2):
                return await tx.transfer(payment.key, payment.source, payment.target, payment.cents)
        except InsufficientFunds:
            raise HTTPError(402, f"{payment.source} cannot pay {payment.cents}") from None

    @app.post("/refunds", cancel_on_disconnect=False, timeout=timeout)
    async def refund(order: RefundIn, tx: Tx, token: DisconnectToken) -> dict[str, object]:
        paid = app.state.ledger.payments.get(order.key)
        if paid is None:
            raise HTTPError(404, f"no payment {order.key}")
        async with trioweb.shielded(timeout=2):
            refunded = await tx.transfer(f"refund {paid.key}", paid.target, paid.source, paid.cents)
        if token.is_set():  # the client left: the refund commits, the receipt is for nobody
            logger.info("refund of %s staged; its client left, so no receipt", paid.key)
            return {"refund": refunded}
        await trio.sleep(ROUND_TRIP)  # render the receipt, say
        return {"refund": refunded, "receipt": f"{paid.cents} cents back to {paid.source}"}

    return app


app = create_app()

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(host="127.0.0.1", port=8000)
