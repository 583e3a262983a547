"""kfp-kubernetes platform config (the IR's second YAML document) -> what it means on SageMaker.

kfp-kubernetes writes per-executor Kubernetes settings into a PlatformSpec. A SageMaker job has no
pod: scheduling hints (node selectors, tolerations, affinity, labels, pull secrets) have nothing to
act on and are reported as ignored, since the instance type comes from the config; what the
component depends on to run (secrets, config maps, volumes, pod fields) cannot be provided, so it
is refused with the task named and what to do instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubesage.runners.sagemaker.ir import PipelinePlan, unsupported

# feature key in the executor config -> (what the user wrote, what to do instead)
REFUSED = {
    "secretAsEnv": (
        "a Kubernetes secret as environment (use_secret_as_env)",
        "read it from AWS Secrets Manager in the component",
    ),
    "secretAsVolume": (
        "a Kubernetes secret as a volume (use_secret_as_volume)",
        "read it from AWS Secrets Manager in the component",
    ),
    "configMapAsEnv": (
        "a Kubernetes ConfigMap as environment (use_config_map_as_env)",
        "pass the values as pipeline parameters",
    ),
    "configMapAsVolume": (
        "a Kubernetes ConfigMap as a volume (use_config_map_as_volume)",
        "pass the values as pipeline parameters",
    ),
    "pvcMount": ("a PersistentVolumeClaim mount (mount_pvc)", "pass data between steps as artifacts (S3)"),
    "genericEphemeralVolume": ("a generic ephemeral volume (add_ephemeral_volume)", "write scratch data under /tmp"),
    "fieldPathAsEnv": (
        "a pod field as environment (use_field_path_as_env)",
        "read the value from the SageMaker job environment",
    ),
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


def _executors(plan: PipelinePlan) -> list[tuple[str, str]]:
    """(name for the report, executor label) of every task, the body tasks of fan-out steps included."""
    found = []
    for key, task in sorted(plan.tasks.items()):
        found.append((key, task.executor))
        if task.fan_out is not None:
            found += [(f"{key}-{body.local}", body.executor) for body in task.fan_out.body]
    return found


def translate(platform: Mapping[str, Any] | None, plan: PipelinePlan) -> list[str]:
    """Report lines for the platform config of the plan's tasks; refuse what has no SageMaker meaning."""
    if not platform:
        return []
    kubernetes = platform.get("platforms", {}).get("kubernetes", {})
    executors: Mapping[str, Any] = kubernetes.get("deploymentSpec", {}).get("executors", {})
    notes: list[str] = []
    for key, executor in _executors(plan):
        settings = executors.get(executor, {})
        for feature in sorted(settings):
            if feature in REFUSED:
                what, instead = REFUSED[feature]
                raise unsupported(key, what, instead)
            if feature not in IGNORED:
                raise unsupported(key, f"the kfp-kubernetes setting '{feature}'", "remove it for the SageMaker target")
            notes.append(f"  {key}: kubernetes {feature} {IGNORED[feature]}")
    if kubernetes.get("pipelineConfig"):
        notes.append("kubernetes pipelineConfig ignored: it configures the KFP cluster, not SageMaker")
    return notes
