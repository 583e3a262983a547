"""The tree tells the architecture: every folder is named in the README's Layout, commands live in the CLI."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from tests.paths import REPO_ROOT as REPO

PYTHON_ROOTS = ("kubesage", "components", "pipelines", "runners")


def layout_block() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def tracked_top_level_folders() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return {name.split("/", 1)[0] for name in files if "/" in name and not name.startswith(".")}


def package_folders() -> list[Path]:
    return sorted(
        init.parent.relative_to(REPO)
        for root in PYTHON_ROOTS
        for init in (REPO / root).rglob("__init__.py")
        if init.parent != REPO / root
    )


def test_every_top_level_folder_is_named_in_the_layout() -> None:
    block = layout_block()
    named = set(re.findall(r"^([\w.-]+)/", block, flags=re.MULTILINE))
    assert tracked_top_level_folders() - named == set()


def test_every_package_folder_is_named_in_the_layout() -> None:
    block = layout_block()
    missing = [str(folder) for folder in package_folders() if not re.search(rf"\b{folder.name}/", block)]
    assert missing == []
    assert len(package_folders()) >= 12  # the walk found the packages at all


def test_every_tests_folder_is_named_in_the_layout() -> None:
    block = layout_block()
    folders = [p.name for p in (REPO / "tests").iterdir() if p.is_dir() and not p.name.startswith((".", "__"))]
    assert [name for name in folders if f"{name}/" not in block] == []


def _defines_click_command(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and target.attr in {"command", "group"}:
                    return True
    return False


def test_only_the_cli_package_defines_click_commands() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for root in PYTHON_ROOTS
        for path in (REPO / root).rglob("*.py")
        if "cli" not in path.relative_to(REPO).parts[:2] and _defines_click_command(ast.parse(path.read_text()))
    ]
    assert offenders == []
    cli_modules = [p for p in (REPO / "kubesage" / "cli").rglob("*.py") if _defines_click_command(ast.parse(p.read_text()))]
    assert len(cli_modules) >= 3  # the check recognises click's decorators where they are
