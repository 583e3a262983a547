"""Environment variables a step takes from AWS Secrets Manager when its job starts.

The definition carries only names: `KUBESAGE_SECRET_ENV` maps an environment variable to a secret id
(name or ARN) and a key of its JSON value, e.g. `{"MLFLOW_TRACKING_PASSWORD": {"secret":
"kubesage/mlflow", "key": "password", "optional": true}}`. The shim resolves it at start with the job
role (which may read only that secret: iam/job-role-policy.json) and gives the values to the task's
process only. Generic on purpose: a kfp-kubernetes `use_secret_as_env` (a Kubernetes secret name and
key -> env) translates to the same mapping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from kubesage.errors import RunnerError
from kubesage.tracking.credentials import ENV_PASSWORD, ENV_TOKEN, ENV_USERNAME

ENV_SECRET_ENV = "KUBESAGE_SECRET_ENV"
# The MLflow secret's JSON keys, as `aws secretsmanager create-secret --secret-string '{"username": ...}'`.
MLFLOW_KEYS = {ENV_USERNAME: "username", ENV_PASSWORD: "password", ENV_TOKEN: "token"}


class SecretRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    secret: str
    key: str
    optional: bool = False


def mlflow_secret_env(secret_id: str) -> dict[str, SecretRef]:
    """The MLflow credentials from one secret: whichever of username/password/token it holds."""
    return {env: SecretRef(secret=secret_id, key=key, optional=True) for env, key in MLFLOW_KEYS.items()}


def encode(mapping: Mapping[str, SecretRef]) -> str:
    return json.dumps({env: ref.model_dump() for env, ref in sorted(mapping.items())}, separators=(",", ":"))


def decode(text: str) -> dict[str, SecretRef]:
    try:
        raw = json.loads(text)
        return {str(env): SecretRef.model_validate(ref) for env, ref in raw.items()}
    except (ValueError, AttributeError, ValidationError) as exc:
        raise RunnerError(f"{ENV_SECRET_ENV} is not a mapping of env name -> {{secret, key}}: {exc}") from exc


def read_secret(client: Any, secret_id: str, wanted_for: str, optional: bool = False) -> dict[str, Any] | None:
    """The secret's JSON object; None for an optional secret that does not exist. Errors name the secret and
    what wanted it (`wanted_for`: an env name or a mount path), never a value."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        text = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if optional and code == "ResourceNotFoundException":
            return None  # as Kubernetes does for an optional secret that is not there
        hint = (
            "the job role needs secretsmanager:GetSecretValue on it (runners/sagemaker/iam/job-role-policy.json, "
            "or the statement `kubesage compile` writes beside the definition)"
            if code in {"AccessDeniedException", "AccessDenied", "403"}
            else "create it, or pass the right name (--option mlflow_secret=, --secret-map)"
        )
        raise RunnerError(f"cannot read secret {secret_id!r} for {wanted_for} ({code}): {hint}") from exc
    except (BotoCoreError, KeyError) as exc:
        raise RunnerError(f"cannot read secret {secret_id!r} for {wanted_for}: {type(exc).__name__}") from exc
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise RunnerError(f'secret {secret_id!r} is not a JSON object of keys (e.g. {{"password": ...}})')
    return parsed


def resolve(mapping: Mapping[str, SecretRef], client: Any) -> dict[str, str]:
    """env name -> value, each secret read once; errors name the secret, key and variable, never a value."""
    values: dict[str, dict[str, Any] | None] = {}
    resolved: dict[str, str] = {}
    for env, ref in sorted(mapping.items()):
        if ref.secret not in values:
            values[ref.secret] = read_secret(client, ref.secret, env, ref.optional)
        value = (values[ref.secret] or {}).get(ref.key)
        if value is None:
            if ref.optional:
                continue
            raise RunnerError(f"secret {ref.secret!r} has no key {ref.key!r} (wanted for {env})")
        resolved[env] = str(value)
    return resolved


def resolve_environment(environ: Mapping[str, str], client_factory: Any) -> dict[str, str]:
    """The variables `KUBESAGE_SECRET_ENV` in `environ` asks for; {} when it is unset."""
    text = environ.get(ENV_SECRET_ENV)
    if not text:
        return {}
    return resolve(decode(text), client_factory())
