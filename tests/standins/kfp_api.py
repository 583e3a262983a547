"""A stand-in for the Kubeflow Pipelines v2beta1 REST API, as moto stands in for AWS.

A real HTTP server on 127.0.0.1 that answers what `kfp.Client` 2.17 sends to submit and follow a run
(healthz, experiments, runs, pipeline upload and versions, terminate). Every request body is parsed
into `kfp_server_api`'s generated models and every pipeline into the `PipelineSpec` proto, as the real
API server does, and a malformed one gets the 400 the real server gives. Each submitted run is
executed for real with `kfp.local` (SubprocessRunner(use_venv=False), each task a fresh process
forked from a warm one by kubesage's local launcher) in its own process with a minimal environment
(`kfp_execute.py`, forked from the stand-in's warm executor, `kfp_warm.py`, in a new session): like
a pod, a task sees only the env its IR carries. Run
state and per-task details (`run_details.task_details`) come from that process as it goes. With
`DockerPods` (chosen per stand-in), that process runs each task as a pod runs the IR's container spec:
in the spec's image, with its command and env, under kfp.local's DockerRunner.

What it proves: the client protocol, the parameters, the MLflow hand-off through the IR and the
failure handling of a KFP runner; with `DockerPods`, also the IR's image, command and env as a container
runs them. What it does not: Argo, KFP's driver/launcher, scheduling, MLMD, caching, the rest of a pod
spec (service account, resources, image pulls) or multi-user authorization. `Faults` injects
what a cluster does to a client: a failed task with its message, a canceled run, 401s, 5xx, a run
that never ends.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kfp_server_api
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from kubesage.runners.local.forkserver import ZYGOTE_ENV
from tests.standins.kfp_warm import WarmExecutor, WarmRun

EXECUTOR = Path(__file__).with_name("kfp_execute.py")
SECRET_ENV = "KFP_STANDIN_SECRET_ENV"  # read (and removed) by kfp_execute.py
PREFIX = "/apis/v2beta1"
FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"})
POD_LABEL = "kubesage.kfp-standin/run"  # on each task's container under DockerPods: the run it belongs to
# What the executor needs to reach the Docker engine (a kubelet's container runtime, not a pod's env).
DOCKER_CLIENT_ENV = ("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_CONTEXT")


@dataclass
class Faults:
    """What the stand-in does to the next requests or runs; tests set these between runs."""

    fail_task: dict[str, str] = field(default_factory=dict)  # task name -> the message it fails with
    cancel_after_task: str | None = None  # the run is canceled (as from the UI) once this task succeeds
    unauthorized: int = 0  # answer the next N requests 401, then serve again
    server_errors: int = 0  # answer the next N requests 503, then serve again
    forbidden: int = 0  # answer the next N requests 403 (a profile the identity may not use)
    never_finish: bool = False  # runs stay RUNNING and never start a task
    lose_run_answers: int = 0  # the next N CreateRun calls start the run, then drop the connection unanswered

    def run_faults(self) -> dict[str, Any]:
        return {"fail_task": dict(self.fail_task), "cancel_after_task": self.cancel_after_task}


class ApiError(Exception):
    """An error answered as the real server's grpc-gateway does: {"error", "code", "message"}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 500: 13, 503: 14}


def _now() -> datetime:
    return datetime.now(UTC)


class _Body:
    """What kfp_server_api's ApiClient.deserialize reads: a response-like object with `.data`."""

    def __init__(self, data: str) -> None:
        self.data = data


_CLIENT = kfp_server_api.ApiClient()


def parse_model(data: Any, model: str) -> Any:
    """A request body as the generated model `model` (what the real server's gateway unmarshals)."""
    text = data if isinstance(data, str) else json.dumps(data)
    try:
        return _CLIENT.deserialize(_Body(text), model)
    except (ValueError, TypeError) as exc:
        raise ApiError(400, f"invalid {model}: {exc}") from None


def to_json(model: Any) -> Any:
    return _CLIENT.sanitize_for_serialization(model)


