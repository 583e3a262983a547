"""Task caching with KFP's semantics, keyed on what a task reads, and recorded in MLflow.

Built on kfp.local's `LocalCache` (the orchestrator already asks it before dispatching a task, honours
`task.set_caching_options(False)` and stores an entry after a success). Three things differ, which is
why this subclasses it rather than using it as is:

- The key. kfp.local hashes an input artifact's URI; every local run writes to a new folder, so a
  task downstream of a rerun task would never hit, and one reading a file rewritten in place would
  hit wrongly. Here an input artifact counts by its content (SHA-256 of its file, or of every file
  under its folder), as does a string parameter that names a local file (`input_data`).
- Trust. An entry records the digest of every output artifact; one whose files are missing, changed,
  or whose JSON does not parse is ignored (and overwritten by the rerun), never used.
- MLflow. A hit adds a step run like the one the task would have made, tagged `kubesage.cached=true`
  and `kubesage.cached_from_run_id=<the step run that produced the outputs>`, with that run's
  parameters, metrics and tags; what that step also set on its pipeline run is copied to this one.

Entries live in `<pipeline_root>/.kubesage_cache/<key>.json`; the artifacts they name stay where the
producing run wrote them under the pipeline root. Deleting either folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp import dsl
from kfp.local import cache as kfp_cache

from kubesage.runners.base import Progress, StepEvent
from kubesage.runners.status import StepStatus
from kubesage.tracking import PipelineRun, log_batch, mlflow_call
from kubesage.tracking.contract import TAG_KIND, TAG_PARENT_RUN_ID, TAG_PIPELINE_RUN_ID, TAG_RUNNER, TAG_STEP

TAG_CACHED = "kubesage.cached"
TAG_CACHED_FROM = "kubesage.cached_from_run_id"
_ENTRY_FORMAT = 1


def _note(message: str) -> None:
    # Printed, not logged: within a run, stdout is the run's task log (and --verbose's console), so
    # the reason an entry was not used is kept with the run without adding console lines.
    print(f"kubesage cache: {message}")


# --- content digests -------------------------------------------------------------------------------
_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()


def content_digest(path: str) -> str | None:
    """SHA-256 of a file, or of a folder's relative paths and file contents; None if it is not there."""
    target = Path(path)
    if target.is_file():
        return _file_digest(target)
    if not target.is_dir():
        return None
    h = hashlib.sha256()
    for item in sorted(p for p in target.rglob("*") if p.is_file()):
        h.update(str(item.relative_to(target)).encode("utf-8") + b"\0")
        h.update(_file_digest(item).encode("ascii") + b"\0")
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    # Memoised on (path, size, mtime): the same splits feed three tasks of one run.
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _digests_lock:
        if memo in _digests:
            return _digests[memo]
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    with _digests_lock:
        _digests[memo] = digest
    return digest


def code_digest_now() -> str:
    """SHA-256 over the source of kubesage's core and steps, as installed now (~5 ms)."""
    import importlib

    h = hashlib.sha256()
    for package in ("kubesage", "kubesage.components"):
        module_file = importlib.import_module(package).__file__
        if module_file is None:
            continue
        root = Path(module_file).parent
        for source in sorted(root.rglob("*.py")):
            h.update(str(source.relative_to(root)).encode("utf-8") + b"\0" + source.read_bytes() + b"\0")
    return h.hexdigest()


def _is_local(uri: str) -> bool:
    return bool(uri) and "://" not in uri


