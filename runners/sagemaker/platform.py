"""kfp-kubernetes platform config (the IR's second YAML document) -> what it means on SageMaker.

kfp-kubernetes writes per-executor Kubernetes settings into a PlatformSpec. A SageMaker job has no
pod: scheduling hints (node selectors, tolerations, affinity, labels, pull secrets) have nothing to
act on and are reported as ignored, since the instance type comes from the config. What the
component reads has a translation where an honest one exists:

- a secret as environment or as a volume -> the Secrets Manager secret `secret_map` names for it (by
  default the one of the same name: a Kubernetes secret name is a valid Secrets Manager name),
  resolved by the shim when the job starts into the same env names (`secret_env.py`) or into one
  0600 file per key at the mount path (`secret_files.py`); the definition holds names only, and the
  job role may read only those secrets (`secret_policy.py`);
- a ConfigMap as environment -> literal environment values given at compile time (`config_maps`).

- a pod field as environment -> a label or annotation the task sets (a literal), one it does not set
  (empty, as the downward API gives), the pod's name (the job's name, set by the shim: `pod_fields.py`).

The rest (other pod fields, PVCs, ephemeral volumes, ConfigMap volumes, a secret or ConfigMap named at run
time) is refused in one line naming the task, the feature and what to do instead.
"""

from __future__ import annotations

import re
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
    "podMetadata": "ignored: SageMaker jobs have no pod labels or annotations (a use_field_path_as_env of one the "
    "task sets gets its value)",
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
    job_name_env: list[str] = field(default_factory=list)  # metadata.name: the shim sets these to the job's name

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


# What Secrets Manager accepts as a secret name; every Kubernetes secret name (a DNS subdomain) is one.
_SECRETS_MANAGER_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")


def _secret_id(task: str, name: str, feature: str, config: SageMakerConfig, notes: list[str]) -> str:
    """The Secrets Manager secret for Kubernetes secret `name`: the one `secret_map` names, else the one of
    the same name (said in the report, so the user creates it or maps another)."""
    secret_id = config.secret_map.get(name)
    if secret_id is not None:
        return secret_id
    if not _SECRETS_MANAGER_NAME.match(name):
        raise UnsupportedFeatureError(
            f"task '{task}': Kubernetes secret '{name}' ({feature}) is not a valid Secrets Manager name; map it with "
            # `$SECRET_ID`, not a bare word: the CLI masks `NAME=value` when NAME looks secret (api-token=...)
            f"--secret-map '{name}'=$SECRET_ID (a Secrets Manager secret name or ARN holding the same keys as JSON)"
        )
    note = (
        f"  {task}: kubernetes secret '{name}' is not in --secret-map -> the Secrets Manager secret of the same "
        f"name, '{name}' (create it holding the secret's keys as JSON, or map another with --secret-map "
        f"{name}=$SECRET_ID)"
    )
    if note not in notes:
        notes.append(note)
    return name


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
    notes: list[str] = []
    for entry in entries:
        name = _constant_name(task, entry, "secretName", "a Kubernetes secret as environment (use_secret_as_env)")
        secret_id = _secret_id(task, name, "use_secret_as_env", config, notes)
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
    notes: list[str] = []
    for entry in entries:
        name = _constant_name(task, entry, "secretName", "a Kubernetes secret as a volume (use_secret_as_volume)")
        secret_id = _secret_id(task, name, "use_secret_as_volume", config, notes)
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
    notes: list[str] = []
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


# metadata.labels['key'] / metadata.annotations['key']: what the Kubernetes downward API reads
_POD_METADATA_FIELD = re.compile(r"""^metadata\.(labels|annotations)\[['"]([^'"]+)['"]\]$""")


def _field_path_as_env(
    task: str, entries: list[Any], pod_metadata: Mapping[str, Any], into: TaskPlatform, in_loop: bool
) -> list[str]:
    """Pod fields the value of which is known: a label or annotation the task sets itself (a literal), one it
    does not set (empty, as Kubernetes gives), the pod's name (the job's name, set by the shim at start)."""
    notes = []
    for entry in entries:
        env, path = str(entry.get("name", "")), str(entry.get("fieldPath", ""))
        match = _POD_METADATA_FIELD.match(path)
        if match is not None:
            kind, key = match.groups()
            declared = pod_metadata.get(kind, {})
            if key in declared:
                _set_env(task, into, env, str(declared[key]))
                notes.append(f"  {task}: {path} -> env {env}={declared[key]!r} (literal: the task sets it)")
            elif "/" in key:
                raise unsupported(
                    task,
                    f"a pod field as environment (use_field_path_as_env: {env} <- {path}), "
                    f"{'an annotation' if kind == 'annotations' else 'a label'} the task does not set, which KFP's "
                    "backend or the cluster may",
                    f"set it on the task (kfp.kubernetes.add_pod_{kind[:-1]}), or pass the value as a parameter",
                )
            else:
                _set_env(task, into, env, "")
                notes.append(f"  {task}: {path} -> env {env}='' (the task does not set it: empty, as in Kubernetes)")
        elif path == "metadata.name" and not in_loop:
            into.job_name_env.append(env)
            notes.append(f"  {task}: metadata.name -> env {env} = the SageMaker job's name (set by the shim at start)")
        else:
            why = (
                "the items of a runtime loop share one job, whose name is not one per item as the pod's is"
                if path == "metadata.name"
                else "which a SageMaker job does not have"
            )
            raise unsupported(
                task,
                f"a pod field as environment (use_field_path_as_env: {env} <- {path}, {why})",
                "pass the value as a pipeline parameter (the execution's ARN is KUBESAGE_SAGEMAKER_EXECUTION_ARN)",
            )
    return notes


_TRANSLATORS = {
    "secretAsEnv": _secret_as_env,
    "secretAsVolume": _secret_as_volume,
    "configMapAsEnv": _config_map_as_env,
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
            if feature == "fieldPathAsEnv":
                into = result.tasks.setdefault(step, TaskPlatform())
                pod = settings.get("podMetadata", {})
                result.notes += _field_path_as_env(key, list(settings[feature]), pod, into, key != step)
                continue
            if feature in _TRANSLATORS:
                into = result.tasks.setdefault(step, TaskPlatform())
                lines = _TRANSLATORS[feature](key, list(settings[feature]), config, into)
                result.notes += [line for line in lines if line not in result.notes]  # a secret as env and file
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
