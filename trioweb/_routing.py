"""Compile route paths and match requests against them. Pure: no I/O, no Trio.

A path such as ``/items/{item_id:int}/{rest:path}`` compiles to a
:class:`PathPattern`: a regular expression plus one converter per parameter.
A :class:`RouteTable` holds the routes grouped by pattern, so one lookup answers
"which route", "which methods would have matched" (for 405 + ``Allow``) or
"nothing" (404). Static paths are a dict lookup; parameterised ones are tried in
declaration order, and the first whose method fits wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar
from urllib.parse import quote, urlencode

import attrs

from ._converters import PATH_CONVERTERS, PathConverter
from ._errors import RouteDefinitionError

E = TypeVar("E")


#: The path converters, by name (from the scalar registry, with ``path``).
CONVERTERS: Mapping[str, PathConverter] = PATH_CONVERTERS

_PARAM = re.compile(r"{([^{}:]*)(?::([^{}]*))?}")


@attrs.frozen
class PathPattern:
    """A compiled route path.

    Attributes:
        path: The path as declared.
        regex: The compiled expression, or None for a path without parameters.
        converters: The converter of each parameter, in path order.
    """

    path: str
    regex: re.Pattern[str] | None
    converters: Mapping[str, PathConverter]
    # (name, convert) in group order: match() runs per request.
    _conversions: tuple[tuple[str, Callable[[str], object]], ...] = attrs.field(
        init=False, repr=False, eq=False
    )

    @_conversions.default
    def _conversions_default(self) -> tuple[tuple[str, Callable[[str], object]], ...]:
        return tuple((name, converter.convert) for name, converter in self.converters.items())

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.converters)

    def match(self, path: str) -> dict[str, object] | None:
        """The converted parameters if ``path`` matches, else None."""
        if self.regex is None:
            return {} if path == self.path else None
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        params: dict[str, object] = {}
        for (name, convert), text in zip(self._conversions, found.groups(), strict=True):
            params[name] = convert(text)
        return params

    def format(self, params: Mapping[str, object]) -> str:
        """Build a concrete path from parameter values (for ``url_for``), percent-encoded.

        A value must fit its converter before encoding (so ``/`` only in a
        ``path`` parameter, where it stays a ``/``): the server decodes the
        path before matching, and the URL must lead back to this route.

        Raises:
            ValueError: A parameter is missing, unexpected, or does not fit its converter.
        """
        missing = set(self.converters) - set(params)
        extra = set(params) - set(self.converters)
        if missing or extra:
            raise ValueError(
                f"path {self.path!r} takes parameters {sorted(self.converters)}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )

        def substitute(found: re.Match[str]) -> str:
            name = found.group(1)
            text = str(params[name])
            if not re.fullmatch(self.converters[name].regex, text):
                raise ValueError(
                    f"{name}={text!r} does not fit the {self.converters[name].name!r} "
                    f"converter of path {self.path!r}"
                )
            return quote(text, safe="/" if self.converters[name].name == "path" else "")

        return _PARAM.sub(substitute, self.path)


def compile_path(path: str, implicit: Mapping[str, str] | None = None) -> PathPattern:
    """Compile ``path``.

    Args:
        path: The route path, starting with ``/``.
        implicit: Converter names for parameters declared without one (``{x}``),
            typically taken from the handler's annotations. Default: ``str``.

    Raises:
        RouteDefinitionError: The path is malformed, repeats a parameter or
            names an unknown converter.
    """
    if not path.startswith("/"):
        raise RouteDefinitionError(f"route path {path!r} must start with '/'")
    implicit = implicit or {}
    converters: dict[str, PathConverter] = {}
    pattern = []
    position = 0
    for found in _PARAM.finditer(path):
        name, converter_name = found.group(1), found.group(2)
        if not name.isidentifier():
            raise RouteDefinitionError(
                f"route path {path!r}: parameter name {name!r} is not an identifier"
            )
        if name in converters:
            raise RouteDefinitionError(f"route path {path!r} repeats parameter {name!r}")
        converter_name = converter_name or implicit.get(name, "str")
        if converter_name not in CONVERTERS:
            raise RouteDefinitionError(
                f"route path {path!r}: unknown converter {converter_name!r} for {name!r} "
                f"(known: {', '.join(CONVERTERS)})"
            )
        converters[name] = CONVERTERS[converter_name]
        pattern.append(re.escape(path[position : found.start()]))
        pattern.append(f"(?P<{name}>{converters[name].regex})")
        position = found.end()
    if "{" in path[position:] or "}" in path[position:] or (not converters and "{" in path):
        raise RouteDefinitionError(f"route path {path!r} has an unbalanced brace")
    if not converters:
        return PathPattern(path, None, {})
    pattern.append(re.escape(path[position:]))
    return PathPattern(path, re.compile("".join(pattern)), converters)


@attrs.frozen
class Route(Generic[E]):
    """One route: a path pattern, the methods it answers and what handles it."""

    pattern: PathPattern
    methods: frozenset[str]
    handler: Callable[..., object]
    endpoint: E
    name: str


# Not frozen: one is built per request, and a frozen class's __init__ costs
# twice as much. Nothing keeps one beyond the lookup that made it.
@attrs.define
class RouteMatch(Generic[E]):
    """A successful lookup: the route and its converted path parameters."""

    route: Route[E]
    params: dict[str, object]


@attrs.frozen
class MethodNotAllowed:
    """The path exists, but not for this method."""

    allowed: frozenset[str]

    @property
    def allow_header(self) -> str:
        return ", ".join(sorted(self.allowed))


@attrs.define
class RouteTable(Generic[E]):
    """All routes of an app, ready for matching."""

    _static: dict[str, dict[str, Route[E]]] = attrs.field(init=False, factory=dict)
    _dynamic: list[tuple[PathPattern, dict[str, Route[E]]]] = attrs.field(init=False, factory=list)
    _by_name: dict[str, Route[E]] = attrs.field(init=False, factory=dict)

    def add(self, route: Route[E]) -> None:
        """Add ``route``.

        Raises:
            RouteDefinitionError: Another endpoint already answers one of its
                methods on the same path, or already has its name.
        """
        by_method = self._methods_for(route.pattern)
        for method in route.methods:
            if method in by_method:
                raise RouteDefinitionError(
                    f"{method} {route.pattern.path} is already routed to {by_method[method].name!r}"
                )
        # One handler under several paths (stacked decorators) keeps its first path.
        named = self._by_name.setdefault(route.name, route)
        if named.handler is not route.handler:
            raise RouteDefinitionError(
                f"route name {route.name!r} is already used by {named.pattern.path}; "
                "pass name= to tell them apart"
            )
        for method in route.methods:
            by_method[method] = route

    def _methods_for(self, pattern: PathPattern) -> dict[str, Route[E]]:
        if pattern.regex is None:
            return self._static.setdefault(pattern.path, {})
        for existing, by_method in self._dynamic:
            if existing.path == pattern.path:
                return by_method
        by_method = {}
        self._dynamic.append((pattern, by_method))
        return by_method

    def match(self, path: str, method: str) -> RouteMatch[E] | MethodNotAllowed | None:
        """Find the route for ``method`` on ``path``; HEAD falls back to GET."""
        found = self.find(path, method)
        return RouteMatch(*found) if isinstance(found, tuple) else found

    def find(
        self, path: str, method: str
    ) -> tuple[Route[E], dict[str, object]] | MethodNotAllowed | None:
        """:meth:`match`, with the route and its parameters as a pair (what the app uses:
        no object to build per request)."""
        by_method = self._static.get(path)
        if by_method is not None:
            route = by_method.get(method) or (by_method.get("GET") if method == "HEAD" else None)
            if route is not None:
                return route, {}
        for pattern, by_method in self._dynamic:
            # PathPattern.match, written out: a call saved per pattern tried.
            found = pattern.regex.fullmatch(path)  # type: ignore[union-attr]  # never None here
            if found is None:
                continue
            params: dict[str, object] = {}
            for (name, convert), text in zip(pattern._conversions, found.groups(), strict=True):
                params[name] = convert(text)
            route = by_method.get(method) or (by_method.get("GET") if method == "HEAD" else None)
            if route is not None:
                return route, params
        return self._not_allowed(path)

    def _not_allowed(self, path: str) -> MethodNotAllowed | None:
        # Apart from match() so that a match, the common case, builds no set.
        allowed = set(self._static.get(path, ()))
        for pattern, by_method in self._dynamic:
            if pattern.match(path) is not None:
                allowed.update(by_method)
        if not allowed:
            return None
        if "GET" in allowed:
            allowed.add("HEAD")
        return MethodNotAllowed(frozenset(allowed))

    def url_for(
        self,
        name: str,
        params: Mapping[str, object],
        query: Mapping[str, object] | None = None,
    ) -> str:
        """The path of the route called ``name`` with ``params`` filled in.

        Args:
            name: The route's name.
            params: Its path parameters' values.
            query: A query string to append, encoded as a form
                (a list value repeats its key).

        Raises:
            KeyError: No route has that name.
            ValueError: The parameters do not fit the route's path.
        """
        try:
            route = self._by_name[name]
        except KeyError:
            raise KeyError(f"no route is named {name!r}") from None
        path = route.pattern.format(params)
        return f"{path}?{urlencode(query, doseq=True)}" if query else path

    def routes(self) -> Iterable[Route[E]]:
        seen: set[int] = set()
        for by_method in [*self._static.values(), *(m for _, m in self._dynamic)]:
            for route in by_method.values():
                if id(route) not in seen:
                    seen.add(id(route))
                    yield route
