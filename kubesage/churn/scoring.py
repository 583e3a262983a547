"""Batch scoring: raw customer records (CSV or Parquet) -> one churn probability per customer, in chunks.

The same feature rules as training and serving (kubesage.churn.features: `category_key`'s stripped
category names, `parse_number`'s numbers, median imputation, (value - mean) / std in float64), but
vectorised over Arrow columns instead of a Python loop per value, so a whole customer base scores at
millions of rows a second in bounded memory (one chunk of raw columns and one feature matrix at a
time). Probabilities come from the daal4py model evaluate uses, through oneDAL's single-precision
path (`Daal4pyModel.float32_probabilities`: the same split decisions as XGBoost and evaluate, on the
float32 block as encoded, no float64 copy), so they equal evaluate's within 2e-7 on the same rows
(1.9e-7 over 10M generated rows).

Where the time goes is measured per stage by bench/bench_scoring.py; what it led to: the input is
memory-mapped; a CSV's numbers are parsed by Arrow's reader (a file with a value Arrow refuses is
read again as text, where `parse_number` decides) and its categories read as dictionaries, so the
category rules run per distinct value; a reader thread parses ahead, two threads encode and predict
two chunks at once, a writer thread formats the scores.

A bad value (a numeric field that is not a finite number) or a row with the wrong number of fields
is never dropped silently: it either fails the job, naming the line, column and value, or goes to a
rejects file with those three, and the summary counts it. Unknown categories and empty numeric
fields are not errors: they encode as all zeros and as the training median, as everywhere else.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kubesage.churn.schema import FeatureSchema, parse_number, shorten
from kubesage.errors import DataError, SchemaError

if TYPE_CHECKING:
    import pyarrow as pa

    from kubesage.churn.modelio import Daal4pyModel

PROBABILITY_COLUMN = "churn_probability"
DECISION_COLUMN = "churn"
DEFAULT_CHUNK_ROWS = 32_768
PARQUET_SUFFIXES = (".parquet", ".pq")  # an input or output with one of these names is Parquet
# About 150 bytes a raw churn row: blocks of this size give chunks near DEFAULT_CHUNK_ROWS.
_BYTES_PER_ROW = 160
DEFAULT_MAX_REJECTS = 100_000
_FIRST_DATA_LINE = 2  # the header is line 1


@dataclass(frozen=True)
class BadRow:
    """One rejected row: where it is (1-based line of a CSV, row of a Parquet file) and why."""

    line: int
    column: str
    value: str
    reason: str

    def describe(self, where: str) -> str:
        column = f", column '{self.column}'" if self.column else ""
        return f"{where} line {self.line}{column}: {self.value!r} {self.reason}"


@dataclass
class ScoreSummary:
    """What a scoring run did: rows read, scored and rejected, and how long it took."""

    rows_read: int = 0  # data rows; at the end every one, scored or rejected
    rows_scored: int = 0
    rows_rejected: int = 0
    positives: int = 0
    seconds: float = 0.0
    rejects: list[BadRow] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ScoringModel:
    """The model's own feature schema, its daal4py model and the decision threshold evaluate used."""

    schema: FeatureSchema
    model: Daal4pyModel
    threshold: float


@dataclass(frozen=True)
class EncodedChunk:
    """One chunk's feature matrix for its good rows, and the bad ones (row index within the chunk)."""

    features: np.ndarray  # float32, rows x features (a transposed view)
    good: np.ndarray  # bool mask over the chunk's rows
    bad: list[tuple[int, str, str, str]]  # (row in chunk, column, value, reason)


Progress = Callable[[ScoreSummary], None]


