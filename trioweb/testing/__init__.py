"""Testing trioweb apps: an in-process client that can leave mid-request, and pytest fixtures.

The pytest plugin (registered through the ``pytest11`` entry point, so nothing
needs importing) offers two fixtures built on a fixture named ``app`` that your
tests define:

* ``client``: a :class:`TestClient` for the app, with its lifespan running;
* ``live_server``: the app served by hypercorn on 127.0.0.1, on a port the
  OS chose (a :class:`trioweb.Server`; use its ``url``), shut down gracefully
  after the test.
"""

from ._client import AppDidNotRespond as AppDidNotRespond
from ._client import StreamCall as StreamCall
from ._client import TestClient as TestClient
from ._client import TestResponse as TestResponse
from ._client import WebSocketRejected as WebSocketRejected
from ._client import WebSocketSession as WebSocketSession

__all__ = [
    "AppDidNotRespond",
    "StreamCall",
    "TestClient",
    "TestResponse",
    "WebSocketRejected",
    "WebSocketSession",
]
