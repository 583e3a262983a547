"""Where the served model comes from: a local model directory or an MLflow model URI."""

from __future__ import annotations

from pathlib import Path

from kubesage.churn.modelio import find_model_file
from kubesage.errors import ModelError, TrackingError
from kubesage.util.redact import redact_text, redact_uri
from kubesage.util.scratch import process_temp_dir

# URIs MLflow resolves itself; anything else is a local path.
MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/", "s3://", "gs://", "wasbs://", "file://")


def is_mlflow_uri(model: str) -> bool:
    return model.startswith(MLFLOW_SCHEMES)


def resolve_model_dir(model: str, download_dir: str | Path | None = None) -> Path:
    """A local directory holding the booster for `model` (a path, or e.g. `models:/customer-churn/3`).

    MLflow models are downloaded with mlflow.artifacts.download_artifacts into `download_dir` (a
    new temporary directory by default) using the tracking/registry URI from the environment
    (MLFLOW_TRACKING_URI). The result is checked to hold an XGBoost booster, so a bad URI fails
    here, with its name, rather than in a server worker.
    """
    if not is_mlflow_uri(model):
        path = Path(model).expanduser()
        if not path.exists():
            raise ModelError(f"model directory {path} does not exist (or pass an MLflow URI like models:/NAME/VERSION)")
        find_model_file(path)
        return path.resolve()
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from kubesage.tracking import tracking_uri

    target = Path(download_dir) if download_dir else process_temp_dir("kubesage-model-")
    target.mkdir(parents=True, exist_ok=True)
    try:
        # The URI in force, explicitly: MLflow's process-global tracking URI may have been set by other code.
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=model, dst_path=str(target), tracking_uri=tracking_uri())
        )
    except MlflowException as exc:
        raise TrackingError(
            f"could not download {redact_uri(model)} from MLflow: {redact_text(exc.message)}{_versions_hint(model)}"
        ) from exc
    except OSError as exc:
        raise TrackingError(f"could not download {redact_uri(model)} from MLflow: {redact_text(str(exc))}") from exc
    find_model_file(local)
    return local


def _versions_hint(model: str) -> str:
    """For models:/NAME/VERSION, the versions NAME has (or that it has none), to pick from."""
    if not model.startswith("models:/"):
        return ""
    name = model.removeprefix("models:/").split("/", 1)[0].split("@", 1)[0]

    from kubesage.tracking import mlflow_client

    try:
        safe = name.replace("'", "")
        versions = mlflow_client().search_model_versions(f"name = '{safe}'")
    except Exception:  # the download error above is the one to show
        return ""
    if not versions:
        return f"; no registered model {name!r} has any version (`kubesage run` registers one)"
    numbers = sorted(int(v.version) for v in versions)
    listed = ", ".join(str(n) for n in numbers[-10:])
    return f"; {name} has version(s) {listed}: e.g. --model models:/{name}/{numbers[-1]}"
