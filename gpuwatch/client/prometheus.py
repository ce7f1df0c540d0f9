"""`PrometheusFleet`: the fleet's rows read from the Prometheus server that scrapes it.

Place in the flow: daemons' /metrics → Prometheus (the distributed engine, with the shipped
recording rules) → **PrometheusFleet** → TUI (the `gpuwatch.client.protocol.Fleet` protocol).
`gpuwatch top --prometheus URL` builds one. A refresh is `len(QUERIES)` instant queries,
whatever the fleet's size: each is aggregated `by (instance)` over the targets the selector
picks, so its answer grows by one sample per node, and the figures that need a window lean on
the recording rules of prometheus/gpuwatch.rules.yml (each with a raw fallback, for a
Prometheus that has not loaded them). Opening a node reads its daemon's own API at the
target's address (`instance`), through `HttpClient`.

Every failure is translated here into the error tree of `gpuwatch.client.protocol` with one
line for the screen: refused or unreachable, slower than `TIMEOUT_SECONDS`, 401/403
(`AuthenticationError`), another HTTP status, an answer that is not Prometheus's API, or a
query Prometheus refuses (a bad `[top] prometheus_selector`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from gpuwatch import __version__
from gpuwatch.client.connect import PrometheusPlan, parse_daemon_url
from gpuwatch.client.protocol import (
    AuthenticationError,
    Client,
    FleetNode,
    FleetView,
    SourceUnavailableError,
)

TIMEOUT_SECONDS = 5.0
"""One query's deadline: past it, Prometheus reads as slow and the last rows stay on screen."""
MAX_RESPONSE_BYTES = 32 << 20

QUERIES: dict[str, str] = {
    "up": "up{S}",
    "gpus": "sum by (instance) (gpuwatch_gpus{S})",
    "gpus_up": "sum by (instance) (instance:gpuwatch_gpus_up:sum{S})"
    " or sum by (instance) (gpuwatch_gpu_up{S})",
    "busiest": "max by (instance) (gpuwatch_gpu_utilization_ratio{S})",
    "power": "sum by (instance) (gpuwatch_gpu_power_watts{S})",
    "cap": "sum by (instance) (gpuwatch_gpu_power_limit_watts{S})",
    "hottest": "max by (instance) (gpuwatch_gpu_temperature_celsius{S})",
    "models": "sum by (instance) (gpuwatch_model_up{S})",
    "failures": "sum by (instance) (model:gpuwatch_model_request_failure:rate5m{S})"
    " or sum by (instance) (rate(gpuwatch_model_request_failure_total{S}[5m]))",
    "findings": "count by (instance, severity) (gpuwatch_finding{S} == 1)",
}
"""One refresh: each an instant query; `{S}` is the selector's braces."""


