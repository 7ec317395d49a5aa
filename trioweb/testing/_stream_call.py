"""``StreamCall``: one live HTTP call the test drives by hand, for what httpx cannot say.

A test holding a :class:`StreamCall` decides when the client leaves: before
the response starts, at a chosen byte of the upload, at a chosen chunk of a
stream. It runs on the one driver (:class:`~trioweb.testing._driver.AppCall`)
and sees the response as the HTTP/1.1 wire shows it (``_asgi_scope``): no body
for HEAD, 204 or 304, and h11's framing headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import final

import trio

from .._datastructures import Headers
from .._outcome import DisconnectReason
from ._asgi_scope import framed_headers, suppress_body
from ._connection import check_reason
from ._deadline import AppDidNotRespond
from ._driver import AppCall, check_type
from ._response import TestResponse
from ._transport import body_message


@final
class StreamCall:
    """A live HTTP call from :meth:`TestClient.stream`.

    Every wait is bounded on the wall clock by the call's ``timeout``
    (:class:`~trioweb.testing.AppDidNotRespond`).

    Attributes:
        status_code: The response status, once it started (else None).
        headers: The response headers, once it started.
    """

    def __init__(self, call: AppCall, method: str, timeout: float | None) -> None:
        self._call = call
        self._method = method
        self.timeout = timeout
        self.status_code: int | None = None
        self.headers = Headers(())
        self._suppress = False
        self._body_done = False
        self.response_done = False

    async def send_body(self, chunk: bytes, *, final: bool = False) -> None:
        """Send part of the request body (``final=True`` for the last part).

        Cancellation:
            A checkpoint; never blocks (the app's inbox is unbounded).
        """
        if self._body_done:
            raise RuntimeError("the request body was already complete")
        self._body_done = final
        self._call.send_nowait(body_message(chunk, final=final))
        await trio.lowlevel.checkpoint()

    async def wait_response_start(self) -> int:
        """Wait for the response's status and headers; returns the status.

        Raises:
            AppDidNotRespond: No ``http.response.start`` in time, or the app
                ended without one.

        Cancellation:
            Bounded by the call's ``timeout`` on the wall clock.
        """
        if self.status_code is None:
            message = await self._call.receive("start the response", self.timeout)
            if message is None:
                raise AppDidNotRespond(
                    f"the app ended without starting a response ({self._call.describe})"
                )
            check_type(message, "http.response.start")
            self.status_code = int(message["status"])
            self.headers = Headers.from_raw(
                framed_headers(self.status_code, message.get("headers", ()))
            )
            self._suppress = suppress_body(self._method, self.status_code)
        else:
            await trio.lowlevel.checkpoint()
        return self.status_code

    async def next_chunk(self) -> bytes | None:
        """The next non-empty body chunk, or None once the body is complete.

        Cancellation:
            Bounded by the call's ``timeout`` on the wall clock.
        """
        await self.wait_response_start()
        while not self.response_done:
            message = await self._call.receive("send the rest of the response body", self.timeout)
            if message is None:
                raise AppDidNotRespond(
                    f"the app ended before the response body did ({self._call.describe})"
                )
            check_type(message, "http.response.body")
            if not message.get("more_body", False):
                self.response_done = True
                self._call.disconnect()  # hypercorn, too, says it after every response
            if message.get("body") and not self._suppress:
                return bytes(message["body"])
        return None

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The response body, chunk by chunk, as the app sends it.

        A plain iterator, not a generator: breaking out of the loop is fine.
        """
        return _Chunks(self)

    def aiter_events(self) -> AsyncIterator[dict[str, str]]:
        """Server-Sent Events, parsed: dicts with ``data``, and ``event``, ``id``, ``retry``."""
        return _Events(self)

    async def read(self) -> TestResponse:
        """Read the whole response.

        Cancellation:
            Bounded by the call's ``timeout`` on the wall clock.
        """
        content = b"".join([chunk async for chunk in _Chunks(self)])
        assert self.status_code is not None
        return TestResponse(self.status_code, self.headers, content, self._call.report)

    async def disconnect(
        self, reason: DisconnectReason = DisconnectReason.CLIENT_DISCONNECTED
    ) -> None:
        """Leave now, as a client closing its socket, then wait for the app to end.

        Args:
            reason: What the server makes of the departure, and so what the
                app's ``token.reason`` and log line say:
                ``CLIENT_DISCONNECTED`` (closed its socket), ``STREAM_RESET``
                (an HTTP/2 ``RST_STREAM``), ``CLIENT_TOO_SLOW`` (stopped
                reading until the server cut a write), ``CONNECTION_TIMED_OUT``
                (vanished, until the dead-peer timeout).

        Raises:
            ValueError: ``ABORTED`` (the app's own doing: ``request.abort()``)
                or ``SERVER_SHUTDOWN`` (use :meth:`TestClient.shutdown`).

        Cancellation:
            Bounded by the call's ``timeout`` on the wall clock.
        """
        check_reason(reason, websocket=False)
        self._call.disconnect(reason)
        await self.wait_app_done()

    async def wait_app_done(self) -> None:
        """Wait until the app's ASGI call returned.

        Cancellation:
            Bounded by the call's ``timeout`` on the wall clock.
        """
        await self._call.wait_done("finish", self.timeout)

    @property
    def app_done(self) -> bool:
        """Whether the app's ASGI call returned."""
        return self._call.done.is_set()

    @property
    def outcome(self) -> str | None:
        """How trioweb says the request ended ("completed", "disconnected", ...)."""
        return self._call.outcome

    @property
    def handler_cancelled(self) -> bool:
        """Whether the handler (or its nursery) was cancelled."""
        return self._call.handler_cancelled

    def cancel(self) -> None:
        """Cut the app's call off."""
        self._call.cancel()


class _Chunks:
    def __init__(self, call: StreamCall) -> None:
        self._call = call

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._call.next_chunk()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


class _Events:
    def __init__(self, call: StreamCall) -> None:
        self._call = call
        self._buffer = ""

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> dict[str, str]:
        while True:
            while "\n\n" in self._buffer:
                block, self._buffer = self._buffer.split("\n\n", 1)
                event = parse_event(block)
                if event:
                    return event
            chunk = await self._call.next_chunk()
            if chunk is None:
                raise StopAsyncIteration
            self._buffer += chunk.decode()


def parse_event(block: str) -> dict[str, str]:
    """One SSE block as a dict; comments (keep-alives) are skipped, data lines joined."""
    event: dict[str, str] = {}
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data" and "data" in event:
            value = f"{event['data']}\n{value}"
        event[field] = value
    return event
