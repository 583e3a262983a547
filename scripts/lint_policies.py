"""The one IAM policy linter, offline: parliament plus kubesage's own rules, on every policy kubesage ships.

    python scripts/lint_policies.py                   # both sources below
    python scripts/lint_policies.py DIR               # a folder of policy files (runners/sagemaker/iam/)
    python scripts/lint_policies.py TEMPLATE.yaml     # a CloudFormation template's roles (lambda/template.yaml)
    python scripts/lint_policies.py OUT.json.job-role-secrets.json   # the task secrets statement compile wrote

Exit 1 and one line per finding, 0 when clean. `make lint` runs it on runners/sagemaker/iam/ and
lambda/lint.sh on the template.

The policy files use placeholders (ACCOUNT_ID, REGION, BUCKET, PREFIX) that the README's commands
fill in, and the template CloudFormation intrinsics (!Ref, !GetAtt); both are rendered with example
values first, because parliament checks ARN formats.

1. parliament (with its community auditors) on every identity policy: unknown actions, malformed or
   mismatched resources, `Resource: "*"`, bad condition keys, privilege escalation, credentials exposure.
2. kubesage's rules, on what each role may do (IAM wildcard matching on probe ARNs, conditions
   ignored, so a rule fails when an action *may* be allowed):
   - every policy: no NotAction/NotResource, no wildcard action on a wildcard resource, no sagemaker
     action on an account-wide resource (arn:aws:sagemaker:REGION:ACCOUNT:*);
   - every iam:PassRole: one named role, conditioned on iam:PassedToService;
   - every trust policy: the one service principal its role is for (TRUSTED_SERVICES), conditioned
     on aws:SourceAccount equal to the account;
   - the SageMaker job role: no sagemaker:* action, no iam:PassRole, no write to task specs or inputs,
     nor to keys outside runs/ that `*/runs/*` matches anyway; writes to another execution's outputs
     are reported as an accepted exposure (ACCEPTED_EXPOSURES says why) or fail the lint; it reads
     one secret, the MLflow credentials (MLFLOW_SECRET_ARN), and no other;
   - the SageMaker pipeline role: starts and stops only jobs the pipeline named (pipelines-*);
   - a compiled pipeline's task secrets statement (*.job-role-secrets.json): GetSecretValue only, each
     resource one secret (full ARN or NAME-??????), none of OTHER_SECRETS.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IAM_DIR = ROOT / "runners" / "sagemaker" / "iam"
TEMPLATE = ROOT / "lambda" / "template.yaml"
ACCOUNT = "111122223333"
REGION = "us-east-1"
EXAMPLE = {
    "ACCOUNT_ID": ACCOUNT,
    "REGION": REGION,
    "BUCKET": "kubesage-example",
    "PREFIX": "kubesage",
}
# The one secret the job role reads, by its full ARN (Secrets Manager appends six random characters to the
# name; the README's commands take the ARN create-secret prints).
MLFLOW_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:kubesage/mlflow-AbC123"
EXAMPLE["MLFLOW_SECRET_ARN"] = MLFLOW_SECRET_ARN
OTHER_SECRETS = (
    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/database-AbC123",
    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:kubesage/mlflow-admin-AbC123",
)
# The statement `kubesage compile` writes beside a definition whose tasks read kfp-kubernetes secrets
# (runners/sagemaker/secret_policy.py): each resource is one secret, by full ARN or NAME-?????? (AWS's
# pattern for the six characters Secrets Manager appends; `?` matches exactly one, so `a-??????` never
# matches `a-admin-AbC123`).
TASK_SECRETS_SUFFIX = ".job-role-secrets.json"
ONE_SECRET_ARN = re.compile(r"^arn:aws[a-z\-]*:secretsmanager:[a-z0-9\-]+:\d{12}:secret:[^*?]+(-\?{6})?$")
# An example ARN for what a !Ref / !GetAtt ... Arn of each resource type yields in the template.
EXAMPLE_ARNS = {
    "AWS::SageMaker::Endpoint": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/example",
    "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/example:*",
    "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:example",
    "AWS::S3::Bucket": "arn:aws:s3:::example",
}
# The one service principal each role's trust policy may name (a policy file, or template role/document).
TRUSTED_SERVICES = {
    "job-trust.json": "sagemaker.amazonaws.com",
    "pipeline-trust.json": "sagemaker.amazonaws.com",
    "FunctionRole/AssumeRolePolicyDocument": "lambda.amazonaws.com",
    "MonitoringScheduleRole/AssumeRolePolicyDocument": "events.amazonaws.com",
}
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


def is_trust_policy(name: str) -> bool:
    return name.endswith("-trust.json") or name.endswith("/AssumeRolePolicyDocument")


def kubesage_rules(name: str, policy: dict[str, Any]) -> list[str]:
    """kubesage's least-privilege rules for one rendered policy; one message per violation."""
    found: list[str] = []
    for stmt in _list_statements(policy):
        if "NotAction" in stmt or "NotResource" in stmt:
            found.append(f"{name}: NotAction/NotResource grant more than they name; list what is allowed")
        actions = _list(stmt.get("Action"))
        if any(a == "*" or a.endswith(":*") for a in actions) and "*" in _list(stmt.get("Resource")):
            found.append(f"{name}: wildcard action {actions} on a wildcard resource")
    if is_trust_policy(name):
        return found + _trust_rules(name, policy)
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
        for secret in OTHER_SECRETS:
            if may_allow(policy, "secretsmanager:GetSecretValue", secret):
                found.append(f"{name}: jobs may read a secret other than the MLflow credentials ({secret})")
        for _, action in _actions(policy):
            if action.lower().startswith("secretsmanager:") and action != "secretsmanager:GetSecretValue":
                found.append(f"{name}: the job role only reads its secret ({action} is more)")
        if not may_allow(policy, "secretsmanager:GetSecretValue", MLFLOW_SECRET_ARN):
            found.append(f"{name}: jobs cannot read the MLflow credentials secret ({MLFLOW_SECRET_ARN})")
        exposed = [key for key in OTHER_EXECUTION_KEYS if may_allow(policy, "s3:PutObject", key)]
        if exposed and (name, "another execution's outputs") not in ACCEPTED_EXPOSURES:
            found.append(f"{name}: jobs may overwrite another execution's outputs ({exposed[0]})")
    if name.endswith(TASK_SECRETS_SUFFIX):
        found += _task_secrets_rules(name, policy)
    if name == "pipeline-role-policy.json":
        for action, job in FOREIGN_JOBS.items():
            if may_allow(policy, action, job):
                found.append(f"{name}: {action} on jobs the pipeline did not start ({job}); restrict to pipelines-*")
    return found


