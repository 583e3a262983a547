"""Raw customer records -> the model's feature vectors as a file, for a SageMaker Batch Transform.

A Batch Transform splits its input at lines and sends each mini-batch to the container's
/invocations: a CSV header would reach one mini-batch only, so the raw table (header, quoted text,
categories) cannot go to the container as it is. The records are encoded here, client-side, by the
very code `kubesage score` uses (kubesage.churn.scoring: the model's feature schema, Arrow readers,
`encode_chunk`), into one line of numbers per customer (no header, no label: SageMaker XGBoost's
`text/csv`), and the id columns into a file of their own, line for line. Bad rows are found here,
before any instance is paid for, and reported with their line, column and value as `kubesage score`
reports them (or written to a rejects file and left out of both files).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kubesage.churn import scoring
from kubesage.churn.schema import FeatureSchema
from kubesage.errors import DataError, SchemaError

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class FeatureFiles:
    """What `write_feature_vectors` wrote: the vectors, the ids (same order), and the row counts."""

    features: Path
    ids: Path
    id_columns: tuple[str, ...]
    rows_read: int
    rows_written: int
    rejects: tuple[scoring.BadRow, ...]
    seconds: float


def write_feature_vectors(
    input_path: Path,
    features_path: Path,
    ids_path: Path,
    schema: FeatureSchema,
    *,
    id_columns: Sequence[str] | None = None,
    rejects_path: Path | None = None,
    chunk_rows: int = scoring.DEFAULT_CHUNK_ROWS,
    max_rejects: int = scoring.DEFAULT_MAX_REJECTS,
) -> FeatureFiles:
    """Encode every good row of `input_path` (CSV with a header, or Parquet) into `features_path`.

    `ids_path` gets the id columns (a CSV with a header; default: the schema's dropped columns the
    input has, as `kubesage score`) of the same rows in the same order, so the transform's answers,
    one line per input line, join back to them by position. Without `rejects_path` the first bad
    row fails (DataError naming its line, column and value); with it, bad rows are listed there.
    """
    kind = scoring.input_format(input_path)
    try:
        return _write(input_path, features_path, ids_path, schema, kind, id_columns, rejects_path, chunk_rows,
                      max_rejects, typed=True)  # fmt: skip
    except scoring.NotTypedError:
        # A value the typed reader refused: read again as text, where each value is checked (as score_file does).
        return _write(input_path, features_path, ids_path, schema, kind, id_columns, rejects_path, chunk_rows,
                      max_rejects, typed=False)  # fmt: skip


def _write(
    input_path: Path,
    features_path: Path,
    ids_path: Path,
    schema: FeatureSchema,
    kind: str,
    id_columns: Sequence[str] | None,
    rejects_path: Path | None,
    chunk_rows: int,
    max_rejects: int,
    *,
    typed: bool,
) -> FeatureFiles:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    started = time.perf_counter()
    header = scoring.input_header(input_path, kind)
    ids = scoring.id_columns_to_keep(input_path, header, schema, id_columns)
    plan = scoring.ReadPlan(schema, typed, ids)
    invalid_rows: list[str] = []
    pending: list[tuple[int, str, str, str]] = []
    rows_read = rows_written = 0
    names = [f"f{i}" for i in range(schema.n_features)]
    features_path.parent.mkdir(parents=True, exist_ok=True)
    ids_path.parent.mkdir(parents=True, exist_ok=True)
    vectors: Any = None
    id_writer: Any = None
    try:
        vectors = pa_csv.CSVWriter(
            features_path,
            pa.schema([(n, pa.float32()) for n in names]),
            write_options=pa_csv.WriteOptions(include_header=False),
        )
        for batch in scoring.read_batches(input_path, kind, chunk_rows, invalid_rows, plan, header):
            try:
                encoded = scoring.encode_chunk(batch, schema)
            except SchemaError as exc:
                raise SchemaError(f"{input_path}: {exc}") from exc
            if encoded.bad:
                pending.extend((rows_read + row, col, value, reason) for row, col, value, reason in encoded.bad)
                if rejects_path is None or len(pending) > max_rejects:
                    break
            good = encoded.features if not encoded.bad else encoded.features[encoded.good]
            kept = batch if not encoded.bad else batch.filter(encoded.good)
            # Arrow writes each float32 in its shortest round-trip form: the container reads back the
            # very values `kubesage score` predicts on.
            vectors.write_table(pa.Table.from_arrays([pa.array(good[:, i]) for i in range(good.shape[1])], names))
            if ids:
                kept_ids = pa.Table.from_arrays([scoring.plain_column(kept.column(c)) for c in ids], names=ids)
                if id_writer is None:
                    id_writer = pa_csv.CSVWriter(
                        ids_path, kept_ids.schema, write_options=pa_csv.WriteOptions(quoting_style="needed")
                    )
                id_writer.write_table(kept_ids)
            rows_read += batch.num_rows
            rows_written += len(good)
            if invalid_rows and rejects_path is None:
                break
    finally:
        for writer in (vectors, id_writer):
            if writer is not None:
                writer.close()
    located: list[scoring.BadRow] = []
    if pending or invalid_rows:
        located = scoring.settle_bad_rows(
            input_path, kind, pending, invalid_rows, rejects_path, max_rejects, [features_path, ids_path]
        )
        rows_read += len(invalid_rows)
    if rows_written == 0:
        raise DataError(f"{input_path} has no rows to score; a Batch Transform needs at least one")
    return FeatureFiles(
        features=features_path,
        ids=ids_path,
        id_columns=tuple(ids),
        rows_read=rows_read,
        rows_written=rows_written,
        rejects=tuple(located),
        seconds=time.perf_counter() - started,
    )


def id_table(ids_path: Path, id_columns: Sequence[str]) -> pa.Table:
    """The ids file back, every column as text (a phone number stays '382-4657', a code '0415')."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    return pa_csv.read_csv(
        ids_path,
        convert_options=pa_csv.ConvertOptions(
            column_types={c: pa.string() for c in id_columns}, strings_can_be_null=False, null_values=[]
        ),
    )


