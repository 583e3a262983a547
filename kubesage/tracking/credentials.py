"""The MLflow client credentials a step may need, by name: which the caller has set.

MLflow clients read HTTP Basic credentials (`MLFLOW_TRACKING_USERNAME`/`PASSWORD`) or a bearer token
(`MLFLOW_TRACKING_TOKEN`, which wins over both) from the environment. Runners hand the *names* on
(a Kubernetes secret reference, a Secrets Manager secret id), never the values: a value in an IR, a
definition, a parameter or an MLflow tag would be readable by anyone who can read the run.
"""

from __future__ import annotations

from collections.abc import Mapping

ENV_USERNAME = "MLFLOW_TRACKING_USERNAME"
ENV_PASSWORD = "MLFLOW_TRACKING_PASSWORD"
ENV_TOKEN = "MLFLOW_TRACKING_TOKEN"
CREDENTIAL_ENV: tuple[str, ...] = (ENV_USERNAME, ENV_PASSWORD, ENV_TOKEN)


def credential_env_names(env: Mapping[str, str]) -> list[str]:
    """The credential variables set in `env` that steps need too: the token, or the user and password."""
    if env.get(ENV_TOKEN):
        return [ENV_TOKEN]
    if env.get(ENV_USERNAME):
        return [ENV_USERNAME, ENV_PASSWORD]
    return []
