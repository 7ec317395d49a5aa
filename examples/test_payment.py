"""The payment example: the money moves exactly once, whenever the client leaves."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from examples.payment import FRAUD_CHECK, ROUND_TRIP, Ledger, Payment, create_app
from trioweb import App
from trioweb.testing import TestClient

PAY = {"key": "order-1", "source": "alice", "target": "shop", "cents": 2500}
WHOLE_TRANSFER = ["debit alice 2500", "credit shop 2500", "commit order-1"]
UNTOUCHED = {"alice": 10_000, "shop": 0}
PAID = {"alice": 7500, "shop": 2500}


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(balances=dict(UNTOUCHED))


@pytest.fixture
def app(ledger: Ledger) -> App:
    return create_app(ledger)


async def test_a_payment_is_201_once_committed(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    r = await client.post("/payments", json=PAY)
    assert r.status_code == 201
    assert r.json() == PAY
    assert ledger.balances == PAID
    assert ledger.trace == WHOLE_TRANSFER


async def test_leaving_during_the_fraud_check_moves_nothing(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    async with client.stream("POST", "/payments", json=PAY) as call:
        await trio.sleep(FRAUD_CHECK / 2)
        left = trio.current_time()
        await call.disconnect()  # returns once the app's call has ended
    # The token cut the check short, though the route runs on after a disconnect.
    assert trio.current_time() - left < FRAUD_CHECK / 2
    assert not call.handler_cancelled
    assert call.status_code is None
    assert ledger.trace == []
    assert ledger.balances == UNTOUCHED


async def test_leaving_mid_transfer_completes_it_once_and_sends_nothing(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    async with client.stream("POST", "/payments", json=PAY) as call:
        await trio.sleep(FRAUD_CHECK + ROUND_TRIP / 2)  # debited, not yet credited
        assert ledger.trace == ["debit alice 2500"]
        await call.disconnect()
    assert not call.handler_cancelled  # cancel_on_disconnect=False: it ran on
    assert call.outcome == "disconnected"
    assert call.status_code is None  # the 201 was for nobody
    assert ledger.trace == WHOLE_TRANSFER  # committed by the dependency's teardown, once
    assert ledger.balances == PAID


async def test_a_retry_after_leaving_does_not_pay_twice(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    async with client.stream("POST", "/payments", json=PAY) as call:
        await trio.sleep(FRAUD_CHECK + ROUND_TRIP / 2)
        await call.disconnect()
    r = await client.post("/payments", json=PAY)  # the client never saw an answer: it retries
    assert r.status_code == 201
    assert r.json() == PAY
    assert ledger.trace == WHOLE_TRANSFER
    assert ledger.balances == PAID


async def test_two_tries_at_once_pay_once(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    results = []

    async def pay() -> None:
        r = await client.post("/payments", json=PAY)
        results.append((r.status_code, r.json()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pay)
        nursery.start_soon(pay)
    assert results == [(201, PAY), (201, PAY)]
    # Both staged it; the key, checked again at the commit, let one pay.
    staged, committed = ledger.trace[:4], ledger.trace[4:]
    assert sorted(staged) == sorted(WHOLE_TRANSFER[:2] * 2)
    assert committed == ["commit order-1"]
    assert ledger.balances == PAID


async def test_a_commit_that_fails_is_a_500_not_a_201(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    # Two payments that alice can afford one at a time, not both: each is
    # staged against her balance, and the second commit finds it spent.
    first, second = {**PAY, "cents": 6000}, {**PAY, "key": "order-2", "cents": 6000}
    results: dict[str, int] = {}

    async def pay(order: dict[str, object]) -> None:
        r = await client.post("/payments", json=order)
        results[str(order["key"])] = r.status_code

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pay, first)
        nursery.start_soon(pay, second)
    assert sorted(results.values()) == [201, 500]
    assert ledger.balances == {"alice": 4000, "shop": 6000}
    assert [line for line in ledger.trace if line.startswith("commit")] == [
        f"commit {key}" for key, status in results.items() if status == 201
    ]


async def test_a_timeout_lets_the_staging_finish_then_rolls_it_back(
    ledger: Ledger, autojump_clock: object
) -> None:
    # The route's timeout lands between the debit and the credit.
    app = create_app(ledger, timeout=FRAUD_CHECK + ROUND_TRIP / 2)
    async with TestClient(app) as client:
        r = await client.post("/payments", json=PAY)
        assert r.status_code == 504
        # The shield kept the timeout out of the staging; then the whole
        # transaction rolled back: nothing moved, and a retry is safe.
        assert ledger.trace == ["debit alice 2500", "credit shop 2500", "rollback order-1"]
        assert ledger.balances == UNTOUCHED
        assert ledger.payments == {}


async def test_not_enough_money_is_402(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    r = await client.post("/payments", json={**PAY, "cents": 10_001})
    assert r.status_code == 402
    assert ledger.balances == UNTOUCHED
    assert ledger.trace == []


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
    assert ledger.balances == UNTOUCHED
    assert ledger.trace[-1] == "commit refund order-1"
    assert "refund of order-1 staged; its client left, so no receipt" in caplog.messages


async def test_a_refund_with_its_client_there_has_a_receipt(
    client: TestClient, ledger: Ledger, autojump_clock: object
) -> None:
    await client.post("/payments", json=PAY)
    r = await client.post("/refunds", json={"key": "order-1"})
    assert r.json()["receipt"] == "2500 cents back to alice"
    assert ledger.payments["refund order-1"] == Payment("refund order-1", "shop", "alice", 2500)
    assert (await client.post("/refunds", json={"key": "nope"})).status_code == 404
