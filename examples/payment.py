"""Payments: the money moves exactly once, whatever the client does.

A disconnect cancels a handler wherever it is, which is right for a lottery
draw and wrong for a transfer that debited one account and has yet to credit
the other (aiohttp's lesson: handlers cancelled half-way through their
writes). Two tools, each where it fits:

* ``POST /payments`` cancels on disconnect as usual, so a client that leaves
  during the (slow, harmless) fraud check costs nothing. The transfer itself
  runs in ``trioweb.shielded(timeout=...)``: once started, it finishes, then
  the cancellation takes effect. An idempotency key makes a retry safe: the
  same key never pays twice.
* ``POST /refunds`` runs with ``cancel_on_disconnect=False``: the whole
  handler always runs to its end (the refund, then its receipt), and a
  disconnect only sets the token, which it reads to skip what only the
  client would have seen.

The ledger here is in memory, with ``trio.sleep`` standing in for the
database round trips; with a real database, the shielded block holds the
transaction.

Run it with ``trioweb run examples.payment:app``.
"""

from __future__ import annotations

import logging
from typing import final

import attrs
import trio

import trioweb
from trioweb import App, DisconnectToken, HTTPError

logger = logging.getLogger("payment")

ROUND_TRIP = 0.05  # seconds a database statement takes, pretend
FRAUD_CHECK = 0.5  # seconds the fraud check takes


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

    async def transfer(self, key: str, source: str, target: str, cents: int) -> Payment:
        """Move ``cents`` from ``source`` to ``target``, once per ``key``.

        Cancellation:
            Not safe to cancel part-way (the debit would stand without the
            credit): call it inside ``trioweb.shielded()``.
        """
        async with self._lock:  # one transfer at a time: two retries cannot both pay
            if key in self.payments:
                return self.payments[key]
            if self.balances.get(source, 0) < cents:
                raise InsufficientFunds(source)
            self.balances[source] -= cents
            self.trace.append(f"debit {source} {cents}")
            await trio.sleep(ROUND_TRIP)  # the debit is written; the credit is next
            self.balances[target] = self.balances.get(target, 0) + cents
            self.trace.append(f"credit {target} {cents}")
            await trio.sleep(ROUND_TRIP)  # commit
            payment = Payment(key, source, target, cents)
            self.payments[key] = payment
            self.trace.append(f"commit {key}")
            return payment


@attrs.frozen
class PaymentIn:
    key: str  # the client's idempotency key: a retry sends the same one
    source: str
    target: str
    cents: int = attrs.field(validator=attrs.validators.gt(0))


@attrs.frozen
class RefundIn:
    key: str  # the key of the payment to refund


def create_app(ledger: Ledger | None = None) -> App:
    """The payment app over ``ledger`` (a fresh, funded one by default)."""
    ledger = ledger or Ledger(balances={"alice": 10_000, "shop": 0})
    app = App()

    async def check_fraud(payment: PaymentIn) -> None:
        await trio.sleep(FRAUD_CHECK)  # leaving here costs nothing: no money moved yet

    @app.post("/payments")
    async def pay(payment: PaymentIn) -> Payment:
        await check_fraud(payment)
        try:
            async with trioweb.shielded(timeout=5):
                return await ledger.transfer(
                    payment.key, payment.source, payment.target, payment.cents
                )
        except InsufficientFunds:
            raise HTTPError(402, f"{payment.source} cannot pay {payment.cents}") from None

    @app.post("/refunds", cancel_on_disconnect=False)
    async def refund(order: RefundIn, token: DisconnectToken) -> dict[str, object]:
        paid = ledger.payments.get(order.key)
        if paid is None:
            raise HTTPError(404, f"no payment {order.key}")
        refunded = await ledger.transfer(f"refund {paid.key}", paid.target, paid.source, paid.cents)
        if token.is_set():  # the client left: the refund stands, the receipt is for nobody
            logger.info("refund of %s done; its client left, so no receipt", paid.key)
            return {"refund": refunded}
        await trio.sleep(ROUND_TRIP)  # render the receipt, say
        return {"refund": refunded, "receipt": f"{paid.cents} cents back to {paid.source}"}

    return app


app = create_app()

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(host="127.0.0.1", port=8000)
