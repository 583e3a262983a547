"""The dataset format that flows between steps: SageMaker's built-in XGBoost CSV convention.

No header, the 0/1 label in the first column, then the features. Every backend (KFP local, KFP
cluster, SageMaker) and SageMaker's own XGBoost can read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kubesage.errors import DataError


@dataclass(frozen=True)
class LabelledFeatures:
    """A feature matrix with its 0/1 labels."""

    features: np.ndarray
    labels: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.labels.shape[0])


def write_labelled_csv(data: LabelledFeatures, path: str | Path) -> Path:
    """Write label then features, no header (write_labelled_csv_chunks with one chunk)."""
    return write_labelled_csv_chunks([data], path)


def write_labelled_csv_chunks(chunks: Iterable[LabelledFeatures], path: str | Path) -> Path:
    """Write the chunks one after another as one label-first CSV, holding one chunk at a time.

    Arrow writes each float64 as the shortest text that reads back as the same number (as repr
    does), so a model trained from the file sees the numbers in memory; at 1M rows it took a few
    seconds where numpy's savetxt ("%.17g") took about a minute.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    options = pa_csv.WriteOptions(include_header=False)
    with target.open("wb") as sink:
        for data in chunks:
            columns = [pa.array(data.labels.astype(np.int64))]
            columns += [pa.array(np.ascontiguousarray(data.features[:, i])) for i in range(data.features.shape[1])]
            table = pa.Table.from_arrays(columns, names=[f"c{i}" for i in range(len(columns))])
            pa_csv.write_csv(table, sink, write_options=options)
    return target


def read_labelled_csv(path: str | Path) -> LabelledFeatures:
    source = _single_csv(Path(path))
    table = _read_numbers(source)
    if table.shape[0] == 0:
        raise DataError(f"{source} has no rows")
    labels = table[:, 0]
    if not np.isin(labels, (0.0, 1.0)).all():
        raise DataError(f"{source}: the first column must hold 0/1 labels")
    return LabelledFeatures(features=np.ascontiguousarray(table[:, 1:]), labels=labels.astype(np.int64))


def _read_numbers(source: Path) -> np.ndarray:
    """Every field as float64 (Arrow's multi-threaded reader), shape (rows, columns)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    if source.stat().st_size == 0:
        return np.empty((0, 0))
    try:
        with source.open("rb") as handle:
            first = handle.readline()
        n_columns = first.count(b",") + 1
        names = [f"c{i}" for i in range(n_columns)]
        table = pa_csv.read_csv(
            source,
            read_options=pa_csv.ReadOptions(column_names=names),
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64())),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise DataError(f"{source} is not a numeric label-first CSV: {exc}") from exc
    if table.num_rows == 0:
        return np.empty((0, n_columns))
    matrix = np.empty((table.num_rows, n_columns), dtype=np.float64)
    for i, column in enumerate(table.columns):
        if column.null_count:
            raise DataError(f"{source} is not a numeric label-first CSV: column {i + 1} has an empty field")
        matrix[:, i] = column.to_numpy()
    return matrix


def _single_csv(path: Path) -> Path:
    """Accept a CSV file, or a directory holding exactly one (as a SageMaker channel does)."""
    if path.is_file():
        return path
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if len(files) == 1:
            return files[0]
        raise DataError(f"{path} must hold exactly one .csv file, found {len(files)}")
    raise DataError(f"dataset {path} does not exist")


# Rows per batch when a label-first CSV is streamed (about 50 MB of float64 features at 103 features).
STREAM_BLOCK_BYTES = 64 << 20


def iter_labelled_csv(path: str | Path) -> Iterator[LabelledFeatures]:
    """A label-first CSV in batches of rows (Arrow's streaming reader), never the whole matrix."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    source = _single_csv(Path(path))
    with source.open("rb") as handle:
        n_columns = handle.readline().count(b",") + 1
    names = [f"c{i}" for i in range(n_columns)]
    try:
        reader = pa_csv.open_csv(
            source,
            read_options=pa_csv.ReadOptions(column_names=names, block_size=STREAM_BLOCK_BYTES),
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64())),
        )
        for batch in reader:
            if batch.num_rows == 0:
                continue
            matrix = np.empty((batch.num_rows, n_columns), dtype=np.float64)
            for i, column in enumerate(batch.columns):
                if column.null_count:
                    raise DataError(f"{source} is not a numeric label-first CSV: column {i + 1} has an empty field")
                matrix[:, i] = column.to_numpy()
            labels = matrix[:, 0]
            if not np.isin(labels, (0.0, 1.0)).all():
                raise DataError(f"{source}: the first column must hold 0/1 labels")
            yield LabelledFeatures(features=np.ascontiguousarray(matrix[:, 1:]), labels=labels.astype(np.int64))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise DataError(f"{source} is not a numeric label-first CSV: {exc}") from exc
