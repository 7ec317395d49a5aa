"""The docs: every public name is in the API reference, and code samples come from examples/.

The build itself (``python -m sphinx -W``) runs in .ci/run; these checks run
in the fast suite, without Sphinx, by reading the .rst sources.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import trioweb
import trioweb.testing

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.rst"))

_AUTO = re.compile(r"^\.\. auto(?:class|function|exception|data|method|attribute)::\s*(\S+)", re.M)
_PYTHON_BLOCK = re.compile(
    r"^\s*\.\. (?:code-block|code|sourcecode)::\s*(?:python|py|python3|pycon)\s*$", re.M
)
_INCLUDE = re.compile(r"^\.\. literalinclude::\s*(\S+)\s*\n((?:[ \t]+:[^\n]*\n)*)", re.M)


def documented() -> set[str]:
    return {name for page in PAGES for name in _AUTO.findall(page.read_text())}


def public_names() -> set[str]:
    return {f"trioweb.{name}" for name in trioweb.__all__} | {
        f"trioweb.testing.{name}" for name in trioweb.testing.__all__
    }


def test_the_docs_have_pages() -> None:
    assert {page.stem for page in PAGES} >= {
        "index",
        "tutorial",
        "cancellation",
        "disconnects",
        "websockets",
        "connection",
        "testing",
        "deploying",
        "migrating",
        "performance",
        "api",
    }


def test_every_public_name_is_in_the_reference() -> None:
    missing = public_names() - documented()
    assert not missing, f"add these to docs/api.rst: {sorted(missing)}"


def test_the_reference_documents_only_public_names() -> None:
    stale = documented() - public_names()
    assert not stale, f"docs/api.rst documents names that are not exported: {sorted(stale)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_python_samples_are_included_from_examples(page: Path) -> None:
    """Python in the docs is literalinclude-d from examples/, whose tests run it."""
    text = page.read_text()
    assert not _PYTHON_BLOCK.search(text), f"{page.name}: include Python from examples/ instead"
    for target, _ in _INCLUDE.findall(text):
        if target.endswith(".py"):
            assert target.startswith("../examples/"), f"{page.name}: {target} is not an example"


def _includes() -> list[tuple[str, str, dict[str, str]]]:
    found = []
    for page in PAGES:
        for target, option_lines in _INCLUDE.findall(page.read_text()):
            options = dict(re.findall(r"^[ \t]+:([\w-]+):[ \t]*(.*)$", option_lines, flags=re.M))
            found.append((page.name, target, options))
    return found


@pytest.mark.parametrize(
    ("page", "target", "options"), _includes(), ids=lambda value: str(value)[:40]
)
def test_each_include_finds_what_it_names(page: str, target: str, options: dict[str, str]) -> None:
    path = (DOCS / target).resolve()
    assert path.is_file(), f"{page}: {target} does not exist"
    source = path.read_text()
    for option in ("start-at", "start-after", "end-before", "end-at"):
        if option in options:
            assert options[option] in source, f"{page}: {options[option]!r} not in {target}"
    if "pyobject" in options:
        names = {
            node.name
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        }
        assert options["pyobject"] in names, f"{page}: no {options['pyobject']} in {target}"


def test_the_performance_plot_is_committed() -> None:
    assert (DOCS / "_static" / "performance.png").stat().st_size > 10_000
