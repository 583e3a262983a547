"""Hostile load test of the model server: bounded, loopback only.

    .venv/bin/python bench/load_serving.py [--duration 45] [--workers 2]

Trains the churn model on ../shared/data/churn.txt, serves it with `python -m kubesage.serving`
on 127.0.0.1, then for `--duration` seconds runs, all at once:
- valid traffic: 8 threads posting single records and 100-row CSV batches;
- many connections: 300 idle keep-alive connections opened and held;
- slow clients: 20 connections trickling their headers one byte every 0.5 s;
- hostile bodies, in a loop: 6 MB of `[{},{},...]`, a JSON number of 5,000 digits, a 7 MB body
  sent whole before reading (as urllib does), a ~5 MB body of valid raw records;
- a prober timing GET /ping every 100 ms on a fresh connection;
- a sampler reading the resident memory of the server's processes every 0.5 s.
Prints the status counts (5xx must be zero), /ping p50/p99/max (must stay under 2 s) and the
server's peak and final memory. Exits non-zero if a 5xx was seen or /ping took 2 s or more.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from churn_model import CHURN, train_churn_model  # noqa: E402

from kubesage.churn.features import FeatureSchema, transform_columns  # noqa: E402
from kubesage.util.ports import free_port  # noqa: E402


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.pings: list[float] = []
        self.rss: list[int] = []

    def add(self, kind: str, status: int | str) -> None:
        with self.lock:
            self.statuses[f"{kind} {status}"] += 1


def process_tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and its children (the uvicorn workers), from /proc."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=45.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kubesage-load-"))
    model_dir = train_churn_model(work)
    churn = pd.read_csv(CHURN)
    features = transform_columns(churn, FeatureSchema.load(model_dir))
    single = ",".join(repr(float(v)) for v in features[0]).encode()
    batch = "\n".join(",".join(repr(float(v)) for v in row) for row in features[:100]).encode()
    records = json.dumps({"records": (churn.to_dict(orient="records") * 3)[:11000]}).encode()
    empty_objects = b"[" + b",".join([b"{}"] * 2_000_000) + b"]"
    long_number = b'{"instances": [[' + b"1" * 5000 + b", 2]]}"
    oversize = b"0," * 3_500_000

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "kubesage.serving", "--model", str(model_dir), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(args.workers), "--threads", "1"]
    log = (work / "server.log").open("wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    else:
        server.kill()
        print(f"server not ready; see {work / 'server.log'}")
        return 2

    tally = Tally()
    stop = threading.Event()
    idle_rss = process_tree_rss(server.pid)

    def valid(kind: str, body: bytes) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                try:
                    status = client.post("/invocations", content=body, headers={"content-type": "text/csv"}).status_code
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                tally.add(kind, status)

    def hostile() -> None:
        while not stop.is_set():
            for kind, body, content_type in (
                ("hostile [{},...] 6MB", empty_objects, "application/json"),
                ("hostile 5000-digit number", long_number, "application/json"),
                ("valid records 5MB", records, "application/json"),
            ):
                try:
                    status = httpx.post(
                        f"{url}/invocations", content=body, headers={"content-type": content_type}, timeout=120
                    ).status_code
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                tally.add(kind, status)
            request = urllib.request.Request(
                f"{url}/invocations", data=oversize, headers={"Content-Type": "text/csv"}, method="POST"
            )
            try:
                urllib.request.urlopen(request, timeout=60).close()
                tally.add("urllib 7MB", 200)
            except urllib.error.HTTPError as exc:
                tally.add("urllib 7MB", exc.code)
            except OSError as exc:
                tally.add("urllib 7MB", type(exc).__name__)

    def slow_client() -> None:
        head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 10\r\n\r\n"
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                    for byte in head:
                        if stop.is_set():
                            return
                        sock.sendall(bytes([byte]))
                        time.sleep(0.5)
                    answer = sock.recv(100)
                    tally.add("slow client", int(answer.split()[1]) if answer else "closed")
            except OSError as exc:
                tally.add("slow client", type(exc).__name__ if "answer" not in str(exc) else "closed")

    def sampler() -> None:
        while not stop.is_set():
            with tally.lock:
                tally.rss.append(process_tree_rss(server.pid))
            time.sleep(0.5)

    # The prober is its own process: in this one it would share the GIL with 30 load threads and
    # time them as well as the server.
    probes = work / "pings.txt"
    prober = subprocess.Popen([sys.executable, str(REPO / "bench" / "ping_probe.py"), url, str(probes)], cwd=REPO)
    while not probes.exists() or not probes.read_text():  # probing before the load starts
        time.sleep(0.2)
    idle = []
    for _ in range(300):
        try:
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    threads = [threading.Thread(target=valid, args=("single record", single)) for _ in range(4)]
    threads += [threading.Thread(target=valid, args=("100-row batch", batch)) for _ in range(4)]
    threads += [threading.Thread(target=hostile) for _ in range(2)]
    threads += [threading.Thread(target=slow_client) for _ in range(20)]
    threads += [threading.Thread(target=sampler)]
    for thread in threads:
        thread.start()
    time.sleep(args.duration)
    stop.set()
    for thread in threads:
        thread.join(timeout=180)
    for sock in idle:
        sock.close()
    prober.terminate()
    prober.wait(timeout=30)
    for line in probes.read_text().splitlines():
        status, seconds = line.split()
        tally.pings.append(float(seconds))
        tally.add("ping", int(status) if status.isdigit() else status)
    final_rss = process_tree_rss(server.pid)
    server.terminate()
    server.wait(timeout=60)

    pings = np.array(tally.pings)
    server_errors = sum(
        n for key, n in tally.statuses.items() if key.split()[-1].isdigit() and key.split()[-1][0] == "5"
    )
    print(f"hostile load: {args.duration:.0f} s, {args.workers} workers, loopback, {len(idle)} idle connections held")
    print(f"{'requests':34} {'status':>18} {'count':>8}")
    for key in sorted(tally.statuses):
        kind, status = key.rsplit(" ", 1)
        print(f"{kind:34} {status:>18} {tally.statuses[key]:>8}")
    print(
        f"/ping: {len(pings)} probes, p50 {np.percentile(pings, 50) * 1000:.1f} ms, "
        f"p99 {np.percentile(pings, 99) * 1000:.1f} ms, max {pings.max() * 1000:.1f} ms"
    )
    mib = 1024 * 1024
    print(
        f"server memory (all processes): idle {idle_rss / mib:.0f} MiB, peak {max(tally.rss) / mib:.0f} MiB, "
        f"after {final_rss / mib:.0f} MiB"
    )
    print(f"5xx answers: {server_errors}")
    ok = server_errors == 0 and pings.max() < 2.0
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
