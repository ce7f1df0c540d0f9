"""`PrometheusFleet`: the fleet's rows read from the Prometheus server that scrapes it.

Place in the flow: daemons' /metrics → Prometheus (the distributed engine, with the shipped
recording rules) → **PrometheusFleet** → TUI (the `gpuwatch.client.protocol.Fleet` protocol).
`gpuwatch top --prometheus URL` builds one. A refresh is `len(QUERIES)` instant queries,
whatever the fleet's size: each is aggregated `by (instance)` over the targets the selector
picks, so its answer grows by one sample per node, and the figures that need a window lean on
the recording rules of prometheus/gpuwatch.rules.yml (each with a raw fallback, for a
Prometheus that has not loaded them). Opening a node reads its daemon's own API at the
target's address (`instance`), through `HttpClient`.

A node whose daemon does not answer us (a network that lets only Prometheus through, a daemon
wanting credentials we lack) opens as `PrometheusNodeClient` instead: a snapshot of its GPUs,
facts and findings rebuilt from one instant query of its series, and history from range
queries of the same families the catalog names; no processes, models or events, which
Prometheus does not have in a form a snapshot can be rebuilt from.

Every failure is translated here into the error tree of `gpuwatch.client.protocol` with one
line for the screen: refused or unreachable, slower than `TIMEOUT_SECONDS`, 401/403
(`AuthenticationError`), another HTTP status, an answer that is not Prometheus's API, or a
query Prometheus refuses (a bad `[top] prometheus_selector`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, get_type_hints

import httpx

from gpuwatch import __version__, model, series
from gpuwatch.catalog import entities, nvml_codes
from gpuwatch.catalog.figures import Figure
from gpuwatch.catalog.index import ALL
from gpuwatch.client.connect import PrometheusPlan, parse_daemon_url, probe
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
        return self._api("query", {"query": promql, "time": f"{at:.3f}"})

    def range_query(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A matrix: [{metric, values: [[t, "v"], …]}, …]."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:.3f}"}
        return self._api("query_range", params)

    def _api(self, endpoint: str, params: dict[str, str]) -> list[dict[str, Any]]:
        self.queries_sent += 1
        where = f"Prometheus at {self.url}"
        try:
            response = self._http.get(f"/api/v1/{endpoint}", params=params)
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
        """The node's daemon when its API answers us, else its node view from Prometheus."""
        from gpuwatch.client.http import HttpClient

        daemons = self._plan.daemons
        url = parse_daemon_url(instance)
        if probe(url, daemons.token, daemons.verify):
            return HttpClient(url, token=daemons.token, verify=daemons.verify)
        return PrometheusNodeClient(self, instance)

    def matchers(self, instance: str) -> str:
        """The selector's matchers and the one target's instance, inside braces."""
        escaped = instance.replace("\\", "\\\\").replace('"', '\\"')
        return "{" + ",".join(m for m in (self.selector, f'instance="{escaped}"') if m) + "}"

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


# --------------------------------------------------------------------------- a node from Prometheus

_GPU_FIGURES: tuple[Figure[Any], ...] = tuple(
    f for f in ALL if isinstance(f, Figure) and f.entity is entities.GPU
)
_SAMPLE_TYPES = get_type_hints(model.GpuSample)
_GPM_TYPES = get_type_hints(model.GpmActivity)


def _cast(hint: Any, value: float) -> Any:
    text = str(hint)
    if "bool" in text:
        return value != 0
    if "int" in text:
        return round(value)
    return value


class PrometheusNodeClient:
    """One node's `Client`, rebuilt from the series Prometheus keeps of it (see the module
    docstring): GPUs, their facts and the findings now, and the catalog's GPU and model series
    as history."""

    def __init__(self, fleet: PrometheusFleet, instance: str) -> None:
        self._fleet = fleet
        self.instance = instance

    @property
    def name(self) -> str:
        return self.instance

    @property
    def origin(self) -> str:
        return f"prometheus {self._fleet.url} (its daemon does not answer us)"

    def snapshot(self) -> model.Snapshot:
        braces = self._fleet.matchers(self.instance)
        wanted = "gpuwatch_(gpu_.+|build_info|driver_info|finding|snapshot_timestamp_seconds)"
        promql = braces.replace("{", '{__name__=~"' + wanted + '",', 1)
        samples = self._fleet._query(promql, time.time())
        if not samples:
            raise SourceUnavailableError(f"Prometheus has no current series of {self.instance}")
        return _rebuild(self.instance, samples)

    def history(
        self, name: str, match: Mapping[str, str], start: float, end: float, points: int
    ) -> list[series.SeriesData]:
        figure = series.check_query(name, match)
        inner = self._fleet.matchers(self.instance)[1:-1]
        extra = "".join(f',{k}="{v}"' for k, v in match.items())
        step = max((end - start) / max(points, 1), 1.0)
        rows = self._fleet.range_query(f"{figure.metric}{{{inner}{extra}}}", start, end, step)
        result = []
        for row in rows:
            labels = tuple((label, row["metric"].get(label, "")) for label in figure.labels)
            values = [
                (float(t), float(v) / figure.metric_scale)
                for t, v in row.get("values", ())
                if v not in ("NaN", "+Inf", "-Inf")
            ]
            pts = tuple(series.Point(t, v, v, v) for t, v in values)
            result.append(series.SeriesData(series.SeriesKey(name, labels), step, pts))
        return result

    def events(
        self,
        start: float,
        end: float,
        kinds: Iterable[model.EventKind] | None = None,
        limit: int = 200,
    ) -> list[model.Event]:
        return []  # Prometheus keeps counts, not the events themselves

    def close(self) -> None:
        return None


