"""Structured bodies, pure: JSON parsing limits, strict scalars, every bad field reported."""

from __future__ import annotations

import collections.abc
import inspect
import sys
import typing
import uuid
from typing import Any

import attrs
import pytest

from trioweb import HTTPError, RequestValidationError
from trioweb._binding import structure
from trioweb._json import MAX_JSON_DEPTH, json_depth, parse_json


@pytest.mark.parametrize(
    ("document", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b"[]", 1),
        (b'[{"a": [1, {}]}]', 4),
        (b'["[[[[", "]]", {"k": "{{{\\"[["}]', 2),  # brackets in strings, escaped quotes
        (b"[" * 300 + b"]" * 300, 300),
        (b"]]]", 0),
    ],
)
def test_json_depth(document: bytes, depth: int) -> None:
    assert json_depth(document) == depth


def test_parse_json_depth_limit() -> None:
    at_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert parse_json(at_limit) == eval(at_limit.decode())
    with pytest.raises(HTTPError, match="nested more than 200 levels") as caught:
        parse_json(b"[" + at_limit + b"]")
    assert caught.value.status == 400
    # Many brackets, but in strings or side by side: not deep.
    assert parse_json(b'["' + b"[" * 1000 + b'"]') == ["[" * 1000]
    assert parse_json(b"[" + b"[]," * 1000 + b"[]]") == [[]] * 1001


def test_parse_json_guards_the_stack_whatever_the_recursion_limit() -> None:
    # A caller deep in its stack: the parser's own RecursionError is still a 400.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 60)
    try:
        with pytest.raises(HTTPError, match="nested too deeply"):
            parse_json(b"[" * 150 + b"]" * 150)
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize(
    ("document", "strict", "expected"),
    [
        (b"1.5", True, 1.5),
        (b"[1, -2.5e3]", True, [1, -2500.0]),
        (b"NaN", False, "nan"),
        (b"NaN", True, HTTPError),
        (b"[-Infinity]", True, HTTPError),
        (b"1e999", True, HTTPError),
        (b"1e999", False, "inf"),
        (b"\xff", False, HTTPError),
        ("[1]".encode("utf-16"), True, [1]),
    ],
)
def test_parse_json_numbers(document: bytes, strict: bool, expected: object) -> None:
    if expected is HTTPError:
        with pytest.raises(HTTPError, match="malformed JSON body") as caught:
            parse_json(document, strict=strict)
        assert caught.value.status == 400
    elif isinstance(expected, str):
        assert str(parse_json(document, strict=strict)) == expected
    else:
        assert parse_json(document, strict=strict) == expected


def _even(instance: Any, attribute: Any, value: int) -> None:
    if value % 2:
        raise ValueError(f"{attribute.name} must be even")


def _upper(text: str) -> str:
    return text.upper()


@attrs.define
class Everything:
    n: int = attrs.field(validator=_even)
    f: float = 1.0
    u: uuid.UUID | None = None
    tags: list[str] = attrs.field(factory=list, validator=attrs.validators.max_len(2))
    count: int = attrs.field(default=4, validator=_even)
    label: str = attrs.field(default="ab", converter=_upper)
    size: int = attrs.field(
        default=attrs.Factory(lambda self: self.n, takes_self=True), validator=_even
    )
    limit: int = attrs.field(default=10)

    @limit.validator
    def _below_n(self, attribute: Any, value: int) -> None:
        if value < self.n:
            raise ValueError("limit must be at least n")


def errors_of(data: object) -> list[tuple[list[object], str]]:
    with pytest.raises(RequestValidationError) as caught:
        structure(data, Everything, "body")
    return [(typing.cast(list[object], e["loc"]), str(e["msg"])) for e in caught.value.errors]


