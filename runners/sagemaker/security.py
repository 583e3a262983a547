"""Network and encryption settings every job of the definition carries, from SageMakerConfig.

One place turns the config's VPC, network isolation, KMS and inter-container encryption options into
the SDK objects the processing and training steps take, so no step can be built without them.
"""

from __future__ import annotations

from typing import Any

from kubesage.runners.sagemaker.config import SageMakerConfig


def processing_network(config: SageMakerConfig) -> Any:
    """`NetworkConfig` for a Processor, or None when every option is off."""
    from sagemaker.core.network import NetworkConfig

    if not (config.subnets or config.enable_network_isolation or config.encrypt_inter_container_traffic):
        return None
    return NetworkConfig(
        enable_network_isolation=config.enable_network_isolation,
        security_group_ids=list(config.security_group_ids) or None,
        subnets=list(config.subnets) or None,
        encrypt_inter_container_traffic=config.encrypt_inter_container_traffic,
    )


def processing_keys(config: SageMakerConfig) -> dict[str, Any]:
    """The Processor's KMS keyword arguments (volume and S3 output)."""
    return {"volume_kms_key": config.volume_kms_key, "output_kms_key": config.output_kms_key}


def training_networking(config: SageMakerConfig) -> Any:
    """`Networking` for a ModelTrainer, or None when every option is off."""
    from sagemaker.train.configs import Networking

    if not (config.subnets or config.enable_network_isolation or config.encrypt_inter_container_traffic):
        return None
    return Networking(
        security_group_ids=list(config.security_group_ids) or None,
        subnets=list(config.subnets) or None,
        enable_network_isolation=config.enable_network_isolation,
        enable_inter_container_traffic_encryption=config.encrypt_inter_container_traffic,
    )


def report(config: SageMakerConfig) -> list[str]:
    """Lines for `compile --explain` saying what every job carries, and what isolation costs."""
    lines = []
    if config.job_role_arn is None:
        lines.append(
            f"jobs run with the pipeline role {config.role_arn}; give a separate job role "
            "(job_role_arn, policies in runners/sagemaker/iam/) so steps cannot start jobs or pass roles"
        )
    else:
        lines.append(f"jobs run with role {config.job_role_arn}; the pipeline with {config.role_arn}")
    if config.subnets:
        lines.append(f"every job in VPC subnets {list(config.subnets)} with {list(config.security_group_ids)}")
    if config.enable_network_isolation:
        lines.append(
            "every job network-isolated: steps cannot reach an MLflow server (run untracked, or drop isolation)"
        )
    if config.volume_kms_key or config.output_kms_key:
        volumes, outputs = config.volume_kms_key or "AWS-managed key", config.output_kms_key or "SSE-S3"
        lines.append(f"KMS: job volumes {volumes}, job outputs {outputs}")
    if config.encrypt_inter_container_traffic:
        lines.append("inter-container traffic encrypted")
    return lines