def _task_secrets_rules(name: str, policy: dict[str, Any]) -> list[str]:
    """The job role's statement `kubesage compile` writes for a pipeline's kfp-kubernetes secrets: it reads
    the secrets it names, one secret per resource, and may do nothing else."""
    found: list[str] = []
    for stmt in _list_statements(policy):
        if stmt.get("Effect") != "Allow" or _list(stmt.get("Action")) != ["secretsmanager:GetSecretValue"]:
            found.append(f"{name}: only Allow secretsmanager:GetSecretValue belongs here, got {stmt.get('Action')}")
        for resource in _list(stmt.get("Resource")):
            if not ONE_SECRET_ARN.match(resource):
                found.append(f"{name}: {resource} is not one secret's ARN (NAME-?????? or the full ARN)")
    for secret in OTHER_SECRETS:
        if may_allow(policy, "secretsmanager:GetSecretValue", secret):
            found.append(f"{name}: jobs may read a secret the pipeline does not name ({secret})")
    return found


def _trust_rules(name: str, policy: dict[str, Any]) -> list[str]:
    found: list[str] = []
    service = TRUSTED_SERVICES.get(name)
    if service is None:
        return [f"{name}: no trusted service known for this role; add it to TRUSTED_SERVICES"]
    for stmt in _list_statements(policy):
        principal = stmt.get("Principal", {})
        if _list(principal.get("Service") if isinstance(principal, dict) else None) != [service]:
            found.append(f"{name}: trust only the {service} service principal, got {principal}")
        account = stmt.get("Condition", {}).get("StringEquals", {}).get("aws:SourceAccount")
        if account is None:
            found.append(f"{name}: trust without a StringEquals aws:SourceAccount condition (confused deputy)")
        elif account != ACCOUNT:
            found.append(f"{name}: aws:SourceAccount is {account!r}, not the account ({ACCOUNT}) the role is in")
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


