"""Hypothesis throws arbitrary queries, headers and bodies at a bound handler: never a 500."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioweb import App, Cookie, Form, Header, Request
from trioweb.testing import TestClient


@attrs.define
class Point:
    x: float
    y: float = 0.0


@attrs.define
class Shape:
    name: str = attrs.field(validator=attrs.validators.min_len(1))
    points: list[Point] = attrs.Factory(list)
    closed: bool = False
    tag: uuid.UUID | None = None


@attrs.define
class Node:
    name: str = attrs.field(validator=attrs.validators.max_len(8))
    children: list[Node] = attrs.Factory(list)
    weight: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))


@attrs.define
class Login:
    user: str
    password: str = attrs.field(validator=attrs.validators.min_len(2))
    age: int | None = None
    roles: list[str] = attrs.Factory(list)


app = App(max_body_size=1 << 20)


@app.post("/shapes/{shelf:int}")
async def create(
    shelf: int,
    shape: Shape,
    limit: int = 10,
    ratio: float | None = None,
    flags: list[bool] | None = None,
    token: Annotated[str | None, Header("x-token")] = None,
    visits: Annotated[int, Cookie("visits")] = 0,
) -> dict[str, object]:
    return {"shelf": shelf, "points": len(shape.points), "limit": limit, "visits": visits}


@app.post("/echo")
async def echo(request: Request) -> Any:
    return {"got": await request.json()}


@app.post("/tree/{depth:float}")
async def tree(depth: float, node: Node, ids: list[int] | None = None) -> Node:
    return node


@app.post("/login")
async def login(data: Annotated[Login, Form()]) -> Login:
    return data


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "points", "closed", "tag", "x", "y", "z"])
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)
header_names = st.sampled_from(["x-token", "cookie", "content-type", "x-other", "accept"])
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
query_keys = st.sampled_from(["limit", "ratio", "flags", "x", ""])
query_values = st.text(max_size=12) | st.sampled_from(["9" * 5000, "nan", "-inf", "1e999"])
# JSON text Python's encoder never writes: deep nesting, non-JSON numbers, lone surrogates.
odd_json = st.one_of(
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 400).map(
        lambda depth: b'{"name":"n","children":[' * depth + b'{"name":"x"}' + b"]}" * depth
    ),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 5000]).map(
        lambda number: b'{"name":"n","weight":' + number + b"}"
    ),
    st.sampled_from([b"\\ud800", b"\\udfff", b"a\\ud83d", b"\\u0000"]).map(
        lambda text: b'{"name":"' + text + b'"}'
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    query=st.lists(st.tuples(query_keys, query_values), max_size=6),
    raw_query=st.text(max_size=30),
    headers=st.dictionaries(header_names, header_values, max_size=4),
    body=json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=64) | odd_json,
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
    ),
    shelf=st.sampled_from(["1", "-5", "x", "99999999999999999999", "9" * 5000, "1." + "0" * 400]),
    route=st.sampled_from(["shapes", "echo", "tree", "login"]),
)
async def test_never_a_500(
    query: list[tuple[str, str]],
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    content_type: str,
    shelf: str,
    route: str,
) -> None:
    from urllib.parse import urlencode

    all_headers: dict[str, Any] = {**headers}
    if content_type:
        all_headers["content-type"] = content_type
    suffix = "" if route in ("echo", "login") else f"/{shelf}"
    path = f"/{route}{suffix}?{urlencode(query)}&{raw_query}"
    async with TestClient(app) as client:
        response = await client.post(path, headers=all_headers, content=body)
        assert response.status_code in {200, 400, 404, 413, 415, 422}, (
            response.status_code,
            response.text[:500],
        )
        if response.status_code == 422:
            for entry in response.json()["detail"]:
                assert set(entry) == {"loc", "msg"}
                assert entry["loc"][0] in {"query", "header", "cookie", "body"}
        if response.headers.get("content-type") == "application/json":
            response.json()  # valid JSON, whatever came in
        assert len(response.content) < 3 * len(body) + 2000  # no huge echo in a detail
        assert (await client.post("/echo", json=[1])).json() == {"got": [1]}


@attrs.define
class Strict:
    name: str = attrs.field(validator=attrs.validators.min_len(1))
    count: int = 0
    ratio: float | None = None
    tags: list[str] = attrs.Factory(list)
    ids: set[uuid.UUID] = attrs.Factory(set)
    points: list[Point] = attrs.Factory(list)
    child: Node | None = None


# Values of the right shape for some field, mixed with anything: structures that
# succeed as well as fail, at any depth.
point_dicts: st.SearchStrategy[dict[str, object]] = st.fixed_dictionaries(
    {"x": st.integers(-5, 5) | st.floats(allow_nan=True)}, optional={"y": st.floats(-1, 1)}
)
field_values: st.SearchStrategy[object] = st.deferred(
    lambda: st.one_of(
        json_values,
        st.text(max_size=3),
        st.lists(st.text(max_size=2), max_size=3),
        st.lists(st.uuids().map(str), max_size=2),
        st.lists(point_dicts, max_size=2),
        objects,
    )
)
objects: st.SearchStrategy[dict[str, object]] = st.dictionaries(
    st.sampled_from(
        ["name", "count", "ratio", "tags", "ids", "points", "child", "closed", "children", "x"]
    )
    | st.sampled_from(["weight", "tag", "extra"]),
    field_values,
    max_size=6,
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=objects | json_values, kind=st.sampled_from([Strict, Shape, Node, Point, list[Point]]))
def _lean_and_detailed_agree(data: object, kind: Any) -> None:
    from trioweb._structure import JSON

    lean = JSON.lean.get_structure_hook(kind)
    detailed = JSON.detailed.get_structure_hook(kind)
    try:
        expected = detailed(data, kind)
    except Exception:
        expected = _FAILED
    try:
        got = lean(data, kind)
    except Exception:
        got = _FAILED
    assert got == expected
    outcomes.add(got is _FAILED)


_FAILED = object()
outcomes: set[bool] = set()


def test_lean_and_detailed_structuring_agree() -> None:
    """The lean converter (tried first) accepts exactly what the detailed one does, alike."""
    _lean_and_detailed_agree()
    assert outcomes == {True, False}  # both outcomes seen: the property was exercised
