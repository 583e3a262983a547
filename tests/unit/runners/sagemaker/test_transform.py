"""The Batch Transform `kubesage score --runner sagemaker|sagemaker-local` starts: the exact requests,
how a job is followed and how its failure is reported, and bad input refused before any AWS call.

The job itself runs for real in tests/integration/test_batch_transform_local.py (SageMaker local mode,
Docker, moto's S3); here SageMaker's answers to DescribeTransformJob are a scripted stand-in, because
a failing job on AWS cannot be produced on this machine.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from kubesage.churn.feature_vectors import read_probabilities, write_feature_vectors, write_scores
from kubesage.churn.modelio import load_schema_if_present
from kubesage.cli.app import main
from kubesage.cli.features import feature_lines, read_records
from kubesage.errors import DataError
from kubesage.runners.sagemaker import SageMakerLocalOptions, SageMakerOptions
from kubesage.runners.sagemaker.transform import (
    TransformFailedError,
    TransformPlan,
    TransformSettings,
    follow,
    model_archive,
    model_request,
    plan_transform,
    split_lines,
    transform_job_request,
)
from kubesage.util.boto_sessions import new_boto3_session

ROLE = "arn:aws:iam::111122223333:role/kubesage-sagemaker-pipeline"
JOB_ROLE = "arn:aws:iam::111122223333:role/kubesage-sagemaker-job"
IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/kubesage/xgboost-daal4py:1.0"


def _plan(**changes: Any) -> TransformPlan:
    options = SageMakerOptions(image_uri=IMAGE, role_arn=ROLE, job_role_arn=JOB_ROLE, bucket="acme-ml", **changes)
    settings = TransformSettings(instance_type="ml.c5.xlarge", instance_count=2, max_payload_mb=4, job_name="nightly")
    return plan_transform(options, settings, "ab" * 32, local=False)


def test_create_transform_job_request_follows_sagemakers_line_split_csv_conventions() -> None:
    assert transform_job_request(_plan(output_kms_key="alias/scores")) == {
        "TransformJobName": "nightly",
        "ModelName": "nightly",
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 4,
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": "s3://acme-ml/kubesage/transform/inputs/nightly/data/",
                }
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": "s3://acme-ml/kubesage/transform/runs/nightly/output",
            "Accept": "text/csv",
            "AssembleWith": "Line",
            "KmsKeyId": "alias/scores",
        },
        "TransformResources": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 2},
        "Tags": [{"Key": "kubesage:transform", "Value": "nightly"}],
    }


def test_create_model_request_runs_the_image_with_the_job_role_and_pins_the_booster_digest() -> None:
    assert model_request(_plan()) == {
        "ModelName": "nightly",
        "ExecutionRoleArn": JOB_ROLE,  # the role without sagemaker:* or iam:PassRole (runners/sagemaker/iam/)
        "PrimaryContainer": {
            "Image": IMAGE,
            "ModelDataUrl": "s3://acme-ml/kubesage/transform/inputs/nightly/model/model.tar.gz",
            "Environment": {"KUBESAGE_MODEL_SHA256": "ab" * 32},
        },
        "Tags": [{"Key": "kubesage:transform", "Value": "nightly"}],
    }


def test_local_mode_runs_as_root_on_a_local_instance_and_finds_its_output_under_the_job_name() -> None:
    options = SageMakerLocalOptions(bucket="acme-ml", prefix="")
    plan = plan_transform(options, TransformSettings(instance_count=3, job_name="t1"), "cd" * 32, local=True)
    assert transform_job_request(plan)["TransformResources"] == {"InstanceType": "local", "InstanceCount": 1}
    assert model_request(plan)["PrimaryContainer"]["Environment"]["KUBESAGE_SERVE_USER"] == "root"
    assert plan.output_objects == ["s3://acme-ml/transform/runs/t1/output/t1/customers.csv.out"]
    # On two instances, two input objects (SageMaker hands each instance whole objects), answered in order.
    assert _plan().output_objects == [
        "s3://acme-ml/kubesage/transform/runs/nightly/output/customers-00000.csv.out",
        "s3://acme-ml/kubesage/transform/runs/nightly/output/customers-00001.csv.out",
    ]


def test_split_lines_keeps_every_line_in_order(tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text("".join(f"{i}\n" for i in range(7)))
    parts = split_lines(source, 3, 7)
    assert [p.name for p in parts] == ["customers-00000.csv", "customers-00001.csv", "customers-00002.csv"]
    assert [p.read_text().split() for p in parts] == [["0", "1", "2"], ["3", "4"], ["5", "6"]]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (TransformSettings(max_payload_mb=0), "must be between 1 and 100"),
        (TransformSettings(max_payload_mb=8), "larger than the 6 MB body the kubesage image accepts"),
        (TransformSettings(instance_count=0), "--instance-count 0 must be at least 1"),
        (TransformSettings(job_name="no_underscores"), "--job-name 'no_underscores'"),
    ],
    ids=["payload-zero", "payload-above-image-limit", "no-instances", "bad-job-name"],
)
def test_bad_settings_are_refused_with_the_flag_named(settings: TransformSettings, message: str) -> None:
    with pytest.raises(DataError, match=message):
        settings.check()


def test_model_archive_holds_the_booster_and_schema_and_is_reproducible(trained_model: Path) -> None:
    first, second = model_archive(trained_model), model_archive(trained_model)
    assert first == second
    # gzip's header holds a modification time (bytes 4-7): a clock time there made archives written
    # a second apart differ (this test failed in CI when its two calls straddled a second).
    assert first[:2] == b"\x1f\x8b" and first[4:8] == b"\0\0\0\0"
    with tarfile.open(fileobj=io.BytesIO(first)) as archive:
        assert archive.getnames() == ["xgboost-model.ubj", "feature_schema.json"]
        member = archive.extractfile("feature_schema.json")
        assert member is not None and member.read() == (trained_model / "feature_schema.json").read_bytes()


class _Scripted:
    """DescribeTransformJob answers in order, as SageMaker gives them (a stand-in: no AWS here)."""

    s3 = None

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)

    def describe(self, job_name: str) -> dict[str, Any]:
        return {"TransformJobName": job_name, **self.answers.pop(0)}


def test_follow_prints_each_status_change_and_returns_the_failure_reason() -> None:
    lines: list[str] = []
    backend = _Scripted(
        {"TransformJobStatus": "InProgress"},
        {"TransformJobStatus": "InProgress"},
        {"TransformJobStatus": "Failed", "FailureReason": "ClientError: See job logs for more information"},
    )
    ended = follow(backend.describe, "nightly", lines.append, poll_seconds=0, sleep=lambda _: None)
    assert ended["FailureReason"] == "ClientError: See job logs for more information"
    assert [line.split(" (")[0] for line in lines] == [
        "transform job nightly: InProgress",
        "transform job nightly: Failed",
    ]


def test_a_failed_job_is_one_line_with_its_failure_reason(trained_model: Path, churn_csv: Path, tmp_path: Path) -> None:
    from kubesage.runners.sagemaker.transform import ScoreJob, encode_input, run_transform

    class FailingJob(_Scripted):
        def __init__(self) -> None:
            super().__init__({"TransformJobStatus": "Failed", "FailureReason": "AlgorithmError: model\nrefused"})
            self.s3 = _NullS3()
            self.requests: list[dict[str, Any]] = []

        def create_model(self, request: dict[str, Any]) -> None:
            self.requests.append(request)

        def start(self, request: dict[str, Any]) -> None:
            self.requests.append(request)

    job = ScoreJob(trained_model, 0.5, churn_csv, str(tmp_path / "scores.csv"))
    files = encode_input(job, tmp_path)
    backend = FailingJob()
    with pytest.raises(TransformFailedError, match=r"^transform job t2 Failed: AlgorithmError: model refused$"):
        run_transform(job, files, SageMakerOptions(), TransformSettings(job_name="t2"), backend, tmp_path,
                      poll_seconds=0)  # fmt: skip
    assert [sorted(r)[0] for r in backend.requests] == ["ExecutionRoleArn", "BatchStrategy"]
    assert not (tmp_path / "scores.csv").exists()


class _NullS3:
    def put_object(self, **_: Any) -> None:
        return None

    def upload_file(self, *_: Any) -> None:
        return None


def test_feature_vectors_are_the_models_features_and_ids_stay_line_for_line(
    trained_model: Path, churn_csv: Path, tmp_path: Path
) -> None:
    schema = load_schema_if_present(trained_model)
    assert schema is not None
    files = write_feature_vectors(churn_csv, tmp_path / "f.csv", tmp_path / "ids.csv", schema)
    assert files.rows_written == files.rows_read == 5000 and files.id_columns == ("Phone",)
    written = np.loadtxt(tmp_path / "f.csv", delimiter=",", dtype=np.float32, max_rows=200)
    reference = np.loadtxt(feature_lines(read_records(churn_csv, 200), str(trained_model)), delimiter=",")
    np.testing.assert_array_equal(written, reference.astype(np.float32))
    ids = (tmp_path / "ids.csv").read_text().splitlines()
    assert ids[0] == '"Phone"' and len(ids) == 5001
    assert ids[1].strip('"') == churn_csv.read_text().splitlines()[1].split(",")[3]


def test_scores_join_the_answers_to_the_ids_and_refuse_a_short_output(
    trained_model: Path, churn_csv: Path, tmp_path: Path
) -> None:
    schema = load_schema_if_present(trained_model)
    assert schema is not None
    files = write_feature_vectors(churn_csv, tmp_path / "f.csv", tmp_path / "ids.csv", schema)
    answers = tmp_path / "f.csv.out"
    # Line assembly may leave a blank line between mini-batches: it is not an answer.
    answers.write_text("\n".join(["0.25"] * 2500) + "\n\n" + "\n".join(["0.75"] * 2500) + "\n")
    positives = write_scores(files, read_probabilities(answers), tmp_path / "scores.csv", 0.5)
    lines = (tmp_path / "scores.csv").read_text().splitlines()
    assert positives == 2500 and lines[0] == '"Phone","churn_probability","churn"' and len(lines) == 5001
    assert lines[1].endswith(",0.25,0") and lines[-1].endswith(",0.75,1")
    with pytest.raises(DataError, match="answered 4,999 lines for 5,000 input lines"):
        write_scores(files, read_probabilities(answers)[:-1], tmp_path / "short.csv", 0.5)


def test_a_bad_row_fails_before_any_aws_call_in_one_line_with_exit_2(
    trained_model: Path, churn_csv: Path, tmp_path: Path
) -> None:
    rows = churn_csv.read_text().splitlines()
    fields = rows[3].split(",")
    fields[7] = "lots"  # a numeric column (Day Mins) holding text
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*rows[:3], ",".join(fields), *rows[4:50]]) + "\n")
    result = CliRunner().invoke(
        main,
        ["score", "--runner", "sagemaker-local", "--model", str(trained_model), "--input", str(bad),
         "--output", str(tmp_path / "scores.csv"), "--threshold", "0.5", "--bucket", "no-such-bucket-here"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "line 4, column 'Day Mins': 'lots' is not a number" in errors[0]
    assert "Traceback" not in result.output


def test_runner_flags_without_a_sagemaker_runner_and_a_too_large_payload_are_usage_errors(tmp_path: Path) -> None:
    args = ["score", "--model", str(tmp_path), "--input", "x.csv", "--output", "y.csv"]
    flags = CliRunner().invoke(main, [*args, "--bucket", "acme-ml"])
    assert flags.exit_code == 2 and "need --runner sagemaker" in flags.output
    payload = CliRunner().invoke(main, [*args, "--runner", "sagemaker", "--max-payload-mb", "7"])
    assert payload.exit_code == 2 and "--max-payload-mb 7 is larger than the 6 MB body" in payload.output
    kfp = CliRunner().invoke(main, [*args, "--runner", "kfp"])
    assert kfp.exit_code == 2 and "'kfp' is not one of" in kfp.output


@pytest.mark.parametrize("operation", ["CreateModel", "CreateTransformJob"])
def test_the_requests_fit_sagemakers_api_definition(operation: str) -> None:
    """botocore's copy of SageMaker's API model (names, types, enums, lengths), offline: what AWS
    would refuse before looking at the account."""
    from botocore.validate import ParamValidator

    client = new_boto3_session(region_name="us-east-1").client(
        "sagemaker", aws_access_key_id="x", aws_secret_access_key="x"
    )
    request = {"CreateModel": model_request, "CreateTransformJob": transform_job_request}[operation](
        _plan(output_kms_key="alias/scores", volume_kms_key="alias/volumes")
    )
    report = ParamValidator().validate(request, client.meta.service_model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()
