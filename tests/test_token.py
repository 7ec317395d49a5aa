"""DisconnectToken: the ASP.NET guidelines, translated to Trio, one by one."""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable

import pytest
import trio
import trio.testing

from trioweb import (
    App,
    BlockingCallbackError,
    DisconnectToken,
    Request,
    TokenDisposedError,
)
from trioweb.testing import TestClient


def make_token(budget: float = 0.001) -> DisconnectToken:
    return DisconnectToken._create("GET /test", budget)


async def async_callback() -> None:
    pass


async def async_generator_callback():  # type: ignore[no-untyped-def]
    yield


class AsyncCallable:
    async def __call__(self) -> None:
        pass


_event = threading.Event()
_lock = threading.Lock()
_rlock = threading.RLock()


@pytest.mark.parametrize(
    "callback",
    [
        async_callback,
        async_generator_callback,
        AsyncCallable(),
        functools.partial(async_callback),
        functools.partial(functools.partial(async_callback)),
        time.sleep,
        functools.partial(time.sleep, 1),
        _event.wait,
        threading.Event.wait,
        _lock.acquire,
        _rlock.acquire,
        trio.from_thread.run,
        trio.from_thread.run_sync,
        queue.Queue().get,
        threading.Thread(target=print).join,
    ],
    ids=lambda callback: repr(callback)[:40],
)
async def test_blocking_callbacks_are_rejected_at_registration(
    callback: Callable[..., object],
) -> None:
    token = make_token()
    with pytest.raises(BlockingCallbackError):
        token.register(callback)
    assert token.statistics().callbacks_registered == 0


async def test_rejection_message_explains_and_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="is async: disconnect callbacks run synchronously"):
        make_token().register(async_callback)
    with pytest.raises(TypeError, match="blocks the calling thread"):
        make_token().register(time.sleep, 1)
    with pytest.raises(TypeError, match="must be callable"):
        make_token().register("not callable")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "callback", [print, len, functools.partial(print, "x"), lambda: None, _event.set]
)
async def test_ordinary_callbacks_are_accepted(callback: Callable[..., object]) -> None:
    token = make_token()
    registration = token.register(callback)
    assert token.statistics().callbacks_registered == 1
    assert "pending" in repr(registration)
    assert registration.unregister() is True
    assert token.statistics().callbacks_registered == 0


