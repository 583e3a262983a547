"""A thin adapter over kfp.Client: connect with explicit host + token + CA, and map API errors.

The kube_context path is avoided on purpose: with a token kubeconfig and the kubernetes client in the
lock file, kfp.Client's refresh hook re-applies the kubeconfig host and drops the API-server proxy
suffix, so every call gets a 404 (kubeflow/pipelines#8313). An explicit host (a port-forward, an
ingress or the proxy URL itself) with a bearer token and a CA bundle works through the same proxy.

Every call goes through `KfpApi.call`: a 5xx or a dropped connection is retried with backoff, a 401 or
403 ends with what to do, anything else with the server's own message. kfp.Client prints links to
stdout; they are passed on as progress lines instead.

Submitting is not idempotent on the server (each CreateRun starts a run), and a 5xx or a dropped
connection can come after the server created it. `submit_run` makes it so: before sending again it
looks for a run of the same (client-chosen) name in the experiment that was not there before the
first attempt, and returns that one instead of starting a second.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from kubesage.errors import AccessDeniedError, KubesageError, RunnerError
from kubesage.runners.base import Progress
from kubesage.runners.kfp import KfpOptions

T = TypeVar("T")

TOKEN_ENV = "KF_PIPELINES_TOKEN"
HOST_ENV = "KF_PIPELINES_ENDPOINT"  # kfp.Client's own variable


def resolve_host(options: KfpOptions) -> str:
    host = options.host or os.environ.get(HOST_ENV, "")
    if not host:
        raise RunnerError(
            "no KFP API to submit to: pass --option host=http://127.0.0.1:8888 (after "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888`) or set KF_PIPELINES_ENDPOINT"
        )
    if not host.startswith(("http://", "https://")):
        raise RunnerError(f"KFP host {host!r} needs a scheme: http://... or https://...")
    return host.rstrip("/")


def resolve_token(options: KfpOptions) -> str | None:
    if options.existing_token is not None:
        return options.existing_token.get_secret_value()
    if options.token_file is not None:
        try:
            return options.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise RunnerError(f"cannot read the KFP token file {options.token_file}: {exc.strerror}") from exc
    return os.environ.get(TOKEN_ENV) or None


def _server_message(exc: Any) -> str:
    """The message of a grpc-gateway error body ({"error"/"message": ...}), else the HTTP reason."""
    body = getattr(exc, "body", None)
    try:
        data = json.loads(body) if body else {}
    except (TypeError, ValueError):
        data = {}
    message = data.get("message") or data.get("error") if isinstance(data, dict) else None
    return str(message or getattr(exc, "reason", None) or exc).strip()


class KfpApi:
    """kfp.Client plus error mapping and retries; `call(what, fn, ...)` is the only way in."""

    def __init__(self, options: KfpOptions, progress: Progress, sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options
        self.host = resolve_host(options)
        self.progress = progress
        self._sleep = sleep
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _configuration(self) -> Any:
        import kfp_server_api

        config = kfp_server_api.Configuration(host=self.host)
        token = resolve_token(self.options)
        if token:
            config.api_key["authorization"] = token
            config.api_key_prefix["authorization"] = "Bearer"
        if self.options.ssl_ca_cert:
            config.ssl_ca_cert = str(self.options.ssl_ca_cert)
        return config

    def _connect(self) -> Any:
        import kfp
        import kfp_server_api

        # Our own health check first: kfp.Client's constructor retries healthz five times, five seconds
        # apart, and logs a traceback for each failure; this one maps the error and says what to do.
        cookie = self.options.cookies.get_secret_value() if self.options.cookies else None
        health = kfp_server_api.HealthzServiceApi(kfp_server_api.ApiClient(self._configuration(), cookie=cookie))
        self.call("reach the KFP API", health.healthz_service_get_healthz)
        token = resolve_token(self.options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
            return self.call(
                "connect to the KFP API",
                kfp.Client,
                host=self.host,
                namespace=self.options.namespace or "kubeflow",
                existing_token=token,
                cookies=cookie,
                ssl_ca_cert=str(self.options.ssl_ca_cert) if self.options.ssl_ca_cert else None,
            )

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)`, with 5xx and dropped connections retried; errors say what to do."""
        from kfp_server_api.exceptions import ApiException
        from urllib3.exceptions import HTTPError as TransportError

        attempts = self.options.api_retries + 1
        for attempt in range(1, attempts + 1):
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed):
                    return fn(*args, **kwargs)
            except ApiException as exc:
                status = int(exc.status or 0)
                if status < 500 or attempt == attempts:
                    raise self._error(what, status, _server_message(exc)) from None
                problem = f"HTTP {status} ({_server_message(exc)})"
            except TransportError as exc:
                if attempt == attempts:
                    raise RunnerError(
                        f"cannot {what}: the KFP API at {self.host} did not answer ({type(exc).__name__}); check the "
                        "port-forward or ingress is up and the host is right"
                    ) from None
                problem = type(exc).__name__
            finally:
                for line in printed.getvalue().splitlines():
                    if line.strip():
                        self.progress.info(line.strip())
            delay = min(self.options.retry_backoff_seconds * 2.0 ** (attempt - 1), 30.0)
            self.progress.info(f"{what}: {problem}; retrying in {delay:g} s ({attempt}/{attempts - 1})")
            self._sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _error(self, what: str, status: int, message: str) -> KubesageError:
        if status == 401:
            return AccessDeniedError(
                f"cannot {what}: the KFP API at {self.host} refused the credentials (401: {message}). Give a valid "
                f"token: --option token_file=PATH or ${TOKEN_ENV} (for a service account: `kubectl -n kubeflow "
                "create token SERVICE_ACCOUNT --audience pipelines.kubeflow.org`), or a fresh session cookie "
                "with --option cookies=authservice_session=..."
            )
        if status == 403:
            namespace = self.options.namespace or "(none given)"
            return AccessDeniedError(
                f"cannot {what}: the KFP API at {self.host} denied it (403: {message}). The identity behind the "
                f"token may not use namespace {namespace}: pass --option namespace=YOUR_PROFILE_NAMESPACE, or have "
                "an admin add you as a contributor to that profile"
            )
        if status >= 500:
            return RunnerError(
                f"cannot {what}: the KFP API at {self.host} kept failing (HTTP {status}: {message}) after "
                f"{self.options.api_retries} retries; check `kubectl -n kubeflow get pods` and the ml-pipeline logs"
            )
        if status == 404 and what in ("reach the KFP API", "connect to the KFP API"):
            return RunnerError(
                f"cannot {what}: {self.host}/apis/v2beta1/healthz is not there (404). Point --option host at the "
                "KFP API (the ml-pipeline service, e.g. a port-forward to 8888, or the UI's /pipeline path)"
            )
        return RunnerError(f"cannot {what}: the KFP API answered {status}: {message}")