def parse_pipeline_spec(document: Any) -> dict[str, Any]:
    """The PipelineSpec of an inline spec or an uploaded file, checked by parsing it into the proto."""
    if isinstance(document, dict) and "pipeline_spec" in document:  # kfp.Client's form with a platform spec
        document = document["pipeline_spec"]
    if not isinstance(document, dict) or "root" not in document:
        raise ApiError(400, "invalid pipeline spec: not a PipelineSpec (no root)")
    try:
        proto = json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as exc:
        raise ApiError(400, f"invalid pipeline spec: {exc}") from None
    spec: dict[str, Any] = json_format.MessageToDict(proto)
    return spec


def parse_platform_spec(document: Any) -> dict[str, Any]:
    """The PlatformSpec beside an inline spec (kfp.Client's `{"pipeline_spec", "platform_spec"}` form) or
    an uploaded file's second YAML document, checked against the proto; {} when there is none."""
    if isinstance(document, dict) and "pipeline_spec" in document:
        document = document.get("platform_spec") or {}
    elif isinstance(document, dict) and "root" in document:
        return {}  # a bare PipelineSpec: no platform spec came with it
    if not document:
        return {}
    try:
        proto = json_format.ParseDict(document, pipeline_spec_pb2.PlatformSpec())
    except json_format.ParseError as exc:
        raise ApiError(400, f"invalid platform spec: {exc}") from None
    platform: dict[str, Any] = json_format.MessageToDict(proto)
    return platform


class MissingSecretError(Exception):
    """A task's pod references a secret (or key) the namespace does not have."""


