"""Structured bodies: JSON and form data into attrs classes, every bad field reported. Pure.

Two cattrs converters share one shape. The JSON one is strict (``1`` is not a
string, ``true`` not a number, NaN and infinities not numbers); the form one
parses each text value by its field's type. Both are built with cattrs'
detailed validation, and an error becomes the 422 detail by walking cattrs'
exception tree (``ClassValidationError`` / ``IterableValidationError`` and their
notes) into ``loc`` lists: nothing is parsed back out of a message.

attrs runs a class's validators in ``__init__`` and stops at the first that
fails; so when building an instance fails, the fields are checked again one by
one, and every failing validator is reported at its own field. That re-check
runs only on the error path and its half-built instance is thrown away.

JSON is parsed by :func:`parse_json`, which refuses documents nested deeper than
:data:`MAX_JSON_DEPTH`: the C parser's own guard catches the deepest (its
RecursionError is a 400), the depth of the rest is measured once they parsed.
So the limit holds whatever the interpreter's recursion limit or the caller's
stack depth, and the structuring and echoing that follow never nest deeper.
"""

from __future__ import annotations

import codecs
import itertools
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, final
from urllib.parse import parse_qsl

import attrs
import cattrs
from cattrs import cols
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn

from ._converters import SCALARS, json_type
from ._datastructures import Headers, RequestData
from ._errors import HTTPError, RequestValidationError

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
        raise HTTPError(400, f"malformed JSON body: {_shorten(str(error), 200)}") from None
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


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


# ---- converters ----


