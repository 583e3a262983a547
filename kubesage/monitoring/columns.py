"""The columns drift is measured on: the raw churn record without `Phone` (personal, unused) and the label."""

from __future__ import annotations

from kubesage.churn.schema import CATEGORICAL_COLUMNS, DROPPED_COLUMNS, LABEL_COLUMN, RAW_COLUMNS

MONITORED_COLUMNS: tuple[str, ...] = tuple(c for c in RAW_COLUMNS if c not in DROPPED_COLUMNS and c != LABEL_COLUMN)
# Model Monitor infers types from the data, so Area Code (415, 510, ...) would be Integral there;
# kubesage takes its schema's word: the model one-hot encodes it, so it drifts as a category.
STRING_COLUMNS: frozenset[str] = frozenset(CATEGORICAL_COLUMNS)
