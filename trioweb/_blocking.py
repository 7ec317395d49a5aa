"""Which callables would block the Trio thread: refused before they can run there.

Disconnect callbacks (and anything else trioweb runs synchronously on the Trio
thread) must not block: a blocked Trio thread stalls every request. What can
be recognised is refused up front by :func:`check_callback`; what slips
through is timed by the caller and reported.
"""

from __future__ import annotations

import functools
import inspect
import queue
import select
import subprocess
import threading
import time

import trio

from ._errors import BlockingCallbackError
from ._util import describe_callable

# Functions and unbound methods that park the calling thread.
_BLOCKING_FUNCTIONS: frozenset[object] = frozenset(
    {
        time.sleep,
        input,
        select.select,
        subprocess.run,
        subprocess.call,
        subprocess.check_call,
        subprocess.check_output,
        trio.from_thread.run,
        trio.from_thread.run_sync,
        threading.Event.wait,
        threading.Condition.wait,
        threading.Condition.wait_for,
        threading.Semaphore.acquire,
        threading.Barrier.wait,
        threading.Thread.join,
        queue.Queue.get,
        queue.Queue.put,
        queue.Queue.join,
    }
)
# Methods implemented in C, recognised by the type of their ``__self__``.
_BLOCKING_C_METHODS: frozenset[tuple[type, str]] = frozenset(
    (lock_type, name)
    for lock_type in (type(threading.Lock()), type(threading.RLock()))
    for name in ("acquire", "acquire_lock", "__enter__")
)


def check_callback(callback: object) -> None:
    """Refuse a callback that could block the Trio thread.

    Raises:
        TypeError: ``callback`` is not callable.
        BlockingCallbackError: ``callback`` is async, or a known blocking call.
    """
    if not callable(callback):
        raise TypeError(f"a disconnect callback must be callable, not {callback!r}")
    target: object = callback
    while isinstance(target, functools.partial):
        target = target.func
    name = describe_callable(callback)
    is_async = inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)
    if not is_async and not inspect.isroutine(target) and not isinstance(target, type):
        call = inspect.getattr_static(type(target), "__call__", None)
        is_async = inspect.iscoroutinefunction(call)
    if is_async:
        raise BlockingCallbackError(
            f"{name} is async: disconnect callbacks run synchronously on the Trio thread "
            "and nothing awaits them. Keep the callback short and synchronous, or await "
            "token.wait() in a task of the request's nursery instead."
        )
    func = getattr(target, "__func__", target)
    owner = getattr(target, "__self__", None)
    blocking = func in _BLOCKING_FUNCTIONS or (
        owner is not None and (type(owner), getattr(target, "__name__", "")) in _BLOCKING_C_METHODS
    )
    if blocking:
        raise BlockingCallbackError(
            f"{name} blocks the calling thread: disconnect callbacks run on the Trio "
            "thread, where blocking stalls every request. Set a flag or a trio.Event "
            "from the callback instead."
        )
