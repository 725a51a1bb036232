"""The README's install commands: quoted extras (zsh reads an unquoted [torch] as a file
pattern), extras that exist, and the install from a checkout with the constraints file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "index.md"]
_SHELL_BLOCK = re.compile(r"^```(?:bash|console|sh)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def shell_lines(page: Path) -> list[str]:
    return [line for block in _SHELL_BLOCK.findall(page.read_text(encoding="utf-8")) for line in block.splitlines()]


def test_install_commands_quote_their_extras():
    commands = [line.split("#")[0] for page in PAGES for line in shell_lines(page) if "pip install" in line]
    assert commands
    for command in commands:
        for word in command.split():
            assert "[" not in word or word[0] in "'\"", f"unquoted extras in: {command.strip()}"


def test_the_extras_named_exist():
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for page in PAGES:
        for line in shell_lines(page):
            named = re.findall(r"\[([\w,]+)\]", line.split("#")[0]) + re.findall(r"extras: ([\w, ]+)", line)
            for group in named:
                assert set(re.split(r"[,\s]+", group.strip())) <= extras, (page.name, line)


def test_the_readme_installs_a_checkout_with_the_constraints_file():
    lines = shell_lines(ROOT / "README.md")
    assert any(re.search(r"pip install -c ci/constraints\.txt -e '\.\[torch\]'", line) for line in lines)
    assert (ROOT / "ci" / "constraints.txt").is_file()

