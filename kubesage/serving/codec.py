"""A request body to a feature matrix, probabilities to a response body: the dispatch by media type.

The formats themselves are kubesage.serving.csv_body and kubesage.serving.json_body; the media
types and the Accept header's choice are kubesage.serving.negotiation.
"""

from __future__ import annotations

import numpy as np

from kubesage.churn.features import FeatureSchema
from kubesage.http_errors import RequestError, UnsupportedMediaTypeError
from kubesage.serving import csv_body, json_body
from kubesage.serving.limits import MAX_ROWS, too_many_rows
from kubesage.serving.negotiation import CSV, JSON, SUPPORTED_CONTENT_TYPES, media_type


def decode_request(body: bytes, content_type: str | None, n_features: int, schema: FeatureSchema | None) -> np.ndarray:
    """Parse a request body into a float64 matrix of shape (rows, n_features)."""
    kind = media_type(content_type)
    if kind not in SUPPORTED_CONTENT_TYPES:
        shown = content_type if content_type else "none"
        raise UnsupportedMediaTypeError(
            f"Content-Type {shown!r} is not supported; send {CSV} (feature vectors, no header) or {JSON}"
        )
    if not body.strip():
        raise RequestError("the request body is empty; send at least one feature vector or record")
    if kind == CSV:
        if body.count(b"\n") > MAX_ROWS:
            raise RequestError(too_many_rows(f"more than {MAX_ROWS:,}"))
        return csv_body.parse_csv(body, n_features)
    fast = json_body.parse_json_vectors(body, n_features)
    if fast is not None:
        return fast
    json_body.check_json_row_count(body)
    return json_body.json_to_features(json_body.parse_json(body), n_features, schema)


def encode_predictions(probabilities: np.ndarray, output: str) -> bytes:
    """Probabilities as `{"predictions": [{"score": p}, ...]}` or one per CSV line, exact float64 text."""
    if output == CSV:
        return csv_body.encode_scores(probabilities)
    return json_body.encode_scores(probabilities)
