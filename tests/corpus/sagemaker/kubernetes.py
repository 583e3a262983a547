"""kfp-kubernetes platform config: a second YAML document (PlatformSpec) in the IR file."""

from kfp import dsl, kubernetes

from tests.corpus.sagemaker._components import echo, say
from tests.corpus.sagemaker._expect import Case, Refused, Translates


@dsl.pipeline(name="k8s-scheduling-hints")
def k8s_scheduling_hints() -> None:
    task = echo(x=1)
    kubernetes.add_node_selector(task, label_key="cloud.google.com/gke-accelerator", label_value="nvidia-tesla-t4")
    kubernetes.add_toleration(task, key="gpu", operator="Exists", effect="NoSchedule")
    kubernetes.add_pod_label(task, label_key="team", label_value="ml")
    kubernetes.add_pod_annotation(task, annotation_key="owner", annotation_value="kubesage")
    kubernetes.set_image_pull_secrets(task, ["regcred"])
    kubernetes.set_image_pull_policy(task, "Always")


@dsl.pipeline(name="k8s-secret-env")
def k8s_secret_env() -> None:
    task = say(text="needs a token")
    kubernetes.use_secret_as_env(task, secret_name="api-token", secret_key_to_env={"token": "API_TOKEN"})


@dsl.pipeline(name="k8s-pvc")
def k8s_pvc() -> None:
    pvc = kubernetes.CreatePVC(pvc_name_suffix="-scratch", access_modes=["ReadWriteOnce"], size="1Gi")
    task = echo(x=1)
    kubernetes.mount_pvc(task, pvc_name=pvc.outputs["name"], mount_path="/data")


@dsl.pipeline(name="k8s-config-map-volume")
def k8s_config_map_volume() -> None:
    task = echo(x=1)
    kubernetes.use_config_map_as_volume(task, config_map_name="settings", mount_path="/etc/settings")


@dsl.pipeline(name="k8s-secret-in-runtime-loop")
def k8s_secret_in_runtime_loop(items: list = [1, 2]) -> None:  # noqa: B006
    with dsl.ParallelFor(items) as item:
        task = echo(x=item)
        kubernetes.use_secret_as_env(task, secret_name="api-token", secret_key_to_env={"token": "API_TOKEN"})


CORPUS: list[Case] = [
    (
        k8s_scheduling_hints,
        Translates("echo", report=("kubernetes nodeSelector ignored", "kubernetes tolerations ignored")),
    ),
    (k8s_secret_env, Refused(r"task 'say': a Kubernetes secret as environment .*AWS Secrets Manager")),
    (k8s_pvc, Refused(r"task 'createpvc': a Kubernetes PersistentVolumeClaim")),
    (k8s_config_map_volume, Refused(r"task 'echo': a Kubernetes ConfigMap as a volume")),
    (k8s_secret_in_runtime_loop, Refused(r"task 'for-loop-1-echo': a Kubernetes secret as environment")),
]
