"""Prometheus /metrics: a custom collector over the engine's latest snapshot.

Place in the flow: engine → (subscription) `MetricsState.observe` → `SnapshotCollector.collect`
→ `MetricsExporter.render` → the HTTP server. As in prometheus_client's own collectors, the
collector yields families built from current state on each call; the state is the latest
snapshot plus what only a stream of snapshots can give (events and executed batch sizes counted
since the daemon started), fed by the engine's subscription. A scrape never calls NVML or
Triton. Every family is declared in `gpuwatch.serve.families` (which docs/metrics.md is rendered
from); a value that is None is simply not exported.

The rendered text depends only on that state, so `MetricsExporter` renders once per new
snapshot and serves the same bytes to every scrape until the next tick; when a scraper's steady
rhythm says it will come before the next tick, that render happens ahead of it, off the
request path.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector, CollectorRegistry

from gpuwatch import __version__, model
from gpuwatch.catalog import nvml_codes
from gpuwatch.serve import families as fam

CONTENT_TYPE = CONTENT_TYPE_LATEST
CONTAINER_ID_CHARS = 12
MAX_SCRAPERS = 16
"""Clients whose scrape rhythm is remembered for rendering ahead."""

log = logging.getLogger("gpuwatch.metrics")

Labels = tuple[str, ...]
LineCache = dict[str, dict[Labels, tuple[float, str, str]]]
"""family → labels → (value, `name{labels} ` prefix, whole sample line)."""

_GPU_STATES = tuple(s.value for s in model.GpuState)
_SERVER_STATES = tuple(s.value for s in model.ServerState)


# --------------------------------------------------------------------------- state fed by the engine


@dataclass(slots=True)
class _Histogram:
    buckets: list[int]
    """Executions with batch size ≤ each of families.BATCH_SIZE_BUCKETS, then +Inf."""
    total_batch: int = 0


class MetricsState:
    """What /metrics shows: the latest snapshot and counts kept over the stream of snapshots.

    `observe` runs on the engine's tick thread (subscribe it); `view` is what one scrape reads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: model.Snapshot | None = None
        self._events: Counter[str] = Counter({k.value: 0 for k in model.EventKind})
        self._xids: dict[tuple[str, str], Counter[int]] = {}
        self._batches: dict[Labels, _Histogram] = {}
        self._last_poll: dict[str, float | None] = {}
        self.generation = 0
        """Changes whenever anything shown changes: the exporter's cache key."""

    def observe(self, snapshot: model.Snapshot) -> None:
        with self._lock:
            self._snapshot = snapshot
            for event in snapshot.events:
                self._events[event.kind.value] += 1
                if event.kind == model.EventKind.XID and event.code is not None:
                    key = (_label(event.gpu_index), event.gpu_uuid or "")
                    self._xids.setdefault(key, Counter())[event.code] += 1
            for gpu in snapshot.devices:
                counts = self._xids.setdefault((str(gpu.index), gpu.uuid), Counter())
                for code in nvml_codes.XIDS:
                    counts.setdefault(code, 0)
            self._count_batches(snapshot.triton)
            self.generation += 1

    def _count_batches(self, servers: tuple[model.TritonServerStatus, ...]) -> None:
        present: set[Labels] = set()
        for server in servers:
            fresh = self._last_poll.get(server.name, -1.0) != server.polled_at
            self._last_poll[server.name] = server.polled_at
            for stats in server.models:
                key: Labels = (stats.server, stats.name, stats.version)
                present.add(key)
                hist = self._batches.setdefault(key, _Histogram([0] * (len(fam.BATCH_SIZE_BUCKETS) + 1)))
                interval = stats.interval
                # One poll's interval stays in every snapshot until the next poll: count it once.
                if not fresh or interval is None or interval.reset:
                    continue
                for size, executions in interval.batch_size_histogram.items():
                    if executions <= 0 or size <= 0:
                        continue
                    for i, bound in enumerate(fam.BATCH_SIZE_BUCKETS):
                        if size <= bound:
                            hist.buckets[i] += executions
                    hist.buckets[-1] += executions
                    hist.total_batch += size * executions
        for key in set(self._batches) - present:  # unloaded: its series go, as Triton's do
            del self._batches[key]

    def view(self) -> MetricsView:
        with self._lock:
            return MetricsView(
                self._snapshot,
                dict(self._events),
                {k: dict(v) for k, v in self._xids.items()},
                {k: (tuple(h.buckets), h.total_batch) for k, h in self._batches.items()},
            )