def read_probabilities(path: Path) -> np.ndarray:
    """A transform's output file: one probability per line (blank lines, which line assembly may add
    between mini-batches, skipped), as float64."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=["p"]),
            convert_options=pa_csv.ConvertOptions(column_types={"p": pa.float64()}),
        )
    except pa.ArrowInvalid as exc:
        raise DataError(
            f"{path} is not one probability per line, as the kubesage image answers text/csv: {exc}"
        ) from exc
    return np.asarray(table.column("p").to_numpy(), dtype=np.float64)


def write_scores(files: FeatureFiles, probabilities: np.ndarray, output_path: Path, threshold: float) -> int:
    """`kubesage score`'s output (id columns, churn_probability, churn at `threshold`) from the ids
    written with the vectors and the transform's answers, joined by line; the number at or above."""
    if len(probabilities) != files.rows_written:
        raise DataError(
            f"the transform answered {len(probabilities):,} lines for {files.rows_written:,} input lines; "
            "SageMaker's line assembly gives one answer per line, so the job's output is incomplete"
        )
    import pyarrow as pa

    columns: list[pa.Array] = []
    if files.id_columns:
        ids = id_table(files.ids, files.id_columns)
        if ids.num_rows != files.rows_written:
            raise DataError(f"{files.ids} holds {ids.num_rows:,} ids for {files.rows_written:,} feature vectors")
        columns = [ids.column(c).combine_chunks() for c in files.id_columns]
    decisions = (probabilities >= threshold).astype(np.int8)
    with scoring.ScoresWriter(output_path, files.id_columns) as writer:
        writer.write(pa.RecordBatch.from_arrays(columns, names=list(files.id_columns)), probabilities, decisions)
    return int(decisions.sum())
