"""Data capture in the server: SageMaker's records, layout and sampling; never the Phone field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from kubesage.churn.features import FeatureSchema, transform_columns
from kubesage.errors import MonitoringError
from kubesage.monitoring.capture import CaptureConfig, capture_record
from kubesage.monitoring.capture_writer import CaptureWriter
from kubesage.monitoring.reading import CaptureLine, decode_line
from kubesage.serving.app import create_app

LAYOUT = re.compile(r"ep/AllTraffic/\d{4}/\d{2}/\d{2}/\d{2}/[0-9a-f-]{36}\.jsonl")


def captured(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for path in sorted(folder.rglob("*.jsonl")) for line in path.read_text().splitlines()]


def test_the_server_captures_answered_requests_as_sagemaker_does(
    model_dir: Path, churn: pd.DataFrame, tmp_path: Path
) -> None:
    writer = CaptureWriter(CaptureConfig(tmp_path, endpoint="ep"))
    app = create_app(model_dir, exit_on_load_failure=False, capture=writer)
    app.load()
    records = churn.drop(columns=["Churn?"]).head(2).to_dict(orient="records")
    vectors = transform_columns(churn.head(1), FeatureSchema.load(model_dir))
    csv_line = ",".join(repr(float(v)) for v in vectors[0])
    with TestClient(app) as client:  # lifespan: startup starts the writer, shutdown flushes it
        json_answer = client.post(
            "/invocations", content=json.dumps({"records": records}), headers={"content-type": "application/json"}
        )
        csv_answer = client.post(
            "/invocations", content=csv_line, headers={"content-type": "text/csv", "accept": "text/csv"}
        )
        refused = client.post("/invocations", content="{oops", headers={"content-type": "application/json"})
    assert (json_answer.status_code, csv_answer.status_code, refused.status_code) == (200, 200, 400)
    files = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl")]
    assert len(files) == 1 and LAYOUT.fullmatch(files[0]), files
    first, second = captured(tmp_path)  # the refused request is not captured
    assert first["eventVersion"] == "0" and set(first["eventMetadata"]) == {"eventId", "inferenceTime"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["eventMetadata"]["inferenceTime"])
    request, response = first["captureData"]["endpointInput"], first["captureData"]["endpointOutput"]
    assert (request["mode"], request["encoding"], request["observedContentType"]) == (
        "INPUT",
        "JSON",
        "application/json",
    )
    sent = json.loads(request["data"])["records"]
    assert "Phone" not in json.dumps(sent) and all("Phone" in r for r in records)
    assert sent == [{k: v for k, v in r.items() if k != "Phone"} for r in records]
    assert (response["mode"], response["encoding"]) == ("OUTPUT", "JSON")
    assert json.loads(response["data"]) == json_answer.json()
    request, response = second["captureData"]["endpointInput"], second["captureData"]["endpointOutput"]
    assert (request["encoding"], request["data"]) == ("CSV", csv_line)
    assert (response["encoding"], response["data"]) == ("CSV", csv_answer.text)


def test_sampling_captures_about_the_percentage(tmp_path: Path) -> None:
    writer = CaptureWriter(CaptureConfig(tmp_path, percent=25.0))
    for _ in range(800):
        writer.offer(b"1", "text/csv", b"0.5", "text/csv")
    assert writer.flush() == len(captured(tmp_path))
    # Binomial(800, 0.25): mean 200, standard deviation 12.2; 140..260 is about five of them.
    assert 140 <= len(captured(tmp_path)) <= 260


def test_binary_bodies_are_base64_and_read_back(tmp_path: Path) -> None:
    record = capture_record(b"\xff\xfe", "application/octet-stream", b"0.5", "text/csv", 0.0)
    assert record["captureData"]["endpointInput"]["encoding"] == "BASE64"
    decoded = decode_line(CaptureLine("x", 1, json.dumps(record)))
    assert decoded.data == b"\xff\xfe" and decoded.inference_time.year == 1970


def test_capture_configuration_from_the_environment_is_checked(tmp_path: Path) -> None:
    env = {"KUBESAGE_CAPTURE_DIR": str(tmp_path), "KUBESAGE_CAPTURE_PERCENT": "10", "KUBESAGE_CAPTURE_ENDPOINT": "ep"}
    config = CaptureConfig.from_env(env)
    assert config == CaptureConfig(tmp_path, 10.0, "ep")
    assert CaptureConfig.from_env({}) is None
    with pytest.raises(MonitoringError, match="KUBESAGE_CAPTURE_PERCENT='lots' is not a number"):
        CaptureConfig.from_env({**env, "KUBESAGE_CAPTURE_PERCENT": "lots"})
    with pytest.raises(MonitoringError, match=r"capture percentage 0.0 must be in \(0, 100\]"):
        CaptureConfig.from_env({**env, "KUBESAGE_CAPTURE_PERCENT": "0"})
    assert np.isclose(config.percent, 10.0)


@pytest.mark.parametrize(
    ("body", "content_type", "answer", "answer_type"),
    [
        (b'{"inputs": [[1.0, 2.5]]}', "application/json", b'{"predictions": [{"score": 0.1}]}', "application/json"),
        (b"1,2,3\n4,5,6\r\n", "text/csv", b"0.1\n0.2", "text/csv"),
        (
            b'{"records": [{"State": "PA", "Phone": "403-2562", "x": "a\\"b\\\\c\\td"}]}',
            "application/json",
            b"x",
            "text/csv",
        ),
        (b"\xff\x00", "application/octet-stream", b"0.5", "text/csv"),
        # The key spelled with an escape is still the Phone field (json.loads reads "Phone").
        (b'[{"State": "PA", "\\u0050hone": "403-2562"}]', "application/json", b"x", "text/csv"),
        ('{"s": "\u00e9\\u0001"}'.encode(), "application/json; charset=utf-8", b"0.5", "text/csv"),
        (b"1,\x0b2", "text/csv", b"0.5", "text/csv"),
        (b"1,2", 'text/csv; note="a\\b"', b"0.5", "text/csv"),  # a header a JSON string cannot hold raw
    ],
)
def test_the_fast_record_line_equals_the_reference_record(
    body: bytes, content_type: str, answer: bytes, answer_type: str
) -> None:
    from kubesage.monitoring.capture import record_line

    line = record_line(body, content_type, answer, answer_type, 1_796_000_000.5, "event-1")
    assert json.loads(line) == capture_record(body, content_type, answer, answer_type, 1_796_000_000.5, "event-1")
    assert b"403-2562" not in line


def test_the_writer_process_writes_every_frame_and_outlives_a_sigterm(tmp_path: Path) -> None:
    """Frames cross the pipe intact (odd media types included); a SIGTERM to the server's process group
    does not lose what the writer process was handed: only the end of its input stops it."""
    import os
    import signal

    writer = CaptureWriter(CaptureConfig(tmp_path, endpoint="ep")).start()
    assert writer._child is not None
    bodies = [b"%d,2.5" % i for i in range(300)]
    for body in bodies:
        writer.offer(body, "text/csv; charset=utf-8", b"0.5", "text/csv")
    writer.offer(b"\xff\x00", None, b'{"p": 1}', "application/json")
    assert writer.flush() == 301
    os.kill(writer._child.pid, signal.SIGTERM)
    writer.offer(b"after", "text/csv", b"0.1", "text/csv")
    writer.close()
    records = captured(tmp_path)
    inputs = [r["captureData"]["endpointInput"] for r in records]
    assert [i["data"] for i in inputs[:300]] == [b.decode() for b in bodies] and inputs[-1]["data"] == "after"
    assert inputs[0]["observedContentType"] == "text/csv; charset=utf-8" and inputs[0]["encoding"] == "CSV"
    assert (inputs[300]["encoding"], inputs[300]["observedContentType"]) == ("BASE64", "")
    assert len({r["eventMetadata"]["eventId"] for r in records}) == 302
