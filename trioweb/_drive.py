"""Driving user code by hand, so that the disconnect watcher starts only when needed.

A task per request to watch for a disconnect would cost more than the rest of
the framework, and code that returns without ever yielding to Trio cannot be
cancelled anyway. So the exchange runs user code through :func:`watched`,
which steps the coroutine itself and starts the watcher at its first yield to
Trio; every trap after that is forwarded unchanged. See ``_scope``.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, Protocol


class Watchable(Protocol):
    """What :func:`watched` needs of an exchange."""

    def watch(self) -> None:
        """Start watching for a disconnect (a no-op once watched)."""
        ...


@types.coroutine
def watched(exchange: Watchable, coro: Awaitable[Any]) -> Generator[Any, Any, Any]:
    """``await coro``, starting the exchange's watcher the first time it yields to Trio.

    Code that returns without ever yielding cannot be cancelled, so it needs
    no watcher: most plain handlers never pay for one. Trio resumes a task
    with ``coro.send(value)`` or ``coro.throw(error)``; both are passed on, so
    for the code inside this is exactly ``await``.
    """
    if not isinstance(coro, Coroutine):
        exchange.watch()
        return (yield from coro.__await__())
    try:
        trap = coro.send(None)
    except StopIteration as stop:
        return stop.value
    exchange.watch()
    while True:
        try:
            value = yield trap
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as error:
            try:
                trap = coro.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                trap = coro.send(value)
            except StopIteration as stop:
                return stop.value
            finally:
                # Trio resumes a cancelled task with an Error outcome that
                # keeps the Cancelled, whose traceback keeps this frame: kept
                # here too, they would form a cycle only the cyclic GC frees.
                del value
