"""The KFP-cluster runner: submit the compiled IR with kfp.Client, follow it task by task.

`_run` writes the IR with the MLflow hand-off in every executor's env (plus the image and caching
options), submits it inline or as a version of a named pipeline, then polls the run and reports each
task's state. A FAILED run ends with the failing step's reason (from its MLflow run, where the step
recorded it, else from KFP's task error); CANCELED, a timeout and Ctrl-C end with what became of the
run on the cluster.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from kubesage.errors import RunInterruptedError, RunnerError
from kubesage.ir.graph import executor_tasks
from kubesage.ir.inputs import is_data_parameter
from kubesage.ir.source import PipelineSource
from kubesage.runners.base import Progress, RunContext, Runner, StepEvent
from kubesage.runners.kfp import KfpOptions
from kubesage.runners.kfp.client import KfpApi, resolve_host, submit_run
from kubesage.runners.kfp.ir import prepare, secret_env_platform_spec, validate
from kubesage.runners.status import StepStatus, from_kfp, statuses_to_report
from kubesage.tracking import PipelineRun, failed_step_reasons, is_server_uri, step_runs, tracking_uri
from kubesage.util.redact import redact_uri

FINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"})
SERVER_HINT = (
    "start one the pods can reach, e.g. `mlflow server --backend-store-uri sqlite:///mlflow-server.db "
    "--artifacts-destination ./mlartifacts --host 0.0.0.0 --port 5000`, then `export MLFLOW_TRACKING_URI="
    "http://ADDRESS:5000` with an ADDRESS both this machine and the pods reach (on minikube: "
    "`minikube ssh -- grep host.minikube.internal /etc/hosts`)"
)


def check_tracking_uri(uri: str) -> None:
    """Pods cannot open a SQLite file or a folder on this machine: only a server URI works."""
    if not is_server_uri(uri):
        raise RunnerError(
            f"MLFLOW_TRACKING_URI is {redact_uri(uri)}: KFP pods cannot reach a file on this machine; {SERVER_HINT}"
        )


def terminate_hint(host: str, run_id: str) -> str:
    return (
        f'`curl -X POST "{host}/apis/v2beta1/runs/{run_id}:terminate" -H "Authorization: Bearer $TOKEN"` '
        f"or, in Python, `kfp.Client(host='{host}').terminate_run('{run_id}')`"
    )


class KfpRunner(Runner):
    """Runs the pipeline on a Kubeflow Pipelines cluster (or any server speaking its v2beta1 API)."""

    name = "kfp"
    Options = KfpOptions
    options: KfpOptions

    def __init__(self, *args: Any, ask: Callable[[str], bool] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ask = ask  # tests answer the Ctrl-C question; None = ask on a TTY, else don't
        self._progress = Progress()
        self._api: KfpApi | None = None

    # --- compile -----------------------------------------------------------------------------------
    def prepared_spec(self, pipeline: PipelineSource, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        spec = prepare(pipeline.spec, env, self.options.image_uri, self.options.enable_caching)
        validate(spec)
        return spec

    def compile(self, pipeline: PipelineSource, output: Path) -> Path:
        """The IR as the cluster gets it, without a run's hand-off: image override applied."""
        spec = prepare(pipeline.spec, image=self.options.image_uri)
        validate(spec)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return output

    # --- run ---------------------------------------------------------------------------------------
    @contextmanager
    def session(self, progress: Progress) -> Iterator[None]:
        """The API client for one run: connected and checked by `preflight`, used again by `_run`."""
        self._progress = progress
        try:
            yield
        finally:
            self._api = None

    def preflight(self, pipeline: PipelineSource, parameters: Mapping[str, Any]) -> None:
        """The tracking URI (offline), then the API answers and accepts the credentials: before anything is recorded."""
        resolve_host(self.options)
        check_tracking_uri(tracking_uri())
        api = KfpApi(self.options, self._progress)
        # healthz needs no credentials; listing experiments in the namespace does (401/403 say what to do).
        api.call(
            "list experiments (checks the credentials)",
            api.client.list_experiments,
            page_size=1,
            namespace=self.options.namespace,
        )
        self._api = api

    def _run(self, context: RunContext) -> None:
        api = self._api or KfpApi(self.options, context.progress)
        spec = self.prepared_spec(context.pipeline, context.tracking.step_env)
        parameters = self._parameters(context)
        run = self._submit(api, context, spec, parameters)
        run_id = str(run.run_id)
        context.record_backend_run(run_id)
        context.progress.info(f"following KFP run {run_id} on {api.host}")
        try:
            final = self._follow(api, run_id, executor_tasks(spec), context)
        except KeyboardInterrupt as exc:
            raise self._interrupted(api, run_id) from exc
        self._conclude(final, context)

    def _parameters(self, context: RunContext) -> dict[str, Any]:
        """The checked parameters; a data parameter naming a file here is passed as its absolute path."""
        values = dict(context.parameters)
        for name, value in values.items():
            if isinstance(value, str) and is_data_parameter(name) and Path(value).is_file():
                values[name] = str(Path(value).resolve())
                context.progress.info(
                    f"parameter {name} is a file on this machine ({values[name]}): the pods must see that path "
                    "(e.g. `minikube mount`); otherwise pass an s3:// or https:// URI"
                )
        return values

    def _submit(self, api: KfpApi, context: RunContext, spec: dict[str, Any], parameters: dict[str, Any]) -> Any:
        client = api.client
        experiment_name = self.options.experiment or context.pipeline.name
        experiment = api.call(
            f"find or create experiment {experiment_name!r}",
            client.create_experiment,
            experiment_name,
            namespace=self.options.namespace,
        )
        run_name = self.options.run_name or f"{context.pipeline.name} {context.tracking.run_id[:8]}"
        with tempfile.TemporaryDirectory(prefix="kubesage-kfp-") as tmp:
            package = Path(tmp) / "pipeline.yaml"
            # The platform spec (a Kubernetes secret reference for MLflow credentials) is the package's
            # second YAML document, as `kfp.compiler` writes it for kfp-kubernetes settings.
            platform = secret_env_platform_spec(spec, self.options.mlflow_secret, os.environ)
            documents = [spec, platform] if platform else [spec]
            package.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
            source: dict[str, Any] = {"pipeline_package_path": str(package)}
            if self.options.pipeline_name:
                source = self._upload(api, package, context.tracking)
            return submit_run(
                api,
                experiment.experiment_id,
                run_name,
                params=parameters,
                pipeline_root=self.options.pipeline_root,
                service_account=self.options.service_account,
                **source,
            )

    def _upload(self, api: KfpApi, package: Path, tracking: PipelineRun) -> dict[str, Any]:
        """Upload the IR as a version of the named pipeline; the IR carries this run's MLflow parent, so one
        version per run (named after the MLflow run unless pipeline_version says otherwise)."""
        client = api.client
        name = str(self.options.pipeline_name)
        version_name = self.options.pipeline_version or f"{name}-{tracking.run_id}"
        pipeline_id = api.call(f"look up pipeline {name!r}", client.get_pipeline_id, name)
        if pipeline_id is None:
            created = api.call(f"upload pipeline {name!r}", client.upload_pipeline, str(package), name)
            pipeline_id = created.pipeline_id
            versions = api.call("list its versions", client.list_pipeline_versions, pipeline_id)
            version_id = versions.pipeline_versions[0].pipeline_version_id
        else:
            version = api.call(
                f"upload version {version_name!r} of pipeline {name!r}",
                client.upload_pipeline_version,
                str(package),
                version_name,
                pipeline_id=pipeline_id,
            )
            version_id = version.pipeline_version_id
        return {"pipeline_id": pipeline_id, "version_id": version_id}

    def _follow(self, api: KfpApi, run_id: str, tasks: list[str], context: RunContext) -> Any:
        """Poll until the run ends; report each executor task's state changes; time out as configured."""
        seen: dict[str, StepStatus] = {}
        deadline = time.monotonic() + self.options.timeout_seconds
        while True:
            run = api.call(f"read KFP run {run_id}", api.client.get_run, run_id)
            details = (run.run_details.task_details if run.run_details else None) or []
            for task in sorted(details, key=lambda t: str(t.start_time or "")):
                # Container tasks, and any task the cluster skipped (a dsl.If branch whose condition was false).
                reported = task.display_name in tasks or task.state == "SKIPPED"
                status = from_kfp(str(task.state or ""))
                # By task id: loop iterations and a sub-pipeline used twice share a display name.
                key = str(task.task_id or task.display_name)
                if not reported or status is None:
                    continue
                message = task.error.message if task.error and task.state == "FAILED" else None
                event = StepEvent(task.display_name, status, _seconds(task), message)
                for change in statuses_to_report(seen.get(key), status):
                    # A task that ran between two polls gets its start line first.
                    context.progress.step(event if change is status else StepEvent(event.name, change))
                seen[key] = status
            if run.state in FINAL:
                return run
            if time.monotonic() > deadline:
                raise self._timed_out(api, run_id)
            time.sleep(self.options.poll_seconds)

    def _conclude(self, run: Any, context: RunContext) -> None:
        run_id = str(run.run_id)
        if run.state == "SUCCEEDED":
            return
        if run.state == "CANCELED":
            raise RunInterruptedError(f"KFP run {run_id} was canceled on the cluster (from the UI or the API)")
        reason = failed_step_reason(context.tracking) or _task_errors(run) or _run_error(run)
        raise RunnerError(f"KFP run {run_id} failed: {reason}")

    def _timed_out(self, api: KfpApi, run_id: str) -> RunnerError:
        why = f"KFP run {run_id} did not finish within {self.options.timeout_seconds:.0f} s"
        raise_it = "raise --option timeout_seconds=SECONDS to wait longer"
        if self.options.on_exit == "detach":
            return RunnerError(
                f"{why}; it keeps running on the cluster ({raise_it}). Stop it with {terminate_hint(api.host, run_id)}"
            )
        api.call(f"terminate KFP run {run_id}", api.client.terminate_run, run_id)
        return RunnerError(f"{why}, so it was terminated ({raise_it}, or --option on_exit=detach to leave it running)")

    def _interrupted(self, api: KfpApi, run_id: str) -> RunInterruptedError:
        """Ctrl-C: on a terminal ask whether to terminate the run; otherwise leave it and say how to stop it."""
        ask = self._ask or (_ask_on_tty if sys.stdin.isatty() else None)
        if ask is not None and ask(f"terminate KFP run {run_id} on the cluster? [y/N] "):
            api.call(f"terminate KFP run {run_id}", api.client.terminate_run, run_id)
            return RunInterruptedError(f"interrupted (Ctrl-C); KFP run {run_id} was terminated")
        return RunInterruptedError(
            f"interrupted (Ctrl-C); KFP run {run_id} keeps running on the cluster and may still register a model. "
            f"Stop it with {terminate_hint(api.host, run_id)}"
        )


def _ask_on_tty(question: str) -> bool:
    try:
        answer = input(question)
    except (EOFError, KeyboardInterrupt):
        return False
    return answer.strip().lower() in ("y", "yes")


def _seconds(task: Any) -> float | None:
    start, end = task.start_time, task.end_time
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds()
    return None


def _task_errors(run: Any) -> str | None:
    details = (run.run_details.task_details if run.run_details else None) or []
    failed = [f"task {t.display_name}: {t.error.message}" for t in details if t.state == "FAILED" and t.error]
    return "; ".join(failed) or None


def _run_error(run: Any) -> str:
    return str(run.error.message) if run.error and run.error.message else "see the run in the KFP UI"


def failed_step_reason(tracking: PipelineRun) -> str | None:
    """The reason a step recorded on its own MLflow run before failing (the real one, not "exit code 1")."""
    try:
        steps = step_runs(tracking)
    except Exception:  # the reason is a nicety; KFP's own task error still explains the failure
        return None
    reasons = [f"step {step}: {why}" for step, why in failed_step_reasons(steps).items() if why]
    return "; ".join(reasons) or None
