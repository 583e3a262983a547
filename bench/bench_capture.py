"""What data capture costs the server: the same model served twice, without and with `--capture`.

    .venv/bin/python bench/bench_capture.py [--duration 5] [--rounds 4]

Both servers (one worker each, same churn booster as bench_serving.py) run at once; wrk drives them in
turn, round after round (plain, capture, plain, capture, ...) so a change of load on the shared host
hits both alike. Single-record requests, one client: the hot path capture must not slow. Prints each
round's requests/s and p50 side by side, the medians and the ratio (capture / plain), and how many
records the capture server wrote (it must be every request: 100% sampling).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_serving import json_body, run_wrk, start, stop, train_model, wait_for

from kubesage.monitoring.capture import FLUSH_SECONDS
from kubesage.serving.negotiation import JSON
from kubesage.util.ports import free_port


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads (the capture thread included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(work: Path, plain_rate: float, records: int = 20_000) -> str:
    """The capture thread's own CPU per record (in this process, same body), beside a request's share
    of the plain server's time: a figure the host's load moves less than wrk's."""
    import json as _json

    from kubesage.monitoring.capture import CaptureConfig, CaptureWriter

    body = (work / "body.json").read_bytes()
    answer = _json.dumps({"predictions": [{"score": 0.5}]}).encode()
    writer = CaptureWriter(CaptureConfig(work / "cpu"))
    for _ in range(records):
        writer.offer(body, JSON, answer, JSON)
    start = time.process_time()
    writer.flush()
    per_record = (time.process_time() - start) / records
    per_request = 1 / plain_rate
    return (
        f"capture CPU per record {per_record * 1e6:.1f} us (writer thread, formatting and writing); a plain "
        f"request every {per_request * 1e6:.0f} us: {per_record / per_request:.1%} of the server's time"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of (plain, capture)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    processes = []
    try:
        model_dir = work / "model"
        _, features = train_model(model_dir)
        (work / "body.json").write_bytes(json_body(features[1000:1001]))
        urls = {}
        for label, extra in (("plain", []), ("capture", ["--capture", str(work / "captures")])):
            port = free_port()
            command = [sys.executable, "-m", "kubesage.cli", "serve", "--model-dir", str(model_dir)]
            command += ["--port", str(port), "--workers", "1", "--threads", "1", *extra]
            processes.append(start(command, dict(os.environ), work / f"{label}.log"))
            wait_for(f"http://127.0.0.1:{port}/ping", processes[-1], work / f"{label}.log")
            urls[label] = f"http://127.0.0.1:{port}/invocations"
        results: dict[str, list[tuple[float, float]]] = {"plain": [], "capture": []}
        # CPU seconds per request of each server: what the host's load changes least.
        cpu_per_request: dict[str, list[float]] = {"plain": [], "capture": []}
        pids = {"plain": processes[0].pid, "capture": processes[1].pid}
        print(
            f"{'round':>5} {'plain req/s':>12} {'capture req/s':>14} {'plain p50 ms':>13} {'capture p50 ms':>15}"
            f" {'ratio':>8}"
        )
        ratios = []
        for round_number in range(1, args.rounds + 1):
            # The order alternates, so neither server always runs right after the other's load.
            order = list(urls.items()) if round_number % 2 else list(reversed(urls.items()))
            for label, url in order:
                before = process_cpu_seconds(pids[label])
                r = run_wrk(url, work / "body.json", JSON, 1, args.duration, work)
                time.sleep(1.5 * FLUSH_SECONDS)  # the capture thread writes the run's last second
                spent = process_cpu_seconds(pids[label]) - before
                results[label].append((r.requests_per_s, r.p50_ms))
                cpu_per_request[label].append(spent / max(r.requests_per_s * args.duration, 1.0))
            (pr, pp), (cr, cp) = results["plain"][-1], results["capture"][-1]
            ratios.append(cr / pr)
            print(f"{round_number:>5} {pr:>12.0f} {cr:>14.0f} {pp:>13.3f} {cp:>15.3f} {cr / pr:>8.3f}", flush=True)
        plain = statistics.median(r for r, _ in results["plain"])
        capture = statistics.median(r for r, _ in results["capture"])
        print(
            f"median {plain:>11.0f} {capture:>14.0f}   median of the rounds' capture/plain: "
            f"{statistics.median(ratios):.3f}"
        )
        plain_cpu = statistics.median(cpu_per_request["plain"])
        capture_cpu = statistics.median(cpu_per_request["capture"])
        print(
            f"server CPU per request (median): plain {plain_cpu * 1e6:.0f} us, capture {capture_cpu * 1e6:.0f} us; "
            f"capture/plain {capture_cpu / plain_cpu:.3f} (a CPU-bound server's throughput scales with its inverse)"
        )
        print(cpu_share(work, plain))
        stop(processes.pop())  # SIGTERM: the capture server writes what is pending, then exits
        written = sum(len(p.read_text().splitlines()) for p in (work / "captures").rglob("*.jsonl"))
        print(f"records written by the capture server: {written:,} (every answered request)")
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
