"""Is this a PipelineSpec at all? Checked before any translation, so a malformed file gets one line.

The one place a KFP IR file is parsed (`load_ir_documents`) and checked against KFP's schema
(`check_against_schema`): the document is parsed into `kfp.pipeline_spec`'s protobuf
`PipelineSpec` (and the optional second document into `PlatformSpec`), which rejects unknown
fields and wrong types with the field's path. On top of that (`check_spec`), the references
protobuf cannot check: every task names a defined component, every component an executor.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kubesage.errors import PipelineNotFoundError
from kubesage.ir.graph import dags

SCHEMA_VERSIONS = ("2.0.0", "2.1.0")
# libyaml's safe loader when PyYAML was built with it (its wheels are): the same documents, parsed about
# 8 times faster than by the pure-Python loader (4 ms against 34 ms for the churn IR, read twice a run).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RECOMPILE = "recompile the pipeline with kfp.compiler (kfp 2.x)"


def load_ir_documents(path: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A KFP IR YAML file's PipelineSpec and, if kfp-kubernetes wrote one, its PlatformSpec."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineNotFoundError(f"{path} is not a text file (not UTF-8), so not a compiled KFP pipeline") from exc
    return split_documents(text, str(path))


def split_documents(text: str, where: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The PipelineSpec and the optional PlatformSpec (kfp-kubernetes writes it after the PipelineSpec)."""
    try:
        docs = [d for d in yaml.load_all(text, Loader=_SAFE_LOADER) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise PipelineNotFoundError(f"{where} is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from exc
    if not docs:
        raise PipelineNotFoundError(
            f"{where} is empty; compile it with `kubesage compile PIPELINE --target kfp --output FILE` or kfp.compiler"
        )
    if not all(isinstance(d, dict) for d in docs):
        raise PipelineNotFoundError(
            f"{where} is not a compiled KFP pipeline (a document is not a mapping); {_RECOMPILE}"
        )
    pipeline = [d for d in docs if "platforms" not in d]
    platform = [d for d in docs if "platforms" in d]
    if len(pipeline) != 1 or len(platform) > 1:
        raise PipelineNotFoundError(
            f"{where} holds {len(docs)} YAML documents; a compiled KFP pipeline has one PipelineSpec and at most "
            f"one PlatformSpec; {_RECOMPILE}"
        )
    return pipeline[0], platform[0] if platform else None


def _proto_check(document: Mapping[str, Any], message: Any, what: str) -> None:
    from google.protobuf import json_format

    try:
        json_format.ParseDict(document, message)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        # protobuf prefixes every nesting level with "Failed to parse X field:"; the last clause names the problem
        detail = detail.rsplit("Failed to parse ", 1)[-1] if "Failed to parse" in detail else detail
        raise PipelineNotFoundError(f"{what} does not match KFP's schema: {detail[:300]}; {_RECOMPILE}") from exc


def check_against_schema(spec: Mapping[str, Any], platform: Mapping[str, Any] | None = None) -> None:
    """KFP's own schema check (its protobuf messages): unknown fields and wrong types, with the field's path."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    _proto_check(spec, pipeline_spec_pb2.PipelineSpec(), "the pipeline IR")
    if platform is not None:
        _proto_check(platform, pipeline_spec_pb2.PlatformSpec(), "the platform spec (second YAML document)")


def check_spec(spec: Mapping[str, Any], platform: Mapping[str, Any] | None = None) -> None:
    """Raise PipelineNotFoundError (one line: what is wrong, what to do) for a malformed IR."""
    if not isinstance(spec, Mapping):
        raise PipelineNotFoundError(f"the pipeline IR is a {type(spec).__name__}, not a mapping; {_RECOMPILE}")
    missing = [k for k in ("pipelineInfo", "root", "deploymentSpec", "schemaVersion") if k not in spec]
    if missing:
        raise PipelineNotFoundError(
            f"the pipeline IR has no {', '.join(missing)}: not a compiled KFP v2 pipeline; {_RECOMPILE}"
        )
    version = str(spec["schemaVersion"])
    if version not in SCHEMA_VERSIONS:
        raise PipelineNotFoundError(
            f"the pipeline IR has schemaVersion {version}; kubesage reads {' and '.join(SCHEMA_VERSIONS)}; {_RECOMPILE}"
        )
    check_against_schema(spec, platform)
    name = spec["pipelineInfo"].get("name") if isinstance(spec["pipelineInfo"], Mapping) else None
    if not name:
        raise PipelineNotFoundError(f"the pipeline IR has no pipelineInfo.name; {_RECOMPILE}")
    if "dag" not in spec["root"]:
        raise PipelineNotFoundError(f"the pipeline IR's root has no dag; {_RECOMPILE}")
    components = spec.get("components", {})
    executors = spec["deploymentSpec"].get("executors", {})
    for owner, dag in dags(spec):
        for task_name, task in dag.get("tasks", {}).items():
            ref = task.get("componentRef", {}).get("name")
            if ref not in components:
                raise PipelineNotFoundError(
                    f"task '{task_name}' (in {owner}) names component {ref!r}, which the pipeline IR does not "
                    f"define; {_RECOMPILE}"
                )
    for comp_name, component in components.items():
        if "dag" in component:
            continue
        label = component.get("executorLabel")
        if label not in executors:
            raise PipelineNotFoundError(
                f"component '{comp_name}' names executor {label!r}, which deploymentSpec does not define; {_RECOMPILE}"
            )
