"""Pin the image's requirements to the exact wheels in the wheelhouse: `name==version --hash=sha256:...`.

    python3 containers/common/hashed_requirements.py WHEEL_DIR > requirements.txt
    python3 containers/common/hashed_requirements.py --verify WHEEL_DIR uv.lock    # exit 1 on a mismatch

`--verify` checks every wheel on disk against uv.lock's sha256 hashes, on every build (wheelhouse.sh
runs it even when its stamp says the wheels are up to date, so a wheel swapped in build/ is caught).
A package the lock has only as an sdist (kfp-server-api) is built on the host from that checked
sdist; its wheel has no hash in the lock, so it is named as unverifiable, not failed.

wheelhouse.sh downloads with `pip wheel --require-hashes` against uv.lock's hashes; this file then
pins the image's `pip install --require-hashes` to the wheels that check produced, so nothing swapped
in build/wheelhouse between the two steps is installed. (A wheel built on the host from a checked
sdist, such as kfp-server-api's, has no hash in the lock; its own hash is pinned here.)
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path


def wheel_requirement(path: Path) -> str:
    """One hash-pinned requirement line for a wheel file (PEP 427 name: dist-version-...whl)."""
    parts = path.name.split("-")
    if not path.name.endswith(".whl") or len(parts) < 5:
        raise ValueError(f"{path.name} is not a wheel file name (dist-version-python-abi-platform.whl)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{parts[0]}=={parts[1]} --hash=sha256:{digest}"


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_hashes(lock_path: Path) -> tuple[dict[tuple[str, str], set[str]], set[str]]:
    """(name, version) -> the sha256 hashes of its wheels in uv.lock; and the names locked as sdists only."""
    import tomllib

    lock = tomllib.loads(lock_path.read_text(encoding="utf-8"))
    hashes: dict[tuple[str, str], set[str]] = {}
    sdist_only: set[str] = set()
    for package in lock.get("package", []):
        name = _normalized(package["name"])
        wheels = package.get("wheels") or []
        if not wheels and package.get("sdist"):
            sdist_only.add(name)
        found = {w["hash"].removeprefix("sha256:") for w in wheels if "hash" in w}
        hashes.setdefault((name, str(package.get("version", ""))), set()).update(found)
    return hashes, sdist_only


def verify(wheel_dir: Path, lock_path: Path) -> tuple[list[str], list[str]]:
    """(problems, wheels that cannot be checked): each wheel's sha256 must be one uv.lock lists for it."""
    hashes, sdist_only = lock_hashes(lock_path)
    problems: list[str] = []
    unverifiable: list[str] = []
    for wheel in sorted(wheel_dir.glob("*.whl")):
        parts = wheel.name.split("-")
        name, version = _normalized(parts[0]), parts[1] if len(parts) > 1 else ""
        if name in sdist_only:
            unverifiable.append(wheel.name)
            continue
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest not in hashes.get((name, version), set()):
            problems.append(f"{wheel}: sha256 {digest} is not one uv.lock lists for {name} {version}")
    return problems, unverifiable


def main(argv: list[str]) -> int:
    if argv[:1] == ["--verify"] and len(argv) == 3:
        problems, unverifiable = verify(Path(argv[1]), Path(argv[2]))
        for problem in problems:
            print(problem, file=sys.stderr)
        if unverifiable:
            print(f"built from their sdist (checked when built): {', '.join(unverifiable)}", file=sys.stderr)
        return 1 if problems else 0
    if len(argv) != 1:
        print("usage: hashed_requirements.py WHEEL_DIR", file=sys.stderr)
        return 2
    wheels = sorted(Path(argv[0]).glob("*.whl"))
    if not wheels:
        print(f"no wheels in {argv[0]}", file=sys.stderr)
        return 1
    for wheel in wheels:
        print(wheel_requirement(wheel))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
