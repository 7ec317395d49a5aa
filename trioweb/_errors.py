"""The exceptions trioweb raises, in one place.

The tree::

    TypeError
     ├── BlockingCallbackError      a blocking callback given to DisconnectToken.register
     └── RouteDefinitionError       a route or handler that cannot work (decoration time)
    RuntimeError
     └── TokenDisposedError         a DisconnectToken used after its request ended
    Exception
     ├── HTTPError                  raise anywhere in a handler to answer with that status
     │    └── RequestValidationError  422: the request does not fit the parameters
     ├── IOCancelledError           a body read or response write cut by Request.cancel_io()
     └── WebSocketError
          ├── WebSocketClosed       the conversation is over (carries code and reason)
          └── WebSocketStateError   an operation the socket's state does not allow
               ├── WebSocketDisposedError   used after its handler returned
               └── WebSocketAbortedError    used after Request/WebSocket abort()

Errors that are bugs in the caller (the TypeErrors, the state errors) are raised
eagerly, at the call that made the mistake, so the traceback points at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

from ._json_encoding import json_bytes


@final
class BlockingCallbackError(TypeError):
    """A callback that would block the Trio thread was given to ``register()``.

    Coroutine functions, async callables, partials of either and known blocking
    calls (``time.sleep``, ``threading.Event.wait``, ``threading.Lock.acquire``,
    ``trio.from_thread.run`` and friends) are refused: a disconnect callback runs
    synchronously on the Trio thread and must return at once.
    """


@final
class RouteDefinitionError(TypeError):
    """A route that can never work, found when it is declared.

    For example a handler parameter that nothing can bind, or a path converter
    that does not exist. The message names the handler and the parameter.
    """


@final
class TokenDisposedError(RuntimeError):
    """A :class:`~trioweb.DisconnectToken` was used after its request ended."""


class HTTPError(Exception):
    """Raise from a handler (or anything it calls) to answer with ``status``.

    The response is JSON, ``{"detail": detail}``, like every error the
    framework makes; without a detail, the status's phrase (``"Not Found"``).

    Args:
        status: The HTTP status code of the response, 400 to 599.
        detail: A short text, or a dict or list sent as JSON.
        headers: Extra response headers.

    Raises:
        TypeError: ``status`` is not an int, ``detail`` is not a str, dict,
            list or None (or cannot be sent as JSON), or ``headers`` is not a
            mapping of str to str.
        ValueError: ``status`` is not an error status (400 to 599).
    """

    def __init__(
        self,
        status: int,
        detail: str | dict[str, Any] | list[Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # Checked here, at the raise that made the mistake, not when the response is built.
        if type(status) is not int:
            raise TypeError(f"HTTPError status must be an int, not {type(status).__name__}")
        if not 400 <= status <= 599:
            raise ValueError(
                f"HTTPError status must be an error status, 400 to 599, not {status}; "
                "return a Response for other statuses"
            )
        if detail is not None and not isinstance(detail, (str, dict, list)):
            raise TypeError(
                f"HTTPError detail must be a str, dict, list or None, not {type(detail).__name__}"
            )
        if isinstance(detail, (dict, list)):
            try:
                json_bytes(detail)
            except (TypeError, ValueError, RecursionError) as error:
                raise TypeError(f"HTTPError detail cannot be sent as JSON: {error}") from None
        if headers is not None and not isinstance(headers, Mapping):
            raise TypeError(f"HTTPError headers must be a mapping, not {type(headers).__name__}")
        headers = dict(headers or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise TypeError(f"HTTPError headers must map str to str: {headers!r}")
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers

    def __str__(self) -> str:
        return f"{self.status} {self.detail or ''}".strip()


@final
class RequestValidationError(HTTPError):
    """The request's data does not fit the handler's parameters: 422.

    Its detail is its ``errors``.

    Attributes:
        errors: One entry per offending field: ``{"loc": [where, name, ...],
            "msg": why}``, where ``where`` is path, query, header, cookie or body.
    """

    def __init__(self, errors: list[dict[str, object]]) -> None:
        super().__init__(422, errors)
        self.errors = errors


@final
class IOCancelledError(Exception):
    """A pending body read or response write was cancelled by ``Request.cancel_io()``.

    Unlike a disconnect, this does not cancel the handler: it may catch this
    exception and still answer.
    """


class WebSocketError(Exception):
    """Base class of the WebSocket errors."""


@final
class WebSocketClosed(WebSocketError):
    """The WebSocket conversation is over; nothing more can be received.

    Attributes:
        code: The close code. Hypercorn reports 1006 for every close the client
            starts, whatever code the client sent (hypercorn issue 127).
        reason: The close reason, where the server reports one.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket closed with code {self.code}" + (
            f": {self.reason}" if self.reason else ""
        )


class WebSocketStateError(WebSocketError, RuntimeError):
    """The WebSocket is in a state that does not allow the operation."""


@final
class WebSocketDisposedError(WebSocketStateError):
    """The WebSocket was used after its handler had returned."""


@final
class WebSocketAbortedError(WebSocketStateError):
    """The WebSocket was used after the connection was aborted."""
