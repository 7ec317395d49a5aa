"""The pytest plugin: ``client`` and ``live_server`` fixtures (needs pytest-trio).

Registered through the ``pytest11`` entry point named ``trioweb``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from .._serve import Server, serve
from ._client import TestClient


@pytest.fixture
def app() -> Any:
    """Override this fixture: return the app that ``client`` and ``live_server`` serve."""
    raise pytest.UsageError(
        "trioweb's client and live_server fixtures test the app returned by a fixture "
        "named 'app': define one in your test module or conftest.py"
    )


@pytest.fixture
async def client(app: Any) -> AsyncIterator[TestClient]:
    """An in-process :class:`~trioweb.testing.TestClient`, lifespan started.

    Cancellation:
        Its lifespan shutdown runs after the test; calls still running are cancelled.
    """
    async with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
async def live_server(app: Any) -> AsyncIterator[Server]:
    """The app on a real hypercorn at 127.0.0.1, port chosen by the OS.

    Cancellation:
        Shut down gracefully after the test: in-flight requests may finish
        within the server's graceful timeout, then are cancelled.
    """
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(serve, app, "127.0.0.1", 0)
        yield server
        server.shutdown()