def _lean_attrs_hook_factory(cl: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """cattrs' function for ``cl`` without detailed validation: for a valid body, the common case.

    It raises at the first problem; :class:`Structurer` then structures the
    body again with the detailed converter, which reports every problem.
    """
    if any(isinstance(field.type, str) for field in attrs.fields(cl)):
        attrs.resolve_types(cl)  # string annotations (PEP 563), as cattrs' own factory does
    hook = make_dict_structure_fn(
        cl, converter, _cattrs_forbid_extra_keys=False, _cattrs_detailed_validation=False
    )
    # cattrs' own unknown-key check builds a set per call; a keys view compares for free.
    known = frozenset(field.name for field in attrs.fields(cl) if field.init)

    def structure(data: Any, _: Any) -> Any:
        if type(data) is not dict:
            raise TypeError(f"expected an object, got {json_type(data)}")
        if not data.keys() <= known:
            raise ValueError("unexpected fields")
        return hook(data, cl)

    return structure


def _detailed_attrs_hook_factory(cl: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """cattrs' detailed function for ``cl``, wrapped: an object is required, validators all run."""
    if any(isinstance(field.type, str) for field in attrs.fields(cl)):
        attrs.resolve_types(cl)
    hook = make_dict_structure_fn(
        cl, converter, _cattrs_forbid_extra_keys=True, _cattrs_detailed_validation=True
    )

    def structure(data: Any, _: Any) -> Any:
        if type(data) is not dict:
            raise TypeError(f"expected an object, got {json_type(data)}")
        try:
            return hook(data, cl)
        except ClassValidationError as error:
            raise _with_validator_errors(cl, data, error, converter) from None

    return structure


def _with_validator_errors(
    cl: Any, data: dict[str, Any], error: ClassValidationError, converter: cattrs.Converter
) -> ClassValidationError:
    """``error``, with one exception per failing validator of the fields that structured."""
    if not any(field.validator is not None for field in attrs.fields(cl)):
        return error
    with_notes, without = error.group_exceptions()
    failed = {note.name for _, note in with_notes}
    # A half-built instance, for validators that look at other fields; never returned.
    instance = object.__new__(cl)
    checks = []
    for field in attrs.fields(cl):
        if field.name in failed or not field.init:
            continue
        if field.name in data:
            value = converter.structure(data[field.name], field.type)
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]  # attrs' stubs: Factory is a function
            if field.default.takes_self:
                continue
            value = field.default.factory()
        elif field.default is not attrs.NOTHING:
            value = field.default
        else:
            continue
        if field.converter is not None and callable(field.converter):
            value = field.converter(value)
        object.__setattr__(instance, field.name, value)
        if field.validator is not None:
            checks.append((field, value))
    found: list[Exception] = []
    for field, value in checks:
        try:
            field.validator(instance, field, value)
        except (ValueError, TypeError) as invalid:
            note = AttributeValidationNote(f"validating {field.name}", field.name, field.type)
            # Set, not add_note(): that is Python 3.11+; cattrs reads __notes__ either way.
            setattr(invalid, "__notes__", [*getattr(invalid, "__notes__", []), note])  # noqa: B010
            found.append(invalid)
        except Exception:  # a validator that needed a field that failed: skip it
            continue
    if not found:
        return error
    # The exception without a note that __init__ raised is one of those just found.
    kept = [exc for exc, _ in with_notes] + [
        exc for exc in without if isinstance(exc, ForbiddenExtraKeysError)
    ]
    return ClassValidationError(error.message, kept + found, cl)


def _strictly(kind: type, name: str, hook: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def structure(value: Any, cl: Any) -> Any:
        # cattrs iterates whatever it is given: "ab" would become ["a", "b"].
        if type(value) is not kind:
            raise TypeError(f"expected {name}, got {json_type(value)}")
        return hook(value, cl)

    return structure


def _collection_hook_factory(cl: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """Lists, homogeneous tuples, sets and mappings: from a JSON array (object), nothing else."""
    if cols.is_mapping(cl):
        return _strictly(dict, "an object", cols.mapping_structure_factory(cl, converter))
    if cols.is_mutable_sequence(cl):
        return _strictly(list, "an array", cols.list_structure_factory(cl, converter))
    if cols.is_sequence(cl):
        return _strictly(list, "an array", cols.homogenous_tuple_structure_factory(cl, converter))
    args = typing.get_args(cl)
    items = converter.get_structure_hook(list[args[0] if args else Any])  # type: ignore[misc]  # a runtime type
    build = set if cols.is_set(cl) else frozenset
    return _strictly(list, "an array", lambda value, _: build(items(value, None)))


def _is_collection(cl: Any) -> bool:
    return bool(cols.is_sequence(cl) or cols.is_any_set(cl) or cols.is_mapping(cl))


def _optional_of(cl: Any) -> Any:
    """X for ``X | None`` (``Optional[X]``), else None."""
    if typing.get_origin(cl) not in (typing.Union, types.UnionType):
        return None
    args = typing.get_args(cl)
    if len(args) != 2 or type(None) not in args:
        return None
    return args[0] if args[1] is type(None) else args[1]


def _optional_hook_factory(cl: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    # cattrs' own dispatches on the inner type per call: a third of a small body's cost.
    inner = _optional_of(cl)
    hook = converter.get_structure_hook(inner)
    return lambda value, _: None if value is None else hook(value, inner)


def make_converter(
    scalars: Mapping[Any, Callable[[Any, Any], Any]], *, detailed: bool
) -> cattrs.Converter:
    """A converter with these scalar hooks and the factories above.

    Args:
        scalars: The structure hook of each scalar type.
        detailed: With cattrs' detailed validation (every problem, each where it
            is), or lean (the first problem, faster).
    """
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=detailed)
    for kind, hook in scalars.items():
        converter.register_structure_hook(kind, hook)
    converter.register_structure_hook_factory(_is_collection, _collection_hook_factory)
    converter.register_structure_hook_factory(
        lambda cl: _optional_of(cl) is not None, _optional_hook_factory
    )
    converter.register_structure_hook_factory(
        attrs.has, _detailed_attrs_hook_factory if detailed else _lean_attrs_hook_factory
    )
    return converter


@final
@attrs.frozen
class Structurer:
    """Structures data into a type: leanly, and in detail only when that fails.

    The two converters accept exactly the same data (same hooks); the detailed
    one is there to say what is wrong with the rest.
    """

    lean: cattrs.Converter
    detailed: cattrs.Converter

    @classmethod
    def of(cls, scalars: Mapping[Any, Callable[[Any, Any], Any]]) -> Structurer:
        return cls(make_converter(scalars, detailed=False), make_converter(scalars, detailed=True))

    def hook(self, kind: Any, location: str = "body") -> Callable[[Any], Any]:
        """``structure(data)`` for ``kind``.

        The returned function raises RequestValidationError (422, every bad
        field, each with its ``loc`` under ``location``) or HTTPError (400 for
        data nested too deeply to structure).
        """
        lean = self.lean.get_structure_hook(kind)
        detailed = self.detailed.get_structure_hook(kind)

        def structure(data: Any) -> Any:
            try:
                return lean(data, kind)
            except Exception:  # what is wrong is said by the detailed structuring
                return _in_detail(detailed, data, kind, location)

        return structure


def _in_detail(detailed: Callable[[Any, Any], Any], data: Any, kind: Any, location: str) -> Any:
    try:
        return detailed(data, kind)
    except RecursionError:
        raise HTTPError(400, "the body is nested too deeply") from None
    except Exception as error:
        raise RequestValidationError(validation_errors(error, location)) from None


# ---- errors ----


def _message(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return "field required"
    if isinstance(error, (ValueError, TypeError)) and str(error):
        # Our hooks and attrs validators say precisely what is wrong.
        return _shorten(str(error), 300)
    return cattrs.v.format_exception(error, None)


def validation_errors(error: BaseException, location: str) -> list[dict[str, object]]:
    """The 422 entries for a cattrs error, each with the ``loc`` of its field.

    Raises:
        HTTPError: 400: structuring ran out of stack (cattrs records that
            RecursionError like any other).
    """
    entries: list[dict[str, object]] = []
    # An explicit stack, in order: the tree is as deep as the value was.
    pending: list[tuple[BaseException, list[str | int]]] = [(error, [location])]
    while pending:
        exc, loc = pending.pop()
        children: list[tuple[BaseException, list[str | int]]] = []
        if isinstance(exc, ClassValidationError):
            with_notes, without = exc.group_exceptions()
            children = [(sub, [*loc, note.name]) for sub, note in with_notes]
            children += [(sub, loc) for sub in without]
        elif isinstance(exc, IterableValidationError):
            with_index, others = exc.group_exceptions()
            children = [(sub, [*loc, note.index]) for sub, note in with_index]
            children += [(sub, loc) for sub in others]
        elif isinstance(exc, ForbiddenExtraKeysError):
            entries.extend(
                {"loc": [*loc, key], "msg": "unexpected field"} for key in sorted(exc.extra_fields)
            )
        elif isinstance(exc, RecursionError):
            raise HTTPError(400, "the body is nested too deeply") from None
        else:
            entries.append({"loc": loc, "msg": _message(exc)})
        pending.extend(reversed(children))
    return entries


def structure(structurer: Structurer, data: object, kind: object, location: str) -> object:
    """Structure ``data`` into ``kind``, or raise a 422 listing every bad field.

    Raises:
        RequestValidationError: 422, one entry per bad field.
        HTTPError: 400 for a value nested too deeply to structure.
    """
    return structurer.hook(kind, location)(data)


# ---- the body getters a binding plan compiles ----


def _from_text(convert: Callable[[str], object]) -> Callable[[object, object], object]:
    def structure(value: object, _: object) -> object:
        return convert(typing.cast(str, value))  # form values are always text

    return structure


JSON = Structurer.of({scalar.type: scalar.from_json for scalar in SCALARS})
FORM = Structurer.of({scalar.type: _from_text(scalar.from_text) for scalar in SCALARS})

#: Reads the body (given the request's headers) into a value, or raises HTTPError.
BodyGetter = Callable[[RequestData], object]
_REQUIRED: list[dict[str, object]] = [{"loc": ["body"], "msg": "field required"}]


def media_type(headers: Headers) -> str:
    """The ``content-type`` without parameters, lowercased ("" if none)."""
    value = headers.value_of(b"content-type") or ""
    if value == "application/json":  # the common case: nothing to strip
        return value
    return value.split(";", 1)[0].strip().lower()


def _lazy_hook(structurer: Structurer, kind: Any) -> Callable[[Any], Any]:
    """Structure into ``kind`` with its hook, looked up at the first request.

    Not when the route is declared: a class may name others defined after it.
    """
    hook: Callable[[Any], Any] | None = None

    def structure(data: Any) -> Any:
        nonlocal hook
        if hook is None:
            hook = structurer.hook(kind)
        return hook(data)

    return structure


def json_body(kind: Any, default: object, *, required: bool) -> BodyGetter:
    """The getter of a JSON body structured into ``kind`` (strictly, every bad field reported)."""
    # Looked up at the first request, not when the route is declared: a class
    # may name others defined after it.
    hooks: tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any]] | None = None

    def get(data: RequestData) -> object:
        nonlocal hooks
        body = data.body
        if not body:
            if required:
                raise RequestValidationError(list(_REQUIRED))
            return default
        media = media_type(data.headers)
        if media != "application/json" and not media.endswith("+json"):
            raise HTTPError(415, f"expected an application/json body, got {media or 'none'!r}")
        document = parse_json(body)
        if hooks is None:
            hooks = JSON.lean.get_structure_hook(kind), JSON.detailed.get_structure_hook(kind)
        try:
            return hooks[0](document, kind)
        except Exception:  # what is wrong is said by the detailed structuring
            return _in_detail(hooks[1], document, kind, "body")

    return get


def _form_fields(body: bytes, headers: Headers) -> list[tuple[str, str]]:
    media = media_type(headers)
    if media != "application/x-www-form-urlencoded":
        raise HTTPError(415, f"expected a form body, got {media or 'none'!r}")
    try:
        return parse_qsl(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise HTTPError(400, "the form body is not UTF-8") from None


def form_body(
    kind: Any, default: object, *, required: bool, many: frozenset[str] = frozenset()
) -> BodyGetter:
    """The getter of an ``x-www-form-urlencoded`` body: a ``dict[str, str]``, or an attrs class.

    Args:
        kind: ``dict`` or the attrs class.
        default: The value when there is no body, unless ``required``.
        required: An empty body is a 422.
        many: The fields that take every value of a repeated name (the rest
            take the last).
    """
    structure = _lazy_hook(FORM, kind) if attrs.has(kind) else None

    def get(data: RequestData) -> object:
        if not data.body:
            if required:
                raise RequestValidationError(list(_REQUIRED))
            return default
        pairs = _form_fields(data.body, data.headers)
        if structure is None:
            return dict(pairs)
        form: dict[str, Any] = {}
        for name, value in pairs:
            if name in many:
                form.setdefault(name, []).append(value)
            else:
                form[name] = value  # the last of repeated values, as for a query parameter
        return structure(form)

    return get
