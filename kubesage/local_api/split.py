"""A local stand-in for SageMaker's deployment guardrails: one endpoint URL over two served versions.

`kubesage api --canary-endpoint-url NEW` puts this router between the handler and the two
`kubesage serve` endpoints (the current version and the new one), as SageMaker's blue/green update
puts one endpoint over the old and the new fleet:

- a canary share of requests goes to the new version (a deterministic count, not a coin: request n
  goes to it when floor((n+1) * p / 100) > floor(n * p / 100)), the rest to the current one;
- a local alarm watches the new version's answers: its 5xx rate (a 5xx or no answer) and its average
  latency, over its requests once there are `min_requests` of them, against the thresholds deploy's
  CloudWatch alarms use (`--max-5xx-rate`, `--max-latency-ms`);
- the alarm rolls the split back: every request to the current version from then on, and which alarm
  fired and why is recorded; after `bake_requests` new-version requests without an alarm, all traffic
  shifts to the new version (promoted);
- `kubesage rollback --local-api URL` (or POST /_kubesage/traffic/rollback on the API front, with the
  API key) rolls it back by hand; GET /_kubesage/traffic shows the state.

What it is not: SageMaker counts requests per minute in CloudWatch and shifts whole instances; here
the window is the new version's requests themselves, so the behaviour can be seen (and tested) with
a few requests on a laptop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from kubesage.errors import DeployError, ParameterError
from kubesage.local_api.asgi import answer_lifespan

State = Literal["canary", "promoted", "rolled-back"]
Version = Literal["current", "new"]
ALARM_5XX = "local-5xx-rate"
ALARM_LATENCY = "local-model-latency"
TRAFFIC_PATH = "/_kubesage/traffic"
ROLLBACK_PATH = "/_kubesage/traffic/rollback"
FORWARDED_HEADERS = ("content-type", "accept")
UPSTREAM_TIMEOUT = 60.0


@dataclass(frozen=True)
class SplitConfig:
    canary_percent: int = 10
    bake_requests: int = 20  # new-version requests without an alarm before all traffic shifts to it
    min_requests: int = 5  # the alarm judges the new version once it has answered this many
    max_5xx_rate: float = 0.05
    max_latency_ms: float = 1000.0

    def check(self) -> None:
        if not 1 <= self.canary_percent <= 50:
            raise ParameterError(
                f"--canary-percent {self.canary_percent} is out of range: a canary is 1-50% of the traffic"
            )
        if self.min_requests < 1 or self.bake_requests < self.min_requests:
            raise ParameterError(
                f"--bake-requests {self.bake_requests} must be at least the alarm's "
                f"--min-requests {self.min_requests} (>= 1)"
            )
        if not 0 <= self.max_5xx_rate <= 1:
            raise ParameterError(f"--max-5xx-rate {self.max_5xx_rate:g} is out of range: a rate is a fraction, 0-1")
        if self.max_latency_ms <= 0:
            raise ParameterError(f"--max-latency-ms {self.max_latency_ms:g} is out of range: it must be above 0")


@dataclass
class Outcomes:
    requests: int = 0
    errors: int = 0  # 5xx answers and requests that got no answer
    latency_ms_total: float = 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_latency_ms(self) -> float:
        return self.latency_ms_total / self.requests if self.requests else 0.0


@dataclass
class TrafficSplit:
    """The split's state and its alarm: pure logic, no I/O (thread-safe; the router calls it)."""

    current_url: str
    new_url: str
    config: SplitConfig = field(default_factory=SplitConfig)
    state: State = "canary"
    routed: int = 0
    new: Outcomes = field(default_factory=Outcomes)
    current: Outcomes = field(default_factory=Outcomes)
    fired: str = ""
    reason: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def route(self) -> Version:
        """Which version answers the next request."""
        with self._lock:
            if self.state != "canary":
                return "new" if self.state == "promoted" else "current"
            n, p = self.routed, self.config.canary_percent
            self.routed += 1
            return "new" if (n + 1) * p // 100 > n * p // 100 else "current"

    def url(self, version: Version) -> str:
        return self.new_url if version == "new" else self.current_url

    def record(self, version: Version, status: int, latency_ms: float) -> None:
        """One answer (status 0: none); the alarm judges the new version after each of its answers."""
        with self._lock:
            outcomes = self.new if version == "new" else self.current
            outcomes.requests += 1
            outcomes.errors += status == 0 or status >= 500
            outcomes.latency_ms_total += latency_ms
            if version != "new" or self.state != "canary" or self.new.requests < self.config.min_requests:
                return
            if self.new.error_rate > self.config.max_5xx_rate:
                self._roll_back(
                    ALARM_5XX,
                    f"{self.new.errors} of the new version's {self.new.requests} answers were 5xx "
                    f"({self.new.error_rate:.0%} > {self.config.max_5xx_rate:.0%})",
                )
            elif self.new.mean_latency_ms > self.config.max_latency_ms:
                self._roll_back(
                    ALARM_LATENCY,
                    f"the new version's mean latency {self.new.mean_latency_ms:.1f} ms "
                    f"> {self.config.max_latency_ms:g} ms",
                )
            elif self.new.requests >= self.config.bake_requests:
                self.state = "promoted"

    def _roll_back(self, alarm: str, reason: str) -> None:
        self.state, self.fired, self.reason = "rolled-back", alarm, reason

    def roll_back(self, reason: str = "rolled back by hand (kubesage rollback)") -> None:
        with self._lock:
            self._roll_back("", reason)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            share = {"canary": self.config.canary_percent, "promoted": 100, "rolled-back": 0}[self.state]
            snapshot = {
                "state": self.state,
                "new_version_percent": share,
                "current_url": self.current_url,
                "new_url": self.new_url,
                "alarm": self.fired,
                "reason": self.reason,
                "new": asdict(self.new),
                "current": asdict(self.current),
            }
        snapshot["summary"] = summary(snapshot)
        return snapshot