def secret_env_by_task(
    spec: dict[str, Any], platform: dict[str, Any], secrets: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """What a cluster puts in each task's pod from `secretAsEnv` (kfp-kubernetes' `use_secret_as_env`):
    task name -> {env var: the secret's value}, from the stand-in's secret store. A missing secret or
    key fails the run as a pod that cannot start (CreateContainerConfigError) would."""
    executors = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    components = spec.get("components", {})
    dags = [spec["root"]["dag"], *(c["dag"] for c in components.values() if "dag" in c)]
    found: dict[str, dict[str, str]] = {}
    for dag in dags:
        for task_name, task in dag.get("tasks", {}).items():
            label = components.get(task["componentRef"]["name"], {}).get("executorLabel", "")
            for reference in executors.get(label, {}).get("secretAsEnv", []):
                name = reference.get("secretNameParameter", {}).get("runtimeValue", {}).get(
                    "constant"
                ) or reference.get("secretName", "")
                data = secrets.get(name)
                for pair in reference.get("keyToEnv", []):
                    if data is None or pair["secretKey"] not in data:
                        if reference.get("optional"):
                            continue
                        raise MissingSecretError(
                            f"task {task_name}: CreateContainerConfigError: secret {name!r} (key "
                            f"{pair['secretKey']!r}) not found"
                        )
                    found.setdefault(task_name, {})[pair["envVar"]] = data[pair["secretKey"]]
    return found


@dataclass(frozen=True)
class DockerPods:
    """Run each task in the image its IR container spec names, with kfp.local's DockerRunner, as a
    cluster's pod runs it: the spec's command and env in a fresh container, nothing of the host's env.

    DockerRunner mounts the pipeline root at the same path, so artifacts pass between the containers as
    through a cluster's object store. `network_mode` "host" puts the containers in the host's network
    namespace: a tracking URI on this machine's loopback (the tests' `mlflow server`) is then the same
    address inside them, the stand-in's version of "an address both your machine and the pods reach".
    `read_only_mounts` are host folders every task sees at the same path, read-only: what a cluster's
    volume (or `minikube mount`) gives pods, for input data given as a path.
    """

    network_mode: str = "host"
    read_only_mounts: tuple[Path, ...] = ()

    def executor_config(self, run_id: str) -> dict[str, Any]:
        """What kfp_execute.py reads from run.json to build its DockerRunner."""
        return {
            "kind": "docker",
            "network_mode": self.network_mode,
            "read_only_mounts": [str(p.resolve()) for p in self.read_only_mounts],
            "labels": {POD_LABEL: run_id},  # how terminate finds the run's containers
        }


@dataclass
class StoredRun:
    model: Any  # kfp_server_api.V2beta1Run
    spec: dict[str, Any]
    run_dir: Path
    platform: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | WarmRun | None = None
    tasks: dict[str, Any] = field(default_factory=dict)  # task name -> V2beta1PipelineTaskDetail
    lock: threading.Lock = field(default_factory=threading.Lock)


class KfpStandin:
    """The stand-in server: `start()`, then point `kfp.Client(host=standin.url)` at it."""

    def __init__(self, workdir: Path | None = None, token: str | None = None, pods: DockerPods | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="kfp-standin-"))
        self.token = token  # when set, requests must carry `Authorization: Bearer <token>`
        # None: each task runs in a subprocess of the run's clean process (kfp.local's SubprocessRunner);
        # DockerPods: each task runs in its IR image, as a pod.
        self.pods = pods
        self.faults = Faults()
        self.experiments: dict[str, Any] = {}
        self.pipelines: dict[str, Any] = {}
        self.versions: dict[str, Any] = {}  # version id -> V2beta1PipelineVersion
        self.version_specs: dict[str, dict[str, Any]] = {}
        self.version_platforms: dict[str, dict[str, Any]] = {}
        # The namespace's Kubernetes secrets (name -> data), what `kubectl create secret generic` makes;
        # a run's `secretAsEnv` references are resolved from here when its task starts, as a kubelet does.
        self.secrets: dict[str, dict[str, str]] = {}
        self.runs: dict[str, StoredRun] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) in arrival order
        self.extra_env: dict[str, str] = {}  # added to every run's process (e.g. a PYTHONPATH for tests)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._warm: WarmExecutor | None = None  # started with the first run that executes in subprocesses

    # --- life cycle --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> KfpStandin:
        standin = self

        class Handler(_Handler):
            owner = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="kfp-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for run in list(self.runs.values()):
            self._kill(run)
        if self._warm is not None:
            self._warm.stop()
            self._warm = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until no run's process is alive (tests call it before checking what a run left)."""
        deadline = time.monotonic() + timeout
        while any(r.process and r.process.poll() is None for r in self.runs.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("stand-in runs still executing")
            time.sleep(0.1)

    # --- the API -----------------------------------------------------------------------------------
    def healthz(self) -> Any:
        return kfp_server_api.V2beta1GetHealthzResponse(multi_user=False)

    def list_experiments(self, query: dict[str, str]) -> Any:
        found = _filtered(list(self.experiments.values()), query.get("filter"))
        if query.get("namespace"):
            found = [e for e in found if (e.namespace or "") in ("", query["namespace"])]
        return kfp_server_api.V2beta1ListExperimentsResponse(experiments=found or None, total_size=len(found))

    def create_experiment(self, body: Any) -> Any:
        experiment = parse_model(body, "V2beta1Experiment")
        if not experiment.display_name:
            raise ApiError(400, "Invalid input error: Experiment name is empty. Please specify a valid experiment name")
        if any(e.display_name == experiment.display_name for e in self.experiments.values()):
            raise ApiError(409, f"Already exist error: experiment {experiment.display_name!r} already exists")
        experiment.experiment_id = str(uuid.uuid4())
        experiment.created_at = _now()
        experiment.storage_state = "AVAILABLE"
        self.experiments[experiment.experiment_id] = experiment
        return experiment

    def get_experiment(self, experiment_id: str) -> Any:
        if experiment_id not in self.experiments:
            raise ApiError(404, f"Not found error: experiment {experiment_id} not found")
        return self.experiments[experiment_id]

    def list_pipelines(self, query: dict[str, str]) -> Any:
        found = _filtered(list(self.pipelines.values()), query.get("filter"))
        return kfp_server_api.V2beta1ListPipelinesResponse(pipelines=found or None, total_size=len(found))

    def upload_pipeline(self, query: dict[str, str], spec: dict[str, Any], platform: dict[str, Any]) -> Any:
        name = query.get("name") or query.get("display_name") or spec["pipelineInfo"]["name"]
        if any(p.display_name == name for p in self.pipelines.values()):
            raise ApiError(409, f"Already exist error: a pipeline named {name!r} already exists")
        pipeline = kfp_server_api.V2beta1Pipeline(
            pipeline_id=str(uuid.uuid4()),
            display_name=name,
            name=name,
            description=query.get("description"),
            created_at=_now(),
            namespace=query.get("namespace"),
        )
        self.pipelines[pipeline.pipeline_id] = pipeline
        version = self._add_version(pipeline.pipeline_id, name, spec, query.get("description"))
        self.version_platforms[version.pipeline_version_id] = platform
        return pipeline

    def upload_version(self, query: dict[str, str], spec: dict[str, Any], platform: dict[str, Any]) -> Any:
        pipeline_id = query.get("pipelineid") or ""
        if pipeline_id not in self.pipelines:
            raise ApiError(404, f"Not found error: pipeline {pipeline_id!r} not found")
        name = query.get("name") or query.get("display_name") or ""
        if not name:
            raise ApiError(400, "Invalid input error: pipeline version name is empty")
        version = self._add_version(pipeline_id, name, spec, query.get("description"))
        self.version_platforms[version.pipeline_version_id] = platform
        return version

    def _add_version(self, pipeline_id: str, name: str, spec: dict[str, Any], description: str | None) -> Any:
        taken = {v.display_name for v in self.versions.values() if v.pipeline_id == pipeline_id}
        if name in taken:
            raise ApiError(409, f"Already exist error: pipeline version {name!r} already exists")
        version = kfp_server_api.V2beta1PipelineVersion(
            pipeline_id=pipeline_id,
            pipeline_version_id=str(uuid.uuid4()),
            display_name=name,
            name=name,
            description=description,
            created_at=_now(),
            pipeline_spec=spec,
        )
        self.versions[version.pipeline_version_id] = version
        self.version_specs[version.pipeline_version_id] = spec
        return version

    def list_versions(self, pipeline_id: str) -> Any:
        found = sorted(
            (v for v in self.versions.values() if v.pipeline_id == pipeline_id),
            key=lambda v: v.created_at,
            reverse=True,
        )
        return kfp_server_api.V2beta1ListPipelineVersionsResponse(
            pipeline_versions=found or None, total_size=len(found)
        )

    def create_run(self, body: Any) -> Any:
        run = parse_model(body, "V2beta1Run")
        if not run.display_name:
            raise ApiError(400, "Invalid input error: run name is empty")
        if run.experiment_id and run.experiment_id not in self.experiments:
            raise ApiError(404, f"Not found error: experiment {run.experiment_id} not found")
        if run.pipeline_spec is not None:
            spec = parse_pipeline_spec(run.pipeline_spec)
            platform = parse_platform_spec(run.pipeline_spec)
        elif run.pipeline_version_reference is not None:
            version_id = run.pipeline_version_reference.pipeline_version_id or ""
            if version_id not in self.version_specs:
                raise ApiError(404, f"Not found error: pipeline version {version_id!r} not found")
            spec = self.version_specs[version_id]
            platform = self.version_platforms.get(version_id, {})
            run.pipeline_version_id = version_id
        else:
            raise ApiError(400, "Invalid input error: a run needs a pipeline spec or a pipeline version reference")
        parameters = dict((run.runtime_config.parameters if run.runtime_config else None) or {})
        _check_parameters(spec, parameters)
        run.run_id = str(uuid.uuid4())
        run.created_at = run.scheduled_at = _now()
        run.storage_state = "AVAILABLE"
        run.state = "PENDING"
        run.run_details = kfp_server_api.V2beta1RunDetails(task_details=[])
        run_dir = self.workdir / run.run_id
        run_dir.mkdir(parents=True)
        stored = StoredRun(run, spec, run_dir, platform)
        self.runs[run.run_id] = stored
        if not self.faults.never_finish:
            self._execute(stored, parameters)
        else:
            run.state = "RUNNING"
        return run

    def list_runs(self, query: dict[str, str]) -> Any:
        runs = [s.model for s in self.runs.values()]
        if query.get("experiment_id"):
            runs = [r for r in runs if r.experiment_id == query["experiment_id"]]
        found = _filtered(runs, query.get("filter"))
        return kfp_server_api.V2beta1ListRunsResponse(runs=found or None, total_size=len(found))

    def get_run(self, run_id: str) -> Any:
        stored = self._stored(run_id)
        self._refresh(stored)
        return stored.model

    def terminate_run(self, run_id: str) -> Any:
        stored = self._stored(run_id)
        self._refresh(stored)
        if stored.model.state in FINAL_STATES:
            raise ApiError(400, f"Failed PreconditionError: run {run_id} has already finished ({stored.model.state})")
        self._kill(stored)
        with stored.lock:
            stored.model.state = "CANCELED"
            stored.model.finished_at = _now()
            for task in stored.tasks.values():
                if task.state not in FINAL_STATES:
                    task.state, task.end_time = "CANCELED", _now()
        return {}

    # --- execution ---------------------------------------------------------------------------------
    def _execute(self, stored: StoredRun, parameters: dict[str, Any]) -> None:
        runtime = stored.model.runtime_config
        (stored.run_dir / "pipeline.yaml").write_text(yaml.safe_dump(stored.spec, sort_keys=False), encoding="utf-8")
        config = {
            "parameters": parameters,
            "pipeline_root": (runtime.pipeline_root if runtime else None) or str(stored.run_dir / "outputs"),
            "faults": self.faults.run_faults(),
            "executor": self.pods.executor_config(stored.model.run_id) if self.pods else {"kind": "subprocess"},
        }
        (stored.run_dir / "run.json").write_text(json.dumps(config), encoding="utf-8")
        # A pod's environment: nothing of the test process (no MLflow or kubesage variables), only
        # what a container image provides; the IR's env is applied per task by kfp.local.
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(stored.run_dir),
        }
        env.update({"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", **self.extra_env})
        if self.pods:
            env.update({name: os.environ[name] for name in DOCKER_CLIENT_ENV if name in os.environ})
        # The resolved secrets go to the executor process's memory, never into a file in the run folder;
        # it gives each task only its own (kfp_execute.py), as a pod gets only what its spec references.
        try:
            secret_env = secret_env_by_task(stored.spec, stored.platform, self.secrets)
        except MissingSecretError as exc:  # the cluster accepts the run; its pod cannot start
            stored.model.state, stored.model.finished_at = "FAILED", _now()
            stored.model.error = kfp_server_api.GoogleRpcStatus(code=2, message=str(exc))
            return
        if secret_env:
            env[SECRET_ENV] = json.dumps(secret_env)
        if self.pods is None:
            stored.process = self._warm_executor(env).start_run(stored.run_dir, env)
            stored.model.state = "RUNNING"
            return
        stored.process = subprocess.Popen(
            [sys.executable, str(EXECUTOR), str(stored.run_dir)],
            cwd=stored.run_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # terminate kills the whole group: the executor and its task
        )
        stored.model.state = "RUNNING"

    def _warm_executor(self, env: dict[str, str]) -> WarmExecutor:
        """The process runs are forked from: started once, with a run's environment minus what is the
        run's own (its HOME, its secrets), and imports made fork-safe (ZYGOTE_ENV)."""
        with self._lock:
            if self._warm is None:
                base = {k: v for k, v in env.items() if k != SECRET_ENV}
                base.update({"HOME": str(self.workdir), **ZYGOTE_ENV})
                self._warm = WarmExecutor(EXECUTOR, base, self.workdir / "warm-executor.log")
            return self._warm

    def _kill(self, stored: StoredRun) -> None:
        process = stored.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        if self.pods:
            _remove_pods(stored.model.run_id)

    def _refresh(self, stored: StoredRun) -> None:
        """Fold the executor's events into the run and its task details (state, times, errors)."""
        with stored.lock:
            if stored.model.state in FINAL_STATES or stored.process is None:
                return
            events_path = stored.run_dir / "events.jsonl"
            exited = stored.process.poll() is not None  # read before the events: none can follow an exit
            lines = events_path.read_text(encoding="utf-8").splitlines() if events_path.is_file() else []
            outcome: dict[str, Any] | None = None
            stored.tasks.clear()
            for line in lines:
                event = json.loads(line)
                if "run" in event:
                    outcome = event
                    continue
                self._task_event(stored, event)
            stored.model.run_details.task_details = list(stored.tasks.values())
            if outcome is None and exited:
                outcome = {"run": "FAILED", "message": f"the run's process exited with {stored.process.returncode}"}
            if outcome is not None and (exited or outcome["run"] == "CANCELED"):
                stored.model.state = outcome["run"]
                stored.model.finished_at = _now()
                if outcome.get("message") and outcome["run"] != "SUCCEEDED":
                    stored.model.error = kfp_server_api.GoogleRpcStatus(code=2, message=outcome["message"])

    def _task_event(self, stored: StoredRun, event: dict[str, Any]) -> None:
        name, state = event["task"], event["state"]
        at = datetime.fromtimestamp(event["time"], UTC)
        key = self._task_key(stored, name, state)
        task = stored.tasks.get(key)
        if task is None:
            task = kfp_server_api.V2beta1PipelineTaskDetail(
                run_id=stored.model.run_id,
                task_id=str(uuid.uuid5(uuid.UUID(stored.model.run_id), key)),
                display_name=name,
                create_time=at,
                start_time=at,
                pod_name=f"{stored.model.run_id[:8]}-{name}",
                state_history=[],
            )
            stored.tasks[key] = task
        task.state = state
        task.state_history.append(kfp_server_api.V2beta1RuntimeStatus(update_time=at, state=state))
        if state in FINAL_STATES:
            task.end_time = at
        if event.get("message"):
            task.error = kfp_server_api.GoogleRpcStatus(code=2, message=event["message"])

    @staticmethod
    def _task_key(stored: StoredRun, name: str, state: str) -> str:
        """Which task detail an event belongs to. kfp.local logs each execution's start once, so a
        start (or a skip) is a new task, as on a cluster, where every loop iteration and every use of a
        sub-pipeline has its own; an end belongs to the oldest execution of that name still open."""
        keys = [k for k in stored.tasks if k == name or k.startswith(f"{name}#")]
        if state in ("RUNNING", "SKIPPED") or not keys:
            return name if not keys else f"{name}#{len(keys) + 1}"
        open_keys = [k for k in keys if stored.tasks[k].state not in FINAL_STATES]
        return open_keys[0] if open_keys else keys[-1]

    def _stored(self, run_id: str) -> StoredRun:
        if run_id not in self.runs:
            raise ApiError(404, f"Not found error: run {run_id} not found")
        return self.runs[run_id]

    # --- faults and auth ---------------------------------------------------------------------------
    def gate(self, authorization: str | None) -> None:
        """Injected 401/503 first (each consumes one request), then the bearer-token check."""
        with self._lock:
            if self.faults.unauthorized > 0:
                self.faults.unauthorized -= 1
                raise ApiError(401, "Unauthenticated: the request's bearer token is missing, expired or invalid")
            if self.faults.forbidden > 0:
                self.faults.forbidden -= 1
                raise ApiError(403, "PermissionDenied: the user may not access the namespace's pipelines")
            if self.faults.server_errors > 0:
                self.faults.server_errors -= 1
                raise ApiError(503, "upstream connect error or disconnect/reset before headers")
        if self.token is not None and authorization != f"Bearer {self.token}":
            raise ApiError(401, "Unauthenticated: the request's bearer token is missing, expired or invalid")


