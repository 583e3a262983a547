# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Customer churn with kubesage, from a notebook
#
# Train the churn model twice on the local runner (two values of `max_depth`), compare the two runs
# from MLflow, then serve the registered model and send it one raw customer record. Everything runs
# on this machine: KFP's local runner, the MLflow store named by `MLFLOW_TRACKING_URI` (the embedded
# SQLite store `mlflow.db` by default) and `kubesage serve`.
#
# CI executes this notebook (`tests/integration/test_notebook.py`), so it never rots.

# %%
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import Request, urlopen

import kubesage
from kubesage.churn.synthetic import write_churn_csv
from kubesage.util.ports import free_port

data = write_churn_csv(rows=2000, seed=7, output=Path("build/notebook/churn.csv"))
print(f"data: {data}")

# %% [markdown]
# ## Train twice
#
# `kubesage.run` is `kubesage run`: the parameters are checked against the pipeline's typed inputs
# before anything runs, and the result is the same object `--output json` prints. The second run
# reuses the first one's preprocess step (the cache), since only `max_depth` changed.

# %%
shallow = kubesage.run("customer_churn", params={"input_data": data, "max_depth": 3})
deep = kubesage.run("customer_churn", params={"input_data": data, "max_depth": 6})
for result in (shallow, deep):
    print(
        f"{result.status}: run {result.mlflow_run_id[:8]}, roc_auc {result.metrics['roc_auc']:.3f}, "
        f"accuracy {result.metrics['accuracy']:.3f}, steps {[s.name for s in result.steps]}"
    )
versions = f"{shallow.registered_model_version}, {deep.registered_model_version}"
print(f"registered versions of {deep.registered_model_name}: {versions}")

# %% [markdown]
# ## Compare the two runs
#
# `kubesage.runs` returns a pandas DataFrame shaped like `mlflow.search_runs`.

# %%
compared = kubesage.runs(run_ids=[shallow.mlflow_run_id, deep.mlflow_run_id])
compared[["run_id", "runner", "status", "params.max_depth", "metrics.roc_auc", "metrics.accuracy", "registered_model"]]

# %% [markdown]
# ## Serve the model and send one request
#
# `kubesage serve` loads the registered version, converts it to daal4py once and answers SageMaker's
# `/ping` and `/invocations`. A raw record, as it comes from the CSV, is turned into features by the
# model's own feature schema.

# %%
model = f"models:/{deep.registered_model_name}/{deep.registered_model_version}"
port = free_port()
command = [sys.executable, "-m", "kubesage.cli", "serve", "--model", model, "--port", str(port), "--workers", "1"]
server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with data.open(newline="") as handle:
    record = {k: v for k, v in next(csv.DictReader(handle)).items() if k != "Churn?"}
try:
    for _ in range(600):  # up to 120 s for the model to load
        try:
            with urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as ping:
                if ping.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    request = Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps({"records": [record]}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
finally:
    server.terminate()
    server.wait(timeout=30)
print(f"served {model}: {json.dumps(answer)}")
