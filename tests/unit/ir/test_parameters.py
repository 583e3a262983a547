"""Pipeline parameters are typed from the IR and checked before anything runs."""

from __future__ import annotations

import pytest

from kubesage.errors import ParameterError
from kubesage.ir.parameters import (
    ParameterSpec,
    coerce,
    effective_parameters,
    parameter_specs,
    parse_assignments,
    resolve_parameters,
)

SPECS = {
    "input_data": ParameterSpec("input_data", "STRING"),
    "max_depth": ParameterSpec("max_depth", "NUMBER_INTEGER", default=5.0),
    "eta": ParameterSpec("eta", "NUMBER_DOUBLE", default=0.3),
    "flag": ParameterSpec("flag", "BOOLEAN", default=False),
    "items": ParameterSpec("items", "LIST", default=[]),
}


def test_cli_strings_become_typed_values() -> None:
    given = parse_assignments(["input_data=s3://b/k.csv", "max_depth=7", "eta=0.1", "flag=yes", "items=[1, 2]"])
    resolved = resolve_parameters(SPECS, given)
    assert resolved == {"input_data": "s3://b/k.csv", "max_depth": 7, "eta": 0.1, "flag": True, "items": [1, 2]}
    assert isinstance(resolved["max_depth"], int)


def test_value_may_contain_equals_signs() -> None:
    assert parse_assignments(["input_data=file:///a=b.csv"]) == {"input_data": "file:///a=b.csv"}


@pytest.mark.parametrize(
    ("name", "value", "type_name"),
    [
        ("max_depth", "abc", "integer"),
        ("max_depth", "2.5", "integer"),
        ("eta", "fast", "float"),
        ("flag", "maybe", "boolean"),
        ("items", "{}", "list"),
    ],
)
def test_wrong_type_names_the_parameter(name: str, value: str, type_name: str) -> None:
    with pytest.raises(ParameterError, match=rf"parameter {name}='{value}' is not a valid {type_name}"):
        resolve_parameters(SPECS, {"input_data": "x", name: value})


def test_unknown_parameter_suggests_the_closest() -> None:
    with pytest.raises(ParameterError, match=r"'max_dept' \(did you mean 'max_depth'\?\)"):
        resolve_parameters(SPECS, {"input_data": "x", "max_dept": "3"})


def test_missing_required_parameter() -> None:
    with pytest.raises(ParameterError, match="missing required pipeline parameter.*input_data"):
        resolve_parameters(SPECS, {"eta": "0.2"})


def test_malformed_assignment() -> None:
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        parse_assignments(["max_depth"])


def test_effective_parameters_overlay_defaults_with_ir_types() -> None:
    values = effective_parameters(SPECS, {"input_data": "x", "eta": 0.5})
    assert values == {"input_data": "x", "max_depth": 5, "eta": 0.5, "flag": False, "items": []}
    assert isinstance(values["max_depth"], int)


def test_bool_is_not_an_integer() -> None:
    with pytest.raises(ParameterError):
        coerce(SPECS["max_depth"], True)


def test_specs_read_from_compiled_ir() -> None:
    spec = {
        "root": {
            "inputDefinitions": {
                "parameters": {
                    "a": {"parameterType": "STRING"},
                    "b": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3.0, "isOptional": True},
                }
            }
        }
    }
    specs = parameter_specs(spec)
    assert specs["a"].required and not specs["b"].required
    assert specs["b"].default == 3.0