def _remove_pods(run_id: str) -> None:
    """A task's container outlives the executor process that started it (the engine runs it): remove
    the run's containers, as terminating a workflow deletes its pods."""
    import docker

    client = docker.from_env()
    try:
        for container in client.containers.list(all=True, filters={"label": f"{POD_LABEL}={run_id}"}):
            container.remove(force=True)
    finally:
        client.close()


def _filtered(items: list[Any], filter_text: str | None) -> list[Any]:
    """Apply an EQUALS filter on display_name/name, the predicates kfp.Client sends."""
    if not filter_text:
        return items
    try:
        document = json.loads(filter_text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"Invalid input error: the filter is not JSON: {exc}") from None
    parsed = parse_model(_snake_keys(document), "V2beta1Filter")
    for predicate in parsed.predicates or []:
        if predicate.operation != "EQUALS" or predicate.key not in ("display_name", "name"):
            raise ApiError(400, f"Invalid input error: the stand-in supports EQUALS on display_name, not {predicate}")
        items = [i for i in items if i.display_name == predicate.string_value]
    return items


# The Filter proto's operation numbers (filter.proto); protojson accepts the number or the name.
_OPERATIONS = {1: "EQUALS", 2: "NOT_EQUALS", 3: "GREATER_THAN", 5: "GREATER_THAN_EQUALS", 6: "LESS_THAN",
               7: "LESS_THAN_EQUALS", 8: "IN", 9: "IS_SUBSTRING"}  # fmt: skip