async def test_callbacks_run_once_in_order_and_exceptions_are_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = make_token(budget=10)
    record: list[str] = []

    def explode() -> None:
        record.append("explode")
        raise RuntimeError("callback bug")

    token.register(record.append, "first")
    token.register(explode)
    token.register(record.append, "third")
    token._trip()
    token._trip()  # a second trip is ignored: each callback runs exactly once
    assert record == ["first", "explode", "third"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "explode" in errors[0].getMessage()
    assert "other callbacks still run" in errors[0].getMessage()
    stats = token.statistics()
    assert (stats.callbacks_run, stats.callbacks_failed, stats.is_set) == (3, 1, True)


async def test_register_on_set_token_runs_immediately() -> None:
    token = make_token()
    token._trip()
    record: list[int] = []
    registration = token.register(record.append, 1)
    assert record == [1]
    assert registration.unregister() is False


async def test_unregister_and_context_manager() -> None:
    token = make_token()
    record: list[str] = []
    registration = token.register(record.append, "dropped")
    assert registration.unregister() is True
    assert registration.unregister() is False
    with token.register(record.append, "scoped"):
        assert token.statistics().callbacks_registered == 1
    assert token.statistics().callbacks_registered == 0
    token._trip()
    assert record == []


async def test_unregister_from_a_thread_before_the_trio_thread_ran_it() -> None:
    # Registered from a worker thread on a set token, the callback is on its
    # way to the Trio thread; unregistering it meanwhile must not raise.
    token = make_token()
    token._trip()
    record: list[str] = []
    results: list[bool] = []
    done = threading.Event()

    def worker() -> None:
        registration = token.register(record.append, "ran")
        results.extend([registration.unregister(), registration.unregister()])
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    # Keep the Trio thread busy meanwhile, so it cannot run the callback first
    # (bounded, and on purpose: that is the race being tested).
    assert done.wait(timeout=10)
    thread.join(timeout=10)
    assert results == [True, False]
    await trio.testing.wait_all_tasks_blocked()  # the Trio thread gets to it now
    assert record == []  # and skips it: it was removed
    assert token.statistics().callbacks_run == 0


async def test_a_callback_can_unregister_a_later_one() -> None:
    token = make_token()
    record: list[str] = []
    later = None

    def first() -> None:
        record.append("first")
        assert later is not None
        later.unregister()

    token.register(first)
    later = token.register(record.append, "later")
    token._trip()
    assert record == ["first"]


async def test_slow_callback_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    token = make_token(budget=0.001)

    def slow() -> None:
        end = time.perf_counter() + 0.01
        while time.perf_counter() < end:  # bounded busy loop: 10 ms of real work
            pass

    token.register(slow)
    token._trip()
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "slow" in warning.getMessage()
    assert "budget 1.0 ms" in warning.getMessage()


async def test_callback_returning_an_awaitable_is_reported_and_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = make_token()
    made: list[object] = []

    def sneaky() -> object:
        coroutine = async_callback()
        made.append(coroutine)
        return coroutine

    token.register(sneaky)
    token._trip()  # filterwarnings=error: a "never awaited" warning would fail the test
    assert "returned an awaitable" in caplog.text
    assert made[0].cr_frame is None  # type: ignore[attr-defined]  # closed


async def test_callbacks_registered_from_a_worker_thread_run_on_the_trio_thread() -> None:
    token = make_token()
    trio_thread = threading.get_ident()
    ran_on: list[int] = []
    both_ran = trio.Event()

    def callback() -> None:
        ran_on.append(threading.get_ident())
        if len(ran_on) == 2:
            both_ran.set()  # a trio.Event: only legal on the Trio thread

    await trio.to_thread.run_sync(token.register, callback)
    assert token.statistics().callbacks_registered == 1
    token._trip()
    token2 = make_token()
    token2._trip()
    await trio.to_thread.run_sync(token2.register, callback)  # already set: handed over
    with trio.fail_after(5):
        await both_ran.wait()
    assert ran_on == [trio_thread, trio_thread]
    assert await trio.to_thread.run_sync(token.is_set) is True


async def test_disposed_token_raises_clear_errors() -> None:
    token = make_token()
    token.register(print)
    token._dispose()
    with pytest.raises(TokenDisposedError, match="request has ended"):
        token.register(print)
    with pytest.raises(TokenDisposedError):
        await token.wait()
    assert not token.is_set()
    assert token.disposed
    assert isinstance(TokenDisposedError("x"), RuntimeError)
    token._trip()  # disposed: nothing runs, nothing changes
    assert not token.is_set()


async def test_wait_returns_when_set_and_raises_when_disposed_meanwhile() -> None:
    token = make_token()
    results: list[str] = []

    async def waiter(t: DisconnectToken) -> None:
        try:
            await t.wait()
            results.append("set")
        except TokenDisposedError:
            results.append("disposed")

    other = make_token()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, token)
        nursery.start_soon(waiter, other)
        await trio.testing.wait_all_tasks_blocked()
        assert token.statistics().tasks_waiting == 1
        token._trip()
        other._dispose()
    assert sorted(results) == ["disposed", "set"]
    await token.wait()  # already set: returns at once


async def test_no_public_constructor() -> None:
    with pytest.raises(TypeError, match="no public constructor"):
        DisconnectToken("x", 1.0)


async def test_callbacks_cannot_touch_the_request(autojump_clock: trio.testing.MockClock) -> None:
    app = App()
    errors: list[str] = []

    @app.get("/slow")
    async def slow(request: Request, token: DisconnectToken) -> str:
        def callback() -> None:
            try:
                _ = request.path
            except RuntimeError as error:
                errors.append(str(error))

        token.register(callback)
        await trio.sleep(10)
        return "never"

    async with TestClient(app) as client, client.stream("GET", "/slow") as call:
        await trio.testing.wait_all_tasks_blocked()
        await call.disconnect()
    assert len(errors) == 1
    assert "disconnect callback tried to use the Request" in errors[0]


async def test_request_is_readable_outside_callbacks_and_from_threads() -> None:
    app = App()

    @app.get("/x/{name}")
    async def handler(request: Request, name: str) -> dict[str, object]:
        from_thread = await trio.to_thread.run_sync(lambda: request.path)
        return {
            "path": from_thread,
            "method": request.method,
            "query": request.query_params.getlist("q"),
            "header": request.headers["X-Test"],
            "params": request.path_params,
            "url": request.url,
        }

    async with TestClient(app) as client:
        response = await client.get("/x/bob?q=1&q=2", headers={"x-test": "yes"})
    assert response.json() == {
        "path": "/x/bob",
        "method": "GET",
        "query": ["1", "2"],
        "header": "yes",
        "params": {"name": "bob"},
        "url": "http://testserver/x/bob?q=1&q=2",
    }
