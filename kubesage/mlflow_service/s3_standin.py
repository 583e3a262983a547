"""The artifact store's S3: real S3 in production; here moto in server mode stands in for it.

moto keeps objects in memory, so `down` copies the bucket to the state folder and `up` puts it back:
the stand-in's artifacts survive a restart as a real bucket's would. Only the MLflow server talks to
it (artifacts are proxied), with moto's fixed test keys.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kubesage.mlflow_service.layout import BUCKET, STANDIN_AWS_KEYS, Layout


def command(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys())


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": STANDIN_AWS_KEYS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": STANDIN_AWS_KEYS["AWS_SECRET_ACCESS_KEY"],
    }


def ensure_bucket(endpoint: str) -> bool:
    """Create the artifact bucket if missing; True when it was created (an empty stand-in)."""
    s3 = _client(endpoint)
    if BUCKET in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        return False
    s3.create_bucket(Bucket=BUCKET)
    return True


def restore(layout: Layout, endpoint: str) -> int:
    """Upload the snapshot `down` saved into the (new, empty) bucket; the number of objects restored."""
    s3 = _client(endpoint)
    count = 0
    root = layout.s3_snapshot
    for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []:
        s3.upload_file(str(path), BUCKET, path.relative_to(root).as_posix())
        count += 1
    return count


def snapshot(layout: Layout, endpoint: str) -> int:
    """Copy every object of the bucket into the state folder (replacing the previous snapshot)."""
    s3 = _client(endpoint)
    target = layout.s3_snapshot
    fresh = target.with_name(target.name + ".new")
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            path = fresh / item["Key"]
            if not path.resolve().is_relative_to(fresh.resolve()):
                continue  # a key with `..` would escape the snapshot folder
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(BUCKET, item["Key"], str(path))
            count += 1
    fresh.mkdir(parents=True, exist_ok=True)
    if target.exists():
        _remove_tree(target)
    fresh.rename(target)
    return count


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)