def _snake_keys(value: Any) -> Any:
    """protojson accepts lowerCamelCase or the proto's snake_case field names; the models use the latter."""
    if isinstance(value, list):
        return [_snake_keys(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        snake = re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m.group(1).lower(), key)
        out[snake] = (
            _OPERATIONS.get(item, item) if snake == "operation" and isinstance(item, int) else _snake_keys(item)
        )
    return out


def _check_parameters(spec: dict[str, Any], given: dict[str, Any]) -> None:
    """As the real server: a parameter the pipeline does not declare is an invalid argument."""
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ApiError(
            400, f"Invalid input error: unknown runtime parameters {unknown}; the pipeline takes {sorted(declared)}"
        )
    missing = sorted(n for n, p in declared.items() if n not in given and not p.get("isOptional"))
    if missing:
        raise ApiError(400, f"Invalid input error: missing required runtime parameters {missing}")


class _Handler(BaseHTTPRequestHandler):
    owner: KfpStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the test output stays readable
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status = 200
        try:
            self.owner.gate(self.headers.get("Authorization"))
            answer = self._route(method, parts.path, query, raw)
            if (method, parts.path) == ("POST", f"{PREFIX}/runs") and self.owner.faults.lose_run_answers > 0:
                # The run was created; the answer is lost (a proxy reset, a pod restart mid-reply).
                self.owner.faults.lose_run_answers -= 1
                self.owner.requests.append((method, parts.path, 0))
                self.close_connection = True
                return
            payload: Any = to_json(answer) if not isinstance(answer, dict) else answer
        except ApiError as exc:
            status = exc.status
            message = str(exc)
            payload = {"error": message, "code": _GRPC_CODES.get(status, 2), "message": message, "details": []}
        self.owner.requests.append((method, parts.path, status))
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Any:
        api = self.owner
        if not path.startswith(PREFIX):
            raise ApiError(404, f"Not Found: {path}")
        route = path[len(PREFIX) :]
        segments = route.strip("/").split("/")
        match method, segments:
            case "GET", ["healthz"]:
                return api.healthz()
            case "GET", ["experiments"]:
                return api.list_experiments(query)
            case "POST", ["experiments"]:
                return api.create_experiment(_json_body(raw))
            case "GET", ["experiments", experiment_id]:
                return api.get_experiment(experiment_id)
            case "GET", ["pipelines"]:
                return api.list_pipelines(query)
            case "POST", ["pipelines", "upload"]:
                return api.upload_pipeline(query, *self._uploaded_spec(raw))
            case "POST", ["pipelines", "upload_version"]:
                return api.upload_version(query, *self._uploaded_spec(raw))
            case "GET", ["pipelines", pipeline_id, "versions"]:
                return api.list_versions(pipeline_id)
            case "GET", ["runs"]:
                return api.list_runs(query)
            case "POST", ["runs"]:
                return api.create_run(_json_body(raw))
            case "GET", ["runs", run_id]:
                return api.get_run(run_id)
            case "POST", ["runs", run_action] if run_action.endswith(":terminate"):
                return api.terminate_run(run_action.removesuffix(":terminate"))
        raise ApiError(404, f"Not Found: {method} {path} is not served by the KFP stand-in")

    def _uploaded_spec(self, raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        """The `uploadfile` part of a multipart upload, parsed as the real server does (YAML -> proto)."""
        content_type = self.headers.get("Content-Type", "")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                content = part.get_payload(decode=True)
                try:
                    documents = [d for d in yaml.safe_load_all(content) if d is not None]
                except yaml.YAMLError as exc:
                    raise ApiError(400, f"Invalid input error: the uploaded file is not YAML: {exc}") from None
                if not documents:
                    raise ApiError(400, "Invalid input error: the uploaded file is empty")
                platform = parse_platform_spec(documents[1]) if len(documents) > 1 else {}
                return parse_pipeline_spec(documents[0]), platform
        raise ApiError(400, "Invalid input error: the upload has no uploadfile part")


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"Invalid input error: the body is not JSON: {exc}") from None
