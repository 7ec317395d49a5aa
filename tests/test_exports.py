"""The public API: what trioweb exports, and how its public classes are built."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import trioweb
import trioweb.testing

# Classes meant to be subclassed: exception bases, and responses (as EventStream does).
OPEN_FOR_SUBCLASSING = {
    "HTTPError",
    "WebSocketError",
    "WebSocketStateError",
    "Response",
    "StreamingResponse",
}


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(trioweb) if not name.startswith("_")}
    modules = {name for name, value in vars(trioweb).items() if inspect.ismodule(value)}
    assert set(trioweb.__all__) == (public - modules) | {"__version__"}
    assert sorted(trioweb.__all__) == list(trioweb.__all__)


def test_testing_exports() -> None:
    assert set(trioweb.testing.__all__) == {
        name
        for name in vars(trioweb.testing)
        if not name.startswith("_") and not inspect.ismodule(getattr(trioweb.testing, name))
    }


def test_public_classes_are_final_unless_meant_for_subclassing() -> None:
    for name in trioweb.__all__:
        value = getattr(trioweb, name)
        if not inspect.isclass(value) or name in OPEN_FOR_SUBCLASSING:
            continue
        if issubclass(value, BaseException) and value.__subclasses__():
            continue  # an exception base with subclasses of its own
        assert getattr(value, "__final__", False), f"trioweb.{name} should be @final"


@pytest.mark.parametrize(
    "cls",
    [
        trioweb.DisconnectToken,
        trioweb.Request,
        trioweb.WebSocket,
        trioweb.CallbackRegistration,
        trioweb.Server,
    ],
)
def test_objects_only_the_framework_builds_have_no_public_constructor(cls: Any) -> None:
    with pytest.raises(TypeError, match="no public constructor"):
        cls()
