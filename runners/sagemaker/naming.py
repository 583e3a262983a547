"""SageMaker pipeline names: one KFP pipeline name, one SageMaker name, and no two KFP names alike.

SageMaker names allow letters, digits and '-'. Mapping other characters to '-' alone would give
`customer_churn` and `customer-churn` the same pipeline, so concurrent runs would overwrite each
other's definition. A name that is already valid is kept; any other name is mapped and gets a
suffix from the sha256 of the original, so two different KFP names never meet.
"""

from __future__ import annotations

import hashlib
import re

MAX_LENGTH = 256
_VALID_RE = re.compile(r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,255}$")
_INVALID_RUN_RE = re.compile(r"[^A-Za-z0-9]+")


def sagemaker_pipeline_name(name: str) -> str:
    """`name` if SageMaker accepts it, else its mapped form with a short hash of `name` appended."""
    if _VALID_RE.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    base = _INVALID_RUN_RE.sub("-", name).strip("-")[: MAX_LENGTH - len(digest) - 1]
    return f"{base}-{digest}" if base else f"pipeline-{digest}"
