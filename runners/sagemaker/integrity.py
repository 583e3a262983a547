"""Task specs are pinned by their sha256 in the pipeline definition, and the shim checks them.

The compiler writes each task's spec (the component's command, its constants, where inputs and
outputs live) to S3, and puts the spec's sha256 into the step's container arguments, which are part
of the pipeline definition. Whoever can write the spec prefix in S3 (a compromised step, a user with
bucket access) could otherwise swap the code the next step runs; to change what runs they now have
to change the definition, which takes `sagemaker:UpdatePipeline` (see runners/sagemaker/iam/).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from kubesage.errors import SpecIntegrityError

DIGEST_FLAG = "--spec-sha256"
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


def spec_bytes(spec: dict[str, Any]) -> bytes:
    """The one serialization of a task spec: what is uploaded is exactly what is hashed."""
    return json.dumps(spec, indent=2, sort_keys=True).encode()


def spec_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def read_verified_spec(path: Path, expected: str) -> dict[str, Any]:
    """The spec at `path`, parsed only after its bytes hash to `expected`."""
    if not _DIGEST_RE.match(expected):
        raise SpecIntegrityError(
            f"{DIGEST_FLAG} {expected!r} is not a sha256 hex digest; recompile the pipeline with kubesage"
        )
    if not path.is_file():
        raise SpecIntegrityError(f"task spec {path} is missing; `kubesage run` uploads it before the pipeline starts")
    body = path.read_bytes()
    actual = spec_digest(body)
    if actual != expected:
        raise SpecIntegrityError(
            f"task spec {path} has sha256 {actual}, but the pipeline definition pins {expected}: the spec in S3 "
            "was changed after compile. Refusing to run it; re-run `kubesage run` to upload the compiled specs "
            "and find out who wrote the spec prefix"
        )
    spec: dict[str, Any] = json.loads(body)
    return spec
