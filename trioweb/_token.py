"""DisconnectToken: the per-request "the client went away" signal.

Theory of operation
-------------------
The request scope (``_scope.py``) owns the token and is the only thing that sets
or disposes it, always on the Trio thread. Everything else about the token is
the callback registry, which follows ASP.NET's rules for
``ClientDisconnectedToken``, translated to Trio:

* A callback runs synchronously, on the Trio thread, exactly once, when the
  token is set (or at once when registered on a token that is already set).
  Registration is allowed from any thread; a callback registered from a worker
  thread on a set token is handed to the Trio thread with ``run_sync_soon``.
* Anything that could block the Trio thread is refused at ``register()``
  (:func:`check_callback`). What slips through is timed, and a slow callback
  is reported; a callback that returns an awaitable is reported and the
  awaitable closed.
* A callback's exception is logged and contained: the other callbacks still run
  and the caller of ``_trip()`` never sees it.
* While callbacks run, ``callback_guard.thread`` names the dispatching thread,
  and :class:`~trioweb.Request` refuses to be read from it: the request is
  being torn down concurrently.
* Once its request ends the token is disposed: ``register()`` and ``wait()``
  raise :class:`~trioweb.TokenDisposedError`, pending registrations are dropped
  and ``is_set()`` keeps answering its final state.

Every change of ``_set``, ``_disposed``, ``_pending`` and a registration's
state happens under ``_lock``, because ``register()`` and ``unregister()`` may be
called from worker threads.
"""

from __future__ import annotations

import enum
import inspect
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import final

import attrs
import trio

from ._blocking import check_callback
from ._errors import TokenDisposedError
from ._outcome import DisconnectReason
from ._util import NoPublicConstructor, describe_callable

logger = logging.getLogger("trioweb")


class _CallbackGuard:
    """Which thread is dispatching disconnect callbacks right now, if any."""

    __slots__ = ("thread",)

    def __init__(self) -> None:
        self.thread: int | None = None


callback_guard = _CallbackGuard()


class _RegistrationState(enum.Enum):
    PENDING = "pending"
    RAN = "ran"
    REMOVED = "removed"


@final
@attrs.define(eq=False, repr=False)
class CallbackRegistration(metaclass=NoPublicConstructor):
    """What :meth:`DisconnectToken.register` hands back.

    Use :meth:`unregister`, or the registration as a context manager, to drop a
    callback that has not run yet::

        with token.register(cache.invalidate, key):
            await compute()
    """

    _token: DisconnectToken
    _callback: Callable[..., object]
    _args: tuple[object, ...]
    _state: _RegistrationState = _RegistrationState.PENDING

    def unregister(self) -> bool:
        """Drop the callback if it has not run yet.

        Returns:
            True if this call removed a pending callback; False if it had
            already run, was already removed, or its token was disposed.
        """
        return self._token._unregister(self)

    def __enter__(self) -> CallbackRegistration:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.unregister()

    def __repr__(self) -> str:
        return f"<CallbackRegistration {describe_callable(self._callback)} {self._state.value}>"


@final
@attrs.frozen
class DisconnectTokenStatistics:
    """A snapshot of a token, from :meth:`DisconnectToken.statistics`.

    Attributes:
        callbacks_registered: Callbacks waiting for the token to be set.
        callbacks_run: Callbacks that have run (raising ones included).
        callbacks_failed: Callbacks that raised.
        tasks_waiting: Tasks blocked in :meth:`DisconnectToken.wait`.
        is_set: Whether the client disconnected.
        disposed: Whether the request has ended.
    """

    callbacks_registered: int
    callbacks_run: int
    callbacks_failed: int
    tasks_waiting: int
    is_set: bool
    disposed: bool


