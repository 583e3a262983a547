"""Settings of the SageMaker backend, validated once at the boundary (CLI flags, runner options)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from kubesage.runners.base import RunnerOptions

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_ROLE_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[\w+=,.@\-/]+$")
_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SECURITY_GROUP_RE = re.compile(r"^sg-[0-9a-f]{8,17}$")
# A KMS key id, key ARN, alias name or alias ARN (what CreateTrainingJob/CreateProcessingJob accept).
_KMS_KEY_RE = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|alias/[\w/\-]+|arn:aws[a-z\-]*:kms:[a-z0-9\-]+:\d{12}:(key/[0-9a-f\-]{36}|alias/[\w/\-]+))$"
)
PinnedValue = str | bool | int | float

# Placeholders keep `kubesage compile` usable without any AWS account; `run` replaces them.
# Fields marked `"placeholder": True` are named by `kubesage compile` while they keep these values.
DEFAULT_IMAGE = "kubesage/xgboost-daal4py:latest"
DEFAULT_ROLE = "arn:aws:iam::000000000000:role/kubesage-sagemaker-execution"
DEFAULT_BUCKET = "kubesage-artifacts"


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _split(item: str, separator: str, form: str) -> tuple[str, str]:
    head, found, tail = item.partition(separator)
    if not found or not head.strip():
        raise ValueError(f"{item!r} is not {form} (or give JSON)")
    return head.strip(), tail.strip()


class SageMakerConfig(RunnerOptions):
    """Where and how the compiled pipeline runs. Every field has an offline-safe default."""

    image_uri: str = Field(
        default=DEFAULT_IMAGE,
        description="the step image URI (ECR)",
        json_schema_extra={"flag": "--image", "placeholder": True},
    )
    role_arn: str = Field(
        default=DEFAULT_ROLE,
        description="the pipeline execution role ARN",
        json_schema_extra={"flag": "--role", "placeholder": True},
    )
    job_role_arn: str | None = Field(
        default=None,
        description="the role the processing and training jobs run with (default: the pipeline role); keep "
        "them apart (runners/sagemaker/iam/): the job role needs no sagemaker:* and no iam:PassRole",
        json_schema_extra={"flag": "--job-role"},
    )
    bucket: str = Field(
        default=DEFAULT_BUCKET,
        description="the S3 bucket for artifacts",
        json_schema_extra={"flag": "--bucket", "placeholder": True},
    )
    prefix: str = "kubesage"
    region: str = Field(default="us-east-1", description="the AWS region", json_schema_extra={"flag": "--region"})
    pipeline_name: str | None = Field(default=None, description="defaults to the KFP pipeline name")
    default_instance_type: str = "ml.m5.large"
    instance_types: dict[str, str] = Field(default_factory=dict, description="task name -> instance type")
    instance_counts: dict[str, int] = Field(
        default_factory=dict,
        description="task name -> instance count (SageMaker's InstanceCount), e.g. {'train': 2}: a training "
        "task on several instances trains one model across them, and the task writing its sharded inputs "
        "writes one file per instance (runners/sagemaker/README.md, Distributed training)",
    )
    # issue 20: a training task on several instances gets these input channels sharded (ShardedByS3Key)
    sharded_inputs: tuple[str, ...] = Field(
        default=("train_data",),
        description="input artifacts a training task on more than one instance receives ShardedByS3Key "
        "(each instance a share of the S3 objects; the others stay FullyReplicated)",
    )
    volume_size_gb: int = 30
    max_runtime_seconds: int = 3600
    cache_expire_after: str = "P30D"
    register_task: str | None = Field(
        default=None, description="task that also registers a model package; default: a task named 'register'"
    )
    model_package_group: str | None = Field(default=None, description="defaults to '<pipeline>-models'")
    inference_instance_types: tuple[str, ...] = ("ml.m5.large",)
    data_parameters: tuple[str, ...] | None = Field(
        default=None,
        description="string parameters holding an S3 URI of input data: downloaded into the step, "
        "and the task receives the local path. None: string parameters named 'input_data' or '*_data' (a file), "
        "'captures' or '*_captures' (a folder or prefix)",
    )
    mlflow_tracking_uri: str = ""
    mlflow_secret: str | None = Field(
        default=None,
        description="the Secrets Manager secret (name or ARN) holding the steps' MLflow credentials as JSON "
        '({"username": ..., "password": ...} or {"token": ...}); each job reads it at start with the job role',
    )
    # issue 22: kfp-kubernetes secrets and ConfigMaps (platform.py)
    secret_map: dict[str, str] = Field(
        default_factory=dict,
        description="Kubernetes secret name -> Secrets Manager secret (name or ARN) holding the same keys as a "
        "JSON object, for use_secret_as_env/use_secret_as_volume: NAME=SECRET,... or JSON; a name not given reads "
        "the Secrets Manager secret of the same name; the job role may read only the secrets the tasks use "
        "(compile writes that statement beside the definition)",
        json_schema_extra={"flag": "--secret-map"},
    )
    config_maps: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Kubernetes ConfigMap name -> {key: value}, given to use_config_map_as_env as literal "
        "environment values: NAME:KEY=VALUE,... or JSON",
        json_schema_extra={"flag": "--config-maps"},
    )
    secrets_endpoint_url: str | None = Field(
        default=None, description="the Secrets Manager endpoint the jobs use (a stand-in such as moto, locally)"
    )
    # Carried into every processing and training job of the definition (security.py).
    subnets: tuple[str, ...] = Field(default=(), description="VPC subnet ids for every job")
    security_group_ids: tuple[str, ...] = Field(default=(), description="VPC security group ids for every job")
    enable_network_isolation: bool = Field(
        default=False, description="no network from the job containers (steps then cannot reach MLflow)"
    )
    volume_kms_key: str | None = Field(default=None, description="KMS key for the jobs' storage volumes")
    output_kms_key: str | None = Field(default=None, description="KMS key for the jobs' S3 outputs")
    encrypt_inter_container_traffic: bool = False
    pinned_parameters: dict[str, PinnedValue] = Field(
        default_factory=dict,
        description="parameters compiled in as constants (no longer execution parameters), e.g. "
        "{'ModelApprovalStatus': 'PendingManualApproval', 'min_accuracy': 0.8}",
    )
    local_mode: bool = Field(
        default=False,
        description="target the SDK's local mode, which cannot run RegisterModel steps",
    )

    @field_validator("secret_map", mode="before")
    @classmethod
    def _secret_pairs(cls, value: object) -> object:
        """`api-token=prod/api-token,tls=prod/tls` as well as JSON (what --option decodes)."""
        if not isinstance(value, str):
            return value
        pairs = [_split(item, "=", "NAME=SECRET") for item in _items(value)]
        return dict(pairs)

    @field_validator("config_maps", mode="before")
    @classmethod
    def _config_map_triples(cls, value: object) -> object:
        """`settings:level=INFO,settings:region=eu` as well as JSON (a ConfigMap name or key has no ':')."""
        if not isinstance(value, str):
            return value
        maps: dict[str, dict[str, str]] = {}
        for item in _items(value):
            name, rest = _split(item, ":", "NAME:KEY=VALUE")
            key, text = _split(rest, "=", "NAME:KEY=VALUE")
            maps.setdefault(name, {})[key] = text
        return maps

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET_RE.match(value):
            raise ValueError(f"'{value}' is not a valid S3 bucket name (lowercase letters, digits, '.', '-')")
        return value

    @field_validator("role_arn", "job_role_arn")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_RE.match(value):
            raise ValueError(f"'{value}' is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        return value

    @field_validator("instance_counts")
    @classmethod
    def _counts(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {task: count for task, count in value.items() if count < 1}
        if bad:
            raise ValueError(f"instance counts must be at least 1, got {bad}")
        return value

    @field_validator("subnets")
    @classmethod
    def _subnets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not _SUBNET_RE.match(v)]
        if bad:
            raise ValueError(f"{bad} are not VPC subnet ids (subnet-0123abcd...)")
        return value

    @field_validator("security_group_ids")
    @classmethod
    def _security_groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not _SECURITY_GROUP_RE.match(v)]
        if bad:
            raise ValueError(f"{bad} are not security group ids (sg-0123abcd...)")
        return value

    @field_validator("volume_kms_key", "output_kms_key")
    @classmethod
    def _kms_key(cls, value: str | None) -> str | None:
        if value is not None and not _KMS_KEY_RE.match(value):
            raise ValueError(f"'{value}' is not a KMS key id, key ARN, alias/NAME or alias ARN")
        return value

    @model_validator(mode="after")
    def _vpc_pairs(self) -> SageMakerConfig:
        if bool(self.subnets) != bool(self.security_group_ids):
            raise ValueError("a VPC needs both subnets and security_group_ids (SageMaker's VpcConfig takes both)")
        return self

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return value.strip("/")

    def s3_root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def job_role(self) -> str:
        """The role processing and training jobs assume (the pipeline role if none was given)."""
        return self.job_role_arn or self.role_arn

    def instance_type(self, task: str) -> str:
        return self.instance_types.get(task, self.default_instance_type)

    def instance_count(self, task: str) -> int:
        return self.instance_counts.get(task, 1)
