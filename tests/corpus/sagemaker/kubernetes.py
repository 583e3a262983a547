"""kfp-kubernetes platform config: a second YAML document (PlatformSpec) in the IR file."""

from kfp import dsl, kubernetes

from tests.corpus.sagemaker._components import echo, say, use_token
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


@dsl.pipeline(name="k8s-secret-env-unmapped")
def k8s_secret_env_unmapped() -> None:
    task = say(text="needs a token")
    kubernetes.use_secret_as_env(task, secret_name="api-token", secret_key_to_env={"token": "API_TOKEN"})


@dsl.pipeline(name="k8s-secret-not-a-secrets-manager-name")
def k8s_secret_not_a_secrets_manager_name() -> None:
    task = say(text="needs a token")
    kubernetes.use_secret_as_env(task, secret_name="api token!", secret_key_to_env={"token": "API_TOKEN"})


@dsl.pipeline(name="k8s-secret-volume")
def k8s_secret_volume() -> None:
    task = say(text="reads a certificate")
    kubernetes.use_secret_as_volume(task, secret_name="tls", mount_path="/etc/tls", optional=True)


@dsl.pipeline(name="k8s-secret-named-at-run-time")
def k8s_secret_named_at_run_time(secret: str = "api-token") -> None:
    task = say(text="needs a token")
    kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env={"token": "API_TOKEN"})


@dsl.pipeline(name="k8s-secrets-env-and-file")
def k8s_secrets_env_and_file() -> None:
    """The pipeline tests/integration/test_secret_env_moto.py runs through the shim against moto."""
    task = use_token(mount="/etc/api-token")
    kubernetes.use_secret_as_env(task, secret_name="api-token", secret_key_to_env={"token": "API_TOKEN"})
    kubernetes.use_secret_as_volume(task, secret_name="api-token", mount_path="/etc/api-token")
    kubernetes.use_config_map_as_env(task, config_map_name="settings", config_map_key_to_env={"level": "LOG_LEVEL"})


@dsl.pipeline(name="k8s-config-map-env")
def k8s_config_map_env() -> None:
    task = say(text="configured")
    kubernetes.use_config_map_as_env(task, config_map_name="settings", config_map_key_to_env={"level": "LOG_LEVEL"})


@dsl.pipeline(name="k8s-config-map-env-without-value")
def k8s_config_map_env_without_value() -> None:
    task = say(text="configured")
    kubernetes.use_config_map_as_env(task, config_map_name="settings", config_map_key_to_env={"level": "LOG_LEVEL"})


@dsl.pipeline(name="k8s-field-path-env")
def k8s_field_path_env() -> None:
    task = say(text="who am i")
    kubernetes.use_field_path_as_env(task, env_name="POD_NAME", field_path="metadata.name")


@dsl.pipeline(name="k8s-pod-metadata-env")
def k8s_pod_metadata_env() -> None:
    """kubeflow/pipelines samples/v2/pipeline_with_pod_metadata: labels and annotations the task sets."""
    task = say(text="labelled")
    kubernetes.add_pod_label(task, "team", "ml")
    kubernetes.add_pod_annotation(task, "owner", "kubesage")
    kubernetes.use_field_path_as_env(task, "TEAM", "metadata.labels['team']")
    kubernetes.use_field_path_as_env(task, "OWNER", "metadata.annotations['owner']")
    kubernetes.use_field_path_as_env(task, "NOT_SET", "metadata.labels['not-set']")
    kubernetes.use_field_path_as_env(task, "POD_NAME", "metadata.name")


@dsl.pipeline(name="k8s-field-path-namespace")
def k8s_field_path_namespace() -> None:
    task = say(text="where am i")
    kubernetes.use_field_path_as_env(task, "NAMESPACE", "metadata.namespace")


@dsl.pipeline(name="k8s-field-path-backend-label")
def k8s_field_path_backend_label() -> None:
    task = say(text="which run")
    kubernetes.use_field_path_as_env(task, "RUN", "metadata.labels['pipeline/runid']")


@dsl.pipeline(name="k8s-field-path-name-in-runtime-loop")
def k8s_field_path_name_in_runtime_loop(items: list = [1, 2]) -> None:  # noqa: B006
    with dsl.ParallelFor(items) as item:
        task = echo(x=item)
        kubernetes.use_field_path_as_env(task, "POD_NAME", "metadata.name")


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


@dsl.pipeline(name="k8s-secret-in-runtime-loop-unmapped")
def k8s_secret_in_runtime_loop_unmapped(items: list = [1, 2]) -> None:  # noqa: B006
    with dsl.ParallelFor(items) as item:
        task = echo(x=item)
        kubernetes.use_secret_as_env(task, secret_name="api-token", secret_key_to_env={"token": "API_TOKEN"})


@dsl.pipeline(
    name="k8s-workspace",
    pipeline_config=dsl.PipelineConfig(workspace=dsl.WorkspaceConfig(size="1Gi")),
)
def k8s_workspace() -> None:
    """kubeflow/pipelines' samples/v2/pipeline_with_workspace: a task handed the shared volume's path."""
    say(text=dsl.WORKSPACE_PATH_PLACEHOLDER)


SECRETS = {"secret_map": {"api-token": "prod/api-token", "tls": "prod/tls"}}
SETTINGS = {"config_maps": {"settings": {"level": "INFO"}}}

