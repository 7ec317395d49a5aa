"""Read-only multi-value mappings for headers and query parameters. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import final
from urllib.parse import parse_qsl


class _MultiMapping(Mapping[str, str]):
    """A mapping that keeps every value of repeated keys; ``[key]`` is the last one."""

    __slots__ = ("_items", "_last")

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = list(items)
        self._last = {self._key(key): value for key, value in self._items}

    @staticmethod
    def _key(key: str) -> str:
        return key

    def __getitem__(self, key: str) -> str:
        return self._last[self._key(key)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in order (empty if absent)."""
        key = self._key(key)
        return [value for name, value in self._items if self._key(name) == key]

    def multi_items(self) -> list[tuple[str, str]]:
        """All (key, value) pairs, repeated keys included."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


@final
class Headers(_MultiMapping):
    """Request headers: case-insensitive keys, decoded as latin-1."""

    __slots__ = ()

    @staticmethod
    def _key(key: str) -> str:
        return key.lower()

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        return cls((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw)


@final
class QueryParams(_MultiMapping):
    """The query string's parameters."""

    __slots__ = ()

    @classmethod
    def from_query_string(cls, query_string: bytes) -> QueryParams:
        return cls(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))


def parse_cookies(headers: Iterable[str]) -> dict[str, list[str]]:
    """Every value of every cookie in these ``Cookie`` header values, in order.

    Parsed as browsers send it (RFC 6265 section 4.2: ``a=1; b=2``), not with
    :class:`http.cookies.SimpleCookie`, which reads ``Set-Cookie`` syntax: it
    takes cookies named ``path`` or ``expires`` for attributes and drops a
    whole header at one odd piece. A piece without ``=`` is skipped.
    """
    jar: dict[str, list[str]] = {}
    for header in headers:
        for piece in header.split(";"):
            name, equals, value = piece.partition("=")
            name, value = name.strip(), value.strip()
            if not equals or not name:
                continue
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]  # a DQUOTE-wrapped cookie-value
            jar.setdefault(name, []).append(value)
    return jar
