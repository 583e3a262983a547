"""Offline least-privilege check of the template's IAM policies (run by lambda/lint.sh in `make lint`).

Permission policies go through parliament (duo-labs' IAM linter: unknown actions, malformed ARNs,
actions that do not apply to the resource, `Resource: "*"`), with CloudFormation's intrinsics
replaced by example ARNs of the right shape first. On top: no wildcard action on a wildcard resource,
no NotAction/NotResource, and every trust policy pinned to the account with aws:SourceAccount.
parliament is a dev dependency; this module is never on the handler's path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from kubesage.deploy.template import TEMPLATE_PATH, iam_policies, load_template

ACCOUNT = "123456789012"
REGION = "us-east-1"
# An example ARN for what a !Ref / !GetAtt ... Arn of each resource type yields.
EXAMPLE_ARNS = {
    "AWS::SageMaker::Endpoint": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/example",
    "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/example:*",
    "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:example",
    "AWS::S3::Bucket": "arn:aws:s3:::example",
}


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
    if isinstance(node, dict):
        return {k: resolve(v, resources) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, resources) for v in node]
    return node


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def problems(template: dict[str, Any]) -> list[str]:
    """Every least-privilege problem in the template's IAM policies; empty when clean."""
    from parliament import analyze_policy_string

    found: list[str] = []
    resources = template["Resources"]
    for name, document in iam_policies(template).items():
        policy = resolve(document, resources)
        for statement in _listed(policy.get("Statement", [])):
            if "NotAction" in statement or "NotResource" in statement:
                found.append(f"{name}: NotAction/NotResource grants by exclusion")
            actions = [str(a) for a in _listed(statement.get("Action", []))]
            wild_action = any(a == "*" or a.endswith(":*") for a in actions)
            if wild_action and "*" in _listed(statement.get("Resource", [])):
                found.append(f"{name}: wildcard action {actions} on a wildcard resource")
        if name.endswith("/AssumeRolePolicyDocument"):
            for statement in _listed(policy.get("Statement", [])):
                account = statement.get("Condition", {}).get("StringEquals", {}).get("aws:SourceAccount")
                if account != ACCOUNT:
                    found.append(f"{name}: the trust policy is not pinned with aws:SourceAccount")
            continue  # a trust policy has no Resource, which parliament reports as malformed
        analysis = analyze_policy_string(json.dumps(policy), include_community_auditors=False)
        found.extend(f"{name}: {f.issue} {f.detail}" for f in analysis.findings)
    return found


def main(argv: list[str] | None = None) -> int:
    path = Path((argv or sys.argv[1:] or [str(TEMPLATE_PATH)])[0])
    found = problems(load_template(path))
    for problem in found:
        print(f"{path}: {problem}", file=sys.stderr)
    if not found:
        print(f"{path}: {len(iam_policies(load_template(path)))} IAM policies, least privilege: ok")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
