"""The Lambda handler's logic, called directly, against a real HTTP endpoint stand-in on loopback.

The stand-in speaks sagemaker-runtime's InvokeEndpoint over HTTP (boto3 really calls it): it answers
with scores, an error, garbage, or nothing at all, so every status the handler maps is produced by
a real response, not by patching boto3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kubesage.churn.features import LABEL_COLUMN, FeatureSchema, encode_record, transform_columns
from kubesage.lambda_runtime.bundle import ModelBundle
from kubesage.lambda_runtime.endpoint import Endpoint, EndpointSettings
from kubesage.lambda_runtime.handler import PredictionApi
from kubesage.lambda_runtime.records import MAX_BODY_BYTES, MAX_NAME_CHARS, MAX_PROBLEMS
from tests.unit.lambda_runtime.endpoint_stand_in import endpoint_stand_in


@pytest.fixture
def stand_in() -> Iterator[Any]:
    with endpoint_stand_in(score=0.7) as server:
        yield server


@pytest.fixture(scope="module")
def schema(prepared: dict[str, Path]) -> FeatureSchema:
    return FeatureSchema.load(prepared["schema"])


@pytest.fixture(scope="module")
def raw(churn_csv: Path) -> pd.DataFrame:
    return pd.read_csv(churn_csv, dtype=str).drop(columns=[LABEL_COLUMN])


def _api(schema: FeatureSchema, server: Any, threshold: float = 0.6) -> PredictionApi:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    settings = EndpointSettings(
        name="churn", url=url, region="us-east-1", read_timeout=0.5, max_attempts=2, unsigned=True
    )
    return PredictionApi(ModelBundle(schema, threshold, "test"), Endpoint(settings))


def _event(body: Any, **extra: Any) -> dict[str, Any]:
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    return {"httpMethod": "POST", "body": text, "requestContext": {"requestId": "req-1"}, **extra}


def _answer(api: PredictionApi, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = api.handle(event)
    assert "Traceback" not in response["body"]
    return response["statusCode"], json.loads(response["body"])


def test_encode_record_equals_the_batch_transform_bit_for_bit(schema: FeatureSchema, raw: pd.DataFrame) -> None:
    rows = raw.head(400)
    batch = transform_columns(rows, schema)
    single = [encode_record(record, schema) for record in rows.to_dict("records")]
    assert batch.tolist() == single
    # Numbers as JSON numbers encode the same as the seed's strings.
    numeric = {k: (float(v) if k in schema.numeric else v) for k, v in rows.iloc[0].to_dict().items()}
    assert encode_record(numeric, schema) == single[0]


def test_the_bundle_round_trips_with_the_feature_order(schema: FeatureSchema) -> None:
    again = ModelBundle.from_json(ModelBundle(schema, 0.42, "models:/m/1").to_json())
    assert again.schema.feature_names == schema.feature_names
    assert (again.decision_threshold, again.model) == (0.42, "models:/m/1")


def test_predictions_with_the_bundles_threshold(schema: FeatureSchema, raw: pd.DataFrame, stand_in: Any) -> None:
    records = raw.head(3).to_dict("records")
    api = _api(schema, stand_in, threshold=0.6)
    status, body = _answer(api, _event({"records": records}))
    assert status == 200
    assert body == {"predictions": [{"churn_probability": 0.7, "churn": True}] * 3}
    path, content_type, sent = stand_in.seen[-1]
    assert path == "/endpoints/churn/invocations"
    assert content_type == "text/csv"
    assert [[float(x) for x in line.split(",")] for line in sent.splitlines()] == [
        encode_record(r, schema) for r in records
    ]
    stand_in.score = 0.59
    assert _answer(api, _event(records[0]))[1] == {"predictions": [{"churn_probability": 0.59, "churn": False}]}
    assert _answer(api, _event(records[:2]))[1]["predictions"][1]["churn"] is False


@pytest.mark.parametrize(
    ("change", "status", "fields", "words"),
    [
        ({"Day Mins": None}, 400, ["Day Mins"], "must be a number, got null"),
        ({"Day Mins": "lots"}, 400, ["Day Mins"], "must be a number"),
        ({"Day Calls": "-3"}, 400, ["Day Calls"], "zero or more"),
        ({"Day Calls": 2.5}, 400, ["Day Calls"], "whole number"),
        ({"Int'l Plan": "maybe"}, 400, ["Int'l Plan"], "'yes' or 'no'"),
        ({"Area Code": "80"}, 400, ["Area Code"], "three-digit"),
        ({"State": 7, "Eve Calls": True}, 400, ["State", "Eve Calls"], "must be a string"),
        ({"Day Min": "1"}, 400, ["Day Min"], "did you mean 'Day Mins'"),
        ({"Night Charge": "1e999"}, 400, ["Night Charge"], "must be a number"),
    ],
)
def test_bad_records_name_each_field(
    schema: FeatureSchema,
    raw: pd.DataFrame,
    stand_in: Any,
    change: dict[str, Any],
    status: int,
    fields: list[str],
    words: str,
) -> None:
    record = {**raw.iloc[0].to_dict(), **change}
    code, body = _answer(_api(schema, stand_in), _event({"records": [raw.iloc[1].to_dict(), record]}))
    assert code == status
    assert [e["field"] for e in body["errors"]] == fields
    assert all(e["record"] == 1 for e in body["errors"])
    assert words in body["message"]
    assert body["requestId"] == "req-1"
    assert stand_in.seen == []  # nothing reached the endpoint


def test_missing_fields_are_all_listed(schema: FeatureSchema, raw: pd.DataFrame, stand_in: Any) -> None:
    record = raw.iloc[0].to_dict()
    del record["Day Mins"], record["State"], record["Phone"]  # Phone is optional
    code, body = _answer(_api(schema, stand_in), _event(record))
    assert code == 400
    assert sorted(e["field"] for e in body["errors"]) == ["Day Mins", "State"]
    assert all(e["message"] == "is missing" for e in body["errors"])


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ("{not json", 400, "not valid JSON"),
        ('{"Day Mins": NaN}', 400, "not valid JSON"),
        (None, 400, "body is empty"),
        ("[]", 400, "no records"),
        ("42", 400, "JSON number"),
        ('{"records": [1]}', 400, "record 0 is a JSON number"),
        ('{"records": {}, "x": 1}', 400, "unexpected key"),
        (json.dumps([{}] * 1001), 400, "at most 1,000"),
        ("x" * (MAX_BODY_BYTES + 1), 413, "the limit is 1,048,576"),
    ],
)
def test_malformed_bodies(schema: FeatureSchema, stand_in: Any, body: str | None, status: int, words: str) -> None:
    code, answer = _answer(_api(schema, stand_in), _event(body))
    assert code == status
    assert words in answer["message"]


def test_base64_bodies_and_methods(schema: FeatureSchema, raw: pd.DataFrame, stand_in: Any) -> None:
    import base64

    api = _api(schema, stand_in)
    encoded = base64.b64encode(json.dumps(raw.iloc[0].to_dict()).encode()).decode()
    assert _answer(api, _event(encoded, isBase64Encoded=True))[0] == 200
    assert _answer(api, _event("%%%", isBase64Encoded=True))[0] == 400
    code, body = _answer(api, {**_event("{}"), "httpMethod": "GET"})
    assert code == 405
    assert "POST" in body["message"]


@pytest.mark.parametrize(("mode", "detail"), [("error", "ModelError: the model failed"), ("garbage", "unreadable")])
def test_endpoint_failures_are_a_generic_502_with_the_detail_in_the_log(
    schema: FeatureSchema, raw: pd.DataFrame, stand_in: Any, caplog: pytest.LogCaptureFixture, mode: str, detail: str
) -> None:
    stand_in.mode = mode
    code, body = _answer(_api(schema, stand_in), _event(raw.iloc[0].to_dict()))
    assert (code, body) == (
        502,
        {"message": "the model endpoint could not answer; retry later, or report the requestId", "requestId": "req-1"},
    )
    # The endpoint's name and the AWS message (ARNs, account id, log links) are in the log only.
    logged = [r.getMessage() for r in caplog.records if r.name == "kubesage.api"]
    assert len(logged) == 1
    assert logged[0].startswith("request req-1: the model endpoint 'churn' answered")
    assert detail in logged[0]


def _count_attempts(api: PredictionApi) -> list[str]:
    """Every HTTP request botocore sends for the API's endpoint client, counted by botocore's own hook."""
    sent: list[str] = []
    api.endpoint.client.meta.events.register("before-send", lambda request, **_: sent.append(request.url))
    return sent


def test_a_read_timeout_is_a_504_sent_once_and_unreachable_is_a_502_after_retries(
    schema: FeatureSchema, raw: pd.DataFrame, stand_in: Any
) -> None:
    stand_in.mode = "hang"
    api = _api(schema, stand_in)
    sent = _count_attempts(api)
    code, body = _answer(api, _event(raw.iloc[0].to_dict()))
    assert code == 504
    assert body["message"] == "the model endpoint did not answer in time; retry shortly, or report the requestId"
    # The endpoint got the request and may still be working on it: not sent again.
    assert len(sent) == 1
    assert len(stand_in.seen) == 1
    stand_in.shutdown()
    stand_in.server_close()
    api = _api(schema, stand_in)
    sent = _count_attempts(api)
    code, body = _answer(api, _event(raw.iloc[0].to_dict()))
    assert code == 502
    assert "churn" not in body["message"]
    assert len(sent) == 2  # max_attempts: a refused connection never reached the endpoint, so it is retried


def test_settings_that_could_outlast_the_gateway_are_refused() -> None:
    from kubesage.lambda_runtime.endpoint import DEADLINE_SECONDS, worst_case_seconds
    from kubesage.lambda_runtime.errors import EndpointError

    assert worst_case_seconds(EndpointSettings(name="e").read_timeout, EndpointSettings(name="e").max_attempts) == 14.3
    with pytest.raises(EndpointError, match=r"KUBESAGE_ENDPOINT_MAX_ATTEMPTS=3 and KUBESAGE_ENDPOINT_READ_TIMEOUT=20 "):
        EndpointSettings(name="e", read_timeout=20.0)
    assert worst_case_seconds(20.0, 2) <= DEADLINE_SECONDS
    EndpointSettings(name="e", read_timeout=20.0, max_attempts=2)


def test_an_unexpected_failure_is_a_500_without_details(
    schema: FeatureSchema, raw: pd.DataFrame, stand_in: Any
) -> None:
    api = _api(schema, stand_in)
    api.bundle = None  # type: ignore[assignment]  # a broken container state
    code, body = _answer(api, _event(raw.iloc[0].to_dict()))
    assert code == 500
    assert body["message"] == "internal error; see the function's log"


# Abuse: what a hostile body costs the function is bounded by what a valid request needs (issue 18
# item 5). The CPU side is measured by bench/bench_api_abuse.py; here the status and the answer's size.
ANSWER_LIMIT = 64 * 1024


def _unknown_keys(size: int) -> str:
    """One JSON object of distinct unknown keys, about `size` bytes."""
    keys = (f'"unknown field {i:07d}": 1' for i in range(size // 28))
    return "{" + ", ".join(keys) + "}"


def test_a_6_mb_body_of_unknown_keys_is_refused_in_a_short_answer(schema: FeatureSchema, stand_in: Any) -> None:
    response = _api(schema, stand_in).handle(_event(_unknown_keys(6_000_000)))
    assert response["statusCode"] == 413
    assert len(response["body"]) < ANSWER_LIMIT
    assert stand_in.seen == []


def test_a_record_of_many_unknown_keys_is_one_problem(schema: FeatureSchema, stand_in: Any) -> None:
    body = _unknown_keys(MAX_BODY_BYTES - 100)
    assert len(body) <= MAX_BODY_BYTES
    response = _api(schema, stand_in).handle(_event(body))
    assert response["statusCode"] == 400
    assert len(response["body"]) < 1024
    answer = json.loads(response["body"])
    assert answer["errors"] == [
        {"record": 0, "field": "", "message": "record 0 has 37,445 keys; a raw churn record has at most 20 fields"}
    ]


def test_problems_are_capped_and_names_cut_short(schema: FeatureSchema, raw: pd.DataFrame, stand_in: Any) -> None:
    long_name = "Day Mins" + "x" * 100_000
    record = {**raw.iloc[0].to_dict(), **{f"extra {i}": 1 for i in range(19)}}
    response = _api(schema, stand_in).handle(_event([{long_name: 1, **record}] + [record] * 999))
    assert response["statusCode"] == 400
    assert len(response["body"]) < ANSWER_LIMIT
    answer = json.loads(response["body"])
    assert len(answer["errors"]) == MAX_PROBLEMS
    assert max(len(e["field"]) for e in answer["errors"]) == MAX_NAME_CHARS
    assert answer["errors"][0] == {
        "record": 0,
        "field": "Day Mins" + "x" * (MAX_NAME_CHARS - 11) + "...",
        "message": "is not an input field",
    }
    assert answer["message"].startswith(f"at least {MAX_PROBLEMS} problems (checking stopped at the first")
    many_extra = json.dumps({"records": [], **{f"k{i}" * 100: 1 for i in range(1000)}})
    code, answer = _answer(_api(schema, stand_in), _event(many_extra))
    assert code == 400
    assert len(answer["message"]) < 500


def test_a_deeply_nested_body_is_a_400(schema: FeatureSchema, stand_in: Any) -> None:
    code, answer = _answer(_api(schema, stand_in), _event("[" * 10_000 + "]" * 10_000))
    assert code == 400
    assert answer["message"].startswith("the request body is nested too deeply")
    code, answer = _answer(_api(schema, stand_in), _event('{"a":' * 10_000 + "1" + "}" * 10_000))
    assert code == 400
