"""Bad input is never a 500: a clear 4xx with a ``detail``, and the server keeps serving."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

import attrs
import httpx
import pytest

from trioweb import App, Cookie, Form, Request, Server
from trioweb._json_encoding import json_bytes
from trioweb.testing import TestClient

JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
HUGE = "9" * 5000


@attrs.define
class Node:
    name: str
    children: list[Node] = attrs.Factory(list)


@attrs.define
class Pair:
    a: int = attrs.field(validator=attrs.validators.ge(1))
    b: str = attrs.field(validator=attrs.validators.min_len(2))
    c: float = 0.0


@attrs.define
class Outer:
    pairs: list[Pair]
    label: str = attrs.field(default="x", validator=attrs.validators.max_len(3))


@attrs.define
class Login:
    user: str
    password: str
    age: int = attrs.field(default=18, validator=attrs.validators.ge(0))
    roles: list[str] = attrs.Factory(list)


@attrs.define
class Measure:
    x: float
    y: float | None = None


def make_app() -> App:
    app = App()

    @app.post("/json")
    async def echo_json(request: Request) -> Any:
        return {"got": await request.json()}

    @app.post("/text")
    async def echo_text(request: Request) -> str:
        return await request.text()

    @app.post("/node")
    async def node(node: Node) -> Node:
        return node

    @app.post("/pair")
    async def pair(pair: Pair) -> Pair:
        return pair

    @app.post("/outer")
    async def outer(outer: Outer) -> Outer:
        return outer

    @app.post("/login")
    async def login(data: Annotated[Login, Form()]) -> Login:
        return data

    @app.get("/int/{x:int}")
    async def path_int(x: int) -> dict[str, int]:
        return {"x": x % 10}

    @app.get("/float/{x:float}")
    async def path_float(x: float) -> dict[str, float]:
        return {"x": x}

    @app.get("/query")
    async def query(
        x: int = 0,
        f: float = 0.0,
        ids: list[int] | None = None,
        tags: list[str] | None = None,
        plain: list[int] = [],  # noqa: B006 (never mutated: checks an absent list's default)
    ) -> dict[str, object]:
        return {"x": x, "f": f, "ids": ids, "tags": tags, "plain": plain}

    @app.post("/measure")
    async def measure(m: Measure) -> dict[str, object]:
        return {"x": m.x, "y": m.y}

    @app.get("/nan")
    async def nan() -> dict[str, object]:
        return {"fine": 1, "values": [1.0, float("nan")]}

    @app.get("/cookies")
    async def cookies(
        request: Request, session: Annotated[str, Cookie()] = ""
    ) -> dict[str, object]:
        jar = request.cookies
        try:
            jar["new"] = "x"  # type: ignore[index]  # the test: a read-only mapping refuses
        except TypeError:
            writable = False
        else:
            writable = True
        return {"jar": dict(jar), "session": session, "writable": writable}

    @app.get("/ok")
    async def ok() -> str:
        return "ok"

    return app


@pytest.fixture
def app() -> App:
    return make_app()


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_node(depth: int) -> bytes:
    return b'{"name":"n","children":[' * depth + b'{"name":"leaf"}' + b"]}" * depth


@pytest.mark.parametrize(
    ("method", "path", "options", "status", "says"),
    [
        ("POST", "/json", {"content": b"{x", "headers": JSON}, 400, "malformed JSON"),
        ("POST", "/json", {"content": b"", "headers": JSON}, 400, "malformed JSON"),
        ("POST", "/json", {"content": b'"\xff"', "headers": JSON}, 400, "malformed JSON"),
        ("POST", "/text", {"content": b"ok \xff\xfe"}, 400, "not UTF-8"),
        ("POST", "/json", {"content": deep_json(1000), "headers": JSON}, 400, "nested"),
        ("POST", "/json", {"content": deep_json(100_000), "headers": JSON}, 400, "nested"),
        ("POST", "/json", {"content": b'{"a":' * 5000 + b"1" + b"}" * 5000}, 400, "nested"),
        ("POST", "/node", {"content": deep_node(1000), "headers": JSON}, 400, "nested"),
        ("POST", "/node", {"content": deep_node(400), "headers": JSON}, 400, "nested"),
        ("GET", "/int/" + HUGE, {}, 404, ""),
        ("GET", "/int/-" + HUGE, {}, 404, ""),
        ("GET", "/float/" + HUGE, {}, 404, ""),
        ("GET", "/float/" + HUGE + ".5", {}, 404, ""),
        ("GET", "/query?x=" + HUGE, {}, 422, "expected an integer"),
        ("GET", "/query?ids=1&ids=" + HUGE, {}, 422, "expected an integer"),
        ("GET", "/query?f=" + HUGE, {}, 422, "finite"),
        ("GET", "/query?f=1e999", {}, 422, "finite"),
        ("POST", "/measure", {"content": b'{"x": NaN}', "headers": JSON}, 422, "finite"),
        ("POST", "/measure", {"content": b'{"x": Infinity}', "headers": JSON}, 422, "finite"),
        ("POST", "/measure", {"content": b'{"x": -Infinity}', "headers": JSON}, 422, "finite"),
        ("POST", "/measure", {"content": b'{"x": 1e999}', "headers": JSON}, 422, "finite"),
        ("POST", "/measure", {"content": b'{"x": 1, "y": 1e999}', "headers": JSON}, 422, "finite"),
        ("POST", "/measure", {"content": ("[" + HUGE + "]").encode(), "headers": JSON}, 400, ""),
    ],
)
async def test_bad_input_is_a_clear_4xx(
    client: TestClient,
    method: str,
    path: str,
    options: dict[str, Any],
    status: int,
    says: str,
) -> None:
    response = await client.request(method, path, **options)
    assert response.status_code == status, response.text[:300]
    assert says in response.text
    assert len(response.text) < 1000  # the detail does not echo a huge input back
    assert (await client.get("/ok")).text == "ok"


async def test_nan_and_infinity_in_a_json_float_field_are_reported_per_field(
    client: TestClient,
) -> None:
    response = await client.post("/measure", content=b'{"x": NaN, "y": -Infinity}', headers=JSON)
    assert response.status_code == 422
    assert [entry["loc"] for entry in response.json()["detail"]] == [
        ["body", "x"],
        ["body", "y"],
    ]


async def test_a_lone_surrogate_is_escaped_in_json_output(client: TestClient) -> None:
    response = await client.post("/json", content=b'{"s": "a\\ud800b\\udfff"}', headers=JSON)
    assert response.status_code == 200
    assert b"\\ud800" in response.content
    assert response.json() == {"got": {"s": "a\ud800b\udfff"}}
    # Valid UTF-8, and ordinary non-ASCII text is still sent as it is.
    response.content.decode("utf-8")
    response = await client.post("/json", content='{"s": "é\\ud800"}'.encode(), headers=JSON)
    assert response.json() == {"got": {"s": "é\ud800"}}


def test_json_bytes_says_what_is_wrong() -> None:
    assert json_bytes({"s": "é"}) == '{"s":"é"}'.encode()
    assert json_bytes(["\udc80"]) == b'["\\udc80"]'
    with pytest.raises(ValueError, match=r"NaN .* at \$\.values\[1\]"):
        json_bytes({"fine": 1, "values": [1.0, math.nan]})
    with pytest.raises(ValueError, match=r"Infinity .* at \$\['a b'\]"):
        json_bytes({"a b": math.inf})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself or is nested too deeply"):
        json_bytes({"loop": loop})
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        json_bytes({"x": object()})


async def test_an_invalid_json_response_is_a_500_logged_with_the_reason(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/nan")
    assert response.status_code == 500
    assert "NaN" in caplog.text
    assert "$.values[1]" in caplog.text
    assert (await client.get("/ok")).text == "ok"


async def test_every_failing_validator_is_reported_with_its_own_loc(client: TestClient) -> None:
    response = await client.post("/pair", json={"a": 0, "b": "x"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [entry["loc"] for entry in detail] == [["body", "a"], ["body", "b"]]
    assert "'a' must be >= 1: 0" in detail[0]["msg"]
    assert "Length of 'b' must be >= 2: 1" in detail[1]["msg"]
    # Nested, mixed with type errors, missing fields and extra keys: all of them, each where it is.
    response = await client.post(
        "/outer",
        json={
            "pairs": [{"a": 1, "b": "ok"}, {"a": 0, "b": "y"}, {"a": "1", "b": "zz", "d": 1}],
            "label": "long",
        },
    )
    assert response.status_code == 422
    assert [entry["loc"] for entry in response.json()["detail"]] == [
        ["body", "pairs", 1, "a"],
        ["body", "pairs", 1, "b"],
        ["body", "pairs", 2, "a"],
        ["body", "pairs", 2, "d"],
        ["body", "label"],
    ]
    response = await client.post("/pair", json={"b": "x", "c": "no"})
    assert [entry["loc"] for entry in response.json()["detail"]] == [
        ["body", "a"],
        ["body", "c"],
        ["body", "b"],
    ]


async def test_a_missing_form_field_is_field_required(client: TestClient) -> None:
    response = await client.post("/login", content=b"user=bob&age=-1&extra=1", headers=FORM)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body", "password"], "msg": "field required"},
        {"loc": ["body", "age"], "msg": "'age' must be >= 0: -1"},
        {"loc": ["body", "extra"], "msg": "unexpected field"},
    ]
    response = await client.post(
        "/login", content=b"user=bob&password=pw&roles=a&roles=b", headers=FORM
    )
    assert response.json() == {"user": "bob", "password": "pw", "age": 18, "roles": ["a", "b"]}


async def test_recursive_models_are_bodies_and_return_values(client: TestClient) -> None:
    tree = {"name": "root", "children": [{"name": "a", "children": [{"name": "b"}]}, {"name": "c"}]}
    response = await client.post("/node", json=tree)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "root",
        "children": [
            {"name": "a", "children": [{"name": "b", "children": []}]},
            {"name": "c", "children": []},
        ],
    }
    response = await client.post("/node", content=deep_node(50), headers=JSON)
    assert response.status_code == 200
    response = await client.post("/node", json={"name": "r", "children": [{"name": 1}]})
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "children", 0, "name"]]


async def test_an_absent_optional_list_is_its_declared_default(client: TestClient) -> None:
    response = await client.get("/query")
    assert response.json() == {"x": 0, "f": 0.0, "ids": None, "tags": None, "plain": []}
    response = await client.get("/query?ids=1&ids=2&tags=")
    assert response.json()["ids"] == [1, 2]
    assert response.json()["tags"] == [""]


async def test_request_cookies_is_a_read_only_mapping(client: TestClient) -> None:
    response = await client.get("/cookies", headers={"cookie": "session=abc; theme=dark"})
    assert response.json() == {
        "jar": {"session": "abc", "theme": "dark"},
        "session": "abc",
        "writable": False,
    }
    # Odd pieces are skipped, not the whole header; cookies named like Set-Cookie
    # attributes are cookies (http.cookies.SimpleCookie ate both).
    header = 'secure; path=/x; a="\\; =v; expires=1; session="quoted"; b=1=2'
    response = await client.get("/cookies", headers={"cookie": header})
    assert response.json() == {
        "jar": {"path": "/x", "a": '"\\', "expires": "1", "session": "quoted", "b": "1=2"},
        "session": "quoted",
        "writable": False,
    }


def _assert_detail_format(body: Mapping[str, Any]) -> None:
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], list)
    assert body["detail"]
    for entry in body["detail"]:
        assert set(entry) == {"loc", "msg"}, entry
        assert isinstance(entry["loc"], list)
        assert entry["loc"][0] in {"query", "header", "cookie", "body", "path"}
        assert all(isinstance(part, (str, int)) for part in entry["loc"])
        assert isinstance(entry["msg"], str)
        assert entry["msg"]


@pytest.mark.parametrize(
    ("method", "path", "options"),
    [
        ("GET", "/query?x=one&f=nan&ids=x", {}),
        ("POST", "/pair", {"json": {"a": 0, "b": "x", "zz": 1}}),
        ("POST", "/pair", {"json": [1]}),
        ("POST", "/pair", {"json": None}),
        ("POST", "/outer", {"json": {"pairs": {"a": 1}}}),
        ("POST", "/outer", {"json": {"pairs": [1, None, "x"]}}),
        ("POST", "/login", {"content": b"", "headers": FORM}),
        ("POST", "/login", {"content": b"user=1&password=2&age=x", "headers": FORM}),
        ("POST", "/measure", {"json": {"x": "1"}}),
        ("POST", "/measure", {"json": {"x": True}}),
        ("GET", "/cookies", {"cookies": {"session": "x"}, "params": {"unused": "1"}}),
    ],
)
async def test_every_422_has_the_same_detail_format(
    client: TestClient, method: str, path: str, options: dict[str, Any]
) -> None:
    response = await client.request(method, path, **options)
    if path == "/cookies":
        assert response.status_code == 200  # the control: unknown query keys are ignored
        return
    assert response.status_code == 422, response.text
    _assert_detail_format(response.json())


# ---- over a real hypercorn: the crash-prone ones, and the server keeps serving ----


@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        ("POST", "/json", deep_json(100_000), 400),
        ("POST", "/node", deep_node(2000), 400),
        ("GET", "/int/" + HUGE, None, 404),
        ("GET", "/query?x=" + HUGE, None, 422),
        ("POST", "/json", b'"\\ud800"', 200),
        ("POST", "/measure", b'{"x": NaN}', 422),
        ("POST", "/text", b"\xc3\x28", 400),
    ],
)
async def test_over_the_wire_the_server_keeps_serving(
    live_server: Server, method: str, path: str, content: bytes | None, status: int
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        for _ in range(3):
            response = await http.request(method, path, content=content, headers=JSON)
            assert response.status_code == status, response.text[:300]
            assert (await http.get("/ok")).text == "ok"
        if status == 200:
            assert json.loads(response.content) == {"got": "\ud800"}


async def test_uuid_path_still_matches() -> None:
    # The bounded int/float expressions must not change what the other converters accept.
    app = App()

    @app.get("/u/{u:uuid}")
    async def get(u: uuid.UUID) -> str:
        return str(u)

    async with TestClient(app) as client:
        assert (await client.get(f"/u/{uuid.UUID(int=3)}")).text == str(uuid.UUID(int=3))
        assert (await client.get("/u/" + "a" * 5000)).status_code == 404


async def test_optional_bodies_and_odd_forms() -> None:
    app = App()

    @app.post("/maybe-json")
    async def maybe_json(measure: Measure | None = None) -> dict[str, object]:
        return {"measure": None if measure is None else measure.x}

    @app.post("/maybe-form")
    async def maybe_form(data: Annotated[Login | None, Form()] = None) -> dict[str, object]:
        return {"user": None if data is None else data.user}

    async with TestClient(app) as client:
        assert (await client.post("/maybe-json")).json() == {"measure": None}
        assert (await client.post("/maybe-json", json={"x": 2})).json() == {"measure": 2.0}
        assert (await client.post("/maybe-form")).json() == {"user": None}
        response = await client.post("/maybe-form", content=b"user=\xff", headers=FORM)
        assert (response.status_code, response.json()) == (
            400,
            {"detail": "the form body is not UTF-8"},
        )
        response = await client.post("/maybe-form", content=b"user=a&password=b", headers=JSON)
        assert response.status_code == 415


def test_headers_get_with_a_name_no_header_can_have() -> None:
    from trioweb import Headers

    assert Headers.from_raw([(b"a", b"1")]).get("☃", "none") == "none"


async def test_many_bad_requests_at_once_over_the_wire(live_server: Server) -> None:
    import trio

    payloads = [
        ("POST", "/json", deep_json(5000), 400),
        ("POST", "/node", deep_node(300), 400),
        ("GET", "/int/" + HUGE, None, 404),
        ("POST", "/measure", b'{"x": NaN}', 422),
        ("POST", "/json", b'"\\udfff"', 200),
        ("POST", "/pair", b'{"a": 0, "b": ""}', 422),
    ]
    statuses: list[tuple[int, int]] = []

    async def one(http: httpx.AsyncClient, index: int) -> None:
        method, path, content, status = payloads[index % len(payloads)]
        response = await http.request(method, path, content=content, headers=JSON)
        statuses.append((response.status_code, status))

    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=live_server.url, limits=limits, timeout=30) as http:
        async with trio.open_nursery() as nursery:
            for index in range(120):
                nursery.start_soon(one, http, index)
        assert (await http.get("/ok")).text == "ok"
    assert len(statuses) == 120
    assert all(got == wanted for got, wanted in statuses), sorted(set(statuses))
