"""The SageMaker fan-out job's answer for a loop body with dsl.If/Else, dsl.OneOf, a nested loop and
a sub-pipeline equals kfp.local's, value for value (no Docker: the job's shim runs in-process)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kfp import compiler

from kubesage.runners.sagemaker import shim
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.integrity import spec_bytes, spec_digest
from tests.unit.runners.sagemaker import fanout_dag_pipelines as pipelines
from tests.unit.runners.sagemaker.ir_file import compile_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _kfp_local(name: str, tmp_path: Path, items: list[int]) -> Any:
    """The pipeline's output on KFP's own local runner, in a separate process (kfp.local is global state)."""
    script = (
        "import json, sys\n"
        "from kfp import local\n"
        "from tests.unit.runners.sagemaker import fanout_dag_pipelines as m\n"
        f"local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=r'{tmp_path / 'kfp-root'}',"
        f" workspace_root=r'{tmp_path / 'kfp-workspace'}')\n"
        f"print(json.dumps(m.{name}(items=json.loads(sys.argv[1])).output))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(items)],
        capture_output=True, text=True, timeout=600, check=True, cwd=REPO,
    )  # fmt: skip
    return json.loads(json.loads(done.stdout.strip().splitlines()[-1]))


def _shim(task: dict[str, Any], spec_dir: Path, workdir: Path, *extra: str) -> dict[str, Any]:
    spec_dir.mkdir(parents=True, exist_ok=True)
    body = spec_bytes(task)
    (spec_dir / f"{task['task']}.json").write_bytes(body)
    argv = ["--task", task["task"], "--spec-dir", str(spec_dir), "--spec-sha256", spec_digest(body)]
    assert shim.main([*argv, "--workdir", str(workdir), *extra]) == 0
    outputs: dict[str, Any] = json.loads(Path(task["outputs_file"]).read_text())
    return outputs


def _sagemaker_job(name: str, tmp_path: Path, items: list[int]) -> Any:
    """The fan-out step, then the consumer of its dsl.Collected lists, as their jobs run them."""
    ir = tmp_path / "fan.yaml"
    compiler.Compiler().compile(getattr(pipelines, name), str(ir))
    root = str(tmp_path / "opt-ml")
    specs = {
        task["task"]: task
        for task in (
            json.loads(body.decode().replace("/opt/ml", root))
            for body in compile_file(ir, SageMakerConfig()).assets.values()
        )
    }
    spec_dir = tmp_path / "opt-ml" / "processing" / "input" / "kubesage-spec"
    fan = _shim(specs["for-loop-1"], spec_dir, tmp_path / "w1", "--param", "kubesage-items", json.dumps(items))
    p = fan["parameters"]
    summary = _shim(specs["summary"], spec_dir, tmp_path / "w2", "--param", "doubled", p["double__Output"],
                    "--param", "sums", p["for_loop_6__pipelinechannel__add_Output"],
                    "--param", "tags", p["tag_3__Output"])  # fmt: skip
    return json.loads(summary["parameters"]["Output"])


def test_the_fan_out_job_gives_what_kfp_local_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBESAGE_STEP_USER", "root")
    items = [3, 1, 2]
    expected = _kfp_local("fan_out_dag_inner_item", tmp_path, items)
    assert expected == {
        "doubled": [6, 2, 4],
        "sums": [[20, 40], [20, 40], [20, 40]],
        "tags": ["big30", "small10", "big20"],
    }
    assert _sagemaker_job("fan_out_dag_inner_item", tmp_path, items) == expected
