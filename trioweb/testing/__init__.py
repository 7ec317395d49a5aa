"""Testing trioweb apps: httpx in-process, a client that can leave mid-request, pytest fixtures.

* :class:`ASGITransport`: an httpx transport calling the app in-process, as
  hypercorn would deliver the requests:
  ``httpx.AsyncClient(transport=ASGITransport(app), base_url="http://testserver")``.
* :class:`TestClient`: the same driver, plus what httpx cannot say: leaving
  before the response starts, mid-upload, mid-stream (:meth:`TestClient.stream`),
  and WebSocket sessions.

The pytest plugin (registered through the ``pytest11`` entry point, so nothing
needs importing; it needs pytest-trio) offers fixtures built on a fixture named
``app`` that your tests define:

* ``client``: a :class:`TestClient` for the app, its lifespan running,
  configured by the ``client_options`` fixture;
* ``live_server``: the app served by hypercorn on 127.0.0.1, on a port the OS
  chose (a :class:`trioweb.Server`; use its ``url``), shut down gracefully after
  the test; ``live_server_factory(**serve_options)`` serves it with options.
"""

from ._deadline import AppDidNotRespond as AppDidNotRespond
from ._lifespan import LifespanFailed as LifespanFailed
from ._websocket_session import WebSocketRejected as WebSocketRejected

try:
    import httpx as _httpx  # noqa: F401  # only whether it is installed
except ImportError:  # pragma: no cover - the pytest plugin must load without httpx

    def __getattr__(name: str) -> object:
        raise ImportError(f"trioweb.testing.{name} needs httpx: pip install httpx")

else:
    from ._client import TestClient as TestClient
    from ._response import TestResponse as TestResponse
    from ._stream_call import StreamCall as StreamCall
    from ._transport import ASGITransport as ASGITransport
    from ._websocket_session import WebSocketSession as WebSocketSession

__all__ = [
    "ASGITransport",
    "AppDidNotRespond",
    "LifespanFailed",
    "StreamCall",
    "TestClient",
    "TestResponse",
    "WebSocketRejected",
    "WebSocketSession",
]
