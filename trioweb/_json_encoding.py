"""JSON for responses, pure: one C encoder built once.

A value with no JSON form (NaN, infinities, one that contains itself) is a
clear ``ValueError`` saying where; a lone surrogate, which JSON input can
carry, goes out as its ``\\u`` escape, since UTF-8 cannot hold it.
"""

from __future__ import annotations

import datetime
import json
import json.encoder
import math
import re
import uuid
from collections.abc import Callable

import attrs


def _json_default(value: object) -> object:
    if attrs.has(type(value)):
        return attrs.asdict(value)  # type: ignore[arg-type]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _make_json_encoder(*, ascii_only: bool) -> Callable[[object], str]:
    # JSONEncoder.encode() builds a C encoder (and a closure) on every call,
    # which costs more than the encoding of a small response: build it once.
    # Without circular-reference markers, a value that contains itself ends
    # in RecursionError, which json_bytes turns into its ValueError.
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:  # no C accelerator (as on PyPy): the documented way
        return json.JSONEncoder(
            ensure_ascii=ascii_only, separators=(",", ":"), allow_nan=False, default=_json_default
        ).encode
    quote = json.encoder.encode_basestring_ascii if ascii_only else json.encoder.encode_basestring
    encode = make_encoder(None, _json_default, quote, None, ":", ",", False, False, False)
    return lambda value: "".join(encode(value, 0))


_encode_json = _make_json_encoder(ascii_only=False)
_encode_json_ascii = _make_json_encoder(ascii_only=True)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _non_finite_at(value: object) -> tuple[str, float] | None:
    """The path (``$.a[2]``) and value of the first NaN or infinity in ``value``, if any."""
    pending: list[tuple[str, object]] = [("$", value)]
    while pending:  # an explicit stack: the value may be nested deeper than Python recurses
        path, item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return path, item
        if attrs.has(type(item)):
            item = attrs.asdict(item, recurse=False)  # type: ignore[arg-type]  # an attrs instance
        if isinstance(item, dict):
            children = [
                (f"{path}.{key}" if _IDENTIFIER.fullmatch(str(key)) else f"{path}[{key!r}]", child)
                for key, child in item.items()
            ]
        elif isinstance(item, (list, tuple)):
            children = [(f"{path}[{index}]", child) for index, child in enumerate(item)]
        else:
            continue
        pending.extend(reversed(children))
    return None


def json_bytes(value: object) -> bytes:
    """Compact UTF-8 JSON; attrs instances, UUIDs and datetimes are understood.

    A string holding a lone surrogate (which JSON input can carry, as ``"\\ud800"``)
    is sent as that escape: UTF-8 cannot hold it.

    Raises:
        ValueError: The value has no JSON form: ``cannot encode as JSON: NaN
            (NaN and infinities are not JSON numbers) at $.path[0]``, or
            ``cannot encode as JSON: the value contains itself or is nested too
            deeply``.
        TypeError: A value of another type (``Foo is not JSON serializable``).
    """
    try:
        text = _encode_json(value)
    except RecursionError:
        raise ValueError(
            "cannot encode as JSON: the value contains itself or is nested too deeply"
        ) from None
    except ValueError as error:
        found = _non_finite_at(value)
        if found is None:
            raise ValueError(f"cannot encode as JSON: {error}") from None
        path, number = found
        name = "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"
        raise ValueError(
            f"cannot encode as JSON: {name} (NaN and infinities are not JSON numbers) at {path}"
        ) from None
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate: only a \u escape can carry it
        return _encode_json_ascii(value).encode()
