"""Read-only multi-value mappings for headers and query parameters, and their parsers. Pure.

:class:`Headers` wraps the ASGI scope's raw ``(name, value)`` byte pairs as they
are and decodes only what is asked for: one object per request can serve both
the binding of ``Header()`` parameters and :attr:`Request.headers`, and
reading ``content-type`` does not decode every other header.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TypeVar, final, overload
from urllib.parse import parse_qsl

_T = TypeVar("_T")


class _MultiMapping(Mapping[str, str]):
    """A mapping that keeps every value of repeated keys; ``[key]`` is the last one."""

    __slots__ = ("_items", "_last")

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = list(items)
        self._last = dict(self._items)

    def __getitem__(self, key: str) -> str:
        return self._last[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in order (empty if absent)."""
        return [value for name, value in self._items if name == key]

    def multi_items(self) -> list[tuple[str, str]]:
        """All (key, value) pairs, repeated keys included."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


@final
class Headers(Mapping[str, str]):
    """Request headers: case-insensitive keys, values decoded as latin-1 when read.

    ``[key]`` and :meth:`get` give the last value of a repeated header;
    :meth:`getlist` gives them all.
    """

    __slots__ = ("_last", "_raw")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._raw: Sequence[tuple[bytes, bytes]] = [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in items
        ]
        self._last: dict[str, str] | None = None

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Wrap ASGI's header pairs (kept as they are: nothing is decoded here)."""
        headers = cls.__new__(cls)
        headers._raw = raw if isinstance(raw, (list, tuple)) else list(raw)
        headers._last = None
        return headers

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in order (empty if absent)."""
        try:
            return self.values_of(key.lower().encode("latin-1"))
        except UnicodeEncodeError:
            return []  # no header has that name

    def values_of(self, name: bytes) -> list[str]:
        """Every value of the header ``name`` (lowercase bytes, as a plan precomputes it)."""
        # ASGI servers send lowercase names (HTTP/2 requires it); others are compared lowered.
        return [
            value.decode("latin-1")
            for sent, value in self._raw
            if sent == name or sent.lower() == name
        ]

    def value_of(self, name: bytes) -> str | None:
        """The last value of the header ``name`` (lowercase bytes), or None."""
        for sent, value in reversed(self._raw):
            if sent == name or sent.lower() == name:
                return value.decode("latin-1")
        return None

    def __getitem__(self, key: str) -> str:
        values = self.getlist(key)
        if not values:
            raise KeyError(key)
        return values[-1]

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...

    def get(self, key: str, default: object = None, /) -> object:
        # Mapping.get goes through __getitem__ and a KeyError: this runs per request.
        try:
            value = self.value_of(key.lower().encode("latin-1"))
        except UnicodeEncodeError:
            return default  # no header has that name
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(self.getlist(key))

    def _by_name(self) -> dict[str, str]:
        if self._last is None:
            self._last = {
                name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self._raw
            }
        return self._last

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name())

    def __len__(self) -> int:
        return len(self._by_name())

    def multi_items(self) -> list[tuple[str, str]]:
        """All (name, value) pairs, repeated names included, names as sent."""
        return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in self._raw]

    def __repr__(self) -> str:
        return f"Headers({self.multi_items()!r})"


def parse_query(query_string: bytes) -> list[tuple[str, str]]:
    """The query string's (name, value) pairs, as :func:`urllib.parse.parse_qsl` gives them.

    Blank values are kept (``?flag`` is ``("flag", "")``). Without escapes
    (``%``, ``+``), the pairs are split directly: parse_qsl's unquoting is
    most of its cost and would change nothing.
    """
    if not query_string:
        return []
    text = query_string.decode("latin-1")
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True)
    pairs = []
    for piece in text.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            pairs.append((name, value))
    return pairs


def group_query(query_string: bytes) -> dict[str, list[str]]:
    """Every value of each query parameter, in order (as :func:`parse_query` reads them)."""
    grouped: dict[str, list[str]] = {}
    for name, value in parse_query(query_string):
        values = grouped.get(name)
        if values is None:
            grouped[name] = [value]
        else:
            values.append(value)
    return grouped


@final
class QueryParams(_MultiMapping):
    """The query string's parameters."""

    __slots__ = ()

    @classmethod
    def from_query_string(cls, query_string: bytes) -> QueryParams:
        return cls(parse_query(query_string))


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


_NOTHING: dict[str, list[str]] = {}


@final
class RequestData:
    """One request's data, as a binding plan's getters read it.

    Attributes:
        headers: The request's headers.
        body: The body ("" if the plan does not read it).
        query: Every value of each query parameter (empty if the plan reads none).
        cookies: Every value of each cookie (empty if the plan reads none).
    """

    __slots__ = ("body", "cookies", "headers", "query")

    def __init__(
        self,
        headers: Headers,
        body: bytes,
        query: dict[str, list[str]] = _NOTHING,
        cookies: dict[str, list[str]] = _NOTHING,
    ) -> None:
        self.headers = headers
        self.body = body
        self.query = query
        self.cookies = cookies
