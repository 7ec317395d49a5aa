"""The scalar registry, the query and header parsers, and getters compiled once per route."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import parse_qsl

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioweb import App, Cookie, Header, Headers, Request
from trioweb._binding import Source, extract, make_plan
from trioweb._converters import (
    BY_TYPE,
    IMPLIED_PATH_CONVERTER,
    PATH_CONVERTERS,
    SCALARS,
    text_converter,
)
from trioweb._datastructures import parse_query
from trioweb._routing import CONVERTERS, compile_path
from trioweb.testing import TestClient


def test_one_registry_feeds_routing_and_binding() -> None:
    assert CONVERTERS is PATH_CONVERTERS
    assert set(PATH_CONVERTERS) == {"str", "int", "float", "uuid", "path"}
    assert {int: "int", float: "float", uuid.UUID: "uuid"} == IMPLIED_PATH_CONVERTER
    for scalar in SCALARS:
        assert BY_TYPE[scalar.type] is scalar
        converter = text_converter(scalar.type)
        assert converter is not None
        assert converter.convert is scalar.from_text
        if scalar.path:
            assert PATH_CONVERTERS[scalar.path].type is scalar.type


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("int", "-12", -12),
        ("int", "9" * 4300, int("9" * 4300)),
        ("float", "2.5", 2.5),
        ("float", "9" * 308, float("9" * 308)),
        ("uuid", str(uuid.UUID(int=9)), uuid.UUID(int=9)),
        ("str", "x y", "x y"),
        ("path", "a/b", "a/b"),
    ],
)
def test_path_converters_convert_what_they_match(name: str, text: str, value: object) -> None:
    pattern = compile_path(f"/{{x:{name}}}")
    assert pattern.match(f"/{text}") == {"x": value}


@pytest.mark.parametrize(
    ("name", "text"),
    [("int", "9" * 4301), ("int", "1.5"), ("float", "9" * 309), ("float", "1e5"), ("uuid", "x")],
)
def test_path_converters_do_not_match_what_they_cannot_convert(name: str, text: str) -> None:
    assert compile_path(f"/{{x:{name}}}").match(f"/{text}") is None


@pytest.mark.parametrize(
    ("hint", "values", "expected"),
    [
        (list[int], ["1", "2", "1"], [1, 2, 1]),
        (set[int], ["1", "2", "1"], {1, 2}),
        (frozenset[str], ["a"], frozenset({"a"})),
        (tuple[float, ...], ["1", "2.5"], (1.0, 2.5)),
        (list, ["a"], ["a"]),
        (bool, ["no", "on"], True),
    ],
)
def test_text_converters_build_the_annotated_collection(
    hint: Any, values: list[str], expected: object
) -> None:
    converter = text_converter(hint)
    assert converter is not None
    assert converter(values) == expected
    assert type(converter(values)) is type(expected)


def test_fixed_tuples_and_unknown_items_are_not_text() -> None:
    assert text_converter(tuple[int, str]) is None
    assert text_converter(list[bytes]) is None
    assert text_converter(dict[str, str]) is None


@given(st.lists(st.text(st.sampled_from("ab=&+%2x é;"), max_size=8), max_size=5))
def test_parse_query_is_parse_qsl(pieces: list[str]) -> None:
    query = "&".join(pieces).encode("utf-8")
    assert parse_query(query) == parse_qsl(query.decode("latin-1"), keep_blank_values=True)


def test_headers_decode_only_what_is_read() -> None:
    class Exploding(bytes):
        def decode(self, *args: Any, **kwargs: Any) -> str:
            raise AssertionError("decoded a header nobody asked for")

    raw = [(b"content-type", b"application/json"), (b"x-big", Exploding(b"v" * 10))]
    headers = Headers.from_raw(raw)
    assert headers.get("Content-Type") == "application/json"
    assert "content-type" in headers
    assert headers.values_of(b"content-type") == ["application/json"]
    assert headers.get("missing", "default") == "default"
    assert "missing" not in headers
    assert headers.getlist("☃") == []


def test_headers_mapping_interface() -> None:
    headers = Headers.from_raw([(b"A", b"1"), (b"b", b"2"), (b"a", b"3")])
    assert headers["a"] == "3"  # names compared lowercased, even if a server sent capitals
    assert headers.getlist("A") == ["1", "3"]
    assert dict(headers) == {"a": "3", "b": "2"}
    assert len(headers) == 2
    assert headers.multi_items() == [("A", "1"), ("b", "2"), ("a", "3")]
    assert Headers([("X-One", "é")]).get("x-one") == "é"
    assert repr(Headers([("k", "v")])) == "Headers([('k', 'v')])"
    with pytest.raises(KeyError):
        headers["c"]


@attrs.define
class Body:
    n: int


async def handler(
    a: int,
    tags: list[str],
    body: Body,
    x_id: Annotated[str, Header()] = "none",
    page: int = 1,
) -> None: ...


def test_getters_are_compiled_once_per_route() -> None:
    plan = make_plan(handler, path_params={}, injectable={})
    assert [name for name, _, _ in plan.getters] == ["a", "tags", "body", "x_id", "page"]
    assert [binder.get for binder in plan.data_binders] == [get for _, get, _ in plan.getters]
    assert plan.reads_query
    assert not plan.reads_cookies
    headers = Headers.from_raw([(b"content-type", b"application/json"), (b"x-id", b"7")])
    values = extract(plan, query_string=b"a=1&tags=x&tags=y", headers=headers, body=b'{"n": 2}')
    assert values == {"a": 1, "tags": ["x", "y"], "body": Body(2), "x_id": "7", "page": 1}
    raw = [(b"content-type", b"application/json")]
    values = extract(plan, query_string=b"a=3", raw_headers=raw, body=b'{"n": 4}')
    assert values == {"a": 3, "tags": [], "body": Body(4), "x_id": "none", "page": 1}
    assert next(b for b in plan.binders if b.name == "x_id").source is Source.HEADER


def test_request_headers_can_be_the_binding_headers() -> None:
    headers = Headers.from_raw([(b"x-id", b"1")])
    request = Request._create(object(), headers)  # no exchange needed to read headers
    assert request.headers is headers


async def test_huge_and_odd_values_through_the_app() -> None:
    app = App()

    @app.get("/q")
    async def q(request: Request, ids: set[int] | None = None, x: float = 0.0) -> dict[str, Any]:
        return {"ids": sorted(ids) if ids is not None else None, "x": x}

    async with TestClient(app) as client:
        assert (await client.get("/q?ids=2&ids=1&ids=2")).json() == {"ids": [1, 2], "x": 0.0}
        assert (await client.get("/q")).json() == {"ids": None, "x": 0.0}
        assert (await client.get("/q?x=1%2E5")).json() == {"ids": None, "x": 1.5}


async def test_every_getter_shape_through_the_app() -> None:
    app = App()

    @app.get("/h")
    async def h(
        tags: Annotated[list[str], Header("x-tag")],
        session: Annotated[str, Cookie()],
        counts: Annotated[list[int], Cookie("n")],
        theme: Annotated[str, Cookie()] = "light",
    ) -> dict[str, Any]:
        return {"tags": tags, "session": session, "counts": counts, "theme": theme}

    async with TestClient(app) as client:
        response = await client.get(
            "/h", headers=[("x-tag", "a"), ("X-Tag", "b"), ("cookie", "session=s; n=1; n=2")]
        )
        assert response.json() == {
            "tags": ["a", "b"],
            "session": "s",
            "counts": [1, 2],
            "theme": "light",
        }
        response = await client.get("/h", headers={"cookie": "n=x; theme=dark"})
        assert response.status_code == 422
        assert response.json()["detail"] == [
            {"loc": ["cookie", "session"], "msg": "field required"},
            {"loc": ["cookie", "n"], "msg": "expected an integer, got 'x'"},
        ]
        response = await client.get("/h", headers={"cookie": "session=s"})
        assert response.json() == {"tags": [], "session": "s", "counts": [], "theme": "light"}
