"""https:// imports fetched by the consuming step (`fetch.py`), against a server on 127.0.0.1.

The server speaks plain HTTP (no certificate to set up): `fetch` itself takes any URL, the compiler
is what admits only https:// literals, and redirects are followed only to https://.
"""

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesage.errors import DataError
from kubesage.runners.sagemaker.fetch import fetch, fetch_inputs, fetched_name

BODY = b"a\nb\nc\n"
DIGEST = hashlib.sha256(BODY).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere.csv")
            self.end_headers()
            return
        if self.path.startswith("/missing"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join()


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.com/data/rows.csv?v=2", "rows.csv"),
        ("https://example.com/", "artifact"),
        ("https://example.com/a/b/model.tar.gz#x", "model.tar.gz"),
    ],
)
def test_fetched_file_is_the_urls_last_segment(url: str, name: str) -> None:
    assert fetched_name(url) == name


def test_fetch_writes_the_body_and_checks_its_sha256(server: str, tmp_path: Path) -> None:
    target = tmp_path / "in" / "rows.csv"
    assert fetch(f"{server}/rows.csv", target, DIGEST) == DIGEST
    assert target.read_bytes() == BODY


def test_a_different_sha256_fails_and_leaves_no_file(server: str, tmp_path: Path) -> None:
    target = tmp_path / "rows.csv"
    with pytest.raises(DataError, match=f"has sha256 {DIGEST}, not {'0' * 64} as the importer's metadata says"):
        fetch(f"{server}/rows.csv", target, "0" * 64)
    assert not target.exists()


def test_an_http_error_names_the_url(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cannot fetch .*/missing.csv: HTTP Error 404.*check the URL"):
        fetch(f"{server}/missing.csv", tmp_path / "x", None)
    assert not (tmp_path / "x").exists()


def test_a_redirect_to_plain_http_is_not_followed(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"redirects to http://127.0.0.1:1/elsewhere.csv, which is not https://"):
        fetch(f"{server}/redirect", tmp_path / "x", None)


def test_fetch_inputs_fills_each_fetched_channel_folder(server: str, tmp_path: Path) -> None:
    spec = {
        "input_artifacts": {
            "data": {"dir": str(tmp_path / "data"), "file": "rows.csv", "fetch": {"url": f"{server}/rows.csv",
                                                                                   "sha256": DIGEST}},
            "other": {"dir": str(tmp_path / "other"), "file": "x"},
        }
    }  # fmt: skip
    lines = fetch_inputs(spec)
    assert lines == [f"input 'data': fetched {server}/rows.csv (sha256 {DIGEST}, checked)"]
    assert (tmp_path / "data" / "rows.csv").read_bytes() == BODY
    assert not (tmp_path / "other").exists()


def test_a_signed_urls_signature_never_reaches_the_log_or_an_error(server: str, tmp_path: Path) -> None:
    signed = "X-Amz-Credential=AKIAEXAMPLE%2F20261205&X-Amz-Signature=0123abcdsecret&X-Amz-Expires=60"
    spec = {"input_artifacts": {"data": {"dir": str(tmp_path), "file": "rows.csv",
                                         "fetch": {"url": f"{server}/rows.csv?{signed}"}}}}  # fmt: skip
    (line,) = fetch_inputs(spec)
    assert (tmp_path / "rows.csv").read_bytes() == BODY
    assert "0123abcdsecret" not in line and "AKIAEXAMPLE" not in line
    assert "X-Amz-Signature=***" in line and "X-Amz-Expires=60" in line
    with pytest.raises(DataError) as failed:
        fetch(f"{server}/missing.csv?{signed}", tmp_path / "x", None)
    assert "0123abcdsecret" not in str(failed.value) and "/missing.csv?" in str(failed.value)


def test_the_shim_fetches_before_the_task_and_refuses_a_changed_file(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through `shim.main`, as a compiled step runs: the task counts the fetched rows, or never starts."""
    import json
    import os
    import sys

    from kfp import compiler

    from kubesage.runners.sagemaker import shim
    from kubesage.runners.sagemaker.config import SageMakerConfig
    from kubesage.runners.sagemaker.integrity import spec_bytes, spec_digest
    from tests.corpus.sagemaker.importers import import_https_checked
    from tests.unit.runners.sagemaker.ir_file import compile_file

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBESAGE_STEP_USER", "root")
    ir = tmp_path / "p.yaml"
    compiler.Compiler().compile(import_https_checked, str(ir))
    specs = [json.loads(b) for b in compile_file(ir, SageMakerConfig()).assets.values()]
    (task,) = [s for s in specs if s["task"] == "count-lines"]
    task = json.loads(json.dumps(task).replace("/opt/ml", str(tmp_path / "ml")))
    fetched = task["input_artifacts"]["data"]["fetch"]
    fetched["url"] = f"{server}/data/rows.csv"  # the test server speaks http; the compiler admits https only

    def run(sha256: str) -> int:
        fetched["sha256"] = sha256
        body = spec_bytes(task)
        (tmp_path / "spec").mkdir(exist_ok=True)
        (tmp_path / "spec" / "count-lines.json").write_bytes(body)
        argv = ["--task", "count-lines", "--spec-dir", str(tmp_path / "spec"), "--spec-sha256", spec_digest(body)]
        return shim.main([*argv, "--workdir", str(tmp_path / "w")])

    assert run("1" * 64) == 2
    assert f"has sha256 {DIGEST}, not {'1' * 64}" in capsys.readouterr().err
    assert not (tmp_path / "ml" / "processing" / "output" / "kubesage-outputs" / "outputs.json").exists()
    assert run(DIGEST) == 0
    outputs = json.loads((tmp_path / "ml" / "processing" / "output" / "kubesage-outputs" / "outputs.json").read_text())
    assert outputs["parameters"] == {"Output": 3}
