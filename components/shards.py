"""The training split as several files, so a multi-instance training job can give each host its own.

SageMaker's `ShardedByS3Key` hands each instance a share of a channel's S3 objects, whole objects
only: one file means one busy instance. So the train split is written as at least one file per
instance. The rows are already shuffled by the seeded split, so contiguous chunks are fair shards.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kubesage.components.datasets import LabelledFeatures, write_labelled_csv
from kubesage.errors import ParameterError

SHARD_PATTERN = "part-{index:05d}.csv"


def check_parts(parts: int) -> None:
    if parts < 1:
        raise ParameterError(f"train_shards={parts} must be at least 1 (one file per training instance)")


def bounds(rows: int, parts: int, index: int) -> tuple[int, int]:
    """Rows [start, end) of part `index`: sizes differ by at most one row."""
    return index * rows // parts, (index + 1) * rows // parts


def write_shards(data: LabelledFeatures, directory: str | Path, parts: int) -> list[Path]:
    """The split as `parts` label-first CSVs of nearly equal row counts under `directory`."""
    check_parts(parts)
    written = []
    for index in range(parts):
        start, end = bounds(data.rows, parts, index)
        part = LabelledFeatures(data.features[start:end], data.labels[start:end])
        written.append(write_labelled_csv(part, Path(directory) / SHARD_PATTERN.format(index=index)))
    return written


def split_csv(source: str | Path, directory: str | Path, parts: int) -> list[Path]:
    """Write `source`'s lines into `parts` files of nearly equal row counts under `directory`."""
    check_parts(parts)
    lines = Path(source).read_bytes().splitlines(keepends=True)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(parts):
        start, end = bounds(len(lines), parts, index)
        path = target / SHARD_PATTERN.format(index=index)
        path.write_bytes(b"".join(lines[start:end]))
        written.append(path)
    return written


def csv_files(path: Path) -> list[Path]:
    """A dataset's CSV files in a stable order (every host must see the same order)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix == ".csv")


def concatenate(files: Sequence[Path], target: Path) -> Path:
    """One label-first CSV holding `files` in order (the trainer reads one file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for path in files:
            data = path.read_bytes()
            out.write(data if data.endswith(b"\n") or not data else data + b"\n")
    return target


def one_csv(path: Path, work_dir: Path) -> Path:
    """The dataset itself when it is one CSV; else its files joined into one under `work_dir`."""
    files = csv_files(path)
    return path if len(files) <= 1 else concatenate(files, work_dir / "train.csv")
