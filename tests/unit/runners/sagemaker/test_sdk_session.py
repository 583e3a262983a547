"""The SDK's config validation, done once per config (compiler/session.py `validate_sdk_config_once`).

The SDK validates its whole config against a JSON schema at every config lookup: about a hundred
times in one local-mode run of the churn pipeline. Inside `validate_sdk_config_once` each distinct
config is validated for real once per process; an invalid one must fail as it did without it.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from sagemaker.core.config import config as sdk_config_files
from sagemaker.core.config.config_manager import SageMakerConfig

from kubesage.runners.sagemaker.compiler.session import OFFLINE_SDK_CONFIG, validate_sdk_config_once


@pytest.fixture
def schema_checks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every config the SDK actually ran its JSON-schema validation on."""
    checked: list[Any] = []
    real = jsonschema.validate

    def counting(instance: Any, schema: Any, *args: Any, **kwargs: Any) -> None:
        checked.append(copy.deepcopy(instance))
        real(instance, schema, *args, **kwargs)

    monkeypatch.setattr(jsonschema, "validate", counting)
    return checked


def _a_config_of_this_test(tag: str) -> dict[str, Any]:
    # A config no other test validated in this process (the "once" is per process).
    return {"SchemaVersion": "1.0", "CustomParameters": {"test": tag}}


def test_an_equal_config_is_validated_once_by_both_sdk_paths(schema_checks: list[Any]) -> None:
    config = _a_config_of_this_test("once")
    with validate_sdk_config_once():
        SageMakerConfig.validate_sagemaker_config(config)  # a config lookup's path
        sdk_config_files.validate_sagemaker_config(copy.deepcopy(config))  # a session loading its files
        SageMakerConfig().validate_sagemaker_config(dict(config))
    assert schema_checks == [config]


def test_an_invalid_config_fails_every_time_as_without_it() -> None:
    invalid = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": "yes"}}}}
    with validate_sdk_config_once():
        for validate in (SageMakerConfig.validate_sagemaker_config, sdk_config_files.validate_sagemaker_config):
            for _ in range(2):
                with pytest.raises(jsonschema.ValidationError, match="TelemetryOptOut|is not of type"):
                    validate(invalid)


def test_a_config_changed_in_place_after_validation_is_validated_again(schema_checks: list[Any]) -> None:
    config = _a_config_of_this_test("changed")
    with validate_sdk_config_once():
        SageMakerConfig.validate_sagemaker_config(config)
        config["CustomParameters"]["test"] = "changed-again"
        SageMakerConfig.validate_sagemaker_config(config)
    assert len(schema_checks) == 2


def test_outside_the_block_the_sdk_validates_as_it_ships(schema_checks: list[Any]) -> None:
    with validate_sdk_config_once():
        SageMakerConfig.validate_sagemaker_config(OFFLINE_SDK_CONFIG)
    before = len(schema_checks)
    SageMakerConfig.validate_sagemaker_config(OFFLINE_SDK_CONFIG)
    sdk_config_files.validate_sagemaker_config(OFFLINE_SDK_CONFIG)
    assert len(schema_checks) == before + 2
