"""``ASGITransport``: an httpx transport that calls a trioweb (or any ASGI) app in-process.

Theory of operation
-------------------
``httpx.AsyncClient(transport=ASGITransport(app), base_url="http://testserver")``
gives a test everything httpx does (``params=``, ``data=``, ``files=``,
cookies, redirects, auth, ``raise_for_status``), with the app called in the
test's own Trio run instead of over a socket. The client's ``async with``
enters the transport, which opens the nursery every app call runs in and runs
the app's lifespan startup; leaving it waits for calls still running (a
request-nursery child outliving its response), runs the lifespan shutdown and
raises anything the app raised that no response carried.

Each request becomes one :class:`~trioweb.testing._driver.AppCall` with the
scope hypercorn would build (``_asgi_scope``). The httpx response is handed
back as soon as the app sends ``http.response.start``; its body streams as the
app sends it, and after the last part the app gets the ``http.disconnect``
hypercorn sends after every response. Closing the response before its end,
or cancelling the task that waits on it, tells the app the client left. The
outcome trioweb reports is in ``response.extensions["trioweb.outcome"]``.

Waits are bounded on the wall clock, by the request's httpx read timeout, so a
handler sleeping 60 virtual seconds under the autojump clock completes while
a real hang fails (:class:`~trioweb.testing.AppDidNotRespond`).
"""

from __future__ import annotations

import contextlib
import sys
from types import TracebackType
from typing import Any, final

import httpx
import trio

from ._asgi_scope import framed_headers, http_scope, suppress_body
from ._deadline import AppDidNotRespond, did_not, settle, wall_clock_bound
from ._driver import AppCall, ASGIApp, check_type
from ._lifespan import Lifespan

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


