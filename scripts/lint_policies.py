"""Lint the shipped IAM policies (runners/sagemaker/iam/) offline: parliament plus kubesage's own rules.

    python scripts/lint_policies.py [DIR]        # exit 1 and one line per finding, 0 when clean

The files use placeholders (ACCOUNT_ID, REGION, BUCKET, PREFIX) that the README's commands fill in;
they are rendered with example values first, because parliament checks ARN formats.

1. parliament (with its community auditors) on every identity policy: unknown actions, malformed or
   mismatched resources, bad condition keys, privilege escalation, credentials exposure.
2. kubesage's rules, on what each role may do (IAM wildcard matching on probe ARNs, conditions
   ignored, so a rule fails when an action *may* be allowed):
   - the job role: no sagemaker:* action, no iam:PassRole, no write to task specs or inputs, nor to
     keys outside runs/ that `*/runs/*` matches anyway; writes to another execution's outputs are
     reported as an accepted exposure (ACCEPTED_EXPOSURES says why) or fail the lint;
   - the pipeline role: starts and stops only jobs the pipeline named (pipelines-*), no
     sagemaker action on an account-wide resource (arn:aws:sagemaker:REGION:ACCOUNT:*);
   - every iam:PassRole: one named role, conditioned on iam:PassedToService;
   - every trust policy: the SageMaker service principal, conditioned on aws:SourceAccount.
"""

from __future__ import annotations

import fnmatch
import json
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

IAM_DIR = Path(__file__).resolve().parents[1] / "runners" / "sagemaker" / "iam"
EXAMPLE = {"ACCOUNT_ID": "111122223333", "REGION": "us-east-1", "BUCKET": "kubesage-example", "PREFIX": "kubesage"}
SPEC_KEY = "arn:aws:s3:::kubesage-example/kubesage/customer-churn/specs/0123456789abcdef/train.json"
INPUT_KEY = "arn:aws:s3:::kubesage-example/kubesage/customer-churn/inputs/0123456789abcdef/churn.txt"
RUN_KEY = "arn:aws:s3:::kubesage-example/kubesage/customer-churn/runs/exec1/evaluate/kubesage-outputs/outputs.json"
# In S3 ARNs `*` matches `/` too, so `PREFIX/*/runs/*` also matches these keys outside the runs/ tree:
# an extra file in an uploaded input folder or beside a spec. The job role must be denied them.
OUTSIDE_RUNS_KEYS = {
    "arn:aws:s3:::kubesage-example/kubesage/customer-churn/inputs/0123456789abcdef/runs/extra.csv": "an input folder",
    "arn:aws:s3:::kubesage-example/kubesage/customer-churn/specs/0123456789abcdef/runs/train.json": "a spec folder",
}
# Another execution's outputs: its model (behind a model package) and the outputs.json its gate reads.
OTHER_EXECUTION_KEYS = (
    "arn:aws:s3:::kubesage-example/kubesage/customer-churn/runs/exec2/train/model/pipelines-exec2-train/output/model.tar.gz",
    "arn:aws:s3:::kubesage-example/kubesage/customer-churn/runs/exec2/evaluate/kubesage-outputs/outputs.json",
)
# What the job role may do that least privilege would forbid, and why it stays (printed on each lint).
ACCEPTED_EXPOSURES: dict[tuple[str, str], str] = {
    ("job-role-policy.json", "another execution's outputs"): (
        "SageMaker Pipelines runs every job of a definition with one role, and a job's S3 requests carry no "
        "execution id IAM could match; SageMaker itself uploads the outputs (no If-None-Match), so the bucket "
        "cannot demand write-once. Mitigated, not prevented: register records the model's sha256, `kubesage "
        "deploy` and the serving container refuse other bytes (runners/sagemaker/README.md)"
    ),
}
# Jobs that a SageMaker pipeline did not start (its jobs are named pipelines-<execution>-<step>-...).
FOREIGN_JOBS = {
    "sagemaker:CreateTrainingJob": "arn:aws:sagemaker:us-east-1:111122223333:training-job/someone-elses-job",
    "sagemaker:StopTrainingJob": "arn:aws:sagemaker:us-east-1:111122223333:training-job/someone-elses-job",
    "sagemaker:CreateProcessingJob": "arn:aws:sagemaker:us-east-1:111122223333:processing-job/someone-elses-job",
    "sagemaker:StopProcessingJob": "arn:aws:sagemaker:us-east-1:111122223333:processing-job/someone-elses-job",
}

