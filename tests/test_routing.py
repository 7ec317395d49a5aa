"""Path compilation and matching: pure, table-driven."""

from __future__ import annotations

import uuid
from urllib.parse import unquote

import pytest

from trioweb import RouteDefinitionError
from trioweb._routing import MethodNotAllowed, Route, RouteMatch, RouteTable, compile_path

U = "12345678-1234-5678-1234-567812345678"


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/", "/", {}),
        ("/a/b", "/a/b", {}),
        ("/a/b", "/a/b/", None),
        ("/items/{x}", "/items/abc", {"x": "abc"}),
        ("/items/{x}", "/items/a/b", None),
        ("/items/{x:str}", "/items/é", {"x": "é"}),
        ("/items/{x:int}", "/items/42", {"x": 42}),
        ("/items/{x:int}", "/items/-7", {"x": -7}),
        ("/items/{x:int}", "/items/4.2", None),
        ("/items/{x:int}", "/items/abc", None),
        ("/items/{x:float}", "/items/4.5", {"x": 4.5}),
        ("/items/{x:float}", "/items/4", {"x": 4.0}),
        ("/items/{x:float}", "/items/nan", None),
        ("/items/{x:uuid}", f"/items/{U}", {"x": uuid.UUID(U)}),
        ("/items/{x:uuid}", "/items/not-a-uuid", None),
        ("/files/{p:path}", "/files/a/b/c.txt", {"p": "a/b/c.txt"}),
        ("/files/{p:path}", "/files/", {"p": ""}),
        ("/{a:int}/x/{b}", "/1/x/two", {"a": 1, "b": "two"}),
        ("/a.b/{x}", "/aXb/1", None),  # literal parts are escaped
    ],
)
def test_match(pattern: str, path: str, expected: dict[str, object] | None) -> None:
    assert compile_path(pattern).match(path) == expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("no-slash", "must start with '/'"),
        ("/{x:nope}", "unknown converter 'nope'"),
        ("/{x}/{x}", "repeats parameter 'x'"),
        ("/{1x}", "is not an identifier"),
        ("/{x", "unbalanced brace"),
        ("/x}", "unbalanced brace"),
    ],
)
def test_bad_paths(pattern: str, message: str) -> None:
    with pytest.raises(RouteDefinitionError, match=message):
        compile_path(pattern)


def test_implicit_converter_from_annotation() -> None:
    assert compile_path("/{x}", {"x": "int"}).match("/5") == {"x": 5}
    assert compile_path("/{x:str}", {"x": "int"}).match("/5") == {"x": "5"}


async def h1() -> None: ...
async def h2() -> None: ...


def table(*routes: tuple[str, set[str], str]) -> RouteTable[str]:
    result: RouteTable[str] = RouteTable()
    for path, methods, name in routes:
        result.add(Route(compile_path(path), frozenset(methods), h1, name, name))
    return result


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/a", "a-get"),
        ("POST", "/a", "a-post"),
        ("HEAD", "/a", "a-get"),  # HEAD falls back to GET
        ("DELETE", "/a", frozenset({"GET", "HEAD", "POST"})),
        ("GET", "/missing", None),
        ("GET", "/items/1", "item"),
        ("PUT", "/items/1", "item-put"),
        ("PUT", "/items/x", frozenset({"POST"})),  # the int route does not match "x"
        ("POST", "/items/x", "item-str"),
        ("GET", "/items/new", "new"),  # static wins
    ],
)
def test_table_match(method: str, path: str, expected: object) -> None:
    routes = table(
        ("/a", {"GET"}, "a-get"),
        ("/a", {"POST"}, "a-post"),
        ("/items/{x:int}", {"GET"}, "item"),
        ("/items/{x:int}", {"PUT"}, "item-put"),
        ("/items/{x}", {"POST"}, "item-str"),
        ("/items/new", {"GET"}, "new"),
    )
    found = routes.match(path, method)
    if expected is None:
        assert found is None
    elif isinstance(expected, frozenset):
        assert isinstance(found, MethodNotAllowed)
        assert found.allowed == expected
    else:
        assert isinstance(found, RouteMatch)
        assert found.route.endpoint == expected


def test_allow_header_is_sorted() -> None:
    assert MethodNotAllowed(frozenset({"POST", "GET", "HEAD"})).allow_header == "GET, HEAD, POST"


def test_duplicate_route_and_name() -> None:
    routes = table(("/a", {"GET"}, "a"))
    with pytest.raises(RouteDefinitionError, match="already routed"):
        routes.add(Route(compile_path("/a"), frozenset({"GET"}), h2, "x", "other"))
    with pytest.raises(RouteDefinitionError, match="name 'a' is already used"):
        routes.add(Route(compile_path("/b"), frozenset({"GET"}), h2, "x", "a"))
    routes.add(Route(compile_path("/c"), frozenset({"GET"}), h1, "x", "a"))  # same handler: fine
    assert routes.url_for("a", {}) == "/a"


@pytest.mark.parametrize(
    ("params", "result"),
    [
        ({"x": 5, "p": "a/b"}, "/items/5/a/b"),
        ({"x": "nope", "p": "a"}, ValueError),
        ({"x": 5}, ValueError),
        ({"x": 5, "p": "a", "z": 1}, ValueError),
    ],
)
def test_url_for(params: dict[str, object], result: object) -> None:
    routes = table(("/items/{x:int}/{p:path}", {"GET"}, "item"))
    if result is ValueError:
        with pytest.raises(ValueError, match=r"path|converter"):
            routes.url_for("item", params)
    else:
        assert routes.url_for("item", params) == result
    with pytest.raises(KeyError, match="no route is named"):
        routes.url_for("nope", {})


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("/u/{name}", {"name": "a b"}, "/u/a%20b"),
        ("/u/{name}", {"name": "100%?#&="}, "/u/100%25%3F%23%26%3D"),
        ("/u/{name}", {"name": "é"}, "/u/%C3%A9"),
        ("/f/{p:path}", {"p": "a b/c?d/é"}, "/f/a%20b/c%3Fd/%C3%A9"),
        ("/f/{p:path}", {"p": ""}, "/f/"),
        ("/i/{x:int}", {"x": -3}, "/i/-3"),
        ("/i/{x:uuid}", {"x": uuid.UUID(U)}, f"/i/{U}"),
    ],
)
def test_url_for_percent_encodes(path: str, params: dict[str, object], expected: str) -> None:
    pattern = compile_path(path)
    assert pattern.format(params) == expected
    # What url_for builds routes back to the same values, once the server decodes it.
    assert pattern.match(unquote(expected)) == params


def test_url_for_refuses_a_slash_in_a_segment() -> None:
    # Encoded as %2F it would never route back here (the server decodes the path).
    with pytest.raises(ValueError, match="does not fit the 'str' converter"):
        compile_path("/u/{name}").format({"name": "a/b"})


def test_url_for_query() -> None:
    routes = table(("/items/{x:int}", {"GET"}, "item"))
    assert routes.url_for("item", {"x": 1}, query={"q": "a b&c", "tag": ["x", "é"]}) == (
        "/items/1?q=a+b%26c&tag=x&tag=%C3%A9"
    )
    assert routes.url_for("item", {"x": 1}, query={}) == "/items/1"
