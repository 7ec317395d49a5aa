"""The pytest plugin: ``client``, ``live_server`` and ``live_server_factory`` (needs pytest-trio).

Registered through the ``pytest11`` entry point named ``trioweb``. It imports
nothing beyond pytest, Trio and trioweb's server until a fixture is used, so
it loads in any project that has trioweb installed.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest
import trio

from .._serve import Server, serve

if TYPE_CHECKING:
    from ._client import TestClient

ServerFactory = Callable[..., Awaitable[Server]]

_TRIO_FIXTURES = frozenset({"client", "live_server", "live_server_factory"})


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> None:
    """Say what to set when a test that is not a Trio test asks for a Trio fixture.

    Without this, pytest fails with its generic "requested an async fixture"
    message, which does not name pytest-trio.
    """
    if (
        fixturedef.argname in _TRIO_FIXTURES
        and getattr(fixturedef.func, "__module__", None) == __name__
        and request.node.get_closest_marker("trio") is None
    ):
        pytest.fail(
            f"{request.node.name} uses trioweb's {fixturedef.argname!r} fixture, which runs in "
            "Trio: make the test `async def`, and set `trio_mode = true` in the pytest "
            "configuration ([tool.pytest.ini_options] in pyproject.toml, for pytest-trio) "
            "or mark the test with @pytest.mark.trio",
            pytrace=False,
        )


@pytest.fixture
def app() -> Any:
    """Override this fixture: return the app that ``client`` and ``live_server`` serve."""
    raise pytest.UsageError(
        "trioweb's client and live_server fixtures test the app returned by a fixture "
        "named 'app': define one in your test module or conftest.py"
    )


@pytest.fixture
def client_options() -> dict[str, Any]:
    """Override this fixture to configure ``client``: ``TestClient(app, **client_options)``.

    For example ``{"timeout": 5, "base_url": "https://api.example", "base_headers":
    {"authorization": "Bearer t"}}``.
    """
    return {}


@pytest.fixture
async def client(app: Any, client_options: dict[str, Any]) -> AsyncIterator[TestClient]:
    """An in-process :class:`~trioweb.testing.TestClient`, lifespan started.

    Cancellation:
        After the test it waits (bounded, wall clock) for the app's calls still
        running, runs the lifespan shutdown, and raises what the app raised.
    """
    from ._client import TestClient

    async with TestClient(app, **client_options) as test_client:
        yield test_client


@pytest.fixture
async def live_server_factory(app: Any) -> AsyncIterator[ServerFactory]:
    """``await live_server_factory(**serve_options)`` serves ``app`` on a real hypercorn.

    The options go to :func:`trioweb.serve` unchanged (``host`` and ``port``
    default to 127.0.0.1 and 0). Every server it started is shut down
    gracefully after the test.

    Cancellation:
        Shut down gracefully after the test: in-flight requests may finish
        within the server's graceful timeout, then are cancelled.
    """
    async with trio.open_nursery() as nursery:
        servers: list[Server] = []

        async def start(host: str = "127.0.0.1", port: int = 0, **serve_options: Any) -> Server:
            server: Server = await nursery.start(
                functools.partial(serve, app, host, port, **serve_options)
            )
            servers.append(server)
            return server

        yield start
        for server in servers:
            server.shutdown()


@pytest.fixture
async def live_server(live_server_factory: ServerFactory, request: pytest.FixtureRequest) -> Server:
    """The app on a real hypercorn at 127.0.0.1, port chosen by the OS.

    Serving options come from an indirect parametrization::

        @pytest.mark.parametrize("live_server", [{"graceful_timeout": 1}], indirect=True)

    Cancellation:
        Shut down gracefully after the test (see ``live_server_factory``).
    """
    options: dict[str, Any] = getattr(request, "param", {})
    return await live_server_factory(**options)
