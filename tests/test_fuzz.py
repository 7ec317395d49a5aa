"""Hypothesis throws arbitrary queries, headers and bodies at a bound handler: never a 500."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioweb import App, Cookie, Header
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


app = App(max_body_size=4096)


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
query_values = st.text(max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    query=st.lists(st.tuples(query_keys, query_values), max_size=6),
    raw_query=st.text(max_size=30),
    headers=st.dictionaries(header_names, header_values, max_size=4),
    body=json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=64),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
    ),
    shelf=st.sampled_from(["1", "-5", "x", "99999999999999999999"]),
)
async def test_never_a_500(
    query: list[tuple[str, str]],
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    content_type: str,
    shelf: str,
) -> None:
    from urllib.parse import urlencode

    all_headers: dict[str, Any] = {**headers}
    if content_type:
        all_headers["content-type"] = content_type
    path = f"/shapes/{shelf}?{urlencode(query)}&{raw_query}"
    async with TestClient(app) as client:
        response = await client.post(path, headers=all_headers, content=body)
    assert response.status_code in {200, 400, 404, 413, 415, 422}, (
        response.status_code,
        response.text,
    )