def _rebuild(instance: str, samples: list[dict[str, Any]]) -> model.Snapshot:
    by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
    for sample in samples:
        labels = sample.get("metric", {})
        value = _number(sample)
        if value is not None:
            by_name.setdefault(labels.get("__name__", ""), []).append((labels, value))

    def first(name: str) -> dict[str, str]:
        rows = by_name.get(name)
        return rows[0][0] if rows else {}

    build, driver = first("gpuwatch_build_info"), first("gpuwatch_driver_info")
    node = model.NodeInfo(
        hostname=instance,
        gpuwatch_version=build.get("version", "?"),
        source="prometheus",
        driver_version=driver.get("driver_version") or None,
        cuda_driver_version=driver.get("cuda_driver_version") or None,
        nvml_version=driver.get("nvml_version") or None,
    )
    stamps = by_name.get("gpuwatch_snapshot_timestamp_seconds")
    timestamp = stamps[0][1] if stamps else time.time()
    gpus: dict[tuple[str, str], dict[str, Any]] = {}
    gpm: dict[tuple[str, str], dict[str, Any]] = {}
    states: dict[tuple[str, str], model.GpuState] = {}
    for figure in _GPU_FIGURES:
        attribute = figure.name.removeprefix("gpu_")
        for labels, value in by_name.get(figure.metric, ()):
            key = (labels.get("gpu", ""), labels.get("uuid", ""))
            gpus.setdefault(key, {})
            number = value / figure.metric_scale
            if attribute in _SAMPLE_TYPES and attribute not in ("index", "uuid", "state", "gpm"):
                gpus[key][attribute] = _cast(_SAMPLE_TYPES[attribute], number)
            elif attribute in _GPM_TYPES:
                gpm.setdefault(key, {})[attribute] = number
    for labels, value in by_name.get("gpuwatch_gpu_state", ()):
        if value == 1:
            key = (labels.get("gpu", ""), labels.get("uuid", ""))
            states[key] = model.GpuState(labels.get("state", "ok"))
    samples_out = []
    for key in sorted(gpus, key=lambda k: int(k[0]) if k[0].isdigit() else -1):
        if not key[0].isdigit():
            continue
        fields = gpus[key]
        mask = fields.get("clock_event_reasons_mask")
        if mask is not None:
            fields["clock_event_reasons"] = nvml_codes.decode_clock_event_reasons(int(mask))
        activity = model.GpmActivity(interval_seconds=0.0, **gpm[key]) if key in gpm else None
        samples_out.append(
            model.GpuSample(
                index=int(key[0]),
                uuid=key[1],
                state=states.get(key, model.GpuState.OK),
                gpm=activity,
                **fields,
            )
        )
    devices = tuple(
        model.GpuInfo(
            index=int(labels["gpu"]),
            uuid=labels.get("uuid", ""),
            name=labels.get("name") or None,
            serial=labels.get("serial") or None,
            pci_bus_id=labels.get("pci_bus_id") or None,
            architecture=labels.get("architecture") or None,
            cuda_compute_capability=labels.get("cuda_compute_capability") or None,
        )
        for labels, _ in by_name.get("gpuwatch_gpu_info", ())
        if labels.get("gpu", "").isdigit()
    )
    findings = tuple(
        _finding(labels, timestamp) for labels, value in by_name.get("gpuwatch_finding", ()) if value
    )
    return model.Snapshot(
        timestamp=timestamp,
        node=node,
        devices=tuple(sorted(devices, key=lambda d: d.index)),
        gpus=tuple(samples_out),
        findings=tuple(sorted(findings, key=lambda f: _SEVERITY_ORDER.get(f.severity, 9))),
    )


_SEVERITY_ORDER = {model.Severity.CRITICAL: 0, model.Severity.WARNING: 1, model.Severity.INFO: 2}


def _finding(labels: dict[str, str], timestamp: float) -> model.Finding:
    gpu = labels.get("gpu", "")
    subject = model.Subject(
        kind=model.SubjectKind(labels.get("subject", "node")),
        gpu_index=int(gpu) if gpu.isdigit() else None,
        server=labels.get("server") or None,
        model=labels.get("model") or None,
        version=labels.get("version") or None,
        collector=labels.get("collector") or None,
    )
    kind = model.FindingKind(labels["kind"])
    words = kind.value.replace("_", " ")
    return model.Finding(
        kind=kind,
        severity=model.Severity(labels.get("severity", "warning")),
        subject=subject,
        since=timestamp,
        words=words,
        message=f"{words} (from Prometheus: the figures and advice are on the node's daemon)",
    )
