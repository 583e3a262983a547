"""The KFP-cluster backend: submit the compiled IR to a Kubeflow Pipelines API with kfp.Client, follow it.

Only the options model lives here (the registry imports this module for every CLI start); the runner,
its IR edits and the API adapter are imported when the runner is used.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from kubesage.runners.base import OnExit, RunnerOptions
from kubesage.runners.registry import RunnerSpec


class KfpOptions(RunnerOptions):
    host: str | None = Field(
        default=None,
        description="the KFP API URL, e.g. http://127.0.0.1:8888 after port-forwarding svc/ml-pipeline "
        "(default: $KF_PIPELINES_ENDPOINT, kfp.Client's own variable)",
    )
    namespace: str | None = Field(default=None, description="the user namespace of a multi-user install")
    existing_token: SecretStr | None = Field(
        default=None,
        description="a bearer token (e.g. `kubectl create token ...`); prefer token_file or $KF_PIPELINES_TOKEN, "
        "which stay out of shell history",
    )
    token_file: Path | None = Field(default=None, description="a file holding the bearer token")
    cookies: SecretStr | None = Field(
        default=None, description="a Cookie header for a Dex/oauth2-proxy session, e.g. authservice_session=..."
    )
    ssl_ca_cert: Path | None = Field(default=None, description="the CA bundle that signs the API's TLS certificate")
    experiment: str | None = Field(
        default=None, description="the KFP experiment (created if missing; default: the pipeline name)"
    )
    run_name: str | None = Field(default=None, description="the KFP run's name (default: pipeline and MLflow run id)")
    enable_caching: bool = Field(
        default=False,
        description="let KFP reuse cached task results; off by default because a cached task opens no MLflow run",
    )
    service_account: str | None = Field(default=None, description="the Kubernetes service account the run's pods use")
    pipeline_root: str | None = Field(default=None, description="where the run's artifacts go (default: the cluster's)")
    image_uri: str | None = Field(
        default=None,
        description="the image every task runs in (default: the one compiled in, kubesage/xgboost-daal4py:latest)",
        json_schema_extra={"flag": "--image"},
    )
    pipeline_name: str | None = Field(
        default=None,
        description="upload the IR as a version of this KFP pipeline (created if missing) and run that version",
    )
    pipeline_version: str | None = Field(
        default=None, description="the uploaded version's name (default: the MLflow run id, unique per run)"
    )
    mlflow_secret: str = Field(
        default="kubesage-mlflow",
        description="the Kubernetes secret the pods read MLflow credentials from (keys username and password, "
        "or token), referenced in the IR when MLFLOW_TRACKING_USERNAME or MLFLOW_TRACKING_TOKEN is set here",
    )
    timeout_seconds: float = Field(default=3600.0, gt=0, description="give up following the run after this long")
    poll_seconds: float = Field(default=5.0, gt=0, description="seconds between run status reads")
    api_retries: int = Field(default=4, ge=0, description="retries, with backoff, of an API call that got a 5xx")
    retry_backoff_seconds: float = Field(
        default=1.0, gt=0, le=30, description="the wait before the first retry; it doubles with each retry, up to 30 s"
    )
    on_exit: OnExit = Field(
        default="stop",
        description="on a timeout: stop (terminate) the KFP run, or leave it running and say how to follow it "
        "(`terminate`, the old spelling of stop, is accepted with a warning)",
    )


RUNNERS = (
    RunnerSpec(
        name="kfp",
        runner="kubesage.runners.kfp.runner:KfpRunner",
        options=KfpOptions,
        summary="a Kubeflow Pipelines cluster: the IR submitted with kfp.Client and followed task by task",
        needs="a KFP 2.x API (host, and a token or cookies for multi-user), the kubesage image on the cluster, "
        "an MLflow server the pods reach",
        compile_target="kfp",
    ),
)
