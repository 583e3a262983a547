"""The Lambda zip: deterministic, built from kubesage.lambda_runtime's import closure, and it runs alone.

The zip is unpacked and its handler answers a real event in a subprocess in which the installed
kubesage is hidden (every kubesage module must come from the zip) and numpy, pandas and the other
heavy libraries cannot be imported: a module missing from the zip, or a heavy import on the
handler's path, fails the test.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesage.churn.features import LABEL_COLUMN, FeatureSchema
from kubesage.deploy.package import build_zip, imported_modules, runtime_modules
from kubesage.lambda_runtime.bundle import BUNDLE_FILENAME, ModelBundle
from tests.unit.lambda_runtime.endpoint_stand_in import endpoint_stand_in

RUNTIME_FILES = [
    "kubesage/__init__.py",
    "kubesage/churn/__init__.py",
    "kubesage/churn/schema.py",
    "kubesage/errors.py",
    "kubesage/http_errors.py",
    "kubesage/lambda_runtime/__init__.py",
    "kubesage/lambda_runtime/bundle.py",
    "kubesage/lambda_runtime/endpoint.py",
    "kubesage/lambda_runtime/errors.py",
    "kubesage/lambda_runtime/handler.py",
    "kubesage/lambda_runtime/records.py",
    "kubesage/util/__init__.py",
    "kubesage/util/aws.py",
]
HEAVY = ("numpy", "pandas", "pydantic", "mlflow", "sagemaker", "sklearn", "xgboost", "daal4py", "kfp")

# Set up before the first import: kubesage only from the unpacked zip (argv[1]), heavy libraries refused.
RUN_FROM_ZIP = """
import importlib.machinery, json, sys
task, event = sys.argv[1], json.loads(sys.argv[2])
HEAVY = set(sys.argv[3].split(","))

class ZipOnly:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY:
            raise ModuleNotFoundError(f"{name} is not available in the Lambda runtime", name=name)
        if top != "kubesage":
            return None
        # Answer every kubesage name here: the editable install's finder would supply what the zip lacks.
        parent = name.rpartition(".")[0]
        spec = importlib.machinery.PathFinder.find_spec(name, [task] if not parent else sys.modules[parent].__path__)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return spec

for name in [m for m in sys.modules if m.partition(".")[0] in HEAVY | {"kubesage"}]:
    del sys.modules[name]
sys.meta_path.insert(0, ZipOnly())
import kubesage.lambda_runtime.handler as h
answer = h.handler(event, None)
loaded = sorted(
    name for name, module in sys.modules.items()
    if name.partition(".")[0] == "kubesage" and not (getattr(module, "__file__", None) or "").startswith(task)
)
print(json.dumps({"status": answer["statusCode"], "body": json.loads(answer["body"]),
                  "outside": loaded, "heavy": sorted(HEAVY & {m.partition(".")[0] for m in sys.modules})}))
"""


@pytest.fixture
def endpoint() -> Iterator[Any]:
    with endpoint_stand_in(score=0.75) as server:
        yield server


def test_the_zip_holds_the_runtime_import_closure() -> None:
    assert runtime_modules() == RUNTIME_FILES


def test_imports_are_read_from_the_source_absolute_relative_and_nested(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("import a.b\nfrom . import c\nfrom ..d import e\ndef f():\n    from g import h\n")
    assert imported_modules(source, "pkg.sub.mod") == {"a.b", "pkg.sub", "pkg.sub.c", "pkg.d", "pkg.d.e", "g", "g.h"}


def test_the_closure_follows_new_imports(tmp_path: Path) -> None:
    package = tmp_path / "top" / "runtime"
    package.mkdir(parents=True)
    (tmp_path / "top" / "__init__.py").write_text("")
    (tmp_path / "top" / "util.py").write_text("import json\nfrom top.deep import x\n")
    (tmp_path / "top" / "deep").mkdir()
    (tmp_path / "top" / "deep" / "__init__.py").write_text("")
    (tmp_path / "top" / "deep" / "x.py").write_text("")
    (tmp_path / "top" / "unused.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text("from top import util\n")
    assert runtime_modules(tmp_path, "top.runtime") == [
        "top/__init__.py",
        "top/deep/__init__.py",
        "top/deep/x.py",
        "top/runtime/__init__.py",
        "top/runtime/main.py",
        "top/util.py",
    ]


def test_the_zip_is_deterministic_small_and_runs_the_handler_without_numpy_or_pandas(
    prepared: dict[str, Path], churn_csv: Path, endpoint: Any, tmp_path: Path
) -> None:
    bundle = ModelBundle(FeatureSchema.load(prepared["schema"]), 0.5, "models:/customer-churn/1")
    first, second = build_zip(bundle, tmp_path / "a"), build_zip(bundle, tmp_path / "b")
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.s3_key == f"kubesage/lambda/api-{first.sha256[:20]}.zip"
    with zipfile.ZipFile(first.path) as archive:
        assert sorted(archive.namelist()) == sorted([*RUNTIME_FILES, BUNDLE_FILENAME])
        archive.extractall(tmp_path / "task")
    assert first.path.stat().st_size < 64_000

    with churn_csv.open(newline="") as source:
        record = {k: v for k, v in next(csv.DictReader(source)).items() if k != LABEL_COLUMN}
    event = {"httpMethod": "POST", "body": json.dumps(record), "requestContext": {"requestId": "r"}}
    env = {
        **os.environ,
        "LAMBDA_TASK_ROOT": str(tmp_path / "task"),
        "ENDPOINT_NAME": "churn",
        "KUBESAGE_SAGEMAKER_RUNTIME_URL": f"http://127.0.0.1:{endpoint.server_address[1]}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    env.pop("KUBESAGE_MODEL_BUNDLE", None)
    done = subprocess.run(
        [sys.executable, "-c", RUN_FROM_ZIP, str(tmp_path / "task"), json.dumps(event), ",".join(HEAVY)],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["outside"] == [] and result["heavy"] == []
    assert result["status"] == 200, result["body"]
    assert result["body"]["predictions"] == [{"churn_probability": 0.75, "churn": True}]
    ((path, content_type, rows),) = endpoint.seen
    assert (path, content_type) == ("/endpoints/churn/invocations", "text/csv")
    assert len(rows.split(",")) == bundle.schema.n_features


def test_the_handler_fails_in_the_zip_when_a_module_is_missing(prepared: dict[str, Path], tmp_path: Path) -> None:
    """The check above has teeth: without kubesage/http_errors.py the handler cannot import."""
    bundle = ModelBundle(FeatureSchema.load(prepared["schema"]), 0.5, "models:/customer-churn/1")
    with zipfile.ZipFile(build_zip(bundle, tmp_path / "a").path) as archive:
        archive.extractall(tmp_path / "task")
    (tmp_path / "task" / "kubesage" / "http_errors.py").unlink()
    done = subprocess.run(
        [sys.executable, "-c", RUN_FROM_ZIP, str(tmp_path / "task"), "{}", ",".join(HEAVY)],
        env={**os.environ, "LAMBDA_TASK_ROOT": str(tmp_path / "task")}, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0
    assert "No module named 'kubesage.http_errors'" in done.stderr