# Parliament findings accepted on purpose, each with the reason. (file, finding issue, action or "").
SKIPS: dict[tuple[str, str, str], str] = {
    ("pipeline-role-policy.json", "PERMISSIONS_MANAGEMENT_ACTIONS", "iam:passrole"): (
        "the pipeline must hand the job role to the jobs it starts; one role ARN, PassedToService=sagemaker"
    ),
    ("user-policy.json", "PERMISSIONS_MANAGEMENT_ACTIONS", "iam:passrole"): (
        "CreatePipeline takes the pipeline role; one role ARN, PassedToService=sagemaker"
    ),
    ("job-role-policy.json", "CREDENTIALS_EXPOSURE", "ecr:getauthorizationtoken"): (
        "SageMaker pulls the private ECR step image with the job role's registry token; the token reads "
        "only repositories the role may pull (one, in this policy)"
    ),
}


def render(text: str) -> str:
    for placeholder, value in EXAMPLE.items():
        text = text.replace(placeholder, value)
    return text


def _list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _match(pattern: str, value: str) -> bool:
    """IAM wildcards: '*' any run, '?' one character; actions compare case-insensitively."""
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _applies(stmt: dict[str, Any], action: str, resource: str) -> bool:
    return any(_match(a, action) for a in _list(stmt.get("Action"))) and any(
        _match(r, resource) for r in _list(stmt.get("Resource"))
    )


def may_allow(policy: dict[str, Any], action: str, resource: str) -> bool:
    """Whether some Allow may grant `action` on `resource` and no unconditional Deny takes it back.

    Conditions are ignored on Allows (a rule fails when an action *may* be allowed); a Deny counts only
    without a Condition, since only then is it sure to apply."""
    statements = _list_statements(policy)
    if any(s.get("Effect") == "Deny" and "Condition" not in s and _applies(s, action, resource) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and _applies(s, action, resource) for s in statements)


def _list_statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _actions(policy: dict[str, Any]) -> Iterable[tuple[dict[str, Any], str]]:
    for stmt in _list_statements(policy):
        for action in _list(stmt.get("Action")):
            yield stmt, action


