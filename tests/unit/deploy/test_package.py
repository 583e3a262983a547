"""The Lambda zip: deterministic, only the handler's modules and the bundle, and enough to run the handler."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from kubesage.churn.features import FeatureSchema
from kubesage.deploy.package import MODULES, build_zip
from kubesage.lambda_runtime.bundle import BUNDLE_FILENAME, ModelBundle

RUN_FROM_ZIP = """
import json, sys
sys.path.insert(0, sys.argv[1])
import kubesage.lambda_runtime.handler as h
assert h.__file__.startswith(sys.argv[1]), h.__file__
event = {"httpMethod": "POST", "body": '{"State": "PA"}', "requestContext": {"requestId": "r"}}
answer = h.handler(event, None)
heavy = sorted({"numpy", "pandas", "pydantic", "xgboost", "mlflow"} & set(sys.modules))
# Every kubesage module the handler loaded must come from the zip: the editable install would
# otherwise supply one the zip lacks, which then fails only in the real function.
outside = sorted(
    name for name, module in sys.modules.items()
    if name.startswith("kubesage") and not str(getattr(module, "__file__", "") or sys.argv[1]).startswith(sys.argv[1])
)
print(json.dumps({"status": answer["statusCode"], "body": json.loads(answer["body"]), "heavy": heavy,
                  "outside": outside}))
"""


def test_the_zip_is_deterministic_small_and_runs_the_handler(prepared: dict[str, Path], tmp_path: Path) -> None:
    bundle = ModelBundle(FeatureSchema.load(prepared["schema"]), 0.5, "models:/customer-churn/1")
    first, second = build_zip(bundle, tmp_path / "a"), build_zip(bundle, tmp_path / "b")
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.s3_key == f"kubesage/lambda/api-{first.sha256[:20]}.zip"
    with zipfile.ZipFile(first.path) as archive:
        assert sorted(archive.namelist()) == sorted([*MODULES, BUNDLE_FILENAME])
        archive.extractall(tmp_path / "task")
    assert first.path.stat().st_size < 64_000

    env = {**os.environ, "LAMBDA_TASK_ROOT": str(tmp_path / "task"), "ENDPOINT_NAME": "churn",
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", RUN_FROM_ZIP, str(tmp_path / "task")],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert result["heavy"] == []
    assert result["outside"] == []
    assert result["status"] == 400
    assert len(result["body"]["errors"]) == 18  # every required field but State is missing
