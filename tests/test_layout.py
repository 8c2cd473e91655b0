"""The shipped package stands alone: nothing under companion/veil imports the research code."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "companion" / "veil"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_product_never_imports_research() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20  # the walk found the package
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] == "veil_research"
        )
        for path in sources
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_cli_has_only_the_user_commands() -> None:
    from veil.cli import SUBCOMMANDS

    assert set(SUBCOMMANDS) == {"cloak", "check", "enrol", "serve", "pair", "unpair", "doctor"}


def test_build_holds_only_its_four_purpose_folders() -> None:
    """build/ is split by purpose (build/README.md); setuptools' build/lib must never be in git."""
    import shutil
    import subprocess

    import pytest

    git = shutil.which("git")
    repo = PACKAGE.parents[1]
    if git is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        [git, "ls-files", "build"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked, "git ls-files found build/"
    allowed = ("build/models/", "build/bench/", "build/research/", "build/codegen/")
    strays = [p for p in tracked if p != "build/README.md" and not p.startswith(allowed)]
    assert strays == []
