"""kfp-kubernetes platform config (the IR's second YAML document) -> what it means on SageMaker.

kfp-kubernetes writes per-executor Kubernetes settings into a PlatformSpec. A SageMaker job has no
pod: scheduling hints (node selectors, tolerations, affinity, labels, pull secrets) have nothing to
act on and are reported as ignored, since the instance type comes from the config. What the
component reads has a translation where an honest one exists:

- a secret as environment or as a volume -> the Secrets Manager secret `secret_map` names for it,
  resolved by the shim when the job starts into the same env names (`secret_env.py`) or into one
  0600 file per key at the mount path (`secret_files.py`); the definition holds names only, and the
  job role may read only those secrets (`secret_policy.py`);
- a ConfigMap as environment -> literal environment values given at compile time (`config_maps`).

The rest (pod fields, PVCs, ephemeral volumes, ConfigMap volumes, a secret or ConfigMap named at run
time) is refused in one line naming the task, the feature and what to do instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import PipelinePlan, unsupported
from kubesage.runners.sagemaker.secret_env import SecretRef
from kubesage.runners.sagemaker.secret_files import SecretMount

# feature key in the executor config -> (what the user wrote, what to do instead)
REFUSED = {
    "configMapAsVolume": (
        "a Kubernetes ConfigMap as a volume (use_config_map_as_volume)",
        "pass the values as pipeline parameters, or as environment (use_config_map_as_env + --option config_maps=)",
    ),
    "pvcMount": ("a PersistentVolumeClaim mount (mount_pvc)", "pass data between steps as artifacts (S3)"),
    "genericEphemeralVolume": ("a generic ephemeral volume (add_ephemeral_volume)", "write scratch data under /tmp"),
}
# feature key -> why it is dropped
IGNORED = {
    "nodeSelector": "ignored: a SageMaker job runs on the instance type from the config (instance_types)",
    "tolerations": "ignored: SageMaker jobs have no taints to tolerate",
    "nodeAffinity": "ignored: a SageMaker job runs on the instance type from the config (instance_types)",
    "podAffinity": "ignored: SageMaker schedules each job on its own instances",
    "podMetadata": "ignored: SageMaker jobs have no pod labels or annotations",
    "imagePullSecret": "ignored: SageMaker pulls the configured image with the execution role",
    "imagePullPolicy": "ignored: SageMaker always pulls the configured image",
    "activeDeadlineSeconds": "ignored: the job's limit is max_runtime_seconds from the config",
    "emptyDirMounts": "ignored: the job's local disk serves as scratch space",
    "enabledSharedMemory": "ignored: SageMaker jobs get the instance's shared memory",
}


@dataclass
class TaskPlatform:
    """What one step's job gets from its task's kfp-kubernetes settings (names only for secrets)."""

    secret_env: dict[str, SecretRef] = field(default_factory=dict)
    secret_files: dict[str, SecretMount] = field(default_factory=dict)
    literal_env: dict[str, str] = field(default_factory=dict)

    def secret_ids(self) -> set[str]:
        return {r.secret for r in self.secret_env.values()} | {m.secret for m in self.secret_files.values()}


@dataclass
class PlatformPlan:
    """Per step key, what its job gets; the report lines; every secret the job role must read."""

    tasks: dict[str, TaskPlatform] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def secret_ids(self) -> tuple[str, ...]:
        return tuple(sorted(set().union(*(t.secret_ids() for t in self.tasks.values()))))


def _executors(plan: PipelinePlan) -> list[tuple[str, str, str]]:
    """(name for the report, executor label, the step it runs in) of every task, fan-out bodies included."""
    found = []
    for key, task in sorted(plan.tasks.items()):
        found.append((key, task.executor, key))
        if task.fan_out is not None:
            found += [(f"{key}-{path}", body.executor, key) for path, body in task.fan_out.body.tasks()]
    return found


def _constant_name(task: str, entry: Mapping[str, Any], field_name: str, what: str) -> str:
    """The secret or ConfigMap name; refused when it is a pipeline parameter or a task output."""
    runtime = entry.get(f"{field_name}Parameter", {})
    constant = runtime.get("runtimeValue", {}).get("constant") if runtime else entry.get(field_name)
    if not isinstance(constant, str) or not constant:
        raise unsupported(
            task,
            f"{what} whose name is given at run time ({', '.join(sorted(runtime)) or 'no name'})",
            "name it with a constant; the name is mapped at compile time",
        )
    return constant


def _secret_id(task: str, name: str, feature: str, config: SageMakerConfig) -> str:
    secret_id = config.secret_map.get(name)
    if secret_id is None:
        raise UnsupportedFeatureError(
            f"task '{task}': Kubernetes secret '{name}' ({feature}) has no Secrets Manager secret; map it with "
            # `$SECRET_ID`, not a bare word: the CLI masks `NAME=value` when NAME looks secret (api-token=...)
            f"--secret-map {name}=$SECRET_ID (a Secrets Manager secret name or ARN holding the same keys as JSON)"
        )
    return secret_id


def _set_env(task: str, into: TaskPlatform, env: str, value: Any) -> None:
    """One env name gets one source: two settings (or two fan-out body tasks) naming it differently are refused."""
    known = into.secret_env.get(env, into.literal_env.get(env))
    if known is not None and known != value:
        raise unsupported(task, f"environment variable {env} set from two sources", "give each its own name")
    if isinstance(value, SecretRef):
        into.secret_env[env] = value
    else:
        into.literal_env[env] = value


def _secret_as_env(task: str, entries: list[Any], config: SageMakerConfig, into: TaskPlatform) -> list[str]:
    notes = []
    for entry in entries:
        name = _constant_name(task, entry, "secretName", "a Kubernetes secret as environment (use_secret_as_env)")
        secret_id = _secret_id(task, name, "use_secret_as_env", config)
        optional = bool(entry.get("optional", False))
        for pair in entry.get("keyToEnv", []):
            ref = SecretRef(secret=secret_id, key=pair["secretKey"], optional=optional)
            _set_env(task, into, pair["envVar"], ref)
            notes.append(
                f"  {task}: kubernetes secret '{name}' key '{pair['secretKey']}' -> env {pair['envVar']} from "
                f"Secrets Manager '{secret_id}' (the shim reads it at start; the definition holds the names only)"
            )
    return notes


def _secret_as_volume(task: str, entries: list[Any], config: SageMakerConfig, into: TaskPlatform) -> list[str]:
    notes = []
    for entry in entries:
        name = _constant_name(task, entry, "secretName", "a Kubernetes secret as a volume (use_secret_as_volume)")
        secret_id = _secret_id(task, name, "use_secret_as_volume", config)
        mount = SecretMount(secret=secret_id, optional=bool(entry.get("optional", False)))
        path = entry["mountPath"]
        if into.secret_files.get(path, mount) != mount:
            raise unsupported(task, f"two secrets mounted at {path}", "mount each at its own path")
        into.secret_files[path] = mount
        notes.append(
            f"  {task}: kubernetes secret '{name}' volume -> files {path}/<key> (mode 0600) from Secrets Manager "
            f"'{secret_id}', written by the shim before the task starts"
        )
    return notes


def _config_map_as_env(task: str, entries: list[Any], config: SageMakerConfig, into: TaskPlatform) -> list[str]:
    notes = []
    for entry in entries:
        what = "a Kubernetes ConfigMap as environment (use_config_map_as_env)"
        name = _constant_name(task, entry, "configMapName", what)
        optional = bool(entry.get("optional", False))
        values = config.config_maps.get(name)
        for pair in entry.get("keyToEnv", []):
            key, env = pair["configMapKey"], pair["envVar"]
            if values is None or key not in values:
                if optional and values is not None:
                    notes.append(
                        f"  {task}: kubernetes ConfigMap '{name}' key '{key}' (optional) not given: {env} not set"
                    )
                    continue
                raise UnsupportedFeatureError(
                    f"task '{task}': Kubernetes ConfigMap '{name}' key '{key}' (use_config_map_as_env, env {env}) has "
                    f"no value; give it at compile time with --config-maps {name}:{key}=$VALUE"
                )
            _set_env(task, into, env, values[key])
            notes.append(f"  {task}: kubernetes ConfigMap '{name}' key '{key}' -> env {env}={values[key]!r} (literal)")
    return notes


def _field_path_as_env(task: str, entries: list[Any], config: SageMakerConfig, into: TaskPlatform) -> list[str]:
    # A SageMaker job has no pod: its name, namespace, labels, node or IP have no counterpart to read.
    fields = ", ".join(f"{e.get('name')} <- {e.get('fieldPath')}" for e in entries)
    raise unsupported(
        task,
        f"a pod field as environment (use_field_path_as_env: {fields}, which a SageMaker job does not have)",
        "pass the value as a pipeline parameter (the execution is KUBESAGE_SAGEMAKER_EXECUTION_ARN in the step)",
    )


_TRANSLATORS = {
    "secretAsEnv": _secret_as_env,
    "secretAsVolume": _secret_as_volume,
    "configMapAsEnv": _config_map_as_env,
    "fieldPathAsEnv": _field_path_as_env,
}


def translate(platform: Mapping[str, Any] | None, plan: PipelinePlan, config: SageMakerConfig) -> PlatformPlan:
    """What each step's job gets from the plan's platform config, and the report; refuse what has no meaning."""
    result = PlatformPlan()
    if not platform:
        return result
    kubernetes = platform.get("platforms", {}).get("kubernetes", {})
    executors: Mapping[str, Any] = kubernetes.get("deploymentSpec", {}).get("executors", {})
    for key, executor, step in _executors(plan):
        settings = executors.get(executor, {})
        for feature in sorted(settings):
            if feature in _TRANSLATORS:
                into = result.tasks.setdefault(step, TaskPlatform())
                result.notes += _TRANSLATORS[feature](key, list(settings[feature]), config, into)
                continue
            if feature in REFUSED:
                what, instead = REFUSED[feature]
                raise unsupported(key, what, instead)
            if feature not in IGNORED:
                raise unsupported(key, f"the kfp-kubernetes setting '{feature}'", "remove it for the SageMaker target")
            result.notes.append(f"  {key}: kubernetes {feature} {IGNORED[feature]}")
    if result.secret_ids():
        result.notes.append(
            "job role: secretsmanager:GetSecretValue on only "
            + ", ".join(repr(s) for s in result.secret_ids())
            + " (the statement is written beside the definition as <definition>.job-role-secrets.json)"
        )
    if kubernetes.get("pipelineConfig"):
        result.notes.append("kubernetes pipelineConfig ignored: it configures the KFP cluster, not SageMaker")
    return result
