"""Parse JSON request bodies: bounded depth, every failure a clear 400. Pure.

:func:`parse_json` refuses documents nested deeper than :data:`MAX_JSON_DEPTH`:
the C parser's own guard catches the deepest (its RecursionError is a 400), the
depth of the rest is measured once they parsed, in linear time. So the limit
holds whatever the interpreter's recursion limit or the caller's stack depth,
and the structuring and echoing that follow never nest deeper.
"""

from __future__ import annotations

import codecs
import itertools
import json
import math
import re
from typing import Any

from ._converters import shorten
from ._errors import HTTPError

#: How deeply a JSON body may nest arrays and objects (as pydantic's JSON parser).
MAX_JSON_DEPTH = 200

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# bytes.translate: every byte but the four brackets deleted, then +1 / -1 as signed bytes.
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def json_depth(document: bytes) -> int:
    """The deepest nesting of arrays and objects in ``document`` (brackets in strings ignored).

    For a valid JSON document, whose every string is closed: then this takes
    linear time. (In an unclosed one, the expression would try every later quote.)
    """
    steps = _JSON_STRING.sub(b"", document).translate(_BRACKET_STEPS, _NOT_BRACKETS)
    return max(itertools.accumulate(memoryview(steps).cast("b"), initial=0))


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace


def _past_space(text: str, at: int) -> int:
    found = _SPACE.match(text, at)
    return found.end() if found else at  # it always matches (maybe nothing)


# First bytes of a UTF-8/16/32 BOM, or of UTF-16/32 big-endian ASCII.
_NOT_UTF8_START = frozenset({0x00, codecs.BOM_UTF8[0], 0xFE, 0xFF})


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:40]} is out of the range of a finite number")
    return value


def parse_json(document: bytes, *, strict: bool = False) -> Any:
    """Parse a JSON request body.

    Args:
        document: The body: UTF-8 (or UTF-16/32, as :func:`json.loads` detects).
        strict: Refuse ``NaN``, ``Infinity`` and numbers too large for a float,
            which Python's parser accepts but JSON does not have (for
            :meth:`Request.json`, whose result a handler may echo). Bodies bound
            to attrs classes leave this to the float fields, which answer 422.

    Raises:
        HTTPError: 400, naming what is wrong: not JSON, not UTF-8, or nested more
            than :data:`MAX_JSON_DEPTH` levels.
    """
    try:
        value = _decode(document, strict=strict)
    except RecursionError:  # deeper than the C parser's stack allows
        raise HTTPError(400, "the JSON body is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise HTTPError(400, f"malformed JSON body: {shorten(str(error), 200)}") from None
    # Checked once parsed: json_depth is linear only on valid JSON. Nesting that
    # deep takes that many bytes, and counting brackets is cheap: only a body
    # with many needs the exact depth.
    if (
        len(document) > MAX_JSON_DEPTH
        and document.count(b"[") + document.count(b"{") > MAX_JSON_DEPTH
        and json_depth(document) > MAX_JSON_DEPTH
    ):
        raise HTTPError(400, f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def _decode(document: bytes, *, strict: bool) -> Any:
    if strict:
        return json.loads(document, parse_constant=_refuse_constant, parse_float=_finite)
    if not document or document[0] in _NOT_UTF8_START or document[1:2] == b"\x00":
        # Empty, a BOM, or UTF-16/32 (a NUL in the first two bytes, as
        # json.detect_encoding looks for): json.loads sorts it out.
        return json.loads(document)
    # Plain UTF-8, decoded as json.loads would: its encoding detection, and
    # the whitespace it skips around an object or array, are half its cost.
    text = document.decode("utf-8", "surrogatepass")
    value, end = _DECODER.raw_decode(text, 0 if text[0] in "{[" else _past_space(text, 0))
    if end != len(text):
        end = _past_space(text, end)
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    return value
