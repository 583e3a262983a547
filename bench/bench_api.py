"""The Lambda handler's costs, side by side with what any handler calling the endpoint pays anyway.

1. Cold start (fresh interpreters, best of N): `import boto3` alone; boto3 plus the sagemaker-runtime
   client (the least any function that calls the endpoint does at init); the kubesage handler's
   import and init (its modules, the model bundle, the same client). Goal: the handler adds at most
   100 ms to importing boto3 alone.
2. Warm request (one process, the model served by `kubesage serve` on loopback, 1 worker):
   `invoke_endpoint` made directly with the features already encoded, versus a whole proxy event
   through `PredictionApi.handle` (parse, validate, encode, invoke, map). Goal: at most 1 ms more.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from bench_serving import CHURN, start, stop, train_model, wait_for

from kubesage.churn.features import LABEL_COLUMN, FeatureSchema, encode_record
from kubesage.lambda_runtime.bundle import ModelBundle
from kubesage.lambda_runtime.handler import PredictionApi
from kubesage.local_api.front import in_process_api
from kubesage.util.ports import free_port

COLD_RUNS = 15
WARM_REQUESTS = 2000
ROUNDS = 5
HEAVY = {"numpy", "pandas", "pydantic"}


def cold(codes: dict[str, str], env: dict[str, str]) -> dict[str, float]:
    """Best wall time of each `python -c code` minus the best empty interpreter, in ms.

    The commands take turns in every round, so a busy moment on the machine hits them alike.
    """
    best = {label: float("inf") for label in [*codes, "empty"]}
    for _ in range(COLD_RUNS):
        for label, code in [*codes.items(), ("empty", "pass")]:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            best[label] = min(best[label], (time.perf_counter() - started) * 1000)
    return {label: best[label] - best["empty"] for label in codes}


def own_import_ms(env: dict[str, str]) -> tuple[float, float]:
    """`python -X importtime`: boto3's cumulative import, then the handler's own on top (best of COLD_RUNS).

    Less noisy than wall-clock differences on a busy machine: it times only the modules' own loading.
    """
    best_boto3 = best_handler = float("inf")
    for _ in range(COLD_RUNS):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import boto3; import kubesage.lambda_runtime.handler"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        cumulative = {}
        for line in done.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[1].strip().isdigit():
                cumulative[parts[2].rstrip()] = int(parts[1]) / 1000  # top level: no leading spaces
        best_boto3 = min(best_boto3, cumulative[" boto3"])
        best_handler = min(best_handler, cumulative[" kubesage.lambda_runtime.handler"])
    return best_boto3, best_handler


def warm(api: PredictionApi, record: dict[str, str]) -> tuple[float, float]:
    """Median ms per request over ROUNDS rounds: direct invoke_endpoint, and through the handler."""
    client, name = api.endpoint.client, api.endpoint.settings.name
    body = ",".join(map(repr, encode_record(record, api.bundle.schema))).encode()
    event = {"httpMethod": "POST", "body": json.dumps(record), "requestContext": {"requestId": "bench"}}

    def direct() -> None:
        response = client.invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Accept="application/json", Body=body
        )
        json.loads(response["Body"].read())

    def handler() -> None:
        assert api.handle(event)["statusCode"] == 200

    for call in (direct, handler):
        for _ in range(200):
            call()
    rounds: dict[str, list[float]] = {"direct": [], "handler": []}
    for _ in range(ROUNDS):  # interleaved, so machine noise hits both alike
        for label, call in (("direct", direct), ("handler", handler)):
            started = time.perf_counter()
            for _ in range(WARM_REQUESTS // ROUNDS):
                call()
            rounds[label].append((time.perf_counter() - started) * 1000 / (WARM_REQUESTS // ROUNDS))
    return statistics.median(rounds["direct"]), statistics.median(rounds["handler"])


def main() -> None:
    record = pd.read_csv(CHURN, dtype=str, nrows=1).drop(columns=[LABEL_COLUMN]).iloc[0].to_dict()
    with tempfile.TemporaryDirectory(prefix="kubesage-bench-api-") as tmp:
        work = Path(tmp)
        model_dir = work / "model"
        train_model(model_dir)
        bundle = ModelBundle(FeatureSchema.load(model_dir), 0.5, str(model_dir))
        bundle_file = bundle.write(work / "kubesage_model.json")
        env = {
            **os.environ, "KUBESAGE_MODEL_BUNDLE": str(bundle_file), "ENDPOINT_NAME": "bench",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
        }  # fmt: skip
        times = cold(
            {
                "boto3": "import boto3",
                "client": "import boto3; boto3.client('sagemaker-runtime')",
                "import": "import kubesage.lambda_runtime.handler",
                "init": "from kubesage.lambda_runtime.handler import PredictionApi; PredictionApi.from_environment()",
            },
            env,
        )
        boto3_alone, boto3_client, handler_import, handler_init = (
            times["boto3"], times["client"], times["import"], times["init"]
        )  # fmt: skip
        importtime_boto3, importtime_handler = own_import_ms(env)
        heavy = subprocess.run(
            [sys.executable, "-c",
             f"import sys, kubesage.lambda_runtime.handler; print(sorted({HEAVY!r} & set(sys.modules)))"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

        port = free_port()
        log = work / "serve.log"
        server = start([sys.executable, "-m", "kubesage.serving", "--model", str(model_dir), "--host", "127.0.0.1",
                        "--port", str(port), "--workers", "1"], dict(os.environ), log)  # fmt: skip
        try:
            wait_for(f"http://127.0.0.1:{port}/ping", server, log)
            api = in_process_api(bundle, f"http://127.0.0.1:{port}", "bench")
            direct_ms, handler_ms = warm(api, record)
        finally:
            stop(server)

    load = os.getloadavg()[0]
    print(f"cold start (fresh interpreters, best of {COLD_RUNS}, load average {load:.1f})")
    print(f"  heavy modules the handler loads: {heavy}")
    rows = [
        ("import boto3 alone", f"{boto3_alone:.0f} ms", ""),
        ("import boto3 + sagemaker-runtime client", f"{boto3_client:.0f} ms", ""),
        ("import kubesage.lambda_runtime.handler", f"{handler_import:.0f} ms",
         f"+{handler_import - boto3_alone:.0f} vs boto3"),
        ("handler import + init (bundle, client)", f"{handler_init:.0f} ms", f"+{handler_init - boto3_client:.0f}"
         " vs boto3 + client (goal +100)"),
        ("-X importtime: boto3 | handler modules on top", f"{importtime_boto3:.0f} ms", f"{importtime_handler:.0f} ms"),
    ]  # fmt: skip
    for label, value, note in rows:
        print(f"  {label:<48} {value:>9}   {note}")
    print(f"warm request, 1 record: median of {ROUNDS} rounds x {WARM_REQUESTS // ROUNDS}, kubesage serve (1 worker)")
    print(f"  {'invoke_endpoint directly (features pre-encoded)':<48} {direct_ms:7.3f} ms")
    extra = handler_ms - direct_ms
    print(f"  {'proxy event through the handler':<48} {handler_ms:7.3f} ms   +{extra:.3f} ms (goal +1)")


if __name__ == "__main__":
    main()
