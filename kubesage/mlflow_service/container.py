"""The tracking service's container entry point (mlflow/Dockerfile): the same server `kubesage mlflow up`
starts, configured from the environment, for PostgreSQL (RDS) and S3 that already exist.

    KUBESAGE_MLFLOW_DATABASE_URI   postgresql+psycopg2://USER@HOST:5432/mlflow (no password: PGPASSWORD)
    KUBESAGE_MLFLOW_ARTIFACTS      s3://BUCKET/PREFIX (credentials: the task role, or AWS_* variables)
    KUBESAGE_MLFLOW_ALLOWED_HOSTS  the Host names clients use, e.g. mlflow.example.com
    PGPASSWORD, MLFLOW_AUTH_ADMIN_PASSWORD (first start), MLFLOW_FLASK_SERVER_SECRET_KEY: from a secret store
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from kubesage.mlflow_service.layout import write_private
from kubesage.mlflow_service.service import SOURCE_REGEX, auth_config, mlflow_server_command

REQUIRED = (
    "KUBESAGE_MLFLOW_DATABASE_URI",
    "KUBESAGE_MLFLOW_ARTIFACTS",
    "KUBESAGE_MLFLOW_ALLOWED_HOSTS",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)


def main() -> None:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        raise SystemExit(f"kubesage mlflow container: set {', '.join(missing)} (see mlflow/README.md)")
    database = os.environ["KUBESAGE_MLFLOW_DATABASE_URI"]
    config = Path(tempfile.mkdtemp(prefix="mlflow-auth-")) / "basic_auth.ini"
    write_private(config, auth_config(database))
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
    os.environ.setdefault("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
    os.environ.setdefault("MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX", SOURCE_REGEX)
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    command = mlflow_server_command(
        database, os.environ["KUBESAGE_MLFLOW_ARTIFACTS"], "0.0.0.0", int(os.environ.get("PORT", "5000")),
        os.environ["KUBESAGE_MLFLOW_ALLOWED_HOSTS"],
    )  # fmt: skip
    os.execv(sys.executable, command)


if __name__ == "__main__":
    main()