def summary(snapshot: Mapping[str, Any]) -> str:
    state = snapshot["state"]
    if state == "rolled-back":
        why = f"alarm {snapshot['alarm']} fired: {snapshot['reason']}" if snapshot["alarm"] else snapshot["reason"]
        return f"rolled back: all traffic to {snapshot['current_url']}; {why}"
    if state == "promoted":
        return f"promoted: all traffic to {snapshot['new_url']}"
    share = snapshot["new_version_percent"]
    return f"canary: {share}% of traffic to {snapshot['new_url']}, the rest to {snapshot['current_url']}"


Scope = MutableMapping[str, Any]


class _Forwarder:
    """Forwards one request and records its outcome on the split (latency: the upstream's answer time)."""

    def __init__(self, split: TrafficSplit) -> None:
        self.split = split

    def __call__(
        self, version: Version, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        upstream = self.split.url(version)
        request = Request(upstream.rstrip("/") + path, data=body if method == "POST" else None, method=method)
        for name in FORWARDED_HEADERS:
            if name in headers:
                request.add_header(name, headers[name])
        started = time.perf_counter()
        try:
            with urlopen(request, timeout=UPSTREAM_TIMEOUT) as response:
                status, payload, kind = response.status, response.read(), response.headers.get("content-type", "")
        except HTTPError as exc:
            status, payload, kind = exc.code, exc.read(), exc.headers.get("content-type", "")
        except (URLError, OSError) as exc:
            self.split.record(version, 0, (time.perf_counter() - started) * 1000)
            message = {"message": f"the endpoint's version at {upstream} did not answer: {exc}"}
            return 502, [(b"content-type", b"application/json")], json.dumps(message).encode()
        self.split.record(version, status, (time.perf_counter() - started) * 1000)
        answer_headers = [(b"content-type", kind.encode("latin-1"))] if kind else []
        return status, answer_headers, payload


def router_app(split: TrafficSplit) -> Any:
    """The router's ASGI app, forwarding through urllib on a worker thread."""
    forwarder = _Forwarder(split)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        version = split.route()
        status, answer_headers, payload = await asyncio.to_thread(
            forwarder, version, scope["method"], scope["path"], body, headers
        )
        answer_headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": answer_headers})
        await send({"type": "http.response.body", "body": payload})

    return app


def rollback_local(api_url: str, api_key: str) -> dict[str, Any]:
    """Roll back the split of a local `kubesage api` (its front at `api_url`); the state after."""
    request = Request(api_url.rstrip("/") + ROLLBACK_PATH, data=b"", method="POST", headers={"x-api-key": api_key})
    try:
        with urlopen(request, timeout=10) as response:
            state: dict[str, Any] = json.loads(response.read())
    except HTTPError as exc:
        answer = exc.read().decode("utf-8", "replace")
        if exc.code == 403 and "Missing Authentication Token" in answer:
            raise DeployError(
                f"the local API at {api_url} fronts one version, so there is no split to roll back; "
                "start it with --canary-endpoint-url"
            ) from None
        if exc.code == 403:
            raise DeployError(f"the local API at {api_url} refused the key; pass its key with --api-key-file") from None
        raise DeployError(f"the local API at {api_url} answered {exc.code} to the rollback") from None
    except (URLError, OSError) as exc:
        raise DeployError(f"no local API at {api_url} ({exc}); start it with kubesage api") from None
    return state