def test_structure_accepts_and_converts() -> None:
    value = structure({"n": 2, "f": 3, "u": str(uuid.UUID(int=5)), "label": "x"}, Everything, "b")
    assert value == Everything(n=2, f=3.0, u=uuid.UUID(int=5), label="x")
    assert type(value.f) is float


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"n": 1, "count": 5},
            [(["body", "n"], "n must be even"), (["body", "count"], "count must be even")],
        ),
        (
            {"n": 1, "tags": ["a", "b", "c"]},
            [
                (["body", "n"], "n must be even"),
                (["body", "tags"], "Length of 'tags' must be <= 2: 3"),
            ],
        ),
        # A validator that reads a field that failed to structure is skipped, not a crash.
        ({"n": "x", "limit": 1}, [(["body", "n"], "expected an integer, got a string")]),
        ({"n": 4, "limit": 1}, [(["body", "limit"], "limit must be at least n")]),
        (
            {"n": 2, "f": 10**400},
            [(["body", "f"], "expected a finite number, got an integer too large")],
        ),
        ({"n": 2, "f": True}, [(["body", "f"], "expected a number, got a boolean")]),
        ({"n": 2, "u": 5}, [(["body", "u"], "expected a UUID string, got a number")]),
        ({"n": 2, "u": "nope"}, [(["body", "u"], "expected a UUID, got 'nope'")]),
        ({"n": 2, "tags": "ab"}, [(["body", "tags"], "")]),
        ([], [(["body"], "expected an object, got an array")]),
        (None, [(["body"], "expected an object, got null")]),
    ],
)
def test_structure_reports_every_bad_field(
    data: object, expected: list[tuple[list[object], str]]
) -> None:
    found = errors_of(data)
    assert [loc for loc, _ in found] == [loc for loc, _ in expected]
    for (_, message), (_, wanted) in zip(found, expected, strict=True):
        assert wanted in message


@attrs.define
class Node:
    children: list[Node] = attrs.Factory(list)


def test_structure_too_deep_for_the_stack_is_a_400() -> None:
    data: dict[str, Any] = {}
    for _ in range(5000):
        data = {"children": [data]}
    with pytest.raises(HTTPError, match="nested too deeply") as caught:
        structure(data, Node, "body")
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        (list[int], [1, 2], [1, 2]),
        (tuple[int, ...], [1, 2], (1, 2)),
        (collections.abc.Sequence[str], ["x"], ("x",)),
        (set[str], ["a", "a"], {"a"}),
        (frozenset[int], [1], frozenset({1})),
        (collections.abc.Set[int], [1], frozenset({1})),
        (dict[str, list[int]], {"a": [1]}, {"a": [1]}),
        # Nothing iterated into a collection it is not: a string is not a list of characters.
        (list[str], "ab", [(["body"], "expected an array, got a string")]),
        (set[str], "ab", [(["body"], "expected an array, got a string")]),
        (tuple[int, ...], {"a": 1}, [(["body"], "expected an array, got an object")]),
        (dict[str, int], [["a", 1]], [(["body"], "expected an object, got an array")]),
        (list[list[int]], [[1], "x"], [(["body", 1], "expected an array, got a string")]),
        (dict[str, list[int]], {"a": [1, "x"]}, [(["body", "a", 1], "expected an integer")]),
    ],
)
def test_collections_are_strict(kind: Any, data: object, expected: object) -> None:
    if isinstance(expected, list) and expected and isinstance(expected[0], tuple):
        with pytest.raises(RequestValidationError) as caught:
            structure(data, kind, "body")
        found = [(entry["loc"], entry["msg"]) for entry in caught.value.errors]
        assert [loc for loc, _ in found] == [loc for loc, _ in expected]
        assert all(want in str(got) for (_, got), (_, want) in zip(found, expected, strict=True))
    else:
        assert structure(data, kind, "body") == expected


@pytest.mark.parametrize(
    "document",
    [
        b' {"a": [1, 2.5, "x", null, true]} ',
        b"\n\t[1]\r\n",
        b"1",
        b' "s"',
        "[1]".encode("utf-8-sig"),
        "[1]".encode("utf-16"),
        "[1]".encode("utf-16-be"),
        "[1]".encode("utf-16-le"),
        "[1]".encode("utf-32"),
        '["é\\ud800"]'.encode(),
        "\ud800".encode("utf-8", "surrogatepass"),
        b"[1] x",
        b'{"a":1}{',
        b"1 2",
        b"  ",
        b"{",
        b"\xff",
        b"",
    ],
)
def test_parse_json_agrees_with_json_loads(document: bytes) -> None:
    import json

    expected: object
    try:
        expected = json.loads(document)
    except ValueError as error:
        expected = error
    if not isinstance(expected, ValueError):
        assert parse_json(document) == expected
        return
    with pytest.raises(HTTPError, match="malformed JSON body") as caught:
        parse_json(document)
    if isinstance(expected, json.JSONDecodeError):  # the same message, positions included
        assert caught.value.detail == f"malformed JSON body: {expected}"


def test_parse_json_is_linear_on_adversarial_strings() -> None:
    # An unclosed string full of escaped quotes: a string-skipping expression run
    # over it before parsing retried at every quote (quadratic: minutes, not ms).
    document = b'["' + b'\\"[' * 200_000
    with pytest.raises(HTTPError, match="Unterminated string"):
        parse_json(document)
    document = b"[" + b'"\\"[",' * 100_000 + b"1]"
    assert len(parse_json(document)) == 100_001
