"""The tree tells the architecture: every folder is named in the README's Layout (tests/unit/cli/test_app.py:
only the CLI package imports click)."""

from __future__ import annotations

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
