"""A synthetic customer-churn dataset with the seed dataset's 21-column schema.

The demo trains on this instead of downloading the seed's file. Marginal distributions follow the
real 5,000-row file (value sets, ranges, class means and spreads); the label signal sits in the same
columns (Day Mins, Day/Eve/Night Charge, Eve Mins, Eve Calls, Night Calls, VMail Message) with
similar class separations, so a model trained on it scores a realistic ROC AUC, not a perfect one.
A shared per-row "usage" factor correlates the signal columns within a class, which keeps the
classes overlapping the way the real data's correlated columns do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kubesage.churn.features import LABEL_COLUMN, NEGATIVE_LABEL, POSITIVE_LABEL, RAW_COLUMNS
from kubesage.errors import DataError

MIN_ROWS = 10
CHUNK_ROWS = 500_000  # rows generated and written at a time: about 100 MB of table

STATES: tuple[str, ...] = (
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID", "IL", "IN", "KS",
    "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE", "NH", "NJ", "NM", "NV",
    "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VT", "WA", "WI", "WV", "WY",
)  # fmt: skip

# The 33 area codes of the seed file with their relative frequencies there (about 100 rows = 1).
AREA_CODES: dict[int, int] = {
    657: 2, 658: 1, 659: 1, 676: 1, 677: 1, 678: 1, 686: 2, 707: 1, 716: 1, 727: 1, 736: 2,
    737: 2, 758: 2, 766: 1, 776: 3, 777: 3, 778: 2, 786: 3, 787: 3, 788: 2, 797: 2, 798: 1,
    806: 1, 827: 1, 836: 2, 847: 1, 848: 1, 858: 1, 866: 1, 868: 1, 876: 1, 877: 1, 878: 2,
}  # fmt: skip


@dataclass(frozen=True)
class ClassShift:
    """Mean and spread of one continuous column for churners and for everyone else."""

    churn_mean: float
    churn_std: float
    stay_mean: float
    stay_std: float
    upper: float
    lower: float = 0.0


# Class means and standard deviations measured on the seed file (see research/seed_repo.md §7).
CONTINUOUS: dict[str, ClassShift] = {
    "Day Mins": ClassShift(7.5, 2.95, 3.5, 2.6, 16.9),
    "Day Charge": ClassShift(6.0, 2.0, 4.05, 1.95, 12.7),
    "Eve Mins": ClassShift(5.95, 1.7, 4.1, 2.15, 13.6),
    "Eve Charge": ClassShift(6.0, 1.9, 4.05, 1.9, 12.3),
    "Night Mins": ClassShift(4.0, 1.5, 4.0, 1.75, 10.2),
    "Night Charge": ClassShift(6.0, 1.25, 4.0, 1.6, 10.4),
    "Intl Mins": ClassShift(5.03, 1.03, 5.03, 1.0, 8.4, lower=1.65),
    "Intl Charge": ClassShift(4.6, 2.5, 4.05, 2.35, 14.2),
}
# How strongly each continuous column follows the shared usage factor (sign = direction of churn).
USAGE_LOADING = 0.45
USAGE_COLUMNS = ("Day Mins", "Day Charge", "Eve Mins", "Eve Charge", "Night Charge")
# Night Calls and VMail Message come in steps of 50 and 100: class means of the step count.
NIGHT_CALL_STEPS = ClassShift(3.5, 1.55, 5.5, 1.75, 11)
VMAIL_STEPS = ClassShift(3.6, 1.6, 5.6, 1.9, 13)
VMAIL_ZERO_WITH_PLAN = 0.025
# Eve Calls is over-dispersed (variance about twice the mean): negative binomial (mean, variance).
EVE_CALLS = {"churn": (2.6, 4.9), "stay": (3.7, 7.3)}
EVE_CALLS_MAX = 14


def generate_churn(rows: int, seed: int) -> pd.DataFrame:
    """A synthetic churn table: the 21 raw columns as strings and numbers, half of the rows churners.

    The same (rows, seed) always gives the same table. Numeric columns are float or int as in the
    seed file; Area Code is an int, as it is written there.
    """
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < MIN_ROWS:
        raise DataError(f"rows must be an integer >= {MIN_ROWS} (got {rows!r}); both classes need examples")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer (got {seed!r})")
    return _generate(int(rows), np.random.default_rng(seed))


def _generate(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    churn = rng.permutation(np.arange(rows) < rows // 2)
    usage = rng.standard_normal(rows)  # one per-row factor shared by the usage columns

    data: dict[str, object] = {
        "State": rng.choice(np.array(STATES), size=rows),
        "Account Length": rng.integers(1, 201, size=rows),
        "Area Code": rng.choice(np.array(list(AREA_CODES)), size=rows, p=_normalised(list(AREA_CODES.values()))),
        "Phone": _phones(rng, rows),
        "Int'l Plan": rng.choice(np.array(["yes", "no"]), size=rows),
    }
    vmail_plan = rng.random(rows) < 0.5
    data["VMail Plan"] = np.where(vmail_plan, "yes", "no")
    vmail_steps = _stepped(rng, VMAIL_STEPS, churn, lower=1)
    no_message = ~vmail_plan | (rng.random(rows) < VMAIL_ZERO_WITH_PLAN)
    data["VMail Message"] = np.where(no_message, 0, vmail_steps * 100)
    for col, shift in CONTINUOUS.items():
        loading = USAGE_LOADING if col in USAGE_COLUMNS else 0.0
        data[col] = _continuous(rng, shift, churn, usage, loading)
    data["Day Calls"] = rng.binomial(10, 0.35, size=rows)
    data["Eve Calls"] = _eve_calls(rng, churn)
    data["Night Calls"] = _stepped(rng, NIGHT_CALL_STEPS, churn, lower=0) * 50
    data["Intl Calls"] = rng.binomial(12, 0.455, size=rows)
    data["CustServ Calls"] = rng.binomial(13, 0.423, size=rows)
    data[LABEL_COLUMN] = np.where(churn, POSITIVE_LABEL, NEGATIVE_LABEL)
    return pd.DataFrame({col: data[col] for col in RAW_COLUMNS})


def iter_churn_chunks(rows: int, seed: int, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The synthetic table in chunks of at most `chunk_rows` rows, so no more than one is in memory.

    The first chunk is `generate_churn(its rows, seed)`; chunk k draws from the seed sequence
    (seed, k). Chunks are of near-equal size (never below MIN_ROWS), each half churners.
    """
    if isinstance(chunk_rows, bool) or chunk_rows < MIN_ROWS:
        raise DataError(f"chunk_rows must be >= {MIN_ROWS} (got {chunk_rows!r})")
    first = generate_churn(rows, seed) if rows <= chunk_rows else None
    if first is not None:
        yield first
        return
    n_chunks = -(-int(rows) // chunk_rows)
    sizes = [rows // n_chunks + (1 if k < rows % n_chunks else 0) for k in range(n_chunks)]
    for k, size in enumerate(sizes):
        yield generate_churn(size, seed) if k == 0 else _generate(size, np.random.default_rng([seed, k]))


def write_churn_csv(
    rows: int, seed: int, output: Path, chunk_rows: int = CHUNK_ROWS, progress: Callable[[int], None] | None = None
) -> Path:
    """Write the synthetic table as a CSV with a header row, like the seed's churn.txt, chunk by chunk.

    Memory stays at one chunk whatever `rows` is (10M rows: about 2 GB as one table). `progress`
    gets the rows written so far after each chunk.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    target = Path(output)
    if target.is_dir():
        raise DataError(f"output {target} is a directory; give a file name such as {target / 'churn.csv'}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".partial-{target.name}")  # no half-written file under the real name
    written = 0
    try:
        with partial.open("wb") as sink:
            # Arrow quotes the header's names whatever the style; churn.txt's header is bare.
            sink.write((",".join(RAW_COLUMNS) + "\n").encode("utf-8"))
            # No value of the generator needs quoting (Arrow refuses one that would), as in churn.txt.
            options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
            for frame in iter_churn_chunks(rows, seed, chunk_rows):
                pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), sink, write_options=options)
                written += len(frame)
                if progress is not None:
                    progress(written)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _normalised(weights: list[int]) -> np.ndarray:
    array = np.asarray(weights, dtype=np.float64)
    return array / array.sum()


def _continuous(
    rng: np.random.Generator, shift: ClassShift, churn: np.ndarray, usage: np.ndarray, loading: float
) -> np.ndarray:
    mean = np.where(churn, shift.churn_mean, shift.stay_mean)
    std = np.where(churn, shift.churn_std, shift.stay_std)
    noise = loading * usage + np.sqrt(1.0 - loading**2) * rng.standard_normal(len(churn))
    # Reflect at zero like the seed file (tiny positive minima, never negative), clip to its range.
    values = np.abs(mean + std * noise)
    return np.clip(values, shift.lower, shift.upper)


def _stepped(rng: np.random.Generator, shift: ClassShift, churn: np.ndarray, lower: int) -> np.ndarray:
    mean = np.where(churn, shift.churn_mean, shift.stay_mean)
    std = np.where(churn, shift.churn_std, shift.stay_std)
    steps = np.rint(mean + std * rng.standard_normal(len(churn)))
    return np.clip(steps, lower, shift.upper).astype(np.int64)


def _eve_calls(rng: np.random.Generator, churn: np.ndarray) -> np.ndarray:
    out = np.empty(len(churn), dtype=np.int64)
    for is_churn, (mean, variance) in ((True, EVE_CALLS["churn"]), (False, EVE_CALLS["stay"])):
        mask = churn == is_churn
        p = mean / variance
        n = mean * p / (1.0 - p)
        out[mask] = rng.negative_binomial(n, p, size=int(mask.sum()))
    return np.minimum(out, EVE_CALLS_MAX)


def _phones(rng: np.random.Generator, rows: int) -> list[str]:
    exchanges = rng.integers(100, 1000, size=rows)
    lines = rng.integers(0, 10000, size=rows)
    # "EEE-LLLL", built by Arrow: a Python f-string per row was half the generator's time at 10M rows.
    import pyarrow as pa
    import pyarrow.compute as pc

    exchange = pc.utf8_lpad(pc.cast(pa.array(exchanges), pa.string()), 3, "0")
    line = pc.utf8_lpad(pc.cast(pa.array(lines), pa.string()), 4, "0")
    return list(pc.binary_join_element_wise(exchange, line, "-").to_pylist())
