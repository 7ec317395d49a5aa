"""The payment example: the money moves exactly once, whenever the client leaves."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from examples.payment import FRAUD_CHECK, ROUND_TRIP, Ledger, create_app
from trioweb import App
from trioweb.testing import TestClient

PAY = {"key": "order-1", "source": "alice", "target": "shop", "cents": 2500}
WHOLE_TRANSFER = ["debit alice 2500", "credit shop 2500", "commit order-1"]


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(balances={"alice": 10_000, "shop": 0})


@pytest.fixture
def app(ledger: Ledger) -> App:
    return create_app(ledger)


async def test_a_payment(client: TestClient, ledger: Ledger, autojump_clock: object) -> None:
    r = await client.post("/payments", json=PAY)
    assert r.status_code == 200
    assert r.json() == PAY
    assert ledger.balances == {"alice": 7500, "shop": 2500}
    assert ledger.trace == WHOLE_TRANSFER


async def test_leaving_during_the_fraud_check_moves_nothing(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    async with client.stream("POST", "/payments", json=PAY) as call:
        await trio.sleep(FRAUD_CHECK / 2)
        await call.disconnect()
    assert call.handler_cancelled
    assert ledger.trace == []
    assert ledger.balances == {"alice": 10_000, "shop": 0}


async def test_leaving_mid_transfer_finishes_the_transfer_and_sends_nothing(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    async with client.stream("POST", "/payments", json=PAY) as call:
        await trio.sleep(FRAUD_CHECK + ROUND_TRIP / 2)  # debited, not yet credited
        assert ledger.trace == ["debit alice 2500"]
        await call.disconnect()
    assert ledger.trace == WHOLE_TRANSFER  # shielded: it finished
    assert ledger.balances == {"alice": 7500, "shop": 2500}
    assert call.handler_cancelled  # and then the cancellation took effect
    assert call.status_code is None


async def test_a_retry_after_leaving_does_not_pay_twice(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    async with client.stream("POST", "/payments", json=PAY) as call:
        await trio.sleep(FRAUD_CHECK + ROUND_TRIP / 2)
        await call.disconnect()
    r = await client.post("/payments", json=PAY)  # the client never saw an answer: it retries
    assert r.json() == PAY
    assert ledger.trace == WHOLE_TRANSFER
    assert ledger.balances == {"alice": 7500, "shop": 2500}


async def test_two_tries_at_once_pay_once(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    results = []

    async def pay() -> None:
        results.append((await client.post("/payments", json=PAY)).json())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pay)
        nursery.start_soon(pay)
    assert results == [PAY, PAY]
    assert ledger.trace == WHOLE_TRANSFER


async def test_not_enough_money_is_402(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    r = await client.post("/payments", json={**PAY, "cents": 10_001})
    assert r.status_code == 402
    assert ledger.balances == {"alice": 10_000, "shop": 0}


@pytest.mark.parametrize("cents", [0, -5, "5", 2.5])
async def test_a_bad_amount_is_422(client: TestClient, cents: object) -> None:
    assert (await client.post("/payments", json={**PAY, "cents": cents})).status_code == 422


async def test_a_refund_runs_to_its_end_though_the_client_left(
    client: TestClient,
    ledger: Ledger,
    autojump_clock: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    await client.post("/payments", json=PAY)
    async with client.stream("POST", "/refunds", json={"key": "order-1"}) as call:
        await trio.sleep(ROUND_TRIP / 2)  # mid-refund
        await call.disconnect()
    assert not call.handler_cancelled  # cancel_on_disconnect=False
    assert call.outcome == "disconnected"
    assert ledger.balances == {"alice": 10_000, "shop": 0}
    assert ledger.trace[-1] == "commit refund order-1"
    assert "refund of order-1 done; its client left, so no receipt" in caplog.messages


async def test_a_refund_with_its_client_there_has_a_receipt(
    client: TestClient, autojump_clock: object
) -> None:
    await client.post("/payments", json=PAY)
    r = await client.post("/refunds", json={"key": "order-1"})
    assert r.json()["receipt"] == "2500 cents back to alice"
    assert (await client.post("/refunds", json={"key": "nope"})).status_code == 404
