"""The SDK's config validation, done once per config (compiler/session.py `validate_sdk_config_once`).

The SDK validates its whole config against a JSON schema at every config lookup: about a hundred
times in one local-mode run of the churn pipeline. Inside `validate_sdk_config_once` each distinct
config is validated for real once per process; an invalid one must fail as it did without it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kfp import compiler
from sagemaker.core.config import config as sdk_config_files
from sagemaker.core.config.config_manager import SageMakerConfig
from sagemaker.core.helper import session_helper
from sagemaker.core.local import local_session

from kubesage.runners.sagemaker.compiler.session import OFFLINE_SDK_CONFIG, validate_sdk_config_once
from kubesage.runners.sagemaker.config import SageMakerConfig as KubesageSageMakerConfig
from tests.corpus.sagemaker.basics import container_components
from tests.unit.runners.sagemaker.ir_file import compile_file

# Each SDK path to the schema check: a config lookup, a session's config files, a session created with
# a config (its module's own binding of the function), a local-mode session.
SDK_VALIDATIONS = (
    lambda config: SageMakerConfig.validate_sagemaker_config(config),
    lambda config: sdk_config_files.validate_sagemaker_config(config),
    lambda config: session_helper.validate_sagemaker_config(config),
    lambda config: local_session.validate_sagemaker_config(config),
)


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


def test_an_equal_config_is_validated_once_by_every_sdk_path(schema_checks: list[Any]) -> None:
    config = _a_config_of_this_test("once")
    with validate_sdk_config_once():
        for validate in SDK_VALIDATIONS:
            validate(copy.deepcopy(config))
        SageMakerConfig().validate_sagemaker_config(dict(config))
    assert schema_checks == [config]


def test_an_invalid_config_fails_every_time_as_without_it() -> None:
    invalid = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": "yes"}}}}
    with validate_sdk_config_once():
        for validate in SDK_VALIDATIONS:
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
    for validate in SDK_VALIDATIONS:
        validate(OFFLINE_SDK_CONFIG)
    assert len(schema_checks) == before + len(SDK_VALIDATIONS)


def test_a_second_compile_in_the_process_validates_no_config(schema_checks: list[Any], tmp_path: Path) -> None:
    """The compile creates our session and a local session per processing step, each validating the
    same offline config: 0.3-0.5 s of JSON-schema checks per compile before (a corpus of 96 pipelines
    spent most of its time there)."""
    ir = tmp_path / "container-components.yaml"
    compiler.Compiler().compile(container_components, str(ir))
    config = KubesageSageMakerConfig(bucket="kubesage-tests")
    first = compile_file(ir, config)
    before = len(schema_checks)
    second = compile_file(ir, config)
    assert len(schema_checks) == before
    assert second.definition == first.definition and len(first.definition["Steps"]) == 3


def test_a_compile_opens_no_local_session(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The SDK's ProcessingStep built a whole LocalSession per step to read one method's name
    (`step_checks_without_local_sessions`); the steps are still checked and built the same."""
    opened: list[Any] = []
    real = local_session.LocalSession.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        opened.append(self)
        real(self, *args, **kwargs)

    monkeypatch.setattr(local_session.LocalSession, "__init__", counting)
    ir = tmp_path / "container-components.yaml"
    compiler.Compiler().compile(container_components, str(ir))
    compiled = compile_file(ir, KubesageSageMakerConfig(bucket="kubesage-tests"))
    assert opened == []
    assert {step["Type"] for step in compiled.definition["Steps"]} == {"Processing"}
