"""A route's dependency setup, written out as one coroutine function when it is declared.

Theory of operation
-------------------
Per request, a graph's setup is nothing but calls: each dependency with its
arguments, in dependency order, then the handler's arguments. A loop over the
nodes would decide per request, per node, what was decided at declaration
(its kind, where each argument comes from), and for a route with two
dependencies that costs as much as the dependencies themselves. So, as attrs
writes an ``__init__``, :func:`compile_setup` writes the graph's setup out as
the source of one ``async def`` and compiles it once: straight-line code, each
argument an expression (``side.params['item_id']``, ``values['0:limit']``,
``r0``), each kind its own few lines. What it runs is only ever what
``_depends`` decided; no text from a request goes into the source: names are
parameter names (identifiers), every other value is bound in the function's
globals and referred to by a generated name.

The function's contract, for ``_solve``:

* ``await set_up(side, values, exits)`` returns the handler's keyword
  arguments (path parameters, injected objects, its own data, its
  dependencies' values);
* each generator or context manager is pushed on ``exits`` as ``(node,
  handle)`` the moment its setup succeeded, so that whatever interrupts the
  rest, everything set up is torn down;
* an async generator's first ``asend()`` is made without Trio's first-iteration
  hook: Trio registers every async generator (a WeakSet entry and its weakref
  callback, about half a dependency's cost) so that one abandoned half-way is
  finalized at the end of the run, and a dependency's never is: its exit is
  pushed at once, and every exit is run to its end or closed. ``asend()`` only
  reads the hooks, so no Python code runs while they are unset.
"""

from __future__ import annotations

import enum
import itertools
import linecache
import sys
from collections.abc import Awaitable, Callable
from typing import Any, final

import attrs

#: Fetches one injected argument (Request, App, ...) from the exchange.
Getter = Callable[[Any], object]
#: ``set_up(side, values, exits)``: the handler's keyword arguments.
SetUp = Callable[[Any, dict[str, object], list[tuple[Any, Any]]], Awaitable[dict[str, object]]]


class Kind(enum.IntEnum):
    COROUTINE = 0  # async def: a value, no teardown
    GENERATOR = 1  # async generator: setup, yield, teardown
    CONTEXT = 2  # async context manager factory
    SYNC = 3  # a plain function that cannot block: what it returns is the value
    APP = 4  # scope="app": set up at startup, its value read per request


@final
@attrs.frozen
class Node:
    """One dependency of a route, decided at decoration."""

    call: Callable[..., Any]
    name: str
    kind: Kind
    #: (parameter, getter) of the injected objects it takes.
    getters: tuple[tuple[str, Getter], ...]
    #: (parameter, key in the merged plan's values) of its request data.
    data: tuple[tuple[str, str], ...]
    #: (parameter, index of the node) of the dependencies it takes.
    needs: tuple[tuple[str, int], ...]
    teardown_timeout: float
    #: Whether its setup or teardown may yield to Trio (else neither needs a scope).
    suspends: bool = True
    #: Whether it takes the request's nursery (which must then be open before it).
    takes_nursery: bool = False
    #: (parameter, key in the route's path parameters) of its path parameters.
    path: tuple[tuple[str, str], ...] = ()


_serial = itertools.count()


def did_not_yield(node: Node) -> RuntimeError:
    return RuntimeError(f"dependency {node.name} did not yield")


def _arguments(
    path: tuple[tuple[str, str], ...],
    getters: tuple[tuple[str, Getter], ...],
    data: tuple[tuple[str, str], ...],
    needs: tuple[tuple[str, int], ...],
    bind: Callable[[object], str],
) -> list[tuple[str, str]]:
    """(parameter, expression) of each argument, in the order they are taken."""
    arguments = [(name, f"side.params[{key!r}]") for name, key in path]
    arguments += [(name, f"{bind(get)}(side)") for name, get in getters]
    arguments += [(name, f"values[{key!r}]") for name, key in data]
    arguments += [(name, f"r{index}") for name, index in needs]
    return arguments


def compile_setup(
    root: str,
    nodes: tuple[Node, ...],
    *,
    path: tuple[tuple[str, str], ...],
    getters: tuple[tuple[str, Getter], ...],
    data: tuple[tuple[str, str], ...],
    needs: tuple[tuple[str, int], ...],
) -> SetUp:
    """The setup of ``nodes`` and the handler's arguments, as one coroutine function.

    Args:
        root: The handler's name (the function's, in tracebacks).
        nodes: The dependencies, in dependency order.
        path: The handler's path parameters: (parameter, key).
        getters: The handler's injected objects: (parameter, getter).
        data: The handler's own request data: (parameter, key in ``values``).
        needs: The handler's dependencies: (parameter, node index).
    """
    names: dict[int, str] = {}
    env: dict[str, object] = {
        "_get_hooks": sys.get_asyncgen_hooks,
        "_set_hooks": sys.set_asyncgen_hooks,
        "_did_not_yield": did_not_yield,
    }

    def bind(value: object) -> str:
        name = names.get(id(value))
        if name is None:
            name = names[id(value)] = f"_v{len(names)}"
            env[name] = value
        return name

    lines = ["async def set_up(side, values, exits):"]
    for index, node in enumerate(nodes):
        call, result = bind(node.call), f"r{index}"
        if node.kind is Kind.APP:
            lines.append(f"    {result} = side.app.app_value({call})")
            continue
        arguments = _arguments(node.path, node.getters, node.data, node.needs, bind)
        made = f"{call}({', '.join(f'{name}={value}' for name, value in arguments)})"
        if node.kind is Kind.SYNC:
            lines.append(f"    {result} = {made}")
        elif node.kind is Kind.COROUTINE:
            lines.append(f"    {result} = await {made}")
        elif node.kind is Kind.CONTEXT:
            lines += [
                f"    made = {made}",
                f"    {result} = await made.__aenter__()",
                f"    exits.append(({bind(node)}, made))",
            ]
        else:
            lines += [
                f"    made = {made}",
                "    hooks = _get_hooks()",
                "    _set_hooks(None, None)",
                "    try:",
                "        step = made.asend(None)",
                "    finally:",
                "        _set_hooks(*hooks)",
                "    try:",
                f"        {result} = await step",
                "    except StopAsyncIteration:",
                f"        raise _did_not_yield({bind(node)}) from None",
                f"    exits.append(({bind(node)}, made))",
            ]
    arguments = _arguments(path, getters, data, needs, bind)
    lines.append(f"    return {{{', '.join(f'{name!r}: {value}' for name, value in arguments)}}}")
    source = "\n".join(lines) + "\n"
    filename = f"<trioweb: the dependencies of {root} #{next(_serial)}>"
    # As attrs does: tracebacks through the generated code show its lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), env)
    function: SetUp = env["set_up"]  # type: ignore[assignment]
    function.__qualname__ = f"set_up<{root}>"
    return function
