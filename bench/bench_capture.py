"""What data capture costs the server: the same model served without and with `--capture`, interleaved.

    .venv/bin/python bench/bench_capture.py [--rounds 25] [--seconds 1]

Three servers started the same way (one worker, one thread, same churn booster as bench_serving.py):
`plain` and `plain-2` without capture, `capture` with `--capture` at 100 % sampling. Each round drives
each server once with wrk (one connection, single-record JSON requests: the hot path), in an order
that rotates every round, so a change of load on the shared host hits all three alike. Per round it
takes the ratios capture/plain and plain-2/plain: the second is the noise floor, what two identical
servers differ by on this host. Prints the rounds, then side by side for both ratios: the median with
its spread (quartiles, min-max), and the ratio of each server's best round (as timeit takes the
fastest run: the round least disturbed by other load); the same for the inverse of the median
latency (wrk's p50), which a burst of other load on the host moves much less than the mean. Then
each server's CPU per request (from /proc; the capture writer's own process apart), how busy wrk
was (it must not be the bottleneck), the app's CPU per request called in-process without HTTP
(plain and capturing, alternating), and how many records the capture server wrote (every answered
request).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_serving import WRK_LUA, _percentile, json_body, start, stop, train_model, wait_for

from kubesage.monitoring.capture_writer import FLUSH_SECONDS
from kubesage.serving.negotiation import JSON
from kubesage.util.ports import free_port

SERVERS = ("plain", "plain-2", "capture")


@dataclass(frozen=True)
class Run:
    requests: int
    rate: float
    p50_ms: float
    wrk_cpu: float  # wrk's CPU seconds per wall second (1.0: one core busy)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU of a server process (its threads included) and of its live children (the capture
    writer), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")

    def own(process: int) -> float:
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own(pid), sum(own(int(child)) for child in children)


def run_wrk(url: str, script: Path, body: Path, seconds: float) -> Run:
    env = {**os.environ, "BENCH_BODY": str(body), "BENCH_CONTENT_TYPE": JSON}
    command = ["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", "--timeout", "10s", "-s", str(script), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    output = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if re.search(r"Non-2xx or 3xx responses|Socket errors", output):
        raise SystemExit(f"wrk saw errors against {url}:\n{output}")
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    return Run(requests, rate, _percentile(output, "50"), cpu / wall)


def in_process(model_dir: Path, body: bytes, work: Path, rounds: int = 30, calls: int = 2000) -> str:
    """The ASGI app called directly, without HTTP: CPU per request of a plain app and of one capturing
    (its feeder thread included, the writer process not), in alternating bursts. No network, no other
    process in the loop: the figure other load on the host moves least."""
    import asyncio

    from kubesage.monitoring.capture import CaptureConfig
    from kubesage.monitoring.capture_writer import CaptureWriter
    from kubesage.serving.app import create_app

    headers = [(b"content-type", JSON.encode()), (b"accept", JSON.encode()), (b"content-length", b"%d" % len(body))]
    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers}
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, object]:
        return message

    async def send(_: object) -> None:
        return None

    writer = CaptureWriter(CaptureConfig(work / "in-process")).start()
    apps = {"plain": create_app(model_dir, exit_on_load_failure=False)}
    apps["capture"] = create_app(model_dir, exit_on_load_failure=False, capture=writer)
    for app in apps.values():
        app.load()

    async def burst(label: str) -> float:
        started = time.process_time()
        for _ in range(calls):
            await apps[label](scope, receive, send)
        return (time.process_time() - started) / calls

    async def measure() -> dict[str, list[float]]:
        seconds: dict[str, list[float]] = {"plain": [], "capture": []}
        for number in range(rounds):
            for label in ("plain", "capture") if number % 2 else ("capture", "plain"):
                seconds[label].append(await burst(label))
        return seconds

    seconds = asyncio.run(measure())
    writer.close()
    ratios = [p / c for p, c in zip(seconds["plain"], seconds["capture"], strict=True)]
    plain, capture = (statistics.median(seconds[label]) * 1e6 for label in ("plain", "capture"))
    return (
        f"the app called in-process ({rounds} alternating bursts of {calls:,}): CPU per request plain {plain:.1f} us, "
        f"capture {capture:.1f} us; plain/capture {spread(ratios)}"
    )


def spread(values: list[float]) -> str:
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{statistics.median(values):.3f} (quartiles {q1:.3f}-{q3:.3f}, range {min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=25, help="rounds of (plain, plain-2, capture), rotated")
    parser.add_argument("--seconds", type=int, default=1, help="seconds per wrk run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    processes = {}
    try:
        model_dir = work / "model"
        _, features = train_model(model_dir)
        body = work / "body.json"
        body.write_bytes(json_body(features[1000:1001]))
        script = work / "post.lua"
        script.write_text(WRK_LUA)
        urls = {}
        for label in SERVERS:
            port = free_port()
            command = [sys.executable, "-m", "kubesage.cli", "serve", "--model-dir", str(model_dir)]
            command += ["--port", str(port), "--workers", "1", "--threads", "1"]
            if label == "capture":
                command += ["--capture", str(work / "captures")]
            processes[label] = start(command, dict(os.environ), work / f"{label}.log")
            wait_for(f"http://127.0.0.1:{port}/ping", processes[label], work / f"{label}.log")
            urls[label] = f"http://127.0.0.1:{port}/invocations"
        answered_by_capture = 0
        for label in SERVERS:  # warm-up, not measured: first requests, first capture file
            warm = run_wrk(urls[label], script, body, 1)
            answered_by_capture += warm.requests if label == "capture" else 0
        time.sleep(1.5 * FLUSH_SECONDS)

        runs: dict[str, list[Run]] = {label: [] for label in SERVERS}
        cpu: dict[str, list[float]] = {label: [0.0, 0.0] for label in SERVERS}  # server, writer process
        print(f"{'':>5} {'req/s':^38} {'p50 latency, us':^26} {'throughput ratios':^22}")
        header = "".join(f" {label:>12}" for label in SERVERS) + "".join(f" {label:>8}" for label in SERVERS)
        print(f"{'round':>5}{header} {'p2/plain':>10} {'cap/plain':>10}")
        for number in range(args.rounds):
            order = SERVERS[number % 3 :] + SERVERS[: number % 3]
            for label in order:
                before = cpu_seconds(processes[label].pid)
                run = run_wrk(urls[label], script, body, args.seconds)
                # The capture writer writes the run's last second before the next server is driven.
                time.sleep(1.1 * FLUSH_SECONDS)
                after = cpu_seconds(processes[label].pid)
                cpu[label] = [total + b - a for total, a, b in zip(cpu[label], before, after, strict=True)]
                runs[label].append(run)
            answered_by_capture += runs["capture"][-1].requests
            rates = [runs[label][-1].rate for label in SERVERS]
            p50s = [runs[label][-1].p50_ms * 1000 for label in SERVERS]
            cells = "".join(f" {r:>12.0f}" for r in rates) + "".join(f" {p:>8.0f}" for p in p50s)
            print(f"{number + 1:>5}{cells} {rates[1] / rates[0]:>10.3f} {rates[2] / rates[0]:>10.3f}", flush=True)

        def ratios(label: str) -> tuple[list[float], list[float]]:
            """Per round: label/plain throughput, and plain/label p50 latency (the same sense: > 1 is faster)."""
            pairs = list(zip(runs["plain"], runs[label], strict=True))
            return [b.rate / a.rate for a, b in pairs], [a.p50_ms / b.p50_ms for a, b in pairs]

        print(f"\nsingle-record requests, {args.rounds} interleaved rounds of {args.seconds} s per server:")
        for label in SERVERS:
            rate = statistics.median(r.rate for r in runs[label])
            p50 = statistics.median(r.p50_ms for r in runs[label]) * 1000
            print(f"  {label:<8} median {rate:>8.0f} req/s, p50 {p50:>5.0f} us")
        print(f"{'':<29}{'median (quartiles, range) of the rounds':<58}{'best rounds':<13}")
        for label, what in (("plain-2", "plain-2/plain, noise floor"), ("capture", "capture/plain, the cost")):
            throughput, latency = ratios(label)
            best = max(r.rate for r in runs[label]) / max(r.rate for r in runs["plain"])
            print(f"  {what:<27}{'throughput ' + spread(throughput):<58}{best:.3f}")
            print(f"  {'':<27}{'1/p50      ' + spread(latency):<58}")
        measured = {label: sum(r.requests for r in runs[label]) for label in SERVERS}
        server = {label: cpu[label][0] / measured[label] * 1e6 for label in SERVERS}
        writer = cpu["capture"][1] / measured["capture"] * 1e6
        print(
            "CPU per request, all rounds: server process "
            + ", ".join(f"{label} {server[label]:.0f} us" for label in SERVERS)
            + f" (capture/plain {server['capture'] / server['plain']:.3f}); the capture writer process {writer:.1f} us"
        )
        print(in_process(model_dir, body.read_bytes(), work))
        busiest = max(r.wrk_cpu for label in SERVERS for r in runs[label])
        print(f"wrk's CPU while driving: at most {busiest:.0%} of one core (the load generator is not the bottleneck)")
        stop(processes.pop("capture"))  # SIGTERM: the capture writer writes what is pending, then exits
        written = sum(len(p.read_text().splitlines()) for p in (work / "captures").rglob("*.jsonl"))
        print(
            f"records written by the capture server: {written:,}; requests wrk counted: {answered_by_capture:,} "
            "(wrk does not count the one in flight when a run ends)"
        )
    finally:
        for process in processes.values():
            stop(process)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
