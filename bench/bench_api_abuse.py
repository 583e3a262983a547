"""CPU and answer size of hostile bodies through the Lambda handler (issue 18 item 5).

Goal: a 6 MB body of unknown keys is answered 4xx in under 1 s of CPU and under 64 KB; a body at
the limit (1 MiB) of unknown keys, 1,000 records each of 39 fields, and a 10,000-deep nested body
likewise. CPU is `time.process_time` (this process only, so other load on the machine does not
count); the tests assert the statuses and sizes, this prints the costs.

    .venv/bin/python bench/bench_api_abuse.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from kubesage.churn.features import FeatureSchema
from kubesage.lambda_runtime.bundle import ModelBundle
from kubesage.lambda_runtime.endpoint import Endpoint, EndpointSettings
from kubesage.lambda_runtime.handler import PredictionApi
from kubesage.lambda_runtime.records import MAX_BODY_BYTES

CPU_GOAL_SECONDS = 1.0
ANSWER_GOAL_BYTES = 64 * 1024
RECORD = {
    "State": "KS", "Account Length": 128, "Area Code": 415, "Phone": "382-4657", "Int'l Plan": "no",
    "VMail Plan": "yes", "VMail Message": 25, "Day Mins": 265.1, "Day Calls": 110, "Day Charge": 45.07,
    "Eve Mins": 197.4, "Eve Calls": 99, "Eve Charge": 16.78, "Night Mins": 244.7, "Night Calls": 91,
    "Night Charge": 11.01, "Intl Mins": 10.0, "Intl Calls": 3, "Intl Charge": 2.7, "CustServ Calls": 1,
}  # fmt: skip


def unknown_keys(size: int) -> str:
    return "{" + ", ".join(f'"unknown field {i:07d}": 1' for i in range(size // 28)) + "}"


def bodies() -> dict[str, str]:
    wide = {**RECORD, **{f"extra {i}": 1 for i in range(19)}}
    return {
        "6 MB of unknown keys": unknown_keys(6_000_000),
        "1 MiB of unknown keys (at the limit)": unknown_keys(MAX_BODY_BYTES - 100),
        "1,000 records of 39 fields": json.dumps([wide] * 1000),
        "10,000-deep nesting": "[" * 10_000 + "]" * 10_000,
    }


def measure(handle: Callable[[Mapping[str, object]], dict[str, object]], body: str) -> tuple[int, int, float]:
    event = {"httpMethod": "POST", "body": body, "requestContext": {"requestId": "bench"}}
    start = time.process_time()
    response = handle(event)
    cpu = time.process_time() - start
    return int(str(response["statusCode"])), len(str(response["body"])), cpu


def main() -> None:
    schema = FeatureSchema(categories={}, numeric={})
    # Nothing reaches the endpoint: every body here is refused before it.
    endpoint = Endpoint(EndpointSettings(name="bench", url="http://127.0.0.1:9", region="us-east-1", unsigned=True))
    api = PredictionApi(ModelBundle(schema, 0.5, "bench"), endpoint)
    print(f"{'body':40} {'bytes':>10} {'status':>6} {'answer B':>9} {'CPU s':>7}")
    for name, body in bodies().items():
        status, size, cpu = measure(api.handle, body)
        ok = 400 <= status < 500 and size < ANSWER_GOAL_BYTES and cpu < CPU_GOAL_SECONDS
        print(f"{name:40} {len(body):>10,} {status:>6} {size:>9,} {cpu:>7.3f} {'ok' if ok else 'OVER GOAL'}")


if __name__ == "__main__":
    main()
