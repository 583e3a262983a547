"""Resolve a PIPELINE argument to compiled KFP IR, the portable contract every runner reads.

A PIPELINE is one of:
- a pipeline name under pipelines/ (``customer_churn``),
- a ``package.module:function`` reference to any ``@dsl.pipeline``,
- a compiled KFP IR YAML file.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubesage.errors import PipelineNotFoundError

IR_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class PipelineSource:
    """A pipeline as compiled IR, with where it came from."""

    name: str
    ir_path: Path
    spec: dict[str, Any]
    origin: str
    platform_spec: dict[str, Any] | None = None  # kfp-kubernetes settings, when the IR file has them

    @property
    def description(self) -> str:
        return str(self.spec.get("pipelineInfo", {}).get("description", ""))


def available_pipelines() -> list[str]:
    import kubesage.pipelines as package

    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def same_pipeline_name(a: str, b: str) -> bool:
    """`customer_churn` and `customer-churn` name the same pipeline (module name vs. KFP's IR name)."""
    return a.replace("_", "-").lower() == b.replace("_", "-").lower()


def builtin_name(ref: str, known: list[str]) -> str:
    """The built-in pipeline module `ref` names in either spelling, or `ref` unchanged."""
    return next((name for name in known if same_pipeline_name(name, ref)), ref)


def load_pipeline(ref: str, workdir: Path) -> PipelineSource:
    """Compile (or read) the pipeline named by `ref`; compiled IR lands in `workdir`."""
    path = Path(ref)
    if path.suffix in IR_SUFFIXES:
        if not path.is_file():
            raise PipelineNotFoundError(f"pipeline file {ref} does not exist")
        return _from_ir_file(path, origin=ref)
    function = _import_pipeline_function(ref)
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / f"{_safe_name(ref)}.yaml"
    compile_pipeline_function(function, target)
    return _from_ir_file(target, origin=ref)


def compile_pipeline_function(function: Any, target: Path) -> Path:
    from kfp import compiler

    compiler.Compiler().compile(function, str(target))
    return target


def _from_ir_file(path: Path, origin: str) -> PipelineSource:
    try:
        # kfp-kubernetes writes a second document, the PlatformSpec, after the PipelineSpec
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except UnicodeDecodeError as exc:
        raise PipelineNotFoundError(f"{path} is not a text file (not UTF-8), so not a compiled KFP pipeline") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PipelineNotFoundError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    spec = docs[0] if docs else None
    platform = [d for d in docs[1:] if isinstance(d, dict) and "platforms" in d]
    if not isinstance(spec, dict) or "root" not in spec or not isinstance(spec.get("pipelineInfo"), dict):
        raise PipelineNotFoundError(
            f"{path} is {'empty' if not docs else 'not a compiled KFP pipeline (no pipelineInfo/root)'}; compile it "
            "with `kubesage compile PIPELINE --target kfp --output FILE` or kfp.compiler"
        )
    if len(docs) > 1 + len(platform[:1]):
        raise PipelineNotFoundError(
            f"{path} holds {len(docs)} YAML documents; a compiled KFP pipeline has one PipelineSpec and at most "
            "one PlatformSpec"
        )
    if not spec["pipelineInfo"].get("name"):
        raise PipelineNotFoundError(f"{path} has no pipelineInfo.name; recompile it with kfp.compiler")
    return PipelineSource(
        name=str(spec["pipelineInfo"]["name"]),
        ir_path=path.resolve(),
        spec=spec,
        origin=origin,
        platform_spec=platform[0] if platform else None,
    )


def _import_pipeline_function(ref: str) -> Any:
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        module = _import_from_cwd(module_name, ref)
        function = getattr(module, attr, None)
        if function is None:
            raise PipelineNotFoundError(f"module {module_name} has no attribute {attr!r}")
        return _require_pipeline(function, ref)
    known = available_pipelines()
    ref = builtin_name(ref, known)
    if ref not in known:
        raise PipelineNotFoundError(
            f"unknown pipeline {ref!r}; built-in pipelines: {', '.join(known)}. "
            "Pass a module:function reference or a compiled IR YAML file for your own."
        )
    module = _import(f"kubesage.pipelines.{ref}", ref)
    function = getattr(module, ref, None)
    if function is None:
        candidates = [v for v in vars(module).values() if _is_pipeline(v)]
        if len(candidates) != 1:
            raise PipelineNotFoundError(f"pipelines/{ref}.py must define one @dsl.pipeline named {ref}")
        function = candidates[0]
    return _require_pipeline(function, ref)


def _import_from_cwd(module_name: str, ref: str) -> Any:
    """A user's `my_module:pipeline` from the current directory first, as `python -m` and uvicorn do.

    The console script's sys.path starts with its own bin folder, not the directory it runs in, so
    `kubesage run my_module:sensor_alerts` beside my_module.py would not find it otherwise.
    """
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return _import(module_name, ref)
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _import(module_name: str, ref: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise PipelineNotFoundError(f"cannot import {module_name} for pipeline {ref!r}: {exc}") from exc


def _is_pipeline(obj: Any) -> bool:
    from kfp.dsl.graph_component import GraphComponent

    return isinstance(obj, GraphComponent)


def _require_pipeline(obj: Any, ref: str) -> Any:
    if not _is_pipeline(obj):
        raise PipelineNotFoundError(f"{ref} is not a @dsl.pipeline function")
    return obj


def _safe_name(ref: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in ref)
