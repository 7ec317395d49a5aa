"""The package's shape: no import cycles, modules and classes of a readable size."""

from __future__ import annotations

import ast
import pathlib

import trioweb

PACKAGE = pathlib.Path(trioweb.__file__).parent
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 280  # "about 250" (issue 11); App and HTTPExchange are the largest


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path) -> set[str]:
    """The trioweb modules ``path`` imports, TYPE_CHECKING imports included.

    An import on a line marked ``# cycle-ok: <why>`` is left out: the one
    allowed exception, an annotation-only import under TYPE_CHECKING.
    """
    source = path.read_text()
    lines = source.splitlines()
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom | ast.Import):
            continue
        if "# cycle-ok:" in lines[node.lineno - 1]:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("trioweb"))
            continue
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        if target.startswith("trioweb"):
            found.add(target)
            # `from . import x` may name a submodule.
            found.update(f"{target}.{a.name}" for a in node.names)
    return found


def test_no_import_cycles() -> None:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports_of(path) & modules.keys() - {name} for name, path in modules.items()}
    # A package's __init__ re-exports its modules: importing it from them is not a cycle
    # as long as nothing inside imports the package back.
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append([*trail[trail.index(node) :], node])
            return
        for child in sorted(graph[node]):
            visit(child, [*trail, node])

    for start in sorted(graph):
        visit(start, [])
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles[:10])


def test_modules_and_classes_stay_readable() -> None:
    too_long: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    too_long.append(f"{path.name}: class {node.name}, {length} lines")
    assert not too_long, too_long
