"""The ASGI app in-process (routing, errors, parity) and the server's configuration rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from kubesage.churn.features import transform_columns
from kubesage.churn.modelio import booster_probabilities, load_booster
from kubesage.errors import KubesageError, ModelError
from kubesage.serving.app import InferenceApp, create_app
from kubesage.serving.predictor import SERVING_PARITY_TOLERANCE, Predictor
from kubesage.serving.server import ENV_PORT, ENV_THREADS, ENV_WORKERS, available_cpus, check_model_dir, resolve_config


@pytest.fixture(scope="module")
def client(model_dir: Path) -> TestClient:
    app = create_app(model_dir, exit_on_load_failure=False)
    app.load()
    return TestClient(app, raise_server_exceptions=False)


def csv_body(matrix: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in matrix)


def test_ping_is_503_until_loaded_then_200(model_dir: Path) -> None:
    app = create_app(model_dir, exit_on_load_failure=False)
    client = TestClient(app)
    response = client.get("/ping")
    assert response.status_code == 503
    assert response.json()["code"] == "ModelNotReady"
    assert client.post("/invocations", content="1", headers={"content-type": "text/csv"}).status_code == 503
    app.start_loading()
    assert app.wait_until_loaded(timeout=60)
    assert client.get("/ping").status_code == 200


def test_load_failure_is_reported_by_ping(tmp_path: Path) -> None:
    (tmp_path / "xgboost-model.ubj").write_bytes(b"not a model")
    app = InferenceApp(tmp_path, exit_on_load_failure=False)
    app.start_loading()
    assert not app.wait_until_loaded(timeout=60)
    response = TestClient(app).get("/ping")
    assert response.status_code == 503
    assert "failed to load" in response.json()["message"]


def test_probabilities_equal_the_booster(client: TestClient, model_dir: Path, churn: pd.DataFrame) -> None:
    from kubesage.churn.features import FeatureSchema

    features = transform_columns(churn.sample(300, random_state=3), FeatureSchema.load(model_dir))
    expected = booster_probabilities(load_booster(model_dir), features)
    for path in ("/invocations", "/endpoints/churn-endpoint/invocations"):
        response = client.post(path, content=csv_body(features), headers={"content-type": "text/csv"})
        assert response.status_code == 200, response.text
        scores = np.array([p["score"] for p in response.json()["predictions"]])
        assert np.max(np.abs(scores - expected)) <= SERVING_PARITY_TOLERANCE


def test_raw_records_and_csv_accept(client: TestClient, model_dir: Path, churn: pd.DataFrame) -> None:
    from kubesage.churn.features import FeatureSchema

    rows = churn.head(5)
    expected = booster_probabilities(load_booster(model_dir), transform_columns(rows, FeatureSchema.load(model_dir)))
    response = client.post(
        "/invocations",
        content=json.dumps({"records": rows.to_dict(orient="records")}),
        headers={"content-type": "application/json", "accept": "text/csv"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv"
    scores = np.array([float(line) for line in response.text.splitlines()])
    assert np.max(np.abs(scores - expected)) <= SERVING_PARITY_TOLERANCE


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "code"),
    [
        ("GET", "/nope", {}, "", 404, "NotFound"),
        ("GET", "/endpoints/x/y/invocations", {}, "", 404, "NotFound"),
        ("GET", "/invocations", {}, "", 405, "MethodNotAllowed"),
        ("POST", "/ping", {}, "", 405, "MethodNotAllowed"),
        ("POST", "/invocations", {"content-type": "text/plain"}, "1", 415, "UnsupportedMediaType"),
        ("POST", "/invocations", {"content-type": "text/csv", "accept": "text/html"}, "1", 406, "NotAcceptable"),
        ("POST", "/invocations", {"content-type": "text/csv"}, "", 400, "InvalidInput"),
        ("POST", "/invocations", {"content-type": "text/csv"}, "1,2,3", 400, "InvalidInput"),
        ("POST", "/invocations", {"content-type": "application/json"}, "{oops", 400, "InvalidInput"),
        ("POST", "/invocations", {"content-type": "application/json"}, '{"State": 1}', 400, "InvalidInput"),
    ],
)
def test_errors_are_json_4xx(
    client: TestClient, method: str, path: str, headers: dict[str, str], body: str, status: int, code: str
) -> None:
    response = client.request(method, path, content=body, headers=headers)
    assert response.status_code == status
    payload = response.json()
    assert payload["code"] == code and payload["status"] == status and payload["message"]
    assert "Traceback" not in response.text


def test_allow_header_on_405(client: TestClient) -> None:
    assert client.get("/invocations").headers["allow"] == "POST"
    assert client.post("/execution-parameters").headers["allow"] == "GET"


def test_execution_parameters_for_batch_transform(model_dir: Path) -> None:
    from kubesage.serving.readiness import ServerReadiness

    app = create_app(
        model_dir, exit_on_load_failure=False, readiness=ServerReadiness(directory=None, expected_workers=3)
    )
    response = TestClient(app).get("/execution-parameters")  # answered before the model loads, as SageMaker asks first
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {"MaxConcurrentTransforms": 3, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


def test_predictor_checks_parity_and_threads(model_dir: Path) -> None:
    predictor = Predictor.load(model_dir, threads=1)
    assert predictor.parity_max_abs_diff <= SERVING_PARITY_TOLERANCE
    assert predictor.n_features == load_booster(model_dir).num_features()
    assert predictor.schema is not None and predictor.threads == 1


def test_single_row_answers_are_not_overwritten_by_the_next_call(model_dir: Path) -> None:
    """Single rows reuse one oneDAL algorithm whose result table the next call overwrites."""
    predictor = Predictor.load(model_dir, threads=1)
    rows = np.random.default_rng(3).normal(size=(3, predictor.n_features))
    answers = [predictor.predict(rows[i : i + 1]) for i in range(3)]
    batch = predictor.predict(rows)
    assert [float(a[0]) for a in answers] == batch.tolist()
    assert len(set(batch.tolist())) == 3
    assert np.allclose(
        batch, booster_probabilities(load_booster(model_dir), rows), atol=SERVING_PARITY_TOLERANCE, rtol=0
    )


def test_check_model_dir_fails_early(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        check_model_dir(tmp_path / "missing")
    with pytest.raises(ModelError, match="no XGBoost model"):
        check_model_dir(tmp_path)


def test_available_cpus_respects_cgroup_quota(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")
    assert available_cpus(cpu_max) == 1
    cpu_max.write_text("max 100000\n")
    assert available_cpus(cpu_max) >= 1
    assert available_cpus(tmp_path / "absent") >= 1


def test_resolve_config_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_WORKERS, "3")
    monkeypatch.setenv(ENV_PORT, "9090")
    monkeypatch.setenv(ENV_THREADS, "2")
    config = resolve_config(tmp_path)
    assert (config.workers, config.port, config.threads) == (3, 9090, 2)
    config = resolve_config(tmp_path, port=8081, workers=1, threads=4)
    assert (config.workers, config.port, config.threads) == (1, 8081, 4)
    monkeypatch.setenv(ENV_WORKERS, "many")
    with pytest.raises(KubesageError, match="MODEL_SERVER_WORKERS='many' is not an integer"):
        resolve_config(tmp_path)
    with pytest.raises(KubesageError, match="port 70000"):
        resolve_config(tmp_path, port=70000, workers=1)


# ------------------------------------------------------------------ readiness and the prediction thread (issue 10)


def test_invocation_waits_for_a_loading_worker_instead_of_503(model_dir: Path) -> None:
    app = create_app(model_dir, exit_on_load_failure=False)
    client = TestClient(app)
    app.start_loading()  # the request below arrives while the loader thread is converting the model
    response = client.post("/invocations", content=",".join(["0"] * 103), headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    assert 0.0 <= response.json()["predictions"][0]["score"] <= 1.0


def test_large_bodies_queue_for_the_prediction_thread_then_get_429(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from kubesage.http_errors import ServerBusyError
    from kubesage.serving import app as app_module

    app = create_app(model_dir, exit_on_load_failure=False)
    predictor = app.load()
    body = (",".join(["0.5"] * 103) + "\n").encode() * 200  # over INLINE_BODY_BYTES
    assert len(body) > app_module.INLINE_BODY_BYTES

    async def scenario() -> list[object]:
        app._predict_lock.acquire()  # a prediction is running: everything queues behind it
        waiting = [
            asyncio.create_task(app._answer_in_thread(predictor, body, "text/csv", "application/json"))
            for _ in range(app_module.MAX_QUEUED)
        ]
        await asyncio.sleep(0.1)
        with pytest.raises(ServerBusyError):
            await app._answer_in_thread(predictor, body, "text/csv", "application/json")
        app._predict_lock.release()
        return list(await asyncio.gather(*waiting))

    answers = asyncio.run(scenario())
    assert all(len(json.loads(a)["predictions"]) == 200 for a in answers)  # type: ignore[arg-type]

    monkeypatch.setattr(app_module, "PREDICT_DEADLINE_SECONDS", 0.2)
    app._predict_lock.acquire()
    try:
        response = TestClient(app).post("/invocations", content=body, headers={"content-type": "text/csv"})
    finally:
        app._predict_lock.release()
    assert response.status_code == 503
    assert response.json()["code"] == "PredictionTimeout"