# --- which MLflow step run a task made ------------------------------------------------------------
class StepRunNotes:
    """Per thread, the task kfp.local is running and the MLflow step run id it reported: the
    orchestrator looks a task up in the cache, runs it and stores its entry on one thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def begin(self, task: str) -> None:
        self._local.task = task
        self._local.run_id = None

    @property
    def task(self) -> str:
        return str(getattr(self._local, "task", "") or "")

    def note(self, run_id: str | None) -> None:
        self._local.run_id = run_id

    def take(self) -> str | None:
        run_id: str | None = getattr(self._local, "run_id", None)
        self._local.run_id = None
        return run_id


@dataclass(frozen=True)
class CacheEntry:
    outputs: dict[str, Any]  # kfp's serialised outputs
    digests: dict[str, str]  # output artifact URI -> content digest when stored
    step_run_id: str | None  # the MLflow step run that produced them


class ContentCache(kfp_cache.LocalCache):
    """kfp.local's cache, keyed on input contents, verified on read, and reported on a hit."""

    def __init__(
        self,
        cache_root: str,
        notes: StepRunNotes,
        code_digest: str,
        on_hit: Callable[[CacheEntry, str], bool] | None = None,
    ) -> None:
        super().__init__(cache_root)
        self._notes = notes
        self._code_digest = code_digest
        self._on_hit = on_hit

    @staticmethod
    def _serialize_value_for_key(value: Any) -> Any:
        if isinstance(value, dsl.Artifact):
            uri = value.uri or ""
            digest = content_digest(uri) if _is_local(uri) else None
            return {
                "artifact": type(value).schema_title,
                "metadata": value.metadata,
                # kfp.local's own choice (the URI) where there is no local content to read
                "content": digest or uri,
            }
        if isinstance(value, list):
            return [ContentCache._serialize_value_for_key(v) for v in value]
        if isinstance(value, dict):
            return {k: ContentCache._serialize_value_for_key(v) for k, v in value.items()}
        if isinstance(value, str) and _is_local(value) and Path(value).is_file():
            return {"file": value, "content": content_digest(value)}
        return value

    def compute_key(
        self,
        component_name: str,
        image: str,
        full_command: list[str],
        arguments: dict[str, Any],
        env_vars: dict[str, str] | None = None,
        custom_cache_key: str | None = None,
    ) -> str:
        # LocalCache.compute_key serialises arguments with `self._serialize_value_for_key`, which
        # this class overrides; the format number keeps keys apart from kfp's own entries.
        name = f"kubesage/{_ENTRY_FORMAT}/{component_name}"
        if any("kubesage" in part for part in full_command):
            # The component's source is in the command, but kubesage's steps live in the installed
            # package: a change to them must rerun the task too.
            name += f"/{self._code_digest}"
        return super().compute_key(name, image, full_command, arguments, env_vars, custom_cache_key)

    def get(self, key: str) -> dict[str, Any] | None:
        path = Path(self._entry_path(key))
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            entry = CacheEntry(raw["outputs"], dict(raw["digests"]), raw.get("step_run_id"))
            outputs = {name: _deserialize(value) for name, value in entry.outputs.items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _note(f"ignoring entry {path.name}: {type(exc).__name__}: {exc}")
            return None
        for uri, digest in entry.digests.items():
            if content_digest(uri) != digest:
                _note(f"ignoring entry {path.name}: {uri} is missing or changed since it was stored")
                return None
        if self._on_hit is not None and not self._on_hit(entry, self._notes.task):
            return None
        return outputs

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        digests: dict[str, str] = {}
        for artifact in _artifacts(outputs):
            digest = content_digest(artifact.uri) if _is_local(artifact.uri) else None
            if digest is not None:
                digests[artifact.uri] = digest
        entry = {
            "format": _ENTRY_FORMAT,
            "outputs": self._serialize_outputs(outputs),
            "digests": digests,
            "step_run_id": self._notes.take(),
        }
        fd, tmp_path = tempfile.mkstemp(prefix=".entry-", suffix=".tmp", dir=self.cache_root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entry, handle)
            Path(tmp_path).replace(self._entry_path(key))
        except BaseException:
            Path(tmp_path).unlink(missing_ok=True)
            raise


def _deserialize(value: Any) -> Any:
    # kfp's own reader treats an output artifact with no file as a miss; a Metrics artifact never
    # has one (its values are in the executor output), so no task with metrics would ever hit. The
    # digests recorded in `put` are the check here: every artifact that had content has it still.
    if isinstance(value, dict) and value.get(kfp_cache._ARTIFACT_MARKER):
        return _artifact(value)
    if isinstance(value, dict) and value.get(kfp_cache._ARTIFACT_LIST_MARKER):
        return [_artifact(item) for item in value["artifacts"]]
    return value


def _artifact(data: dict[str, Any]) -> dsl.Artifact:
    from kfp.dsl import executor

    runtime_artifact = {
        "name": data.get("name", ""),
        "uri": data["uri"],
        "metadata": data.get("metadata") or {},
        "type": {"schemaTitle": data.get("schema_title", "system.Artifact")},
    }
    return executor.create_artifact_instance(runtime_artifact)


def _artifacts(outputs: Mapping[str, Any]) -> list[dsl.Artifact]:
    found: list[dsl.Artifact] = []
    for value in outputs.values():
        values = value if isinstance(value, list) else [value]
        found.extend(v for v in values if isinstance(v, dsl.Artifact))
    return found


def install(cache: ContentCache) -> None:
    """Make `cache` the one kfp.local's orchestrator asks (after `local.init(cache_root=...)`)."""
    # kfp.local keeps one LocalCache per cache root in a module global and builds it on first use;
    # setting it first is how a LocalCache subclass takes its place.
    with kfp_cache._cache_singleton_lock:
        kfp_cache._cache_singleton = cache
        kfp_cache._cache_singleton_root = cache.cache_root


# --- the MLflow record of a hit -------------------------------------------------------------------
class CachedStepRecorder:
    """On a cache hit, adds the step run the task would have made, marked as cached."""

    def __init__(self, tracking: PipelineRun, progress: Progress) -> None:
        self._tracking = tracking
        self._progress = progress
        self.cached_steps: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, entry: CacheEntry, task: str) -> bool:
        """True once the cached step is recorded; False (use is refused) without a readable source."""
        if not entry.step_run_id:
            return False
        from kubesage.tracking.sqlite_store import mlflow_client

        uri = self._tracking.tracking_uri
        client = mlflow_client(uri)
        try:
            source = client.get_run(entry.step_run_id)
        except Exception as exc:  # deleted, or recorded in another store: cannot copy its record
            _note(f"ignoring an entry made by run {entry.step_run_id}: {exc}")
            return False
        if source.info.status != "FINISHED":
            return False
        step = source.data.tags.get(TAG_STEP, source.info.run_name or "step")
        with self._lock, mlflow_call(f"record cached step {step}", uri):
            self._record(client, source, step)
            self.cached_steps.append(step)
        message = f"outputs of run {entry.step_run_id[:8]} reused"
        self._progress.step(StepEvent(task or step, StepStatus.CACHED, 0.0, message))
        return True

    def _record(self, client: Any, source: Any, step: str) -> None:
        parent_id = self._tracking.run_id
        tags = {k: v for k, v in source.data.tags.items() if not k.startswith("mlflow.")}
        tags.update(
            {
                TAG_STEP: step,
                TAG_KIND: "step",
                TAG_RUNNER: self._tracking.runner,
                TAG_PARENT_RUN_ID: parent_id,
                TAG_PIPELINE_RUN_ID: parent_id,
                TAG_CACHED: "true",
                TAG_CACHED_FROM: source.info.run_id,
            }
        )
        run = client.create_run(self._tracking.experiment_id, tags=tags, run_name=step)
        run_id = run.info.run_id
        metrics = source.data.metrics
        params = source.data.params
        timestamp = run.info.start_time
        log_batch(client, run_id, metrics=metrics, params=params, timestamp_ms=timestamp)
        # What the producing step also wrote on its pipeline run (metrics, tags like the data hash
        # or the registered version) belongs on this pipeline run too.
        producer_parent = source.data.tags.get(TAG_PARENT_RUN_ID)
        if producer_parent:
            old = client.get_run(producer_parent).data
            shared_metrics = {k: v for k, v in metrics.items() if old.metrics.get(k) == v}
            shared_tags = {
                k: v
                for k, v in tags.items()
                if old.tags.get(k) == v and k.startswith("kubesage.") and k not in _PER_RUN_TAGS
            }
            log_batch(client, parent_id, metrics=shared_metrics, tags=shared_tags, timestamp_ms=timestamp)
        _copy_artifacts(client, source.info.run_id, run_id, producer_parent, parent_id)
        client.set_terminated(run_id, status="FINISHED")


def _copy_artifacts(client: Any, source: str, target: str, source_parent: str | None, target_parent: str) -> None:
    """The step run's files to the cached step run; those it also put at the root of its pipeline
    run (evaluate's plots) to the root of this one."""
    if not client.list_artifacts(source):
        return
    with tempfile.TemporaryDirectory(prefix="kubesage-cached-") as scratch:
        local = Path(client.download_artifacts(source, "", scratch))
        client.log_artifacts(target, str(local))
        if not source_parent:
            return
        on_parent = {a.path for a in client.list_artifacts(source_parent) if not a.is_dir}
        for path in sorted(p for p in local.rglob("*") if p.is_file() and p.name in on_parent):
            client.log_artifact(target_parent, str(path))


# Tags that describe a run itself, never copied from one pipeline run to another.
_PER_RUN_TAGS = frozenset({TAG_STEP, TAG_KIND, TAG_RUNNER, TAG_PIPELINE_RUN_ID, TAG_CACHED, TAG_CACHED_FROM})
