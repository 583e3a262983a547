"""Pipeline parameters: read their types from the IR and check user values before anything runs."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubesage.errors import ParameterError

_TYPE_NAMES = {
    "STRING": "string",
    "NUMBER_INTEGER": "integer",
    "NUMBER_DOUBLE": "float",
    "BOOLEAN": "boolean",
    "LIST": "list",
    "STRUCT": "dict",
}
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    type: str  # the IR's parameterType: STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST, STRUCT
    default: Any = None
    optional: bool = False

    @property
    def required(self) -> bool:
        return self.default is None and not self.optional

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.type, self.type.lower())


def parameter_specs(spec: Mapping[str, Any]) -> dict[str, ParameterSpec]:
    """The pipeline's own inputs, in the order the IR lists them."""
    definitions = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return {
        name: ParameterSpec(
            name=name,
            type=str(d.get("parameterType", "STRING")),
            default=d.get("defaultValue"),
            optional=bool(d.get("isOptional", False)),
        )
        for name, d in definitions.items()
    }


def parse_assignments(pairs: Iterable[str], what: str = "--param") -> dict[str, str]:
    """`NAME=VALUE` strings from the command line."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"{what} {pair!r} must look like NAME=VALUE")
        out[name.strip()] = value
    return out


def coerce(spec: ParameterSpec, value: Any) -> Any:
    """Convert a value (a CLI string or a typed value) to the parameter's type, or say why not."""
    return coerce_value(spec.name, spec.type, value)


def coerce_value(name: str, ir_type: str, value: Any, what: str = "parameter") -> Any:
    """The one conversion of a text or typed value to a KFP IR parameter type.

    The CLI's --param values, SageMaker's all-string hyperparameters and the step shim's arguments
    all come through here, so "5", "5.0" and 5 mean the same integer everywhere.
    """
    try:
        if ir_type == "STRING":
            if not isinstance(value, str):
                raise ValueError
            return value
        if ir_type == "NUMBER_INTEGER":
            if isinstance(value, bool):
                raise ValueError
            number = float(value.strip()) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        if ir_type == "NUMBER_DOUBLE":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if ir_type == "BOOLEAN":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError
        if ir_type in ("LIST", "STRUCT"):
            parsed = json.loads(value) if isinstance(value, str) else value
            if not isinstance(parsed, list if ir_type == "LIST" else dict):
                raise ValueError
            return parsed
    except (TypeError, ValueError, OverflowError, json.JSONDecodeError):
        type_name = _TYPE_NAMES.get(ir_type, ir_type.lower())
        raise ParameterError(f"{what} {name}={value!r} is not a valid {type_name}") from None
    return value


def parameter_text(value: Any) -> str:
    """The inverse for backends that take every value as text (SageMaker): booleans as true/false,
    lists and dicts as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def resolve_parameters(specs: Mapping[str, ParameterSpec], given: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values for every given parameter; unknown names and missing required ones are errors."""
    unknown = [name for name in given if name not in specs]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(specs), n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ParameterError(f"unknown pipeline parameter {', '.join(hints)}; this pipeline takes: {', '.join(specs)}")
    resolved = {name: coerce(specs[name], value) for name, value in given.items()}
    missing = [name for name, spec in specs.items() if spec.required and name not in resolved]
    if missing:
        raise ParameterError(f"missing required pipeline parameter(s) {', '.join(missing)}; pass --param NAME=VALUE")
    return resolved


def effective_parameters(specs: Mapping[str, ParameterSpec], resolved: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with the given values: what the run will actually use."""
    values = {name: coerce(spec, spec.default) for name, spec in specs.items() if spec.default is not None}
    values.update(resolved)
    return values


def as_cel_value(value: Any) -> Any:
    """A parameter value as KFP's backend hands it to a condition's CEL: protobuf Value semantics, so every
    number is a double (`inputs.parameter_values['n'] > 1` compares doubles), nested lists and maps too."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): as_cel_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_cel_value(v) for v in value]
    return value