@dataclass(frozen=True, slots=True)
class MetricsView:
    """One consistent reading of `MetricsState` for one scrape."""

    snapshot: model.Snapshot | None
    events: dict[str, int]
    """Events since the daemon started, by kind."""
    xids: dict[tuple[str, str], dict[int, int]]
    """(gpu, uuid) → XID code → count since the daemon started."""
    batches: dict[Labels, tuple[tuple[int, ...], int]]
    """(server, model, version) → (cumulative bucket counts, sum of batch sizes)."""


# --------------------------------------------------------------------------- the collector


class _Families:
    """Rows of every family for one reading of the state, in catalog order.

    Two outputs from the same rows: prometheus_client families (`metrics`, for the Collector
    interface) and the text exposition itself (`text`). The second is written here rather than
    by `generate_latest` because it is the scrape's whole cost: generate_latest validates and
    re-escapes every label name of every sample and takes ~4x longer for the same bytes; a
    test checks that both parse to the same samples."""

    def __init__(self) -> None:
        self._rows: dict[str, list[tuple[tuple[str, ...], float]]] = {}
        self._histograms: dict[str, list[tuple[tuple[str, ...], tuple[int, ...], int]]] = {}

    def add(self, name: str, labels: Iterable[str], value: float | int | bool | None) -> None:
        if value is None or (isinstance(value, float) and math.isnan(value)):  # "not available"
            return
        rows = self._rows.get(name)
        if rows is None:
            rows = self._rows[name] = []
        rows.append((tuple(labels), float(value)))

    def add_histogram(self, name: str, labels: Labels, buckets: tuple[int, ...], total: int) -> None:
        self._histograms.setdefault(name, []).append((labels, buckets, total))

    def metrics(self) -> Iterator[Metric]:
        bounds = [str(b) for b in fam.BATCH_SIZE_BUCKETS] + ["+Inf"]
        for spec in fam.ALL:
            if spec.kind == "histogram":
                hist_rows = self._histograms.get(spec.name)
                if hist_rows:
                    hist = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
                    for labels, buckets, total in hist_rows:
                        pairs = list(zip(bounds, (float(b) for b in buckets), strict=True))
                        hist.add_metric(list(labels), pairs, float(total))
                    yield hist
                continue
            rows = self._rows.get(spec.name)
            if not rows:
                continue
            cls = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
            metric = cls(spec.base_name, spec.help, labels=spec.labels)
            for labels, value in rows:
                metric.add_metric(list(labels), value)
            yield metric

    def text(self, previous: LineCache | None = None) -> tuple[bytes, LineCache]:
        """The exposition, and the sample lines it wrote by family and labels. Most series keep
        their labels from one tick to the next and many keep their value, so passing the last
        render's lines back in leaves only the changed numbers to format."""
        known = previous or {}
        written: LineCache = {}
        parts: list[str] = []
        for spec in fam.ALL:
            if spec.kind == "histogram":
                for i, (labels, buckets, total) in enumerate(self._histograms.get(spec.name, ())):
                    if i == 0:
                        parts.append(_header(spec))
                    parts.append(_histogram_text(spec, labels, buckets, total))
                continue
            rows = self._rows.get(spec.name)
            if not rows:
                continue
            parts.append(_header(spec))
            line = _line_format(spec)
            before = known.get(spec.name, {})
            lines = written[spec.name] = {}
            for labels, value in rows:
                hit = before.get(labels)
                if hit is None:
                    prefix = line % tuple(map(_escape, labels))
                    hit = (value, prefix, prefix + _number(value))
                elif hit[0] != value:
                    hit = (value, hit[1], hit[1] + _number(value))
                lines[labels] = hit
                parts.append(hit[2])
        return "".join(parts).encode(), written


@functools.cache
def _header(spec: fam.Family) -> str:
    text = spec.help.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {spec.name} {text}\n# TYPE {spec.name} {spec.kind}\n"


@functools.cache
def _line_format(spec: fam.Family) -> str:
    """`name{a="%s",b="%s"} `: one %-format per family for a sample line's prefix."""
    if not spec.labels:
        return spec.name + " "
    return spec.name + "{" + ",".join(f'{label}="%s"' for label in spec.labels) + "} "