def is_parquet_name(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def input_format(path: Path) -> str:
    """'parquet' or 'csv', by the file's name (a .parquet/.pq suffix) or its magic bytes."""
    if is_parquet_name(path):
        return "parquet"
    with path.open("rb") as handle:
        return "parquet" if handle.read(4) == b"PAR1" else "csv"


def encode_chunk(batch: pa.RecordBatch, schema: FeatureSchema, buffer: np.ndarray | None = None) -> EncodedChunk:
    """The model's feature matrix for one chunk of raw columns, bad rows marked.

    With `buffer` (float32, at least as many rows as the chunk, `schema.n_features` columns) the
    matrix is its leading rows, overwritten: the next chunk may reuse it once this one is scored.
    Fresh pages for every chunk cost the kernel more than zeroing memory already mapped.

    Equal, value for value, to `xgboost_view(transform_columns(...))` on the same rows (tested): the
    one-hot blocks are exact and the numeric columns are the same float64 operations, rounded to
    float32 as XGBoost (and so daal4py through xgboost_view) sees them.
    """
    n_rows = batch.num_rows
    names = set(batch.schema.names)
    missing = [col for col in schema.input_columns if col not in names]
    if missing:
        raise SchemaError(
            f"the input has no column(s) {', '.join(repr(m) for m in missing)}; its header must name "
            f"the {len(schema.input_columns)} raw columns the model's feature schema reads"
        )
    # Row-major float32: the C-contiguous block oneDAL's single-precision path reads as is.
    if buffer is not None and buffer.shape[0] >= n_rows and buffer.shape[1:] == (schema.n_features,):
        out = buffer[:n_rows]
        out.fill(0.0)
    else:
        out = np.zeros((n_rows, schema.n_features), dtype=np.float32)
    good = np.ones(n_rows, dtype=bool)
    bad: list[tuple[int, str, str, str]] = []
    offset = 0
    rows = np.arange(n_rows)
    for col, cats in schema.categories.items():
        positions = _category_positions(batch.column(col), cats)
        known = positions >= 0
        if known.all():
            out[rows, offset + positions] = 1.0
        else:
            out[rows[known], offset + positions[known]] = 1.0
        offset += len(cats)
    for col, stats in schema.numeric.items():
        values, col_bad = _numbers(batch.column(col), col)
        for row, value, reason in col_bad:
            good[row] = False
            bad.append((row, col, value, reason))
        scaled = (values - stats.mean) / stats.std  # float64 arithmetic, then rounded to float32
        missing_rows = np.isnan(values)
        if missing_rows.any():
            scaled[missing_rows] = (stats.median - stats.mean) / stats.std  # median imputation
        out[:, offset] = scaled
        offset += 1
    return EncodedChunk(features=out, good=good, bad=sorted(bad))


def _category_positions(column: pa.Array, cats: Sequence[str]) -> np.ndarray:
    """Each value's index in `cats` (-1: missing or unknown), by `category_key`'s rules.

    The rules run on the column's distinct values only (a dictionary: the CSV reader's, or one made
    here), then one lookup per row: a few dozen string operations per chunk instead of one per row.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    distinct = _distinct_positions(column.dictionary, cats)
    lookup = np.append(distinct, -1)  # a null index (a missing value) looks up the last slot
    indices = column.indices.fill_null(len(distinct)) if column.null_count else column.indices
    return lookup[np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.intp)]


def _distinct_positions(column: pa.Array, cats: Sequence[str]) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(column.type):
        # category_key: 415.0 names the category "415"; a non-integral float keeps its text.
        integral = pc.equal(column, pc.floor(column))
        as_int = pc.cast(pc.if_else(integral, column, None), pa.int64(), safe=False)
        column = pc.coalesce(pc.cast(as_int, pa.string()), pc.cast(column, pa.string()))
    elif not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        column = pc.cast(column, pa.string())
    keys = pc.utf8_trim_whitespace(column)
    index = pc.index_in(keys, value_set=pa.array(list(cats), type=keys.type))
    return np.asarray(index.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _numbers(column: pa.Array, col: str) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
    """One numeric column as float64 (NaN: missing) and its bad values (row, text, reason)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            parsed = pc.cast(column, pa.float64())  # a clean column: one pass
        except pa.ArrowInvalid:
            text = pc.utf8_trim_whitespace(column)
            text = pc.if_else(pc.equal(pc.utf8_length(text), 0), None, text)  # empty: missing
            try:
                parsed = pc.cast(text, pa.float64())
            except pa.ArrowInvalid:
                # Arrow's parser refused something: Python's float() rules (parse_number) decide, per value.
                return _numbers_slowly(column.to_pylist(), col)
    elif pa.types.is_float64(column.type):
        parsed = column
    else:
        try:
            parsed = pc.cast(column, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(f"column '{col}' has type {column.type}, expected numbers: {exc}") from exc
    # A float64 column's nulls come out as NaN (a copy only when there are nulls).
    values = np.asarray(parsed.to_numpy(zero_copy_only=False), dtype=np.float64)
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size == 0:
        return values, []
    shown = column.take(pa.array(infinite)).to_pylist()
    return values, [(int(r), str(v), "is not a finite number") for r, v in zip(infinite, shown, strict=True)]


def _numbers_slowly(values: list[Any], col: str) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
    out = np.empty(len(values), dtype=np.float64)
    bad: list[tuple[int, str, str]] = []
    for row, value in enumerate(values):
        try:
            out[row] = parse_number(col, value, row)
        except SchemaError:
            out[row] = math.nan
            bad.append((row, str(value), "is not a number"))
    return out, bad


def probabilities(model: ScoringModel, features: np.ndarray) -> np.ndarray:
    # float64 out, as evaluate's: the scores file's column type does not depend on the engine's precision.
    return model.model.float32_probabilities(features).astype(np.float64)


def score_file(
    input_path: Path,
    output_path: Path,
    model: ScoringModel,
    *,
    id_columns: Sequence[str] | None = None,
    rejects_path: Path | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_rejects: int = DEFAULT_MAX_REJECTS,
    progress: Progress | None = None,
) -> ScoreSummary:
    """Score every row of `input_path` (CSV with a header, or Parquet) into `output_path`.

    The output (CSV, or Parquet when its name ends in .parquet) has the id columns, then
    `churn_probability` and `churn` (1 at or above the model's threshold, else 0), one row per good
    input row, in input order. Without `rejects_path` the first bad row fails the job (DataError
    naming its line, column and value); with it, bad rows are written there and the rest scored.
    """
    kind = input_format(input_path)
    try:
        return _score_pass(
            input_path, output_path, model, kind, id_columns, rejects_path, chunk_rows, max_rejects, progress, True
        )
    except NotTypedError:
        # A value the typed reader refused (text in a numeric column): read again as text, where
        # every value is checked and a bad one located. Only files with such values pay for this.
        return _score_pass(
            input_path, output_path, model, kind, id_columns, rejects_path, chunk_rows, max_rejects, progress, False
        )


def read_chunks(
    input_path: Path, schema: FeatureSchema, ids: Sequence[str], chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[pa.RecordBatch]:
    """The raw chunks `score_file` reads from a clean file (typed, the model's columns and `ids`),
    without scoring them: for measuring the read apart from the rest (bench/bench_scoring.py)."""
    kind = input_format(input_path)
    header = input_header(input_path, kind)
    yield from read_batches(input_path, kind, chunk_rows, [], ReadPlan(schema, True, ids), header)


class NotTypedError(Exception):
    """The typed CSV reader met a value its column type cannot hold."""


def _score_pass(
    input_path: Path,
    output_path: Path,
    model: ScoringModel,
    kind: str,
    id_columns: Sequence[str] | None,
    rejects_path: Path | None,
    chunk_rows: int,
    max_rejects: int,
    progress: Progress | None,
    typed: bool,
) -> ScoreSummary:
    summary = ScoreSummary()
    started = time.perf_counter()
    pending: list[tuple[int, str, str, str]] = []  # (data row index, column, value, reason)
    invalid_rows: list[str] = []  # rows with the wrong number of fields (CSV), their text
    header = input_header(input_path, kind)
    ids = id_columns_to_keep(input_path, header, model.schema, id_columns)
    plan = ReadPlan(model.schema, typed, ids)
    batches = _prefetched(read_batches(input_path, kind, chunk_rows, invalid_rows, plan, header))
    with ScoresWriter(output_path, ids) as writer:
        for batch, encoded, probs in _scored(batches, model, chunk_rows, input_path):
            base = summary.rows_read
            if encoded.bad:
                pending.extend((base + row, col, value, reason) for row, col, value, reason in encoded.bad)
                if rejects_path is None or len(pending) > max_rejects:
                    break
            decisions = (probs >= model.threshold).astype(np.int8)
            kept = batch if not encoded.bad else batch.filter(encoded.good)
            writer.write(kept, probs, decisions)
            summary.rows_read += batch.num_rows
            summary.rows_scored += len(probs)
            summary.positives += int(decisions.sum())
            summary.seconds = time.perf_counter() - started
            if invalid_rows and rejects_path is None:
                break
            if progress is not None:
                progress(summary)
    if pending or invalid_rows:
        located = settle_bad_rows(input_path, kind, pending, invalid_rows, rejects_path, max_rejects, [output_path])
        summary.rejects = located
        summary.rows_rejected = len(located)
        summary.rows_read += len(invalid_rows)  # the reader skipped these; a bad value's row was read
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass(frozen=True)
class ReadPlan:
    """Which columns are read (the model's and the ids), and which the reader converts itself."""

    schema: FeatureSchema
    typed: bool
    ids: Sequence[str]

    def columns(self, header: Sequence[str]) -> list[str]:
        wanted = {*self.schema.input_columns, *self.ids}
        return [name for name in header if name in wanted]  # a missing one is named by encode_chunk

    def csv_types(self, header: Sequence[str]) -> dict[str, pa.DataType]:
        import pyarrow as pa

        types = {name: pa.string() for name in header}
        if self.typed:
            # Numbers parsed by the reader's threads; categories as a dictionary, so the category rules
            # run once per distinct value. Arrow's number syntax is a subset of Python's float():
            # what it refuses is read again as text (NotTypedError) and judged by parse_number.
            types.update({name: pa.float64() for name in self.schema.numeric if name in types})
            types.update(
                {name: pa.dictionary(pa.int32(), pa.string()) for name in self.schema.categories if name in types}
            )
        return types


# Chunks encoded and predicted at once: a chunk's numpy, Arrow and oneDAL work runs outside the
# GIL, so two chunks in flight keep both of this machine's cores busy while the reader and writer
# threads parse and format (measured: the loop alone was one core's work at a time).
SCORING_THREADS = 2


def _scored(
    batches: Iterator[pa.RecordBatch], model: ScoringModel, chunk_rows: int, source: Path
) -> Iterator[tuple[pa.RecordBatch, EncodedChunk, np.ndarray]]:
    """(chunk, its encoding, its good rows' probabilities), in input order, `SCORING_THREADS` chunks at a time."""
    import threading
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    local = threading.local()

    def score(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, EncodedChunk, np.ndarray]:
        buffer = getattr(local, "buffer", None)
        if buffer is None or buffer.shape[0] < batch.num_rows:  # a CSV block can hold more rows than asked for
            buffer = local.buffer = np.empty((max(batch.num_rows, chunk_rows), model.schema.n_features), np.float32)
        try:
            encoded = encode_chunk(batch, model.schema, buffer)
        except SchemaError as exc:
            raise SchemaError(f"{source}: {exc}") from exc
        features = encoded.features if not encoded.bad else encoded.features[encoded.good]
        return batch, encoded, probabilities(model, features)  # the buffer is free again once this returns

    with ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="kubesage-score") as pool:
        in_flight: deque[Future[tuple[pa.RecordBatch, EncodedChunk, np.ndarray]]] = deque()
        try:
            for batch in batches:
                in_flight.append(pool.submit(score, batch))
                if len(in_flight) > SCORING_THREADS:
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()
        finally:
            for future in in_flight:  # the consumer stopped early (a bad row): drop what is queued
                future.cancel()


def _prefetched(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """Read the next chunks in a thread while this one is encoded and scored: Arrow's reader releases
    the GIL, so parsing overlaps the numpy and daal4py work (the two take about the same time)."""
    import queue
    import threading

    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def pump() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                slots.put(batch)
            slots.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            slots.put(exc)

    thread = threading.Thread(target=pump, name="kubesage-score-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a reader waiting on a full queue, then let it end
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def id_columns_to_keep(
    source: Path, header: Sequence[str], schema: FeatureSchema, id_columns: Sequence[str] | None
) -> list[str]:
    """The columns copied to the output beside the scores: those asked for, which must exist, or by
    default the columns the model's schema drops that the input has (the customer's id, phone, ...)."""
    ids = list(id_columns) if id_columns is not None else [c for c in schema.dropped_columns if c in header]
    missing = [c for c in ids if c not in header]
    if missing:
        raise DataError(
            f"{source} has no id column(s) {', '.join(repr(m) for m in missing)}; "
            f"pass --id-column with one of: {', '.join(header)}"
        )
    return ids


def settle_bad_rows(
    input_path: Path,
    kind: str,
    pending: list[tuple[int, str, str, str]],
    invalid_rows: list[str],
    rejects_path: Path | None,
    max_rejects: int,
    partial_outputs: Sequence[Path],
) -> list[BadRow]:
    """The bad rows, located by line; they fail the job (its partial outputs removed) unless a
    rejects file takes them, at most `max_rejects` of them."""
    located = _locate(input_path, kind, pending, invalid_rows)
    if rejects_path is None or len(located) > max_rejects:
        for path in partial_outputs:
            path.unlink(missing_ok=True)
        extra = (
            f" ({len(located)} bad rows, more than --max-rejects {max_rejects})"
            if rejects_path is not None
            else "; fix or blank the value, or pass --rejects FILE to score the rest and list the bad rows there"
        )
        raise DataError(located[0].describe(str(input_path)) + extra)
    _write_rejects(rejects_path, located)
    return located


def input_header(path: Path, kind: str) -> list[str]:
    if kind == "csv":
        return _csv_header(path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return list(pq.ParquetFile(path).schema_arrow.names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path} is not a readable Parquet file: {exc}") from exc


def read_batches(
    path: Path, kind: str, chunk_rows: int, invalid_rows: list[str], plan: ReadPlan, header: Sequence[str]
) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if kind == "parquet":
        try:
            source = pq.ParquetFile(path)
            # Text categories straight from Parquet's dictionary pages: their rules run per distinct value.
            text = [
                f.name for f in source.schema_arrow if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            ]
            dictionaries = [name for name in plan.schema.categories if name in text]
            # Memory-mapped: column chunks are read from the page cache in place; read into fresh
            # buffers, the kernel spent more time zeroing their pages than Arrow spent decoding.
            source = pq.ParquetFile(path, read_dictionary=dictionaries or None, memory_map=True)
            yield from source.iter_batches(batch_size=chunk_rows, columns=plan.columns(header))
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{path} is not a readable Parquet file: {exc}") from exc
        return

    def on_invalid(row: Any) -> str:
        invalid_rows.append(str(row.text))
        return "skip"

    try:
        # Memory-mapped for the reason Parquet is (above): a tenth of the system time.
        source = pa.memory_map(str(path))
        reader = pa_csv.open_csv(
            source,
            read_options=pa_csv.ReadOptions(block_size=max(chunk_rows * _BYTES_PER_ROW, 1 << 16)),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid),
            # Only an empty field is missing (parse_number's rule), not Arrow's "NA", "NULL", ...
            convert_options=pa_csv.ConvertOptions(
                column_types=plan.csv_types(header),
                include_columns=plan.columns(header),
                strings_can_be_null=False,
                null_values=[""],
            ),
        )
        with source:
            for batch in reader:
                if batch.num_rows:
                    yield batch
    except pa.ArrowInvalid as exc:
        if plan.typed:
            raise NotTypedError(str(exc)) from exc
        raise DataError(f"{path} is not a readable CSV: {exc}") from exc


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        try:
            header = next(csv.reader(handle))
        except StopIteration:
            raise DataError(f"{path} is empty; expected a CSV with a header row") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{path} is not UTF-8 text ({exc.reason}); is it a CSV?") from exc
    return header


def _locate(path: Path, kind: str, pending: list[tuple[int, str, str, str]], invalid_rows: list[str]) -> list[BadRow]:
    """Line numbers for the bad rows: Arrow reports none, so one pass of Python's csv reader finds
    each data row's physical line (blank lines and quoted line breaks counted as Arrow counts them)."""
    if kind == "parquet":
        return [BadRow(index + 1, col, shorten(value), reason) for index, col, value, reason in pending]
    wanted = {index: (col, value, reason) for index, col, value, reason in pending}
    found: list[BadRow] = []
    invalid_left = len(invalid_rows)
    last_wanted = max(wanted, default=-1)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        n_fields = len(next(reader))
        index = 0
        for fields in reader:
            if not fields:
                continue  # a blank line: Arrow skips it too
            if len(fields) != n_fields:
                found.append(
                    BadRow(
                        reader.line_num, "", shorten(",".join(fields)), f"has {len(fields)} fields, expected {n_fields}"
                    )
                )
                invalid_left -= 1
            else:
                hit = wanted.get(index)
                if hit is not None:
                    found.append(BadRow(reader.line_num, hit[0], shorten(hit[1]), hit[2]))
                index += 1
            if index > last_wanted and invalid_left <= 0:
                break
    return sorted(found, key=lambda bad: (bad.line, bad.column))


def _write_rejects(path: Path, rejects: list[BadRow]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "column", "value", "reason"])
        for bad in rejects:
            writer.writerow([bad.line, bad.column, bad.value, bad.reason])


class ScoresWriter:
    """The scores file, CSV or Parquet by its name, opened at the first chunk and written by a thread.

    Formatting and writing a chunk (Arrow's CSV or Parquet writer, outside the GIL) overlaps the next
    chunk's encoding and prediction; at most `depth` chunks wait, so memory stays bounded.
    """

    def __init__(self, path: Path, ids: Sequence[str], depth: int = 2) -> None:
        import queue
        import threading

        self.path = path
        self.ids = list(ids)
        self._is_parquet = is_parquet_name(path)
        self._writer: Any = None
        self._slots: queue.Queue[pa.Table | None] = queue.Queue(maxsize=depth)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="kubesage-score-writer", daemon=True)

    def __enter__(self) -> ScoresWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def write(self, batch: pa.RecordBatch, probs: np.ndarray, decisions: np.ndarray) -> None:
        import pyarrow as pa

        if self._failure is not None:
            raise self._failure
        columns = [plain_column(batch.column(c)) for c in self.ids] + [
            pa.array(self._shown(probs)),
            pa.array(decisions),
        ]
        self._slots.put(pa.Table.from_arrays(columns, names=[*self.ids, PROBABILITY_COLUMN, DECISION_COLUMN]))

    def _shown(self, probs: np.ndarray) -> np.ndarray:
        """CSV is text: the probability oneDAL computed in float32, in float32's shortest form (at most 9
        significant digits; it reads back as the same float32), where float64's text adds 8 digits that only
        restate that rounding. A third less to format and write. Parquet keeps float64, evaluate's type."""
        return probs if self._is_parquet else probs.astype(np.float32)

    def _drain(self) -> None:
        while (table := self._slots.get()) is not None:
            if self._failure is not None:
                continue  # keep taking chunks, so the scoring thread never waits on a full queue
            try:
                if self._writer is None:
                    self._writer = self._open(table.schema)
                self._writer.write_table(table)
            except BaseException as exc:  # raised in the scoring thread, at its next write or at exit
                self._failure = exc

    def _open(self, schema: pa.Schema) -> Any:
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq

        if self._is_parquet:
            return pq.ParquetWriter(self.path, schema)
        return pa_csv.CSVWriter(self.path, schema, write_options=pa_csv.WriteOptions(quoting_style="needed"))

    def __exit__(self, *exc: object) -> None:
        self._slots.put(None)
        self._thread.join()
        if self._writer is not None:
            self._writer.close()
        if self._failure is not None and exc[0] is None:
            raise self._failure


def plain_column(column: pa.Array) -> pa.Array:
    """An id column as its values: a category read as a dictionary is written as its text."""
    import pyarrow as pa

    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def load_scoring_model(model_dir: Path, threshold: float) -> ScoringModel:
    """The model directory's booster (converted to daal4py once) and feature schema, at `threshold`."""
    from kubesage.churn.modelio import Daal4pyModel, load_booster, load_schema_if_present

    schema = load_schema_if_present(model_dir)
    if schema is None:
        raise SchemaError(
            f"the model in {model_dir} has no feature_schema.json, so its raw-record features are unknown; "
            "score a model registered by kubesage's pipeline"
        )
    if not 0.0 < threshold < 1.0:
        raise DataError(f"decision threshold {threshold} must be between 0 and 1")
    return ScoringModel(schema=schema, model=Daal4pyModel.from_booster(load_booster(model_dir)), threshold=threshold)
