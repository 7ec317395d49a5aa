"""Structuring: decoded JSON and form data into attrs classes, every bad field reported. Pure.

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

A valid body goes through a lean converter (no detailed validation); only
what fails it is structured again in detail, to say what is wrong.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, final

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

from ._converters import SCALARS, json_type, shorten
from ._errors import HTTPError, RequestValidationError

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
                return in_detail(detailed, data, kind, location)

        return structure


def in_detail(detailed: Callable[[Any, Any], Any], data: Any, kind: Any, location: str) -> Any:
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
        return shorten(str(error), 300)
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


def _from_text(convert: Callable[[str], object]) -> Callable[[object, object], object]:
    def structure(value: object, _: object) -> object:
        return convert(typing.cast(str, value))  # form values are always text

    return structure


JSON = Structurer.of({scalar.type: scalar.from_json for scalar in SCALARS})
FORM = Structurer.of({scalar.type: _from_text(scalar.from_text) for scalar in SCALARS})
