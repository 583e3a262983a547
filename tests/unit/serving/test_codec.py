"""Request parsing and response encoding of the model server: codec (the dispatch), negotiation, CSV and JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubesage.churn.features import FeatureSchema, fit_schema, transform_records
from kubesage.http_errors import NotAcceptableError, RequestError, UnsupportedMediaTypeError
from kubesage.serving.codec import decode_request, encode_predictions
from kubesage.serving.csv_body import PANDAS_MIN_ROWS, parse_csv
from kubesage.serving.json_body import json_to_features, parse_json
from kubesage.serving.negotiation import CSV, JSON, choose_output, media_type

N = 5


@pytest.fixture(scope="module")
def schema(churn: pd.DataFrame) -> FeatureSchema:
    return fit_schema(churn)


def csv_rows(matrix: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in matrix).encode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [("text/csv", CSV), ("Text/CSV; charset=utf-8", CSV), (" application/json ", JSON), (None, ""), ("", "")],
)
def test_media_type_strips_parameters_and_case(header: str | None, expected: str) -> None:
    assert media_type(header) == expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("text/csv", CSV),
        ("text/*", CSV),
        ("text/html, text/csv;q=0.5, application/json;q=0.9", JSON),
        ("application/json;q=0, text/csv", CSV),
        ("image/png, text/csv;q=0.1", CSV),
    ],
)
def test_choose_output_follows_accept(accept: str | None, expected: str) -> None:
    assert choose_output(accept) == expected


@pytest.mark.parametrize("accept", ["text/html", "application/xml, image/*", "application/json;q=0"])
def test_choose_output_refuses_unsupported_accept(accept: str) -> None:
    with pytest.raises(NotAcceptableError, match="cannot produce"):
        choose_output(accept)


def test_csv_parses_rows_exactly() -> None:
    matrix = np.random.default_rng(1).normal(size=(3, N))
    parsed = parse_csv(csv_rows(matrix) + b"\n", N)
    assert parsed.shape == (3, N)
    assert np.array_equal(parsed, matrix)  # repr() round-trips: bit-identical


def test_csv_large_batch_pandas_path_equals_python_path() -> None:
    matrix = np.random.default_rng(2).normal(size=(PANDAS_MIN_ROWS * 3, N))
    body = csv_rows(matrix)
    assert np.array_equal(parse_csv(body, N), matrix)


@pytest.mark.parametrize("rows", [2, PANDAS_MIN_ROWS + 5])
def test_csv_empty_field_is_missing(rows: int) -> None:
    lines = ["1,2,3,4,5"] * rows
    lines[-1] = "1,,3, ,5"
    parsed = parse_csv("\n".join(lines).encode(), N)
    assert math.isnan(parsed[-1, 1]) and math.isnan(parsed[-1, 3])
    assert parsed[-1, 4] == 5.0 and not np.isnan(parsed[:-1]).any()


def test_csv_accepts_crlf_bom_and_blank_lines() -> None:
    parsed = parse_csv(b"\xef\xbb\xbf1,2,3,4,5\r\n\r\n6,7,8,9,10\r\n", N)
    assert parsed.tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]


@pytest.mark.parametrize("rows", [1, PANDAS_MIN_ROWS + 5])
@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("1,2,3,4", "row {row} has 4 values; the model expects 5 features"),
        ("1,2,3,4,5,6", "row {row} has 6 values.*leave out the label column"),
        ("1,2,abc,4,5", "row {row}, column 3: 'abc' is not a number"),
        ("1,2,3,nan,5", "row {row}, column 4: 'nan' is not a finite number"),
        ("1,2,3,4,-inf", "row {row}, column 5: '-inf' is not a finite number"),
        ("1,1e999,3,4,5", "row {row}, column 2: '1e999' is not a finite number"),
        ('"1",2,3,4,5', "row {row}, column 1"),
    ],
)
def test_csv_errors_name_row_and_column(rows: int, bad_line: str, message: str) -> None:
    lines = ["1,2,3,4,5"] * rows
    lines[-1] = bad_line
    with pytest.raises(RequestError, match=message.format(row=rows)):
        parse_csv("\n".join(lines).encode(), N)


def test_csv_header_row_gets_a_hint() -> None:
    with pytest.raises(RequestError, match="header row is not accepted"):
        parse_csv(b"a,b,c,d,e\n1,2,3,4,5", N)


def test_csv_invalid_utf8_is_a_request_error() -> None:
    with pytest.raises(RequestError, match="not valid UTF-8"):
        parse_csv(b"1,2,3,4,\xff", N)


def test_decode_request_checks_content_type_and_emptiness() -> None:
    with pytest.raises(UnsupportedMediaTypeError, match="'text/plain' is not supported"):
        decode_request(b"1,2,3,4,5", "text/plain", N, None)
    with pytest.raises(UnsupportedMediaTypeError, match="'none' is not supported"):
        decode_request(b"1,2,3,4,5", None, N, None)
    with pytest.raises(RequestError, match="body is empty"):
        decode_request(b"  \n", "text/csv", N, None)
    assert decode_request(b"1,2,3,4,5", "text/csv; charset=utf-8", N, None).tolist() == [[1, 2, 3, 4, 5]]


@pytest.mark.parametrize(
    "payload",
    [
        {"instances": [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]},
        {"instances": [{"features": [1, 2, 3, 4, 5]}, {"features": [6, 7, 8, 9, 10]}]},
        [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]],
        [{"features": [1, 2, 3, 4, 5]}, {"features": [6, 7, 8, 9, 10]}],
    ],
    ids=["instances", "instances-features", "list-of-lists", "list-of-features"],
)
def test_json_feature_vector_shapes(payload: object) -> None:
    assert json_to_features(payload, N, None).tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]


def test_json_single_vector_and_null_missing() -> None:
    parsed = json_to_features([1.5, None, 3, 4, 5], N, None)
    assert parsed.shape == (1, N) and math.isnan(parsed[0, 1]) and parsed[0, 0] == 1.5


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"instances": [[1, 2, 3]]}, "instance 0 has 3 values; the model expects 5"),
        ({"instances": [[1, 2, 3, 4, 5], [1, 2, 3, 4, "x"]]}, 'instance 1, feature 4: "x" is not a number'),
        ({"instances": [[1, 2, True, 4, 5]]}, "instance 0, feature 2: true is not a number"),
        ({"instances": [[1, 2, [3], 4, 5]]}, r"instance 0, feature 2: \[3\] is not a number"),
        ({"instances": [[1, 2, 10**400, 4, 5]]}, "too large"),
        ({"instances": [[1, 2, 1e308 * 10, 4, 5]]}, "too large"),
        ({"instances": []}, "empty"),
        ({"inputs": []}, '"inputs" is empty'),
        ({"inputs": "1,2"}, '"inputs" must be a list'),
        ({"instances": "1,2"}, "must be a list"),
        ({"instances": [5]}, "instance 0 is a number"),
        ("hello", "the JSON body is a string"),
        ({"State": "PA"}, "no feature schema"),
        ({"records": [{"State": "PA"}]}, "no feature schema"),
    ],
)
def test_json_feature_errors_are_request_errors(payload: object, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        json_to_features(payload, N, None)


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_json_non_standard_constants_are_refused(token: bytes) -> None:
    with pytest.raises(RequestError, match=f"{token.decode()} is not valid JSON"):
        parse_json(b'{"instances": [[1, ' + token + b"]]}")


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"{", "not valid JSON"), (b"\xff\xfe\xfa", "not valid"), (b"[" * 100_000 + b"]" * 100_000, "nested")],
    ids=["truncated", "bad-bytes", "deep"],
)
def test_parse_json_errors(body: bytes, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse_json(body)


def test_json_records_use_the_one_transform(churn: pd.DataFrame, schema: FeatureSchema) -> None:
    records = churn.head(4).to_dict(orient="records")
    expected = transform_records(records, schema)
    n = schema.n_features
    assert np.array_equal(json_to_features({"records": records}, n, schema), expected)
    assert np.array_equal(json_to_features(records, n, schema), expected)
    assert np.array_equal(json_to_features(records[0], n, schema), expected[:1])


def test_json_record_errors_name_the_column(churn: pd.DataFrame, schema: FeatureSchema) -> None:
    record = churn.head(1).to_dict(orient="records")[0]
    with pytest.raises(RequestError, match=r"missing column.*'Day Mins'"):
        json_to_features({k: v for k, v in record.items() if k != "Day Mins"}, schema.n_features, schema)
    with pytest.raises(RequestError, match="column 'Day Mins', row 0: 'lots' is not a number"):
        json_to_features({**record, "Day Mins": "lots"}, schema.n_features, schema)
    with pytest.raises(RequestError, match="too large"):
        json_to_features({**record, "Day Mins": 10**400}, schema.n_features, schema)
    with pytest.raises(RequestError, match="record 1 is a int"):
        json_to_features({"records": [record, 3]}, schema.n_features, schema)


def test_encode_predictions_json_and_csv_round_trip() -> None:
    probabilities = np.array([0.1, 1 / 3, 0.999999999])
    as_json = json.loads(encode_predictions(probabilities, JSON))
    assert [p["score"] for p in as_json["predictions"]] == probabilities.tolist()
    as_csv = encode_predictions(probabilities, CSV).decode()
    assert [float(line) for line in as_csv.splitlines()] == probabilities.tolist()
    assert as_csv.endswith("\n")


# The simdjson fast path must agree with the reference path (json + json_to_features) on every body.
FAST_PATH_AGREES = [
    b'{"instances": [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]}',
    b'{"inputs": [[1.5, -2e-3, 3, 4, 5]]}',
    b"[[1, 2, 3, 4, 5]]",
    b"[1, 2, 3, 4, 5]",
    b'{"instances": [[1, 2, 3, 4, 5], [6, 7, 8, 9, 18446744073709551615]]}',
    b'{"instances": [[-0.0, 5e-324, 1.7976931348623157e308, 4, 5]]}',
    b'{"instances": [[1, 2, 3, 4, 100000000000000000000000]]}',  # simdjson: BIGINT_ERROR
    b'{"instances": [[1, 2, 3, 4, 5]], "g\\ud871\\udcf1": "\\udabe\\udf5c"}',
]
FAST_PATH_REFUSES = [
    (b'{"instances": [[1, [], 3, 4, 5], [6, [7, 8], 9, 10, 11]]}', "feature 1"),  # nesting that flattens to 10
    (b'{"instances": [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10]]}', "instance 0 has 6 values"),  # ragged, same total
    (b'{"instances": [1, 2, 3, 4, 5]}', "instance 0 is a number"),
    (b'{"instances": [[1, 2, 3, 4, true]]}', "true is not a number"),
    (b'{"instances": [[1, 2, 3, 4, "5"]]}', '"5" is not a number'),
    (b'{"instances": [[1, 2, 3, 4, 1e400]]}', "too large"),
    (b'{"instances": [[1, 2, 3, 4, NaN]]}', "NaN is not valid JSON"),
    (b"[[1, 2, 3, 4, 5]] trailing", "not valid JSON"),
    (b'{"instances": []}', "empty"),
]


@pytest.mark.parametrize("body", FAST_PATH_AGREES)
def test_json_fast_path_equals_reference(body: bytes) -> None:
    fast = decode_request(body, JSON, N, None)
    reference = json_to_features(parse_json(body), N, None)
    assert fast.dtype == np.float64 and fast.flags["C_CONTIGUOUS"]
    assert np.array_equal(fast, reference)


@pytest.mark.parametrize(("body", "message"), FAST_PATH_REFUSES)
def test_json_fast_path_leaves_bad_shapes_to_the_reference(body: bytes, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        decode_request(body, JSON, N, None)


def test_json_fast_path_keeps_missing_values_and_extra_keys_working() -> None:
    with_null = decode_request(b'{"instances": [[1, null, 3, 4, 5]]}', JSON, N, None)
    assert math.isnan(with_null[0, 1]) and with_null[0, 4] == 5
    # A bracket inside a string changes the count: the reference path still answers correctly.
    extra = decode_request(b'{"instances": [[1, 2, 3, 4, 5]], "note": "[x]"}', JSON, N, None)
    assert extra.tolist() == [[1, 2, 3, 4, 5]]


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.lists(
            st.one_of(
                st.floats(allow_nan=False, allow_infinity=False),
                st.integers(),  # past 64 bits simdjson raises BIGINT_ERROR
                st.none(),
                st.booleans(),
                st.lists(st.integers(0, 9), max_size=2),  # nesting simdjson would flatten
            ),
            max_size=7,
        ),
        max_size=4,
    ),
    key=st.sampled_from(["instances", "inputs", None]),
)
def test_json_fast_path_agrees_with_reference_on_any_matrix(rows: list[list[float]], key: str | None) -> None:
    body = json.dumps(rows if key is None else {key: rows}).encode()
    try:
        expected = json_to_features(parse_json(body), N, None)
    except RequestError as exc:
        with pytest.raises(RequestError) as raised:
            decode_request(body, JSON, N, None)
        assert str(raised.value) == str(exc)
        return
    assert np.array_equal(decode_request(body, JSON, N, None), expected, equal_nan=True)  # null is NaN in both


def test_json_fast_path_survives_a_document_still_held_from_an_earlier_call() -> None:
    from kubesage.serving import json_body

    held = json_body._parse_document(b"[[1, 2, 3, 4, 5]]")  # pins the thread's parser
    assert decode_request(b"[[6, 7, 8, 9, 10]]", JSON, N, None).tolist() == [[6, 7, 8, 9, 10]]
    assert len(held) == 1


# ------------------------------------------------------------------ hostile bodies (issue 10, items 1 and 3)


def test_json_number_with_4300_digits_is_a_400_not_a_500() -> None:
    body = b'{"instances": [[' + b"1" * 5000 + b", 2]]}"
    with pytest.raises(RequestError, match="too many digits"):
        decode_request(body, "application/json", 2, None)


def test_rows_over_the_cap_are_refused_before_parsing() -> None:
    from kubesage.serving.limits import MAX_ROWS

    empty_records = b"[" + b",".join([b"{}"] * (MAX_ROWS + 1)) + b"]"
    with pytest.raises(RequestError, match=f"{MAX_ROWS + 1:,} rows; the limit is {MAX_ROWS:,}"):
        decode_request(empty_records, "application/json", 2, None)
    csv_rows = b"1,2\n" * (MAX_ROWS + 1)
    with pytest.raises(RequestError, match="more than 50,000 rows"):
        decode_request(csv_rows, "text/csv", 2, None)
    at_cap = b"1,2\n" * MAX_ROWS
    assert decode_request(at_cap, "text/csv", 2, None).shape == (MAX_ROWS, 2)


_CSV_TOKENS = ["1", "-0", "0.1", "1e5", "1E-3", "2.5e+2", "", " 3 ", "+1", ".5", "1.", "nan", "inf", "1e999"]
_CSV_TOKENS += ["true", "null", '"1"', "[1]", "1]", "0x10", "1_0", "12345678901234567890123", "{}", "\r"]


def test_csv_batch_takes_the_json_fast_path_exactly() -> None:
    from kubesage.serving.csv_body import _parse_csv_as_json

    matrix = np.random.default_rng(3).normal(size=(1000, N)) * 10.0 ** np.arange(-3, 2)
    body = csv_rows(matrix) + b"\n"
    fast = _parse_csv_as_json(body, N)
    assert fast is not None and np.array_equal(fast, matrix)  # bit for bit, as float() parses
    assert _parse_csv_as_json(body.replace(b"\n", b"\r\n"), N) is not None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(_CSV_TOKENS), min_size=N - 1, max_size=N + 1), min_size=1, max_size=3),
)
def test_csv_json_fast_path_accepts_only_what_the_reference_parses_the_same(rows: list[list[str]]) -> None:
    from kubesage.serving.csv_body import _parse_csv_as_json, _parse_csv_python

    lines = [",".join(["1"] * N)] * PANDAS_MIN_ROWS + [",".join(row) for row in rows]
    body = "\n".join(lines).encode()
    fast = _parse_csv_as_json(body, N)
    if fast is None:
        return  # pandas and the reference decide, as before
    assert np.array_equal(fast, _parse_csv_python(body.decode(), N))
