"""Request: the handler's read-only view of one HTTP request."""

from __future__ import annotations

import threading
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, final

from ._datastructures import Headers, QueryParams, parse_cookies
from ._errors import HTTPError
from ._json import parse_json
from ._state import State
from ._token import callback_guard
from ._util import NoPublicConstructor

if TYPE_CHECKING:
    from ._app import App  # cycle-ok: annotation only (Request.app)
    from ._token import DisconnectToken


class Exchange(Protocol):
    """What a Request needs from the request scope that owns it."""

    scope: dict[str, Any]
    params: dict[str, object]
    app: App

    async def read_body(self) -> bytes: ...
    def get_token(self) -> DisconnectToken: ...
    def cancel_io(self) -> None: ...
    def abort(self) -> None: ...
    def close_after_response(self) -> None: ...


def _check_not_in_callback() -> None:
    thread = callback_guard.thread
    if thread is not None and thread == threading.get_ident():
        raise RuntimeError(
            "a disconnect callback tried to use the Request. Callbacks run while the "
            "request is being torn down, concurrently with the handler; capture what the "
            "callback needs (as arguments to register()) before registering it."
        )


@final
class Request(metaclass=NoPublicConstructor):
    """The request a handler is answering. Ask for it by annotating a parameter.

    Every attribute refuses to be read from a disconnect callback (``RuntimeError``).
    """

    __slots__ = ("_cookies", "_exchange", "_headers", "_query", "_state")

    def __init__(self, exchange: Exchange, headers: Headers | None = None) -> None:
        # The exchange may hand over the Headers it built for binding: one per request.
        self._exchange = exchange
        self._headers = headers
        self._query: QueryParams | None = None
        self._cookies: Mapping[str, str] | None = None
        self._state: State | None = None

    @property
    def method(self) -> str:
        _check_not_in_callback()
        return str(self._exchange.scope["method"])

    @property
    def path(self) -> str:
        _check_not_in_callback()
        return str(self._exchange.scope["path"])

    @property
    def query_string(self) -> bytes:
        _check_not_in_callback()
        return bytes(self._exchange.scope.get("query_string", b""))

    @property
    def query_params(self) -> QueryParams:
        _check_not_in_callback()
        if self._query is None:
            self._query = QueryParams.from_query_string(
                self._exchange.scope.get("query_string", b"")
            )
        return self._query

    @property
    def state(self) -> State:
        """An attribute namespace of this request's own (dependencies and hooks share it)."""
        if self._state is None:
            self._state = State()
        return self._state

    @property
    def headers(self) -> Headers:
        _check_not_in_callback()
        if self._headers is None:
            self._headers = Headers.from_raw(self._exchange.scope.get("headers", ()))
        return self._headers

    @property
    def cookies(self) -> Mapping[str, str]:
        """The request's cookies, read-only; of a name sent twice, the last value.

        A malformed ``Cookie`` header is ignored, as browsers do.
        """
        _check_not_in_callback()
        if self._cookies is None:
            jar = parse_cookies(self.headers.getlist("cookie"))
            self._cookies = types.MappingProxyType({k: v[-1] for k, v in jar.items()})
        return self._cookies

    @property
    def path_params(self) -> dict[str, object]:
        _check_not_in_callback()
        return dict(self._exchange.params)

    @property
    def client(self) -> tuple[str, int] | None:
        """The client's (host, port), where the server knows it."""
        _check_not_in_callback()
        client = self._exchange.scope.get("client")
        return (client[0], client[1]) if client else None

    @property
    def http_version(self) -> str:
        _check_not_in_callback()
        return str(self._exchange.scope.get("http_version", "1.1"))

    @property
    def url(self) -> str:
        """The full URL, rebuilt from the scheme, Host header, path and query."""
        _check_not_in_callback()
        scope = self._exchange.scope
        host = self.headers.get("host")
        if host is None and scope.get("server"):
            host = f"{scope['server'][0]}:{scope['server'][1]}"
        query = scope.get("query_string", b"")
        url = f"{scope.get('scheme', 'http')}://{host or 'localhost'}{scope['path']}"
        return f"{url}?{query.decode('latin-1')}" if query else url

    @property
    def last_event_id(self) -> str | None:
        """The ``Last-Event-ID`` a reconnecting Server-Sent Events client sent."""
        return self.headers.get("last-event-id")

    @property
    def asgi_scope(self) -> dict[str, Any]:
        """The raw ASGI scope, for what this class does not cover."""
        _check_not_in_callback()
        return self._exchange.scope

    @property
    def app(self) -> App:
        _check_not_in_callback()
        return self._exchange.app

    @property
    def token(self) -> DisconnectToken:
        """This request's :class:`~trioweb.DisconnectToken` (the one handlers can inject)."""
        _check_not_in_callback()
        return self._exchange.get_token()

    async def body(self) -> bytes:
        """The whole request body.

        trioweb reads the body itself, up to the route's ``max_body_size``
        (past that the client gets 413), so this only waits for the rest to arrive.

        Cancellation:
            A checkpoint. A disconnect cancels it with the rest of the request
            scope; :meth:`cancel_io` interrupts it with
            :class:`~trioweb.IOCancelledError`.

        Raises:
            IOCancelledError: :meth:`cancel_io` was called, or the client went
                away before the body was complete on a route that does not
                cancel on disconnect.
        """
        _check_not_in_callback()
        return await self._exchange.read_body()

    async def text(self) -> str:
        """The body decoded as UTF-8.

        Cancellation:
            As :meth:`body`.

        Raises:
            HTTPError: 400: the body is not UTF-8 (raised out of the handler, the
                client gets the 400).
        """
        body = await self.body()
        try:
            return body.decode()
        except UnicodeDecodeError as error:
            raise HTTPError(
                400, f"the body is not UTF-8: byte {body[error.start]:#04x} at {error.start}"
            ) from None

    async def json(self) -> Any:
        """The body parsed as JSON.

        ``NaN``, ``Infinity`` and numbers beyond a float's range are refused: they
        are not JSON, and a handler that sent them back could not encode them.

        Cancellation:
            As :meth:`body`.

        Raises:
            HTTPError: 400: the body is not JSON, not UTF-8, or nested more than
                200 levels deep (raised out of the handler, the client gets the 400).
        """
        return parse_json(await self.body(), strict=True)

    def cancel_io(self) -> None:
        """Cancel a pending body read or response write (IIS's ``CancelIo``).

        The interrupted operation raises :class:`~trioweb.IOCancelledError`; the
        handler keeps running and may still answer. This is not a disconnect:
        the token is not set.
        """
        _check_not_in_callback()
        self._exchange.cancel_io()

    def abort(self) -> None:
        """End the exchange now (IIS's ``ResetConnection``).

        The request's scope is cancelled and the client gets no complete response.
        """
        _check_not_in_callback()
        self._exchange.abort()

    def close_after_response(self) -> None:
        """Close the connection once the response is complete (``Connection: close``)."""
        _check_not_in_callback()
        self._exchange.close_after_response()

    def __repr__(self) -> str:
        scope = self._exchange.scope
        return f"<Request {scope.get('method')} {scope.get('path')}>"
