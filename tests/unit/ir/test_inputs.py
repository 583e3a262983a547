"""Input data checked before anything runs (kubesage.ir.inputs), and both pipeline spellings."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kubesage.cli import main
from kubesage.errors import DataError
from kubesage.ir.inputs import check_inputs, data_parameters
from kubesage.ir.source import builtin_name, same_pipeline_name


def test_only_data_parameters_are_checked(tmp_path: Path) -> None:
    given = {"input_data": "a.csv", "holdout_data": "b.csv", "model_name": "x.csv", "seed": 3, "extra_data": 1}
    assert data_parameters(given) == {"input_data": "a.csv", "holdout_data": "b.csv"}
    check_inputs({"model_name": str(tmp_path / "nope.csv")})  # not a data parameter: not checked


def test_a_missing_local_file_names_the_parameter_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=rf"parameter input_data: input data file {missing} does not exist"):
        check_inputs({"input_data": str(missing)})
    with pytest.raises(DataError, match="does not exist"):
        check_inputs({"input_data": f"file://{missing}"})


def test_a_directory_is_refused_and_an_existing_file_passes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory; pass the CSV file itself"):
        check_inputs({"train_data": str(tmp_path)})
    present = tmp_path / "churn.csv"
    present.write_text("a\n")
    check_inputs({"input_data": str(present), "other_data": f"file://{present}"})


def test_an_s3_uri_without_a_key_is_refused() -> None:
    with pytest.raises(DataError, match="must name one S3 object"):
        check_inputs({"input_data": "s3://bucket-only/"})


def test_the_cli_fails_on_a_missing_file_before_compiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "customer_churn", "--param", "input_data=nope.csv"])
    assert result.exit_code == 2
    assert result.output.count("input data file nope.csv does not exist") == 1
    assert not (tmp_path / "mlflow.db").exists()  # no MLflow store touched, so no run left behind
    assert not (tmp_path / "build").exists()  # nothing compiled


@pytest.mark.parametrize("name", ["customer_churn", "customer-churn", "Customer-Churn"])
def test_either_spelling_names_the_builtin_pipeline(name: str) -> None:
    assert builtin_name(name, ["customer_churn"]) == "customer_churn"
    assert same_pipeline_name(name, "customer-churn")
    assert not same_pipeline_name(name, "customer-churns")


def test_compile_accepts_the_ir_spelling_and_names_its_placeholders(tmp_path: Path) -> None:
    output = tmp_path / "sm.json"
    result = CliRunner().invoke(
        main,
        ["compile", "customer-churn", "--target", "sagemaker", "--output", str(output), "--bucket", "my-bucket"],
    )
    assert result.exit_code == 0, result.output
    assert output.is_file()
    assert "role_arn = arn:aws:iam::000000000000:role/kubesage-sagemaker-execution" in result.output
    assert "--role VALUE or --option role_arn=VALUE" in result.output
    assert "image_uri" in result.output
    assert "bucket =" not in result.output  # set, so not a placeholder


def test_a_capture_folder_parameter_must_be_a_folder_here_and_any_uri_is_left_to_the_step(tmp_path: Path) -> None:
    check_inputs({"captures": str(tmp_path), "old_captures": f"file://{tmp_path}", "new_captures": "s3://b/prefix"})
    with pytest.raises(DataError, match=rf"parameter captures: {tmp_path / 'nope'} is not a folder"):
        check_inputs({"captures": str(tmp_path / "nope")})
    (tmp_path / "a.jsonl").write_text("{}\n")
    with pytest.raises(DataError, match="is not a folder; pass the capture folder"):
        check_inputs({"shadow_captures": str(tmp_path / "a.jsonl")})
