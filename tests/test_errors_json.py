"""Framework-made errors are JSON ``{"detail": ...}``; HTTPError checks its arguments."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from trioweb import App, HTTPError, RequestValidationError
from trioweb._response import error_response, status_response
from trioweb.testing import TestClient


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        (400, "Bad Request"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (413, "Request Entity Too Large"),
        (415, "Unsupported Media Type"),
        (500, "Internal Server Error"),
        (504, "Gateway Timeout"),
    ],
)
def test_status_response_is_json_with_the_phrase(status: int, detail: str) -> None:
    response = status_response(status)
    assert (response.status, response.media_type) == (status, "application/json")
    assert response.body == b'{"detail":"%s"}' % detail.encode()


def test_status_response_keeps_headers_and_detail() -> None:
    response = status_response(405, headers={"allow": "GET, HEAD"})
    assert response.headers == {"allow": "GET, HEAD"}
    assert status_response(413, "the body exceeds 10 bytes").body == (
        b'{"detail":"the body exceeds 10 bytes"}'
    )


@pytest.mark.parametrize(
    ("error", "body"),
    [
        (HTTPError(404), b'{"detail":"Not Found"}'),
        (HTTPError(409, "taken"), b'{"detail":"taken"}'),
        (HTTPError(400, {"field": "name", "why": "é"}), '{"detail":{"field":"name","why":"é"}}'),
        (HTTPError(400, ["a", 1]), b'{"detail":["a",1]}'),
        (HTTPError(418, None), b'{"detail":"I\'m a Teapot"}'),
        (HTTPError(599), b'{"detail":"Server Error"}'),  # no registered phrase
        (HTTPError(499), b'{"detail":"Client Error"}'),
        (
            RequestValidationError([{"loc": ["query", "n"], "msg": "no"}]),
            b'{"detail":[{"loc":["query","n"],"msg":"no"}]}',
        ),
    ],
)
def test_error_response_is_json(error: HTTPError, body: bytes | str) -> None:
    response = error_response(error)
    expected = body.encode() if isinstance(body, str) else body
    assert (response.status, response.media_type, response.body) == (
        error.status,
        "application/json",
        expected,
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("404",), {}, TypeError, "status must be an int"),
        ((True,), {}, TypeError, "status must be an int"),
        ((200,), {}, ValueError, "400 to 599"),
        ((99,), {}, ValueError, "400 to 599"),
        ((600,), {}, ValueError, "400 to 599"),
        ((400, 5), {}, TypeError, "detail must be"),
        ((400, b"bytes"), {}, TypeError, "detail must be"),
        ((400, {"x": object()}), {}, TypeError, "cannot be sent as JSON"),
        ((400, "x"), {"headers": ["a"]}, TypeError, "headers must be a mapping"),
        ((400, "x"), {"headers": {"a": 1}}, TypeError, "headers must map str to str"),
    ],
)
def test_http_error_checks_its_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        HTTPError(*args, **kwargs)


def test_http_error_str() -> None:
    assert str(HTTPError(404, "gone")) == "404 gone"
    assert str(HTTPError(404)) == "404"
    assert str(HTTPError(400, {"k": 1})) == "400 {'k': 1}"


@attrs.frozen
class Ticket:
    number: int


@pytest.fixture
def app() -> App:
    app = App()

    @app.get("/items/{item_id:int}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/upload", max_body_size=4)
    async def upload(body: bytes) -> str:
        return str(len(body))

    @app.post("/ticket")
    async def ticket(ticket: Ticket) -> Ticket:
        return ticket

    @app.get("/structured")
    async def structured() -> str:
        raise HTTPError(422, {"field": "name", "problems": ["short", "taken"]})

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("secret")

    return app


@pytest.mark.parametrize(
    ("method", "path", "status", "detail"),
    [
        ("GET", "/nowhere", 404, "Not Found"),
        ("GET", "/items/abc", 404, "Not Found"),
        ("DELETE", "/items/1", 405, "Method Not Allowed"),
        ("POST", "/upload", 413, "the body exceeds 4 bytes"),
        ("POST", "/ticket", 415, "expected an application/json body, got 'none'"),
        ("GET", "/structured", 422, {"field": "name", "problems": ["short", "taken"]}),
        ("GET", "/boom", 500, "Internal Server Error"),
    ],
)
async def test_framework_errors_are_json_in_process(
    client: TestClient, method: str, path: str, status: int, detail: object
) -> None:
    response = await client.request(method, path, content=b"too long")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": detail}
    if status == 405:
        assert response.headers["allow"] == "GET, HEAD"
