"""The scalar types trioweb binds, in one registry: path, query, header, cookie, form, JSON. Pure.

Each :class:`Scalar` says, for one type, everything the framework needs:

* how text becomes a value (query parameters, headers, cookies, form fields),
  raising ``ValueError`` with a message fit for a 422 detail;
* how a decoded JSON value becomes one, strictly (``1`` is not a string,
  ``true`` is not a number, NaN is not a number);
* and, for the types a path segment can hold, the path converter: its name
  (``{x:int}``), its expression, and its conversion.

Invariant: a path converter's expression only matches text its conversion
accepts, because a conversion that failed would escape the route lookup as a
500. So the int and float expressions are bounded (int() refuses more digits
than the interpreter's limit; past 308 integer digits a float is infinite), and
a segment too long to fit does not match: 404.
"""

from __future__ import annotations

import math
import sys
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any, final

import attrs

_JSON_NAMES: Mapping[type, str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def json_type(value: object) -> str:
    """What ``value`` was in the JSON document: "an object", "a number", "null"..."""
    return _JSON_NAMES.get(type(value), type(value).__name__)


def shorten(text: str, limit: int) -> str:
    """``text``, cut at ``limit`` characters with a note of its length."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def show(text: str) -> str:
    """``repr(text)``, cut short: a 422 detail does not echo a huge input back."""
    return repr(text) if len(text) <= 40 else f"{text[:40]!r}... ({len(text)} characters)"


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _bool_from_text(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected a boolean (true/false/1/0/yes/no/on/off), got {show(text)}")


def _int_from_text(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {show(text)}") from None


def _float_from_text(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {show(text)}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {show(text)}")
    return value


def _uuid_from_text(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValueError(f"expected a UUID, got {show(text)}") from None


def _exactly(kind: type, name: str) -> Callable[[object, object], object]:
    def from_json(value: object, _: object) -> object:
        # type() and not isinstance(): bool is an int in Python, not a number in JSON.
        if type(value) is not kind:
            raise TypeError(f"expected {name}, got {json_type(value)}")
        return value

    return from_json


def _float_from_json(value: object, _: object) -> float:
    if type(value) is float:
        if math.isfinite(value):
            return value
        raise ValueError(f"expected a finite number, got {value}")
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            raise ValueError("expected a finite number, got an integer too large") from None
    raise TypeError(f"expected a number, got {json_type(value)}")


def _uuid_from_json(value: object, _: object) -> uuid.UUID:
    if type(value) is not str:
        raise TypeError(f"expected a UUID string, got {json_type(value)}")
    return _uuid_from_text(value)


@final
@attrs.frozen
class Scalar:
    """One bindable scalar type.

    Attributes:
        type: The annotation that selects it.
        from_text: Text (query, header, cookie, form field) to a value; raises
            ValueError saying what was expected.
        from_json: A cattrs structure hook: a decoded JSON value to a value;
            raises TypeError or ValueError saying what was expected.
        path: The path converter's name, or "" if a path segment cannot hold it.
        regex: The path converter's expression (only text ``from_text`` accepts).
    """

    type: type
    from_text: Callable[[str], Any]
    from_json: Callable[[object, object], Any]
    path: str = ""
    regex: str = ""


# Digits int() accepts (its limit is configurable: read it once, here).
_INT_DIGITS = sys.get_int_max_str_digits() or sys.int_info.default_max_str_digits
_HEX = "[0-9a-fA-F]"

SCALARS: tuple[Scalar, ...] = (
    Scalar(str, str, _exactly(str, "a string"), "str", r"[^/]+"),
    Scalar(int, _int_from_text, _exactly(int, "an integer"), "int", rf"-?[0-9]{{1,{_INT_DIGITS}}}"),
    Scalar(float, _float_from_text, _float_from_json, "float", r"-?[0-9]{1,308}(?:\.[0-9]+)?"),
    Scalar(bool, _bool_from_text, _exactly(bool, "a boolean")),
    Scalar(
        uuid.UUID,
        _uuid_from_text,
        _uuid_from_json,
        "uuid",
        f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}",
    ),
)

#: Each scalar by its annotation.
BY_TYPE: Mapping[object, Scalar] = {scalar.type: scalar for scalar in SCALARS}


@final
@attrs.frozen
class PathConverter:
    """How one kind of path parameter (``{x:int}``) is matched and turned into a value."""

    name: str
    regex: str
    convert: Callable[[str], object]
    type: type


#: The path converters by name: each scalar that has one, and ``path`` (the rest of the path).
PATH_CONVERTERS: Mapping[str, PathConverter] = {
    converter.name: converter
    for converter in (
        # The type converts: the expression only lets through text it accepts.
        *(PathConverter(s.path, s.regex, s.type, s.type) for s in SCALARS if s.path),
        PathConverter("path", r".*", str, str),
    )
}

#: The converter a ``{x}`` parameter gets from its annotation (``x: int``); others are ``str``.
IMPLIED_PATH_CONVERTER: Mapping[object, str] = {
    s.type: s.path for s in SCALARS if s.path and s.type is not str
}


@final
@attrs.frozen
class TextConverter:
    """How the text values of one query parameter, header, cookie or form field become a value.

    Attributes:
        convert: One text value to a value.
        container: For a collection (``list[int]``, ``set[str]``, ...): its type,
            built from every value sent; None for a scalar, from the last value.
    """

    convert: Callable[[str], Any]
    container: type | None = None

    @property
    def many(self) -> bool:
        return self.container is not None

    def __call__(self, values: list[str]) -> object:
        if self.container is None:
            return self.convert(values[-1])
        if self.container is list:
            return [self.convert(value) for value in values]
        return self.container(self.convert(value) for value in values)


_CONTAINERS = (list, tuple, set, frozenset)


def text_converter(hint: object) -> TextConverter | None:
    """The converter for ``hint`` (a scalar, or a list/tuple/set of one), or None."""
    scalar = BY_TYPE.get(hint)
    if scalar is not None:
        return TextConverter(scalar.from_text)
    origin = typing.get_origin(hint) or hint
    if origin not in _CONTAINERS:
        return None
    args = typing.get_args(hint)
    if origin is tuple and args[1:] != (...,):
        return None  # a fixed-length tuple is not "every value sent"
    item = BY_TYPE.get(args[0] if args else str)
    return None if item is None else TextConverter(item.from_text, typing.cast(type, origin))