def _histogram_text(spec: fam.Family, labels: Labels, buckets: tuple[int, ...], total: int) -> str:
    inner = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(spec.labels, labels, strict=True))
    bounds = [*(str(b) for b in fam.BATCH_SIZE_BUCKETS), "+Inf"]
    lines = [f'{spec.name}_bucket{{{inner},le="{b}"}} {n}\n' for b, n in zip(bounds, buckets, strict=True)]
    lines.append(f"{spec.name}_count{{{inner}}} {buckets[-1]}\n")
    lines.append(f"{spec.name}_sum{{{inner}}} {total}\n")
    return "".join(lines)


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _number(value: float) -> str:
    """The value and the line's end: "3\\n", "0.25\\n", "+Inf\\n"."""
    if value.is_integer() and -1e15 < value < 1e15:
        return f"{int(value)}\n"
    if value == math.inf:
        return "+Inf\n"
    if value == -math.inf:
        return "-Inf\n"
    return f"{value!r}\n"


class SnapshotCollector(Collector):
    """prometheus_client collector: every gpuwatch family, from a `MetricsState`."""

    def __init__(self, state: MetricsState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        yield from build(self._state.view()).metrics()


def build(view: MetricsView) -> _Families:
    """Every family's rows for one reading of the state."""
    snapshot = view.snapshot
    out = _Families()
    source = snapshot.node.source if snapshot else ""
    out.add(fam.PREFIX + "build_info", (__version__, source), 1)
    if snapshot is not None:
        _daemon(out, snapshot, view.events)
        _gpus(out, snapshot, view.xids)
        _processes(out, snapshot.processes)
        _triton(out, snapshot.triton, view.batches)
    return out


def _label(value: object) -> str:
    return "" if value is None else str(value)


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _daemon(out: _Families, snapshot: model.Snapshot, events: dict[str, int]) -> None:
    p = fam.PREFIX
    node = snapshot.node
    if node.driver_version is not None:
        versions = (node.driver_version, node.cuda_driver_version, node.nvml_version)
        out.add(p + "driver_info", (_label(v) for v in versions), 1)
    out.add(p + "snapshot_timestamp_seconds", (), snapshot.timestamp)
    out.add(p + "nvml_up", (), int(snapshot.nvml_status is None))
    out.add(p + "gpus", (), len(snapshot.gpus))
    for c in snapshot.collectors:
        labels = (c.name,)
        out.add(p + "collector_success", labels, int(c.ok))
        out.add(p + "collector_stale", labels, int(c.stale))
        out.add(p + "collector_duration_seconds", labels, c.last_duration_seconds)
        out.add(p + "collector_cadence_seconds", labels, c.cadence_seconds)
        out.add(p + "collector_last_success_timestamp_seconds", labels, c.last_success_at)
        out.add(p + "collector_runs_total", labels, c.runs_count)
        out.add(p + "collector_errors_total", labels, c.errors_count)
    store = snapshot.store
    if store is not None:
        out.add(p + "store_up", (), int(store.ok))
        out.add(p + "store_write_errors_total", (), store.write_errors_count)
        out.add(p + "store_queue_length", (), store.queue_length)
        out.add(p + "store_size_bytes", (), store.size_bytes)
    for kind, count in events.items():
        out.add(p + "events_total", (kind,), count)


def _gpus(out: _Families, snapshot: model.Snapshot, xids: dict[tuple[str, str], dict[int, int]]) -> None:
    p = fam.PREFIX
    for info in snapshot.devices:
        g = (str(info.index), info.uuid)
        facts = (info.name, info.serial, info.pci_bus_id, info.architecture, info.cuda_compute_capability)
        out.add(p + "gpu_info", (*g, *(_label(v) for v in facts)), 1)
        out.add(p + "gpu_power_limit_default_watts", g, info.power_limit_default_watts)
        out.add(p + "gpu_power_limit_max_watts", g, info.power_limit_max_watts)
        out.add(p + "gpu_sm_clock_max_hertz", g, _mhz(info.max_sm_clock_mhz))
        out.add(p + "gpu_memory_clock_max_hertz", g, _mhz(info.max_memory_clock_mhz))
        out.add(p + "gpu_graphics_clock_max_hertz", g, _mhz(info.max_graphics_clock_mhz))
        out.add(p + "gpu_temperature_slowdown_celsius", g, info.temperature_slowdown_celsius)
        out.add(p + "gpu_temperature_shutdown_celsius", g, info.temperature_shutdown_celsius)
        out.add(p + "gpu_ecc_enabled", g, _flag(info.ecc_enabled))
        out.add(p + "gpu_mig_enabled", g, _flag(info.mig_enabled))
        out.add(p + "gpu_persistence_mode_enabled", g, _flag(info.persistence_mode_enabled))
        out.add(p + "gpu_pcie_link_generation_max", g, info.pcie_link_generation)
        out.add(p + "gpu_pcie_link_width_max", g, info.pcie_link_width)
        out.add(p + "gpu_nvlink_links", g, info.nvlink_link_count)
        out.add(p + "gpu_gpm_supported", g, _flag(info.gpm_supported))
    for s in snapshot.gpus:
        g = (str(s.index), s.uuid)
        out.add(p + "gpu_up", g, int(s.state == model.GpuState.OK))
        out.add(p + "gpu_state", (*g, s.state.value), 1)
        for field in fam.GPU_SAMPLE:
            source = s.gpm if field.gpm else s
            if source is None:
                continue
            value = getattr(source, field.field)
            if value is not None:
                out.add(field.family.name, g, float(value) * field.scale)
        mask = s.clock_event_reasons_mask
        if mask is not None:
            for reason in fam.CLOCK_EVENTS:
                out.add(reason.family.name, g, int(bool(mask & reason.bit)))
    for (gpu, uuid), counts in sorted(xids.items()):
        for code, count in sorted(counts.items()):
            out.add(p + "gpu_xid_errors_total", (gpu, uuid, str(code)), count)


def _mhz(value: int | None) -> float | None:
    return None if value is None else value * 1e6


def _processes(out: _Families, processes: tuple[model.ProcessSample, ...]) -> None:
    p = fam.PREFIX
    for proc in processes:
        container = proc.container_id[:CONTAINER_ID_CHARS] if proc.container_id else None
        labels = tuple(
            _label(v)
            for v in (
                proc.gpu_index,
                proc.gpu_uuid,
                proc.pid,
                proc.name,
                proc.user,
                container,
                proc.triton_server,
            )
        )
        out.add(p + "process_gpu_memory_bytes", labels, proc.used_memory_bytes)
        out.add(p + "process_sm_utilization_ratio", labels, proc.sm_utilization_ratio)
        out.add(p + "process_memory_utilization_ratio", labels, proc.memory_utilization_ratio)
        out.add(p + "process_encoder_utilization_ratio", labels, proc.encoder_utilization_ratio)
        out.add(p + "process_decoder_utilization_ratio", labels, proc.decoder_utilization_ratio)
        out.add(p + "process_start_time_seconds", labels, proc.started_at)


_INTERVAL_GAUGES = (
    "requests_per_second",
    "inferences_per_second",
    "executions_per_second",
    "failures_per_second",
    "average_batch_size",
    "batch_fill_ratio",
    "preferred_batch_ratio",
    "average_request_seconds",
    "average_queue_seconds",
    "average_compute_input_seconds",
    "average_compute_infer_seconds",
    "average_compute_output_seconds",
    "queue_share_ratio",
    "queue_to_compute_ratio",
    "queue_delay_ratio",
    "mean_queue_depth",
    "cache_hit_ratio",
)


def _triton(
    out: _Families,
    servers: tuple[model.TritonServerStatus, ...],
    batches: dict[Labels, tuple[tuple[int, ...], int]],
) -> None:
    p = fam.PREFIX
    for server in servers:
        s = (server.name,)
        if server.state != model.ServerState.ABSENT:
            out.add(p + "triton_up", s, int(server.state == model.ServerState.UP))
        out.add(p + "triton_state", (server.name, server.state.value), 1)
        if server.version is not None:
            out.add(p + "triton_info", (server.name, server.version), 1)
        out.add(p + "triton_poll_duration_seconds", s, server.poll_seconds)
        out.add(p + "triton_last_poll_timestamp_seconds", s, server.polled_at)
        for stats in server.models:
            _model(out, stats, batches.get((stats.server, stats.name, stats.version)))


def _model(out: _Families, m: model.ModelStats, batches: tuple[tuple[int, ...], int] | None) -> None:
    p = fam.PREFIX
    k = (m.server, m.name, m.version)
    out.add(p + "model_up", k, int(m.state == model.ModelState.READY))
    if m.state is not None:
        out.add(p + "model_state", (*k, m.state), 1)
    out.add(p + "model_info", (*k, _label(m.backend), _label(m.platform), _label(m.instance_kind)), 1)
    for gpu in m.gpu_indexes:
        out.add(p + "model_gpu_info", (*k, str(gpu)), 1)
    out.add(p + "model_max_batch_size", k, m.max_batch_size)
    out.add(p + "model_instances", k, m.instance_count)
    out.add(p + "model_max_queue_delay_seconds", k, m.max_queue_delay_seconds)
    out.add(p + "model_pending_requests", k, m.pending_requests)
    out.add(p + "model_last_inference_timestamp_seconds", k, m.last_inference_at)
    t = m.totals
    out.add(p + "model_request_success_total", k, t.request_success_count)
    out.add(p + "model_request_failure_total", k, t.request_failure_count)
    for reason, count in sorted(t.failure_count_by_reason.items()):
        out.add(p + "model_request_failure_by_reason_total", (*k, reason), count)
    out.add(p + "model_inference_total", k, t.inference_count)
    out.add(p + "model_execution_total", k, t.execution_count)
    out.add(p + "model_cache_hit_total", k, t.cache_hit_count)
    out.add(p + "model_cache_miss_total", k, t.cache_miss_count)
    interval = m.interval
    if interval is not None:
        for name in _INTERVAL_GAUGES:
            out.add(f"{p}model_{name}", k, getattr(interval, name))
        for reason, rate in sorted(interval.failures_per_second_by_reason.items()):
            out.add(p + "model_failures_per_second_by_reason", (*k, reason), rate)
    if batches is not None:
        out.add_histogram(p + "model_batch_size", k, *batches)
    for metric, value in sorted(m.llm_metrics.items()):
        out.add(p + "model_llm_value", (*k, metric), value)


# --------------------------------------------------------------------------- rendering


class MetricsExporter:
    """Renders the text once per state change and serves those bytes until the next change.

    Rendering ahead: a scraper (Prometheus) comes back at a steady interval, so the exporter
    remembers each client's last scrape and interval; when a tick lands shortly before a
    client's next scrape is due (`after_tick`), a background thread renders that tick at once
    and the scrape is answered from the cache. Ticks nobody will scrape are never rendered;
    a scrape that arrives unannounced renders on the spot, and one that arrives while a newer
    tick is being rendered gets the previous tick's text (one tick old) instead of waiting."""

    def __init__(
        self,
        state: MetricsState,
        *,
        tick_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.registry = CollectorRegistry(auto_describe=False)
        """The same families through prometheus_client, for anything that wants a registry."""
        self.registry.register(SnapshotCollector(state))
        self.renders = 0
        self._tick = tick_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[int, bytes] | None = None
        self._lines: LineCache = {}
        self._scrapers: dict[str, tuple[float, float | None]] = {}
        self._scrapers_lock = threading.Lock()
        self._ahead = threading.Event()
        self._worker: threading.Thread | None = None

    def render(self) -> bytes:
        generation = self.state.generation
        cached = self._cached
        if cached is not None and cached[0] == generation:
            return cached[1]
        if not self._lock.acquire(blocking=cached is None):
            # A newer tick is being rendered right now (ahead of this scrape, or for another
            # one): answer with the previous tick's text rather than wait for it.
            return cached[1] if cached is not None else self.render()
        try:
            cached = self._cached
            if cached is not None and cached[0] == generation:
                return cached[1]
            body, self._lines = build(self.state.view()).text(self._lines)
            self._cached = (generation, body)
            self.renders += 1
            return body
        finally:
            self._lock.release()

    # -- rendering ahead of a scrape -------------------------------------------------------------

    def note_scrape(self, client: str) -> None:
        """A scrape from `client` (its address) arrived now."""
        now = self._clock()
        with self._scrapers_lock:
            last = self._scrapers.pop(client, None)
            if len(self._scrapers) >= MAX_SCRAPERS:
                del self._scrapers[next(iter(self._scrapers))]  # the least recently seen
            self._scrapers[client] = (now, now - last[0] if last else None)

    def scrape_due(self) -> bool:
        """Some client's next scrape should come before the next tick (or has just been due)."""
        if not self._tick:
            return False
        now = self._clock()
        with self._scrapers_lock:
            scrapers = list(self._scrapers.values())
        for last, interval in scrapers:
            if interval and interval > 0 and now - self._tick <= last + interval < now + self._tick:
                return True
        return False

    def after_tick(self, snapshot: model.Snapshot) -> None:
        """Subscribe after `MetricsState.observe`: renders this tick in the background if due."""
        if not self.scrape_due():
            return
        if self._worker is None:
            self._worker = threading.Thread(target=self._render_ahead, name="metrics-render", daemon=True)
            self._worker.start()
        self._ahead.set()

    def _render_ahead(self) -> None:
        while True:
            self._ahead.wait()
            self._ahead.clear()
            try:
                self.render()
            except Exception:
                log.exception("rendering /metrics ahead of a scrape failed")
