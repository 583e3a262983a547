"""The wheel (and so the image) carries every package: setuptools' explicit list must name them all.

components/, pipelines/ and runners/ install as kubesage.* through package-dir, so a new folder is
invisible to the wheel until pyproject.toml lists it; the editable install hides that mistake.
"""

from __future__ import annotations

import tomllib

from tests.paths import REPO_ROOT

ROOT = REPO_ROOT


def _packages_on_disk() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set()
    for package, folder in config["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base).parts
            found.add(".".join((package, *relative)))
    return found


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    missing = _packages_on_disk() - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