def _name_filter(name: str) -> str:
    """The v2beta1 Filter proto as JSON: display_name EQUALS name."""
    return json.dumps({"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": name}]})


def _runs_named(client: Any, experiment_id: str, name: str, namespace: str | None) -> list[Any]:
    response = client.list_runs(
        experiment_id=experiment_id, namespace=namespace, filter=_name_filter(name), page_size=100
    )
    return list(response.runs or [])


def submit_run(api: KfpApi, experiment_id: str, run_name: str, **run_options: Any) -> Any:
    """`kfp.Client.run_pipeline`, at most one run however many times the request is retried."""
    client = api.client
    namespace = api.options.namespace
    existing = api.call(f"list runs named {run_name!r}", _runs_named, client, experiment_id, run_name, namespace)
    before = {run.run_id for run in existing}
    attempted = False

    def once() -> Any:
        nonlocal attempted
        if attempted:
            # The last attempt may have started the run before its answer was lost: find it first.
            for run in _runs_named(client, experiment_id, run_name, namespace):
                if run.run_id not in before:
                    api.progress.info(f"the run {run_name!r} was started by the last attempt: {run.run_id}")
                    return run
        attempted = True
        return client.run_pipeline(experiment_id, run_name, **run_options)

    return api.call("submit the run", once)
