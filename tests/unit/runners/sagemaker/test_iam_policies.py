"""The shipped IAM policies (runners/sagemaker/iam/) and the offline linter `make lint` runs on them.

Stand-in: AWS evaluates these policies; here parliament checks them against its copy of the IAM
action/resource catalogue, and kubesage's rules evaluate what each role *may* do on probe ARNs
(IAM wildcard matching, conditions ignored). Whether SageMaker really sets aws:SourceAccount when it
assumes the roles is from AWS's documentation, not verified here.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
IAM = ROOT / "runners" / "sagemaker" / "iam"


def _linter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lint_policies", ROOT / "scripts" / "lint_policies.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LINT = _linter()


def _policy(name: str) -> dict[str, Any]:
    return dict(json.loads(LINT.render((IAM / name).read_text())))


def _edited(tmp_path: Path, name: str, edit: Any) -> Path:
    target = tmp_path / "iam"
    shutil.copytree(IAM, target)
    policy = json.loads((target / name).read_text())
    edit(policy)
    (target / name).write_text(json.dumps(policy))
    return target


def test_the_shipped_policies_lint_clean() -> None:
    assert sorted(p.name for p in IAM.glob("*.json")) == [
        "job-role-policy.json",
        "job-trust.json",
        "pipeline-role-policy.json",
        "pipeline-trust.json",
        "user-policy.json",
    ]
    assert LINT.lint(IAM) == []


def test_jobs_cannot_touch_specs_inputs_sagemaker_or_roles() -> None:
    job = _policy("job-role-policy.json")
    assert not LINT.may_allow(job, "s3:PutObject", LINT.SPEC_KEY)
    assert not LINT.may_allow(job, "s3:PutObject", LINT.INPUT_KEY)
    assert LINT.may_allow(job, "s3:GetObject", LINT.SPEC_KEY)
    assert LINT.may_allow(job, "s3:PutObject", LINT.RUN_KEY)
    for action in ("sagemaker:CreateTrainingJob", "sagemaker:UpdatePipeline", "iam:PassRole"):
        assert not LINT.may_allow(job, action, "arn:aws:sagemaker:us-east-1:111122223333:pipeline/customer-churn")
        assert not LINT.may_allow(job, action, "arn:aws:iam::111122223333:role/kubesage-sagemaker-job")


def test_the_pipeline_role_starts_only_its_own_jobs_and_passes_only_the_job_role() -> None:
    pipeline = _policy("pipeline-role-policy.json")
    mine = "arn:aws:sagemaker:us-east-1:111122223333:training-job/pipelines-abc123-train-xyz"
    assert LINT.may_allow(pipeline, "sagemaker:CreateTrainingJob", mine)
    assert not LINT.may_allow(pipeline, "sagemaker:CreateTrainingJob", LINT.FOREIGN_JOBS["sagemaker:CreateTrainingJob"])
    assert LINT.may_allow(pipeline, "iam:PassRole", "arn:aws:iam::111122223333:role/kubesage-sagemaker-job")
    assert not LINT.may_allow(pipeline, "iam:PassRole", "arn:aws:iam::111122223333:role/admin")
    assert not LINT.may_allow(pipeline, "s3:PutObject", LINT.SPEC_KEY)


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        (
            "pipeline-role-policy.json",
            lambda p: p["Statement"][0].update(Resource="arn:aws:sagemaker:REGION:ACCOUNT_ID:*"),
            "on account-wide resource",
        ),
        (
            "job-role-policy.json",
            lambda p: p["Statement"].append(
                {"Effect": "Allow", "Action": "sagemaker:CreateTrainingJob", "Resource": "*"}
            ),
            "the job role gets no sagemaker actions",
        ),
        (
            "job-role-policy.json",
            lambda p: (p["Statement"][2].update(Resource="arn:aws:s3:::BUCKET/PREFIX/*"), p["Statement"].pop(3)),
            "jobs may write task specs",
        ),
        (  # `*` matches `/`: without the Deny, PREFIX/*/runs/* reaches into input and spec folders
            "job-role-policy.json",
            lambda p: p["Statement"].pop(3),
            "jobs may write outside runs/, into an input folder",
        ),
        (
            "pipeline-role-policy.json",
            lambda p: p["Statement"][3].pop("Condition"),
            "without a StringEquals iam:Passed",
        ),
        ("user-policy.json", lambda p: p["Statement"][4].update(Resource="arn:aws:iam::ACCOUNT_ID:role/*"), "wildcard"),
        ("job-trust.json", lambda p: p["Statement"][0].pop("Condition"), "aws:SourceAccount"),
        (
            "pipeline-role-policy.json",
            lambda p: p["Statement"][0].update(Resource=["arn:aws:sagemaker:REGION:ACCOUNT_ID:training-job/*"]),
            "on jobs the pipeline did not start",
        ),
        (  # parliament's own check: s3:GetObject on a bucket ARN matches no resource of the action
            "job-role-policy.json",
            lambda p: p["Statement"][0].update(Resource="arn:aws:s3:::BUCKET"),
            "parliament MEDIUM RESOURCE_MISMATCH",
        ),
    ],
    ids=[
        "account-wide-create",
        "job-role-sagemaker",
        "job-role-writes-specs",
        "job-role-writes-outside-runs",
        "passrole-unconditioned",
        "passrole-wildcard",
        "trust-no-source-account",
        "foreign-jobs",
        "parliament-resource-mismatch",
    ],
)
def test_the_linter_catches(name: str, edit: Any, message: str, tmp_path: Path) -> None:
    findings = LINT.lint(_edited(tmp_path, name, edit))
    assert any(message in f for f in findings), findings
    assert LINT.main([str(tmp_path / "iam")]) == 1


def test_the_readme_uses_the_files_not_inline_policies() -> None:
    readme = (ROOT / "runners" / "sagemaker" / "README.md").read_text()
    for name in ("pipeline-trust.json", "job-trust.json", "pipeline-role-policy.json", "job-role-policy.json"):
        assert f"iam/{name}" in readme
    assert '"Statement"' not in readme


def test_writes_to_another_executions_outputs_are_reported_as_accepted_or_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18 item 1: the lint checks the job role against keys of another execution."""
    job = _policy("job-role-policy.json")
    assert all(LINT.may_allow(job, "s3:PutObject", key) for key in LINT.OTHER_EXECUTION_KEYS)
    assert not any(LINT.may_allow(job, "s3:PutObject", key) for key in LINT.OUTSIDE_RUNS_KEYS)
    assert LINT.main([str(IAM)]) == 0
    (accepted,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("accepted:")]
    assert accepted.startswith("accepted: job-role-policy.json: jobs may overwrite another execution's outputs: ")
    assert "serving container refuse other bytes" in accepted
    monkeypatch.setattr(LINT, "ACCEPTED_EXPOSURES", {})
    findings = LINT.lint(IAM)
    assert findings == [
        f"job-role-policy.json: jobs may overwrite another execution's outputs ({LINT.OTHER_EXECUTION_KEYS[0]})"
    ]