CORPUS: list[Case] = [
    (
        k8s_scheduling_hints,
        Translates("echo", report=("kubernetes nodeSelector ignored", "kubernetes tolerations ignored")),
    ),
    (
        k8s_secret_env,
        Translates(
            "say",
            report=(
                "say: kubernetes secret 'api-token' key 'token' -> env API_TOKEN from Secrets Manager 'prod/api-token'",
                "job role: secretsmanager:GetSecretValue on only 'prod/api-token'",
            ),
            options=SECRETS,
        ),
    ),
    (
        k8s_secret_env_unmapped,
        Translates(
            "say",
            report=(
                "say: kubernetes secret 'api-token' is not in --secret-map -> the Secrets Manager secret of the "
                "same name, 'api-token'",
                "say: kubernetes secret 'api-token' key 'token' -> env API_TOKEN from Secrets Manager 'api-token'",
                "job role: secretsmanager:GetSecretValue on only 'api-token'",
            ),
        ),
    ),
    (
        k8s_secret_not_a_secrets_manager_name,
        Refused(
            r"^task 'say': Kubernetes secret 'api token!' \(use_secret_as_env\) is not a valid Secrets Manager "
            r"name; map it with --secret-map 'api token!'=\$SECRET_ID"
        ),
    ),
    (
        k8s_secret_volume,
        Translates(
            "say",
            report=(
                "say: kubernetes secret 'tls' volume -> files /etc/tls/<key> (mode 0600) from Secrets Manager "
                "'prod/tls'",
            ),
            options=SECRETS,
        ),
    ),
    (
        k8s_secret_named_at_run_time,
        Refused(
            r"^task 'say': a Kubernetes secret as environment \(use_secret_as_env\) whose name is given at "
            r"run time .*name it with a constant"
        ),
        # mapped or not: the secret's name is not known when the definition is compiled
    ),
    (
        k8s_secrets_env_and_file,
        Translates(
            "use-token",
            report=("use-token: kubernetes ConfigMap 'settings' key 'level' -> env LOG_LEVEL='INFO' (literal)",),
            options={**SECRETS, **SETTINGS},
        ),
    ),
    (
        k8s_config_map_env,
        Translates(
            "say",
            report=("say: kubernetes ConfigMap 'settings' key 'level' -> env LOG_LEVEL='INFO'",),
            options=SETTINGS,
        ),
    ),
    (
        k8s_config_map_env_without_value,
        Refused(
            r"^task 'say': Kubernetes ConfigMap 'settings' key 'level' \(use_config_map_as_env, env LOG_LEVEL\) "
            r"has no value; give it at compile time with --config-maps settings:level=\$VALUE$"
        ),
    ),
    (
        k8s_field_path_env,
        Translates("say", report=("say: metadata.name -> env POD_NAME = the SageMaker job's name",)),
    ),
    (
        k8s_pod_metadata_env,
        Translates(
            "say",
            report=(
                "say: metadata.labels['team'] -> env TEAM='ml' (literal: the task sets it)",
                "say: metadata.annotations['owner'] -> env OWNER='kubesage' (literal: the task sets it)",
                "say: metadata.labels['not-set'] -> env NOT_SET='' (the task does not set it: empty",
            ),
        ),
    ),
    (
        k8s_field_path_namespace,
        Refused(
            r"^task 'say': a pod field as environment \(use_field_path_as_env: NAMESPACE <- metadata.namespace, "
            r"which a SageMaker job does not have\) cannot be compiled to SageMaker Pipelines; "
            r"pass the value as a pipeline parameter"
        ),
    ),
    (
        k8s_field_path_backend_label,
        Refused(
            r"^task 'say': a pod field as environment \(use_field_path_as_env: RUN <- "
            r"metadata.labels\['pipeline/runid'\]\), a label the task does not set, "
            r"which KFP's backend or the cluster may"
        ),
    ),
    (
        k8s_field_path_name_in_runtime_loop,
        Refused(r"^task 'for-loop-1-echo': a pod field as environment .*the items of a runtime loop share one job"),
    ),
    (k8s_pvc, Refused(r"task 'createpvc': a Kubernetes PersistentVolumeClaim")),
    (
        k8s_workspace,
        Refused(
            r"^task 'say': a KFP workspace \(dsl.WORKSPACE_PATH_PLACEHOLDER: a volume the run's tasks share\) "
            r"cannot be compiled to SageMaker Pipelines; SageMaker steps share no volume; pass the files"
        ),
    ),
    (k8s_config_map_volume, Refused(r"task 'echo': a Kubernetes ConfigMap as a volume")),
    (
        k8s_secret_in_runtime_loop,
        Translates(
            "for-loop-1",
            report=("for-loop-1-echo: kubernetes secret 'api-token' key 'token' -> env API_TOKEN",),
            options=SECRETS,
        ),
    ),
    (
        k8s_secret_in_runtime_loop_unmapped,
        Translates(
            "for-loop-1",
            report=(
                "for-loop-1-echo: kubernetes secret 'api-token' is not in --secret-map -> the Secrets Manager "
                "secret of the same name",
                "job role: secretsmanager:GetSecretValue on only 'api-token'",
            ),
        ),
    ),
]