class PrometheusFleet:
    """The `Fleet` protocol over a Prometheus server's HTTP API (/api/v1/query)."""

    def __init__(
        self,
        plan: PrometheusPlan,
        *,
        open_node: Callable[[str], Client] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = plan.url
        self.selector = plan.selector
        headers = {"User-Agent": f"gpuwatch/{__version__}"}
        if plan.token:
            headers["Authorization"] = f"Bearer {plan.token}"
        self._http = httpx.Client(
            base_url=plan.url,
            headers=headers,
            auth=plan.basic_auth,
            verify=plan.verify if plan.verify is not None else True,
            timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=min(2.0, TIMEOUT_SECONDS)),
            transport=transport,
        )
        self._plan = plan
        self._open_node = open_node or self._daemon
        self._opened: dict[str, Client] = {}
        self._lock = threading.Lock()
        self.queries_sent = 0
        """Every instant query sent since this fleet was built (the bench and tests count them)."""

    @property
    def origin(self) -> str:
        return f"prometheus {self.url}"

    def view(self) -> FleetView:
        at = time.time()
        braces = "{" + self.selector + "}" if self.selector else ""
        answers = {key: self._query(promql.replace("{S}", braces), at) for key, promql in QUERIES.items()}
        return FleetView(_rows(answers), at, len(answers))

    def _query(self, promql: str, at: float) -> list[dict[str, Any]]:
        self.queries_sent += 1
        where = f"Prometheus at {self.url}"
        try:
            response = self._http.get("/api/v1/query", params={"query": promql, "time": f"{at:.3f}"})
        except httpx.TimeoutException:
            raise SourceUnavailableError(f"{where} did not answer within {TIMEOUT_SECONDS:g} s") from None
        except httpx.ConnectError as exc:
            raise SourceUnavailableError(f"{where}: cannot connect ({_reason(exc)})") from None
        except httpx.HTTPError as exc:
            raise SourceUnavailableError(f"{where}: {_reason(exc)}") from None
        if response.status_code in (401, 403):
            raise AuthenticationError(
                f"{where} refused us (HTTP {response.status_code}): "
                "set [top] prometheus_token_file or prometheus_basic_auth_file"
            )
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise SourceUnavailableError(f"{where}: an answer larger than {MAX_RESPONSE_BYTES >> 20} MiB")
        try:
            body = response.json()
        except ValueError:
            raise SourceUnavailableError(
                f"{where} answered HTTP {response.status_code}, not Prometheus's API"
            ) from None
        if not isinstance(body, dict):
            raise SourceUnavailableError(f"{where}: not Prometheus's API")
        if body.get("status") != "success":
            error = str(body.get("error") or f"HTTP {response.status_code}").splitlines()[0]
            raise SourceUnavailableError(f"{where}: the query failed: {error}")
        data = body.get("data")
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise SourceUnavailableError(f"{where}: not Prometheus's API")
        return result

    def _daemon(self, instance: str) -> Client:
        from gpuwatch.client.http import HttpClient

        daemons = self._plan.daemons
        return HttpClient(parse_daemon_url(instance), token=daemons.token, verify=daemons.verify)

    def open(self, instance: str) -> Client:
        with self._lock:
            client = self._opened.get(instance)
            if client is None:
                client = self._opened[instance] = self._open_node(instance)
            return client

    def close(self) -> None:
        with self._lock:
            opened, self._opened = list(self._opened.values()), {}
        for client in opened:
            client.close()
        self._http.close()


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "refused"
    return text.splitlines()[0]


def _number(sample: dict[str, Any]) -> float | None:
    try:
        value = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return None if math.isnan(value) else value  # NaN: no figure


def _rows(answers: dict[str, list[dict[str, Any]]]) -> tuple[FleetNode, ...]:
    def by_instance(key: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for sample in answers[key]:
            instance = sample.get("metric", {}).get("instance")
            value = _number(sample)
            if instance is not None and value is not None:
                out[instance] = value
        return out

    up = by_instance("up")
    figures = {key: by_instance(key) for key in QUERIES if key not in ("up", "findings")}
    findings: dict[str, dict[str, int]] = {}
    for sample in answers["findings"]:
        labels = sample.get("metric", {})
        value = _number(sample)
        if "instance" in labels and value is not None:
            findings.setdefault(labels["instance"], {})[labels.get("severity", "")] = int(value)
    instances = set(up) | {i for values in figures.values() for i in values} | set(findings)

    def whole(key: str, instance: str) -> int | None:
        value = figures[key].get(instance)
        return None if value is None else round(value)

    rows = []
    for instance in instances:
        found = findings.get(instance, {})
        rows.append(
            FleetNode(
                instance=instance,
                scraped=up.get(instance, 1.0) == 1.0,
                gpus=whole("gpus", instance),
                gpus_up=whole("gpus_up", instance),
                busiest_ratio=figures["busiest"].get(instance),
                power_watts=figures["power"].get(instance),
                power_limit_watts=figures["cap"].get(instance),
                hottest_celsius=figures["hottest"].get(instance),
                models_ready=whole("models", instance),
                failures_per_second=figures["failures"].get(instance),
                critical=found.get("critical", 0),
                warning=found.get("warning", 0),
                info=found.get("info", 0),
            )
        )
    return tuple(sorted(rows, key=needs_a_look))


def needs_a_look(node: FleetNode) -> tuple[int, int, int, int, float, str]:
    """Sort key: targets Prometheus cannot scrape first, then by critical findings, warnings,
    GPUs not answering and failures per second, most first; then by name."""
    return (
        0 if not node.scraped else 1,
        -node.critical,
        -node.warning,
        -node.lost_gpus,
        -(node.failures_per_second or 0.0),
        node.instance,
    )
