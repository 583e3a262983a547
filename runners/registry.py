"""The one list of runners. The CLI's `--runner` choices, its runner flags, `kubesage runners` and the
compile targets all come from here; so do the built-in pipelines a PIPELINE argument may name (the
core, `kubesage.ir.source`, is told them: it never imports pipelines/).

A backend is a package under runners/ whose `__init__` declares `RUNNERS`: one `RunnerSpec` per
runner it provides (name, options model, summary, pip extra, compile target). The `__init__` stays
light (pydantic models only); the runner class is imported when the runner is used. Adding a backend
is its folder plus one line in `RUNNER_PACKAGES`.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import kubesage.pipelines
from kubesage.errors import ParameterError, RunnerError
from kubesage.ir.source import PipelineSource
from kubesage.ir.source import load_pipeline as load_pipeline_from
from kubesage.runners.base import Runner, RunnerOptions

RUNNER_PACKAGES: tuple[str, ...] = (
    "kubesage.runners.local",
    "kubesage.runners.kfp",
    "kubesage.runners.sagemaker",
)


@dataclass(frozen=True)
class RunnerSpec:
    """What the CLI and docs need to know of a runner without importing its dependencies."""

    name: str
    runner: str  # "package.module:Class", imported on first use
    options: type[RunnerOptions]
    summary: str
    needs: str = ""
    extra: str | None = None  # the pip extra that brings its dependencies
    compile_target: str | None = None  # `kubesage compile --target NAME` uses this runner's compile

    def load(self) -> type[Runner]:
        module_name, _, class_name = self.runner.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if self.extra is None or (exc.name or "").split(".")[0] not in _EXTRA_MODULES:
                raise
            raise RunnerError(
                f"the {self.name} runner needs extra packages ({exc.name}); install them with "
                f"`pip install 'kubesage[{self.extra}]'`"
            ) from exc
        runner_class: type[Runner] = getattr(module, class_name)
        return runner_class


# Top-level modules that only optional extras bring: a missing one means "install the extra".
_EXTRA_MODULES = frozenset({"sagemaker", "kfp_server_api", "kubernetes"})


@cache
def runner_specs() -> dict[str, RunnerSpec]:
    specs: dict[str, RunnerSpec] = {}
    for package in RUNNER_PACKAGES:
        for spec in importlib.import_module(package).RUNNERS:
            if spec.name in specs:
                raise RunnerError(f"runner name {spec.name!r} is declared twice ({package})")
            specs[spec.name] = spec
    return specs


def runner_spec(name: str) -> RunnerSpec:
    specs = runner_specs()
    try:
        return specs[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(specs), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RunnerError(f"unknown runner {name!r}{hint}; available: {', '.join(specs)}") from None


def compile_targets() -> dict[str, RunnerSpec]:
    return {s.compile_target: s for s in runner_specs().values() if s.compile_target}


def get_runner(name: str, options: RunnerOptions | Mapping[str, Any] | None = None, **overrides: Any) -> Runner:
    """An instance of runner `name` with validated options (a ParameterError names a bad one)."""
    spec = runner_spec(name)
    return spec.load()(options, **overrides)


@dataclass(frozen=True)
class OptionFlag:
    """A dedicated CLI flag for an option field, shared by every runner whose options declare it."""

    flag: str
    field: str
    help: str
    runners: tuple[str, ...]
    # A flag without a value (`--no-cache`) sets the field to this; None: the flag takes a value.
    switch_value: Any = None


def option_flags() -> list[OptionFlag]:
    """Every `json_schema_extra={"flag": ...}` field across the runners, one flag per name."""
    found: dict[str, OptionFlag] = {}
    for spec in runner_specs().values():
        for field_name, info in spec.options.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            flag = extra.get("flag")
            if not isinstance(flag, str):
                continue
            known = found.get(flag)
            if known and known.field != field_name:
                raise RunnerError(f"flag {flag} names two options ({known.field}, {field_name})")
            runners = (*known.runners, spec.name) if known else (spec.name,)
            help_text = extra.get("flag_help") or info.description or field_name
            found[flag] = OptionFlag(flag, field_name, str(help_text), runners, extra.get("switch_value"))
    return sorted(found.values(), key=lambda f: f.flag)


def parse_option_values(spec: RunnerSpec, pairs: dict[str, str]) -> dict[str, Any]:
    """`--option NAME=VALUE` strings for runner `spec`: names checked, JSON decoded where the field is not text."""
    import json

    fields = spec.options.model_fields
    values: dict[str, Any] = {}
    for name, text in pairs.items():
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParameterError(
                f"the {spec.name} runner has no option {name!r}{hint}; its options: {', '.join(fields)}"
            )
        if fields[name].annotation in (str, str | None):
            values[name] = text
            continue
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError:
            values[name] = text  # pydantic names the problem if the text does not fit the field
    return values


def placeholder_options(options: RunnerOptions) -> list[tuple[str, Any, str | None]]:
    """(field, value, flag) of every option still at a placeholder default (`"placeholder": True`)."""
    found = []
    for field_name, info in type(options).model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        value = getattr(options, field_name)
        if extra.get("placeholder") and value == info.get_default(call_default_factory=True):
            flag = extra.get("flag")
            found.append((field_name, value, flag if isinstance(flag, str) else None))
    return found


def describe_runners() -> list[dict[str, Any]]:
    """Every runner with what it needs and its options (for `kubesage runners` and the docs)."""
    described = []
    for spec in runner_specs().values():
        options = []
        for field_name, info in spec.options.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            default = info.get_default(call_default_factory=True)
            options.append(
                {
                    "name": field_name,
                    "type": getattr(info.annotation, "__name__", str(info.annotation)),
                    "default": default if isinstance(default, str | int | float | bool | type(None)) else str(default),
                    "flag": extra.get("flag"),
                    "description": info.description or "",
                }
            )
        described.append(
            {
                "name": spec.name,
                "summary": spec.summary,
                "needs": spec.needs,
                "extra": spec.extra,
                "compile_target": spec.compile_target,
                "options": options,
            }
        )
    return described


def builtin_pipelines() -> dict[str, str]:
    """The built-in pipelines (the modules under pipelines/): name -> module."""
    package = kubesage.pipelines
    return {
        m.name: f"{package.__name__}.{m.name}"
        for m in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name)
        if not m.name.startswith("_")
    }


def load_pipeline(ref: str, workdir: Path) -> PipelineSource:
    """A PIPELINE argument (a built-in name, module:function or an IR file) as compiled IR in `workdir`."""
    return load_pipeline_from(ref, workdir, builtin_pipelines())