def lint_policy(name: str, text: str) -> list[str]:
    """Every finding for one rendered policy document (JSON text)."""
    messages = [] if is_trust_policy(name) else parliament_findings(name, text)  # parliament: identity only
    return messages + kubesage_rules(name, json.loads(text))


def lint(directory: Path) -> list[str]:
    """The policy files in `directory` (placeholders rendered with EXAMPLE)."""
    files = sorted(directory.glob("*.json"))
    if not files:
        return [f"{directory}: no policy files"]
    return [message for path in files for message in lint_policy(path.name, render(path.read_text()))]


def template_policies(template: dict[str, Any]) -> dict[str, str]:
    """The template's IAM policies by '<role>/<policy>', intrinsics resolved to example values, as JSON."""
    from kubesage.deploy.template import iam_policies

    resources = template["Resources"]
    return {name: json.dumps(resolve(doc, resources)) for name, doc in iam_policies(template).items()}


def lint_template(template: dict[str, Any]) -> list[str]:
    """Every finding in a CloudFormation template's IAM policies; empty when clean."""
    return [message for name, text in template_policies(template).items() for message in lint_policy(name, text)]


def resolve(node: Any, resources: dict[str, Any]) -> Any:
    """Intrinsics to example values: a Ref/GetAtt of a resource becomes an ARN of its type."""
    if isinstance(node, dict) and len(node) == 1:
        ((key, value),) = node.items()
        target = value if key == "Ref" else value[0] if key == "Fn::GetAtt" else None
        if isinstance(target, str) and target in resources:
            kind = resources[target]["Type"]
            if kind not in EXAMPLE_ARNS:
                raise ValueError(f"no example ARN for {kind} ({target}); add one to EXAMPLE_ARNS")
            return EXAMPLE_ARNS[kind]
        if key == "Ref" and target == "AWS::AccountId":
            return ACCOUNT
        if key == "Fn::Sub" and isinstance(value, str):
            return _substitute(value)
    if isinstance(node, dict):
        return {k: resolve(v, resources) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, resources) for v in node]
    return node


# What a !Sub's pseudo parameters become in the example: the ARN's shape is what parliament checks.
EXAMPLE_PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": "example",
}


def _substitute(text: str) -> str:
    """Pseudo parameters to their example values, the template's own parameters to "example"."""
    for name, value in EXAMPLE_PSEUDO.items():
        text = text.replace("${" + name + "}", value)
    if "${AWS::" in text:
        raise ValueError(f"no example value for a pseudo parameter in {text!r}; add it to EXAMPLE_PSEUDO")
    return re.sub(r"\$\{([^}]+)\}", "example", text)


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


def lint_source(source: Path) -> list[str]:
    """Lint a folder of policy files or a CloudFormation template; print what it found and return it."""
    if source.is_dir():
        for line in accepted_exposures(source):
            print(line)
        messages = lint(source)
        count = len(list(source.glob("*.json")))
    elif source.suffix == ".json":  # one policy file, e.g. what `kubesage compile` wrote for task secrets
        messages = lint_policy(source.name, render(source.read_text()))
        count = 1
    else:
        from kubesage.deploy.template import load_template

        template = load_template(source)
        messages = [f"{source}: {m}" for m in lint_template(template)]
        count = len(template_policies(template))
    for message in messages:
        print(message)
    print(f"policy-lint: {count} policies in {source}, {len(messages)} findings", file=sys.stderr)
    return messages


def main(argv: list[str]) -> int:
    sources = [Path(arg) for arg in argv] or [IAM_DIR, TEMPLATE]
    findings = [message for source in sources for message in lint_source(source)]
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
