"""Every ```python block of docs/**/*.md and README.md runs, so a page cannot drift from the API.

A page's blocks run in order in one namespace (a later block may use names an earlier one
defined), from the repository root (blocks read files such as ``examples/specs/rota.yaml``).
A block that cannot run -- a fragment with placeholders, a GPU, a long training -- is fenced
```` ```python notest ```` (the marker pytest-markdown-docs uses too); each such skip is deliberate.

A fragment that uses names it does not define (``theta``, ``costs``) gets them from a hidden
setup, an HTML comment just before it that the site does not show::

    <!-- test-setup
    theta = np.random.default_rng(0).normal(size=(3, 100))
    -->

It runs in the page's namespace, in order with the blocks.
"""

from __future__ import annotations

import os
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]

# a fence: ```python [flags], indented or not, up to the closing fence of the same indentation
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL)


_SETUP = re.compile(r"^(?P<indent>[ \t]*)<!--[ \t]*test-setup[ \t]*\n(?P<body>.*?)^[ \t]*-->[ \t]*$", re.MULTILINE | re.DOTALL)


def _dedent(body: str, indent: str) -> str:
    return "".join(line.removeprefix(indent) for line in body.splitlines(keepends=True))


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(line, code, runnable) for each ```python fence and hidden test-setup of a page, in page order."""
    blocks = []
    for m in _SETUP.finditer(text):
        blocks.append((text.count("\n", 0, m.start()) + 1, _dedent(m.group("body"), m.group("indent")), True))
    for m in _FENCE.finditer(text):
        words = m.group("info").split()
        if not words or words[0] not in ("python", "py"):
            continue
        line = text.count("\n", 0, m.start()) + 1
        blocks.append((line, _dedent(m.group("body"), m.group("indent")), "notest" not in words[1:]))
    return sorted(blocks)


def _pages_with_code():
    for page in PAGES:
        blocks = python_blocks(page.read_text(encoding="utf-8"))
        if blocks:
            yield pytest.param(page, blocks, id=str(page.relative_to(ROOT)))


@pytest.mark.parametrize("page,blocks", list(_pages_with_code()))
def test_page_code_runs(page, blocks, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # a real module, so that a block's dataclasses, pickling and registries find their module
    module = types.ModuleType("docs_" + re.sub(r"\W", "_", str(page.relative_to(ROOT).with_suffix(""))))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    ran = 0
    for line, code, runnable in blocks:
        if not runnable:
            continue
        where = f"{page.relative_to(ROOT)}:{line}"
        try:
            exec(compile(code, where, "exec"), namespace)  # noqa: S102 -- the point of the test
        except Exception as exc:  # name the block that failed
            raise AssertionError(f"the ```python block at {where} failed: {exc!r}") from exc
        ran += 1
    assert ran or all(not r for _, _, r in blocks)


def test_fence_parser():
    text = ("a\n```python\nx = 1\n```\n\n```python notest\ny = undefined\n```\n"
            "  <!-- test-setup\n  w = 0\n  -->\n  ```python\n  z = 2\n  ```\n")
    blocks = python_blocks(text)
    assert [(c, r) for _, c, r in blocks] == [
        ("x = 1\n", True), ("y = undefined\n", False), ("w = 0\n", True), ("z = 2\n", True)]


def test_every_page_is_found():
    assert ROOT / "docs" / "estimators.md" in PAGES and os.path.exists(ROOT / "README.md")
