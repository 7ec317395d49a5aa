"""trioweb's pytest plugin, as a user's project meets it (pytester runs a separate pytest)."""

from __future__ import annotations

import pytest

from trioweb import App, Server
from trioweb.testing import TestClient

pytest_plugins = ["pytester"]

APP = """
import pytest
from trioweb import App

@pytest.fixture
def app():
    app = App()

    @app.get("/")
    async def root() -> str:
        return "hi"

    return app
"""


def test_without_trio_mode_the_error_says_what_to_set(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(APP + "\n\nasync def test_it(client):\n    await client.get('/')\n")
    pytester.makeini("[pytest]\n")  # no trio_mode
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*uses trioweb's 'client' fixture, which runs in Trio*set `trio_mode = true`*"]
    )
    assert "requested an async fixture" not in result.stdout.str()


def test_with_the_trio_marker_it_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        APP + "\n\n@pytest.mark.trio\nasync def test_it(client):\n"
        "    assert (await client.get('/')).text == 'hi'\n"
    )
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


@pytest.fixture
def app() -> App:
    app = App()

    @app.get("/hello")
    async def hello() -> str:
        return "hello"

    return app


@pytest.fixture
def client_options() -> dict[str, object]:
    return {"timeout": 3.5, "base_url": "http://api.example:8080", "base_headers": {"x-a": "1"}}


async def test_client_options_configure_the_client_fixture(client: TestClient) -> None:
    assert client.timeout == 3.5
    assert client.base_url == "http://api.example:8080"
    request = client.build_request("GET", "/hello")
    assert request.headers["host"] == "api.example:8080"
    assert request.headers["x-a"] == "1"
    assert (await client.get("/hello")).text == "hello"


@pytest.mark.parametrize("live_server", [{"keep_alive_timeout": 0.25}], indirect=True)
async def test_live_server_takes_serving_options_indirectly(live_server: Server) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=live_server.url) as http:
        assert (await http.get("/hello")).text == "hello"


async def test_live_server_factory_passes_options_to_serve(live_server_factory: object) -> None:
    import httpx

    assert callable(live_server_factory)
    first = await live_server_factory(graceful_timeout=0.5)
    second = await live_server_factory(host="127.0.0.1")
    assert first.port != second.port
    async with httpx.AsyncClient() as http:
        for server in (first, second):
            assert (await http.get(f"{server.url}/hello")).text == "hello"
    with pytest.raises(TypeError, match="no_such_option"):
        await live_server_factory(no_such_option=1)
