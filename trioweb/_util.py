"""Small helpers shared by several modules."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

T = TypeVar("T")


class NoPublicConstructor(type):
    """Metaclass for objects only the framework builds (as trio does it).

    ``Cls(...)`` raises ``TypeError``; the framework calls ``Cls._create(...)``.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} has no public constructor: "
            "trioweb creates it for each request and hands it to the handler"
        )

    def _create(cls: type[T], *args: Any, **kwargs: Any) -> T:
        return super().__call__(*args, **kwargs)  # type: ignore[misc, no-any-return]


def describe_callable(func: object) -> str:
    """A short human name for ``func``, looking through ``functools.partial``."""
    while isinstance(func, functools.partial):
        func = func.func
    module = getattr(func, "__module__", None)
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if name is None:
        return repr(func)
    return f"{module}.{name}" if module and module != "builtins" else str(name)
