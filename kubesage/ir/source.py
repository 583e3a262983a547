"""Resolve a PIPELINE argument to compiled KFP IR, the portable contract every runner reads.

A PIPELINE is one of:
- a built-in pipeline's name (``customer_churn``): the caller passes the built-ins in, since the core
  never imports pipelines/ (`kubesage.runners.registry.load_pipeline` passes the modules there),
- a ``package.module:function`` reference to any ``@dsl.pipeline``,
- a compiled KFP IR YAML file.
"""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesage.errors import PipelineNotFoundError
from kubesage.ir.schema import load_ir_documents
from kubesage.util.names import same_pipeline_name

__all__ = ["PipelineSource", "builtin_name", "compile_pipeline_function", "load_pipeline", "same_pipeline_name"]

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


def builtin_name(ref: str, known: list[str]) -> str:
    """The built-in pipeline module `ref` names in either spelling, or `ref` unchanged."""
    return next((name for name in known if same_pipeline_name(name, ref)), ref)


def load_pipeline(ref: str, workdir: Path, builtins: Mapping[str, str] | None = None) -> PipelineSource:
    """Compile (or read) the pipeline named by `ref`; compiled IR lands in `workdir`.

    `builtins` maps each built-in pipeline's name to its module (`customer_churn` ->
    `kubesage.pipelines.customer_churn`), which defines a `@dsl.pipeline` of the same name.
    """
    path = Path(ref)
    if path.suffix in IR_SUFFIXES:
        if not path.is_file():
            raise PipelineNotFoundError(f"pipeline file {ref} does not exist")
        return _from_ir_file(path, origin=ref)
    function = _import_pipeline_function(ref, builtins or {})
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / f"{_safe_name(ref)}.yaml"
    compile_pipeline_function(function, target)
    return _from_ir_file(target, origin=ref)


def compile_pipeline_function(function: Any, target: Path) -> Path:
    """Compile to `target` all at once: a reader never sees a half-written IR file.

    Two `kubesage run`s in one directory compile the same pipeline to the same file at once; each
    writes its own temporary file beside the target and renames it into place (atomic on POSIX).
    """
    from kfp import compiler

    # A unique name KFP creates itself, so the file gets the usual mode (mkstemp's would be 0600).
    partial = target.with_name(f".{target.stem}-{uuid.uuid4().hex}{target.suffix}")
    try:
        compiler.Compiler().compile(function, str(partial))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _from_ir_file(path: Path, origin: str) -> PipelineSource:
    spec, platform = load_ir_documents(path)
    if "root" not in spec or not isinstance(spec.get("pipelineInfo"), dict):
        raise PipelineNotFoundError(
            f"{path} is not a compiled KFP pipeline (no pipelineInfo/root); compile it "
            "with `kubesage compile PIPELINE --target kfp --output FILE` or kfp.compiler"
        )
    if not spec["pipelineInfo"].get("name"):
        raise PipelineNotFoundError(f"{path} has no pipelineInfo.name; recompile it with kfp.compiler")
    return PipelineSource(
        name=str(spec["pipelineInfo"]["name"]),
        ir_path=path.resolve(),
        spec=spec,
        origin=origin,
        platform_spec=platform,
    )


def _import_pipeline_function(ref: str, builtins: Mapping[str, str]) -> Any:
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        module = _import_from_cwd(module_name, ref)
        function = getattr(module, attr, None)
        if function is None:
            raise PipelineNotFoundError(f"module {module_name} has no attribute {attr!r}")
        return _require_pipeline(function, ref)
    known = sorted(builtins)
    ref = builtin_name(ref, known)
    if ref not in known:
        raise PipelineNotFoundError(
            f"unknown pipeline {ref!r}; built-in pipelines: {', '.join(known) or 'none'}. "
            "Pass a module:function reference or a compiled IR YAML file for your own."
        )
    module = _import(builtins[ref], ref)
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