@final
@attrs.define(eq=False, repr=False)
class DisconnectToken(metaclass=NoPublicConstructor):
    """Set when this request is abandoned before its response is complete.

    Mostly because the client went away; :attr:`reason` says why it was
    abandoned (the client left, its stream was reset, it was too slow, its
    connection timed out, the server shut down, or the app aborted).

    Ask for one by annotating a handler parameter with ``DisconnectToken``.
    The token never needs polling: when it is set the request's scope is
    cancelled (unless the route says ``cancel_on_disconnect=False``), so the
    handler and its child tasks unwind structurally. Use the token for what
    cancellation cannot do: :meth:`register` a short synchronous callback, check
    :meth:`is_set` from a worker thread, or :meth:`wait` in a task that must
    outlive the handler's own cancellation.

    A request that completes normally never sets its token. Once the request
    ends the token is disposed and may no longer be used.
    """

    _description: str
    _callback_budget: float
    _trio_token: trio.lowlevel.TrioToken = attrs.field(
        init=False, factory=trio.lowlevel.current_trio_token
    )
    _trio_thread: int = attrs.field(init=False, factory=threading.get_ident)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _pending: dict[CallbackRegistration, None] = attrs.field(init=False, factory=dict)
    _set: bool = attrs.field(init=False, default=False)
    _reason: DisconnectReason | None = attrs.field(init=False, default=None)
    _disposed: bool = attrs.field(init=False, default=False)
    _event: trio.Event | None = attrs.field(init=False, default=None)
    _waiting: int = attrs.field(init=False, default=0)
    _callbacks_run: int = attrs.field(init=False, default=0)
    _callbacks_failed: int = attrs.field(init=False, default=0)

    def is_set(self) -> bool:
        """Whether the client disconnected. Safe to call from any thread."""
        return self._set

    @property
    def reason(self) -> DisconnectReason | None:
        """Why the request was abandoned, once the token is set (None before).

        The first reason stays: it never changes once set. See
        :class:`~trioweb.DisconnectReason` for what the server can and cannot
        tell apart. Safe to read from any thread.
        """
        return self._reason

    @property
    def disposed(self) -> bool:
        """Whether the token's request has ended."""
        return self._disposed

    def register(self, callback: Callable[..., object], *args: object) -> CallbackRegistration:
        """Run ``callback(*args)`` once, on the Trio thread, when the client disconnects.

        If the token is already set, the callback runs at once (from a worker
        thread: as soon as the Trio thread gets to it). Keep it short: a
        callback slower than the app's ``callback_budget`` is logged as a
        warning. An exception it raises is logged and goes no further. It must
        not read the :class:`~trioweb.Request`: that raises ``RuntimeError``.

        Returns:
            A :class:`CallbackRegistration` that can unregister the callback.

        Raises:
            BlockingCallbackError: The callback is async or blocks the thread.
            TokenDisposedError: The request has already ended.
        """
        check_callback(callback)
        registration = CallbackRegistration._create(self, callback, args)
        with self._lock:
            self._check_not_disposed("register a callback on")
            if not self._set:
                self._pending[registration] = None
                return registration
        if threading.get_ident() == self._trio_thread:
            self._dispatch((registration,))
        else:
            self._trio_token.run_sync_soon(self._dispatch, (registration,))
        return registration

    async def wait(self) -> None:
        """Wait until the client disconnects.

        Cancellation:
            A checkpoint. On a disconnect, a route that cancels on disconnect
            (the default) cancels the waiting task along with the rest of the
            request's scope, so ``wait()`` returns only where the waiter is not
            inside that scope or the route runs to completion.

        Raises:
            TokenDisposedError: The request ended (before or while waiting)
                without the client disconnecting.
        """
        self._check_not_disposed("wait on")
        if self._set:
            await trio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = trio.Event()
        self._waiting += 1
        try:
            await self._event.wait()
        finally:
            self._waiting -= 1
        if not self._set:
            self._check_not_disposed("wait on")

    def statistics(self) -> DisconnectTokenStatistics:
        """Return a :class:`DisconnectTokenStatistics` snapshot, for debugging."""
        with self._lock:
            return DisconnectTokenStatistics(
                callbacks_registered=len(self._pending),
                callbacks_run=self._callbacks_run,
                callbacks_failed=self._callbacks_failed,
                tasks_waiting=self._waiting,
                is_set=self._set,
                disposed=self._disposed,
            )

    def __repr__(self) -> str:
        state = "disposed" if self._disposed else "set" if self._set else "live"
        return (
            f"<DisconnectToken {self._description} {state}, {len(self._pending)} callbacks pending>"
        )

    # ---- framework side: called by the request scope on the Trio thread ----

    def _trip(self, reason: DisconnectReason = DisconnectReason.CLIENT_DISCONNECTED) -> None:
        """Set the token and run its callbacks. Never raises a callback's error."""
        with self._lock:
            if self._set or self._disposed:
                return
            self._reason = reason
            self._set = True
            pending = tuple(self._pending)
        if self._event is not None:
            self._event.set()
        self._dispatch(pending)

    def _dispose(self) -> None:
        """End the token's life with its request: waiters wake with an error."""
        with self._lock:
            self._disposed = True
            for registration in self._pending:
                registration._state = _RegistrationState.REMOVED
            self._pending.clear()
        if self._event is not None:
            self._event.set()

    def _unregister(self, registration: CallbackRegistration) -> bool:
        with self._lock:
            if registration._state is not _RegistrationState.PENDING:
                return False
            registration._state = _RegistrationState.REMOVED
            # Not in _pending when registered from a worker thread on a set
            # token: it is on its way to the Trio thread, which will skip it.
            self._pending.pop(registration, None)
            return True

    def _check_not_disposed(self, what: str) -> None:
        if self._disposed:
            raise TokenDisposedError(
                f"cannot {what} the DisconnectToken of {self._description}: that request "
                "has ended and its token is disposed. A token is only valid while its "
                "request runs; do not keep it in a global or an app-lifetime task."
            )

    def _dispatch(self, registrations: tuple[CallbackRegistration, ...]) -> None:
        previous = callback_guard.thread
        callback_guard.thread = threading.get_ident()
        try:
            for registration in registrations:
                self._run_one(registration)
        finally:
            callback_guard.thread = previous

    def _run_one(self, registration: CallbackRegistration) -> None:
        with self._lock:
            # A callback may have unregistered a later one, or the token been disposed.
            if registration._state is not _RegistrationState.PENDING:
                return
            registration._state = _RegistrationState.RAN
            self._pending.pop(registration, None)
            self._callbacks_run += 1
        callback = registration._callback
        start = time.perf_counter()
        try:
            result = callback(*registration._args)
        except Exception:
            with self._lock:
                self._callbacks_failed += 1
            logger.exception(
                "disconnect callback %s of %s raised; the other callbacks still run",
                describe_callable(callback),
                self._description,
            )
        else:
            if result is not None and inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                logger.error(
                    "disconnect callback %s of %s returned an awaitable, which was closed "
                    "without running: callbacks must be synchronous",
                    describe_callable(callback),
                    self._description,
                )
        elapsed = time.perf_counter() - start
        if elapsed > self._callback_budget:
            logger.warning(
                "disconnect callback %s of %s took %.1f ms (budget %.1f ms): "
                "keep callbacks short and non-blocking",
                describe_callable(callback),
                self._description,
                elapsed * 1e3,
                self._callback_budget * 1e3,
            )
