"""Pin the image's requirements to the exact wheels in the wheelhouse: `name==version --hash=sha256:...`.

    python3 containers/common/hashed_requirements.py WHEEL_DIR > requirements.txt

wheelhouse.sh downloads with `pip wheel --require-hashes` against uv.lock's hashes; this file then
pins the image's `pip install --require-hashes` to the wheels that check produced, so nothing swapped
in build/wheelhouse between the two steps is installed. (A wheel built on the host from a checked
sdist, such as kfp-server-api's, has no hash in the lock; its own hash is pinned here.)
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path


def wheel_requirement(path: Path) -> str:
    """One hash-pinned requirement line for a wheel file (PEP 427 name: dist-version-...whl)."""
    parts = path.name.split("-")
    if not path.name.endswith(".whl") or len(parts) < 5:
        raise ValueError(f"{path.name} is not a wheel file name (dist-version-python-abi-platform.whl)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{parts[0]}=={parts[1]} --hash=sha256:{digest}"


def main(argv: list[str]) -> int:
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
