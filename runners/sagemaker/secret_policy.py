"""The job role's statement for the secrets a compiled pipeline's steps read, and nothing more.

A task's kfp-kubernetes secrets become Secrets Manager secrets named by `--option secret_map=`; the job
role needs `secretsmanager:GetSecretValue` on exactly those. `kubesage compile` writes this policy
beside the definition (`<definition>.job-role-secrets.json`) for `aws iam put-role-policy`, and
`scripts/lint_policies.py` checks it: that action only, each resource one secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

POLICY_SUFFIX = ".job-role-secrets.json"
SID = "ReadOnlyTheTasksSecrets"


def secret_arn(secret_id: str, region: str, role_arn: str) -> str:
    """The ARN a policy names for `secret_id`: an ARN as given (the full one create-secret prints);
    a name in the job role's account and partition, with `-??????` for the six characters Secrets
    Manager appends (AWS's documented pattern for naming a secret by its name in a policy)."""
    if secret_id.startswith("arn:"):
        return secret_id
    _, partition, _, _, account, _ = role_arn.split(":", 5)
    return f"arn:{partition}:secretsmanager:{region}:{account}:secret:{secret_id}-??????"


def job_role_policy(secret_ids: Iterable[str], region: str, role_arn: str) -> dict[str, Any] | None:
    """An identity policy letting the job role read exactly these secrets; None when there are none."""
    resources = sorted({secret_arn(s, region, role_arn) for s in secret_ids})
    if not resources:
        return None
    statement = {"Sid": SID, "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": resources}
    return {"Version": "2012-10-17", "Statement": [statement]}
