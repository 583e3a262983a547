"""The SageMaker SDK, driven offline: placeholder credentials, no role validation, no telemetry.

Building a definition with the SDK must make no network call (`kubesage compile` is offline) and
should not take seconds, so the compile runs inside these context managers.
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.util.boto_sessions import shared_service_models
from kubesage.util.environment import environment

OFFLINE_SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


@contextmanager
def offline_env(region: str) -> Iterator[None]:
    """Environment for building definitions without AWS: no role validation, a region for import."""
    # The SDK creates boto3 clients at import time; without keys in the environment, botocore's
    # credential chain would ask the EC2 instance metadata service (a network call).
    values = {"SAGEMAKER_VALIDATE_ROLE": "false", "AWS_EC2_METADATA_DISABLED": "true"}
    if not os.environ.get("AWS_DEFAULT_REGION") and not os.environ.get("AWS_REGION"):
        # `import sagemaker.mlops` creates boto3 clients at import time and needs a region.
        values["AWS_DEFAULT_REGION"] = region
    with environment(values):
        yield


@dataclass
class _SharedSession:
    session: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


_SESSIONS: dict[tuple[str, str, str], _SharedSession] = {}
_SESSIONS_LOCK = threading.Lock()


@contextmanager
def offline_session(config: SageMakerConfig) -> Iterator[Any]:
    """A PipelineSession that never calls AWS (placeholder keys, explicit bucket, telemetry off), held
    for one pipeline's build.

    One per region, bucket and prefix in a process, reused by every compile: opening one creates seven
    boto3 clients, 50 ms of CPU, half of a compile of the churn pipeline. The SDK makes a
    PipelineSession to be reused across the steps and pipelines it builds (it sets the session's
    `context` for each step as it builds it), so builds that share one take turns (the lock).
    """
    key = (config.region, config.bucket, config.prefix)
    with _SESSIONS_LOCK:
        shared = _SESSIONS.get(key)
        if shared is None:
            with offline_env(config.region), validate_sdk_config_once(), shared_service_models():
                shared = _SESSIONS[key] = _SharedSession(_new_offline_session(config))
    with shared.lock:
        yield shared.session


def _new_offline_session(config: SageMakerConfig) -> Any:
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    from kubesage.util.boto_sessions import new_boto3_session

    boto_session = new_boto3_session(
        aws_access_key_id="kubesage-offline",
        aws_secret_access_key="kubesage-offline",
        region_name=config.region,
    )
    return PipelineSession(
        boto_session=boto_session,
        default_bucket=config.bucket,
        default_bucket_prefix=config.prefix or None,
        sagemaker_config=OFFLINE_SDK_CONFIG,
    )


_VALIDATED_SDK_CONFIGS: list[dict[str, Any]] = []

# The SDK modules that validate a config with config.py's `validate_sagemaker_config` (the schema
# `SageMakerConfig.validate_sagemaker_config` also checks): config.py itself, and the modules holding
# their own binding of it from `from ... import validate_sagemaker_config` (session creation in
# session_helper.py, local mode in local_session.py), which patching config.py alone does not reach.
SDK_VALIDATE_FUNCTION = "validate_sagemaker_config"
SDK_MODULES_VALIDATING_CONFIGS = (
    "sagemaker.core.config.config",
    "sagemaker.core.helper.session_helper",
    "sagemaker.core.local.local_session",
)


@contextmanager
def validate_sdk_config_once() -> Iterator[None]:
    """Validate each SDK config once per process instead of at every config lookup.

    The SDK re-validates the whole config against its JSON schema (including checking the schema
    itself) on each `get_sagemaker_config_value`, about 60 times for a four-step pipeline, again for
    each session it creates (ours, and a local session per processing step) and each time a
    local-mode session loads its config files: that made one compile take 0.3-0.5 s of validation
    and a local-mode run of the churn pipeline spend ~100 validations (about 10 s of CPU) before and
    between its jobs. The configs are constants (`OFFLINE_SDK_CONFIG`, the local mode defaults, the
    user's config files), so each is validated for real the first time in the process, and an equal
    dict is not validated again: an invalid config still fails where it did.
    """
    from sagemaker.core.config.config_manager import SageMakerConfig as SdkConfig

    patched: list[tuple[Any, Callable[[dict[str, Any] | None], None]]] = []
    for module_name in SDK_MODULES_VALIDATING_CONFIGS:
        module = importlib.import_module(module_name)
        original = getattr(module, SDK_VALIDATE_FUNCTION)
        patched.append((module, original))
        setattr(module, SDK_VALIDATE_FUNCTION, _validated_once(original))
    original_method = SdkConfig.validate_sagemaker_config
    SdkConfig.validate_sagemaker_config = staticmethod(_validated_once(original_method))
    try:
        yield
    finally:
        SdkConfig.validate_sagemaker_config = staticmethod(original_method)
        for module, original in patched:
            setattr(module, SDK_VALIDATE_FUNCTION, original)


def _validated_once(validate: Callable[[dict[str, Any] | None], None]) -> Callable[[dict[str, Any] | None], None]:
    def once(sagemaker_config: dict[str, Any] | None = None) -> None:
        if sagemaker_config is not None and sagemaker_config in _VALIDATED_SDK_CONFIGS:
            return
        validate(sagemaker_config)
        if sagemaker_config is not None:
            _VALIDATED_SDK_CONFIGS.append(copy.deepcopy(sagemaker_config))

    return once


@contextmanager
def step_checks_without_local_sessions() -> Iterator[None]:
    """Let the SDK's step classes check their arguments without opening a local-mode session.

    `ProcessingStep` and `TransformStep` accept step arguments from a processor or from local mode,
    and read the local method's name from a `LocalSagemakerClient()` built for the purpose: a whole
    `LocalSession` (boto3 clients for S3, SageMaker and its runtime, its config files validated) per
    step, most of a compile's time for a pipeline of many steps. The check needs only the method
    names, which a client that opens no session has too.
    """
    from sagemaker.core.local.local_session import LocalSagemakerClient
    from sagemaker.mlops.workflow import steps

    class NamesOnlyLocalClient(LocalSagemakerClient):
        def __init__(self, sagemaker_session: Any = None) -> None:
            self.sagemaker_session = sagemaker_session

    original = steps.LocalSagemakerClient
    steps.LocalSagemakerClient = NamesOnlyLocalClient
    try:
        yield
    finally:
        steps.LocalSagemakerClient = original


@contextmanager
def quiet_sdk() -> Iterator[None]:
    """The SDK logs every popped job name and skipped role check: noise for an offline compile."""
    loggers = [logging.getLogger(name) for name in ("sagemaker", "sagemaker.config")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*Running within a PipelineSession.*")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