def kubesage_rules(name: str, policy: dict[str, Any]) -> list[str]:
    """kubesage's least-privilege rules for one rendered policy file; one message per violation."""
    found: list[str] = []
    for stmt in _list_statements(policy):
        if "NotAction" in stmt or "NotResource" in stmt:
            found.append(f"{name}: NotAction/NotResource grant more than they name; list what is allowed")
    if name.endswith("-trust.json"):
        for stmt in _list_statements(policy):
            principal = stmt.get("Principal", {})
            if _list(principal.get("Service") if isinstance(principal, dict) else None) != ["sagemaker.amazonaws.com"]:
                found.append(f"{name}: trust only the SageMaker service principal, got {principal}")
            if "aws:SourceAccount" not in stmt.get("Condition", {}).get("StringEquals", {}):
                found.append(f"{name}: trust without a StringEquals aws:SourceAccount condition (confused deputy)")
        return found
    for stmt, action in _actions(policy):
        if _match(action, "iam:PassRole"):
            if any("*" in r for r in _list(stmt.get("Resource"))):
                found.append(f"{name}: iam:PassRole on a wildcard role; name the one role")
            if "iam:PassedToService" not in stmt.get("Condition", {}).get("StringEquals", {}):
                found.append(f"{name}: iam:PassRole without a StringEquals iam:PassedToService condition")
        if action.lower().startswith("sagemaker:"):
            for resource in _list(stmt.get("Resource")):
                if resource == "*" or resource.split(":", 5)[-1] == "*":
                    found.append(f"{name}: {action} on account-wide resource {resource}; name the resource type")
    if name == "job-role-policy.json":
        for _, action in _actions(policy):
            if action.lower().startswith("sagemaker:") or action == "*":
                found.append(f"{name}: the job role gets no sagemaker actions ({action})")
            if _match(action, "iam:PassRole"):
                found.append(f"{name}: the job role must not pass roles")
        for key, what in ((SPEC_KEY, "task specs"), (INPUT_KEY, "uploaded inputs")):
            if may_allow(policy, "s3:PutObject", key) or may_allow(policy, "s3:DeleteObject", key):
                found.append(f"{name}: jobs may write {what} ({key}); specs and inputs are read-only to jobs")
        for key, where in OUTSIDE_RUNS_KEYS.items():
            if may_allow(policy, "s3:PutObject", key):
                found.append(f"{name}: jobs may write outside runs/, into {where} ({key}); deny specs/ and inputs/")
        if not may_allow(policy, "s3:PutObject", RUN_KEY):
            found.append(f"{name}: jobs cannot write their outputs ({RUN_KEY})")
        exposed = [key for key in OTHER_EXECUTION_KEYS if may_allow(policy, "s3:PutObject", key)]
        if exposed and (name, "another execution's outputs") not in ACCEPTED_EXPOSURES:
            found.append(f"{name}: jobs may overwrite another execution's outputs ({exposed[0]})")
    if name == "pipeline-role-policy.json":
        for action, job in FOREIGN_JOBS.items():
            if may_allow(policy, action, job):
                found.append(f"{name}: {action} on jobs the pipeline did not start ({job}); restrict to pipelines-*")
    return found


def parliament_findings(name: str, text: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # parliament 1.6 imports pkg_resources, deprecated
        import parliament
        from parliament import analyze_policy_string, config, enhance_finding, override_config

    # What parliament's CLI does for --include-community-auditors: load their finding definitions.
    override_config(str(Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"))

    policy = analyze_policy_string(text, filepath=name, include_community_auditors=True, config=config)
    messages = []
    for finding in (enhance_finding(f) for f in policy.findings):
        actions = [a.lower() for a in _list((finding.location or {}).get("actions"))] or [""]
        if all((name, finding.issue, action) in SKIPS for action in actions):
            continue
        messages.append(f"{name}: parliament {finding.severity} {finding.issue}: {finding.title} {finding.location}")
    return messages


def lint(directory: Path) -> list[str]:
    messages = []
    files = sorted(directory.glob("*.json"))
    if not files:
        return [f"{directory}: no policy files"]
    for path in files:
        text = render(path.read_text())
        policy = json.loads(text)
        if not path.name.endswith("-trust.json"):  # parliament reads identity policies only
            messages += parliament_findings(path.name, text)
        messages += kubesage_rules(path.name, policy)
    return messages


def accepted_exposures(directory: Path) -> list[str]:
    """The accepted exposures that still apply to the policies in `directory`, one line each."""
    lines = []
    for (file, what), why in ACCEPTED_EXPOSURES.items():
        path = directory / file
        if path.exists():
            policy = json.loads(render(path.read_text()))
            if any(may_allow(policy, "s3:PutObject", key) for key in OTHER_EXECUTION_KEYS):
                lines.append(f"accepted: {file}: jobs may overwrite {what}: {why}")
    return lines


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else IAM_DIR
    for line in accepted_exposures(directory):
        print(line)
    messages = lint(directory)
    for message in messages:
        print(message)
    count = len(list(directory.glob("*.json")))
    print(f"policy-lint: {count} policies in {directory}, {len(messages)} findings", file=sys.stderr)
    return 1 if messages else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
