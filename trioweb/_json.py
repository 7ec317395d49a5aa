"""JSON for responses: one encoder, built once (pure).

What a handler returns as a ``dict``, a ``list`` or an attrs instance, and
every ``{"detail": ...}`` trioweb sends, is encoded here.
"""

from __future__ import annotations

import datetime
import json
import json.encoder
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


def _make_json_encoder() -> Callable[[object], str]:
    # JSONEncoder.encode() builds a C encoder (and a closure) on every call,
    # which costs more than the encoding of a small response: build it once.
    # Without circular-reference markers, a value that contains itself ends
    # in RecursionError rather than ValueError; either is a 500.
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:  # no C accelerator (as on PyPy): the documented way
        return json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default
        ).encode
    encode = make_encoder(
        None, _json_default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    return lambda value: "".join(encode(value, 0))


_encode_json = _make_json_encoder()


def json_bytes(value: object) -> bytes:
    """Compact UTF-8 JSON; attrs instances, UUIDs and datetimes are understood.

    Raises:
        TypeError: A value of another type.
        ValueError: NaN or an infinity.
        RecursionError: A value that contains itself.
    """
    return _encode_json(value).encode()