@final
class ASGITransport(httpx.AsyncBaseTransport):
    """Send httpx requests to an ASGI app in-process, as hypercorn would deliver them.

    Enter it (through ``async with httpx.AsyncClient(transport=...)``) before
    sending: the lifespan belongs to the transport, started on entry and shut
    down on exit.

    Args:
        app: The ASGI app.
        lifespan: Run the app's lifespan (False for an app that raises on one).
        timeout: Wall-clock seconds for a wait the request's own httpx timeout
            does not bound: the lifespan, calls still running at exit, and
            requests with ``timeout=None``.
        client: The ``client`` address in each scope.
        root_path: The ``root_path`` in each scope.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifespan: bool = True,
        timeout: float = 30.0,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        root_path: str = "",
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.client = client
        self.root_path = root_path
        self.lifespan = Lifespan(app) if lifespan else None
        self._stack: contextlib.AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._calls: list[AppCall] = []
        self._errors: list[BaseException] = []
        self._shut_down = False

    async def __aenter__(self) -> ASGITransport:
        """Open the nursery app calls run in, then run the lifespan startup.

        Cancellation:
            The startup is bounded by ``timeout`` on the wall clock.
        """
        if self._stack is not None:
            raise RuntimeError("this ASGITransport is already open")
        stack = contextlib.AsyncExitStack()
        self._nursery = await stack.enter_async_context(trio.open_nursery())
        self._stack = stack
        try:
            if self.lifespan is not None:
                await self.lifespan.startup(self._nursery, self.timeout)
        except BaseException:
            self._nursery.cancel_scope.cancel()
            self._stack = self._nursery = None
            await stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        """Wait for calls still running, run the lifespan shutdown, raise what the app raised.

        Cancellation:
            Every wait is bounded by ``timeout`` on the wall clock. If the
            block raised, calls still running are cancelled instead of awaited.
        """
        stack, nursery = self._stack, self._nursery
        if stack is None or nursery is None:
            return
        self._stack = self._nursery = None
        try:
            for call in self._calls:
                if exc_value is not None:
                    call.cancel()
                try:
                    await call.wait_done("finish", self.timeout)
                except Exception as error:
                    self._errors.append(error)
                if call.request_error is not None:  # no response reported it
                    self._errors.append(call.request_error)
            if self.lifespan is not None:
                try:
                    await self.lifespan.shutdown(self.timeout)
                except Exception as error:
                    self._errors.append(error)
        finally:
            nursery.cancel_scope.cancel()  # request-body pumps, a lifespan left hanging
            await stack.aclose()
        errors, self._errors = self._errors, []
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise BaseExceptionGroup("the app under test raised", errors)

    async def aclose(self) -> None:
        """What ``httpx.AsyncClient.aclose`` calls: the same as leaving ``async with``."""
        await self.__aexit__()

    def require_nursery(self) -> trio.Nursery:
        """The nursery app calls run in, or a clear error outside ``async with``."""
        if self._nursery is None:
            raise RuntimeError(
                "enter the transport before sending: "
                "async with httpx.AsyncClient(transport=ASGITransport(app)) as client"
            )
        if self.lifespan is not None:
            self.lifespan.raise_failure()  # an app.nursery task crashed: say so at once
        return self._nursery

    async def shutdown(self, graceful_timeout: float = 5.0) -> None:
        """Shut the app's connections down, as :func:`trioweb.serve` does on SIGTERM.

        From now on new calls are refused. The app's ``shutdown_started()`` is
        called (open WebSockets get a 1001 close, their tokens set with
        ``SERVER_SHUTDOWN``); the calls still running get ``graceful_timeout``
        seconds of the app's time to end, and what still runs then is
        cancelled by shutdown (its token set with ``SERVER_SHUTDOWN``). The
        lifespan shutdown runs when the transport closes, as ``serve()`` runs
        it next.

        Cancellation:
            The graceful period is the app's time (virtual under the autojump
            clock); the wait for the cancelled calls to end is bounded by
            ``timeout`` on the wall clock.
        """
        self.require_nursery()
        if self._shut_down:
            await trio.lowlevel.checkpoint()
            return
        self._shut_down = True
        announce = getattr(self.app, "shutdown_started", None)
        if announce is not None:
            announce()
        running = [call for call in self._calls if not call.done.is_set()]
        with trio.move_on_after(graceful_timeout):
            for call in running:
                await call.done.wait()
        for call in running:
            call.cancel()  # from outside, as hypercorn's task group at the deadline
        for call in running:
            with wall_clock_bound(self.timeout) as bound:
                await call.done.wait()
            if bound.cancelled_caught:
                raise did_not("end once cancelled by the shutdown", self.timeout, call.describe)

    def open_call(self, scope: dict[str, Any], describe: str) -> AppCall:
        """Start one app call in the transport's nursery (the drivers' shared entry)."""
        nursery = self.require_nursery()
        if self._shut_down:
            raise RuntimeError(
                f"cannot start {describe}: the server was shut down (shutdown()), "
                "it takes no new requests"
            )
        if self.lifespan is not None:
            scope["state"] = dict(self.lifespan.state)
        call = AppCall(self.app, scope, describe)
        # Calls that ended and were read are forgotten; the others are awaited at exit.
        self._calls = [
            c for c in self._calls if not c.done.is_set() or c.unseen_error or c.request_error
        ]
        self._calls.append(call)
        call.start(nursery)
        return call

    def http_scope(self, request: httpx.Request) -> dict[str, Any]:
        """The scope hypercorn would build for ``request``."""
        return http_scope(request, client=self.client, root_path=self.root_path)

    def read_timeout(self, request: httpx.Request) -> float:
        """The wall-clock bound of each wait for ``request``: its httpx read timeout."""
        read = request.extensions.get("timeout", {}).get("read")
        return self.timeout if read is None else float(read)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Call the app with ``request``; return once the response starts.

        Raises:
            AppDidNotRespond: No response start within the read timeout, or the
                app ended without one.

        Cancellation:
            Cancelling the caller tells the app the client left
            (``http.disconnect``), as closing a socket would.
        """
        timeout = self.read_timeout(request)
        call = self.open_call(self.http_scope(request), f"{request.method} {request.url.path}")
        try:
            if isinstance(request.stream, httpx.ByteStream):
                call.send_nowait(body_message(await request.aread(), final=True))
            else:
                self.require_nursery().start_soon(self._pump, call, request)
            message = await call.receive("start the response", timeout)
            if message is None and call.request_error is not None:
                error, call.request_error = call.request_error, None
                raise error  # as httpx raises it from a socket's write
            if message is None:
                raise AppDidNotRespond(
                    f"the app ended without starting a response ({call.describe})"
                )
            check_type(message, "http.response.start")
        except BaseException:
            call.disconnect()
            raise
        status = int(message["status"])
        return httpx.Response(
            status,
            headers=framed_headers(status, message.get("headers", ())),
            stream=ResponseBody(call, timeout, suppress_body(request.method, status)),
            extensions={"trioweb.outcome": call.report, "http_version": b"HTTP/1.1"},
            request=request,
        )

    async def _pump(self, call: AppCall, request: httpx.Request) -> None:
        """Feed a streaming request body to the app, as a socket would, chunk by chunk."""
        assert isinstance(request.stream, httpx.AsyncByteStream)
        try:
            async for chunk in request.stream:
                if call.done.is_set():
                    return
                call.send_nowait(body_message(chunk, final=False))
        except Exception as error:  # the test's own body generator failed: the client left
            call.request_error = error
            call.disconnect()
            return
        call.send_nowait(body_message(b"", final=True))


def body_message(chunk: bytes, *, final: bool) -> dict[str, Any]:
    """An ``http.request`` message."""
    return {"type": "http.request", "body": chunk, "more_body": not final}


@final
class ResponseBody(httpx.AsyncByteStream):
    """A response body as the app sends it; closing it early is a client leaving."""

    def __init__(self, call: AppCall, timeout: float | None, suppress: bool) -> None:
        self.call = call
        self.timeout = timeout
        self.suppress = suppress
        self.complete = False
        self._closed = False

    def __aiter__(self) -> ResponseBody:
        # An iterator, not an async generator: a reader that breaks out leaves
        # nothing for the garbage collector to finalize, and aclose() (which
        # httpx calls when the response closes) is what tells the app.
        return self

    async def __anext__(self) -> bytes:
        while not self.complete:
            message = await self.call.receive("send the rest of the body", self.timeout)
            if message is None and self.call.request_error is not None:
                error, self.call.request_error = self.call.request_error, None
                raise error  # as httpx raises it from a socket's write
            if message is None:
                raise AppDidNotRespond(
                    f"the app ended before its response body did ({self.call.describe})"
                )
            check_type(message, "http.response.body")
            if not message.get("more_body", False):
                self.complete = True
                self.call.disconnect()  # hypercorn says it after every response
            body = message.get("body")
            if body and not self.suppress:
                return bytes(body)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Close the body: before its end, that is the client leaving.

        Cancellation:
            Lets the app run until every task waits (no time passes), so a
            handler that just returns has reported its outcome.
        """
        if self._closed:
            return
        self._closed = True
        if not self.complete:
            self.call.disconnect()
        await settle(self.timeout)
