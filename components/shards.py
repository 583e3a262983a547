"""The training split as several files, so a multi-instance training job can give each host its own.

SageMaker's `ShardedByS3Key` hands each instance a share of a channel's S3 objects, whole objects
only: one file means one busy instance. So the train split is written as at least one file per
instance. The rows are already shuffled by the seeded split, so contiguous chunks are fair shards.
"""

from __future__ import annotations

from pathlib import Path

from kubesage.errors import ParameterError

SHARD_PATTERN = "part-{index:05d}.csv"


def split_csv(source: str | Path, directory: str | Path, parts: int) -> list[Path]:
    """Write `source`'s lines into `parts` files of nearly equal row counts under `directory`."""
    if parts < 1:
        raise ParameterError(f"train_shards={parts} must be at least 1 (one file per training instance)")
    lines = Path(source).read_bytes().splitlines(keepends=True)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(parts):
        # Sizes differ by at most one row: the first len % parts files get the extra rows.
        start = index * len(lines) // parts
        end = (index + 1) * len(lines) // parts
        path = target / SHARD_PATTERN.format(index=index)
        path.write_bytes(b"".join(lines[start:end]))
        written.append(path)
    return written
