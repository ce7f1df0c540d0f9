"""Prometheus /metrics: a custom collector over the engine's latest snapshot.

Place in the flow: engine → (subscription) `MetricsState.observe` → `SnapshotCollector.collect`
→ `MetricsExporter.render` → the HTTP server. As in prometheus_client's own collectors, the
collector yields families built from current state on each call; the state is the latest
snapshot plus what only a stream of snapshots can give (events and executed batch sizes counted
since the daemon started), fed by the engine's subscription. A scrape never calls NVML or
Triton. Every family is a figure of the catalog (`gpuwatch.catalog.index.ALL`, which
docs/metrics.md is rendered from): its rows are the figure's reader over its entity kind's
objects, and a value that is None is simply not exported.

The rendered text depends only on that state, so `MetricsExporter` renders once per new
snapshot and serves the same bytes to every scrape until the next tick; when a scraper's steady
rhythm says it will come before the next tick, that render happens ahead of it, off the
request path.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector, CollectorRegistry

from gpuwatch import __version__, model
from gpuwatch.catalog import dcgm, nvml_codes
from gpuwatch.catalog.figures import AnyFigure, Figure, HistogramFigure, Labels, as_number
from gpuwatch.catalog.index import ALL
from gpuwatch.catalog.reading import BATCH_SIZE_BUCKETS, BatchCounts, ModelKey, Reading, Tally

CONTENT_TYPE = CONTENT_TYPE_LATEST
MAX_SCRAPERS = 16
"""Clients whose scrape rhythm is remembered for rendering ahead."""

log = logging.getLogger("gpuwatch.metrics")

LineCache = dict[str, dict[Labels, tuple[float, str, str]]]
"""family → labels → (value, `name{labels} ` prefix, whole sample line)."""


# --------------------------------------------------------------------------- state fed by the engine


@dataclass(slots=True)
class _Histogram:
    buckets: list[int]
    """Executions with batch size ≤ each of BATCH_SIZE_BUCKETS, then +Inf."""
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
        self._last_xid: dict[tuple[str, str], int] = {}
        self._batches: dict[ModelKey, _Histogram] = {}
        self._last_poll: dict[str, float | None] = {}
        self.generation = 0
        """Changes whenever anything shown changes: the exporter's cache key."""

    def observe(self, snapshot: model.Snapshot) -> None:
        with self._lock:
            self._snapshot = snapshot
            for event in snapshot.events:
                self._events[event.kind.value] += 1
                if event.kind == model.EventKind.XID and event.code is not None:
                    gpu = "" if event.gpu_index is None else str(event.gpu_index)
                    self._xids.setdefault((gpu, event.gpu_uuid or ""), Counter())[event.code] += 1
                    self._last_xid[(gpu, event.gpu_uuid or "")] = event.code
            for info in snapshot.devices:
                counts = self._xids.setdefault((str(info.index), info.uuid), Counter())
                for code in nvml_codes.XIDS:
                    counts.setdefault(code, 0)
            self._count_batches(snapshot.triton)
            self.generation += 1

    def _count_batches(self, servers: tuple[model.TritonServerStatus, ...]) -> None:
        present: set[ModelKey] = set()
        for server in servers:
            fresh = self._last_poll.get(server.name, -1.0) != server.polled_at
            self._last_poll[server.name] = server.polled_at
            for stats in server.models:
                key: ModelKey = (stats.server, stats.name, stats.version)
                present.add(key)
                hist = self._batches.setdefault(key, _Histogram([0] * (len(BATCH_SIZE_BUCKETS) + 1)))
                interval = stats.interval
                # One poll's interval stays in every snapshot until the next poll: count it once.
                if not fresh or interval is None or interval.reset:
                    continue
                for size, executions in interval.batch_size_histogram.items():
                    if executions <= 0 or size <= 0:
                        continue
                    for i, bound in enumerate(BATCH_SIZE_BUCKETS):
                        if size <= bound:
                            hist.buckets[i] += executions
                    hist.buckets[-1] += executions
                    hist.total_batch += size * executions
        for key in set(self._batches) - present:  # unloaded: its series go, as Triton's do
            del self._batches[key]

    @property
    def has_snapshot(self) -> bool:
        """Whether a tick has been observed (before the first one /metrics answers 503)."""
        return self._snapshot is not None

    def view(self) -> Reading:
        """One consistent reading of the state, for one scrape."""
        with self._lock:
            tally = Tally(
                dict(self._events),
                {k: dict(v) for k, v in self._xids.items()},
                {k: BatchCounts(tuple(h.buckets), h.total_batch) for k, h in self._batches.items()},
                dict(self._last_xid),
            )
            return Reading(self._snapshot, tally, __version__)


# --------------------------------------------------------------------------- the collector


class _Families:
    """Rows of every family for one reading, in catalog order: each figure's reader over the
    objects of its entity kind.

    Two outputs from the same rows: prometheus_client families (`metrics`, for the Collector
    interface) and the text exposition itself (`text`). The second is written here rather than
    by `generate_latest` because it is the scrape's whole cost: generate_latest validates and
    re-escapes every label name of every sample and takes ~4x longer for the same bytes; a
    test checks that both parse to the same samples."""

    def __init__(self, reading: Reading, figures: tuple[AnyFigure, ...] = ALL) -> None:
        self._figures = figures
        self._rows: dict[str, list[tuple[Labels, float]]] = {}
        self._histograms: dict[str, list[tuple[Labels, BatchCounts]]] = {}
        objects: dict[str, list[tuple[Labels, Any, Labels]]] = {}
        for figure in figures:
            kind = figure.entity
            items = objects.get(kind.name)
            if items is None:
                key, context = kind.key, kind.context
                if context is None:
                    items = [(key(obj), obj, ()) for obj in kind.each(reading)]
                else:  # context labels come after every other label (`metric_labels`)
                    items = [(key(obj), obj, context(obj)) for obj in kind.each(reading)]
                objects[kind.name] = items
            if not items:
                continue
            if isinstance(figure, Figure):
                read, scale = figure.read, figure.metric_scale
                rows = [
                    (labels + ctx, v * scale)
                    for labels, obj, ctx in items
                    if (v := as_number(read(obj))) is not None
                ]
            elif isinstance(figure, HistogramFigure):
                counted = [(labels, c) for labels, obj, _ in items if (c := figure.read(obj)) is not None]
                if counted:
                    self._histograms[figure.metric] = counted
                continue
            else:
                each_row = figure.rows
                rows = [
                    (labels + extra + ctx, v)
                    for labels, obj, ctx in items
                    for extra, value in each_row(obj)
                    if (v := as_number(value)) is not None
                ]
            if rows:
                self._rows[figure.metric] = rows

    def metrics(self) -> Iterator[Metric]:
        for figure in self._figures:
            if isinstance(figure, HistogramFigure):
                hist_rows = self._histograms.get(figure.metric)
                if hist_rows:
                    bounds = [*(str(b) for b in figure.bounds), "+Inf"]
                    hist = HistogramMetricFamily(figure.metric, figure.help, labels=figure.labels)
                    for labels, counts in hist_rows:
                        pairs = list(zip(bounds, (float(b) for b in counts.buckets), strict=True))
                        hist.add_metric(list(labels), pairs, float(counts.batch_size_sum))
                    yield hist
                continue
            rows = self._rows.get(figure.metric)
            if not rows:
                continue
            if figure.entity.context_labels:
                yield _family_with_context(figure, rows)
                continue
            cls = CounterMetricFamily if figure.metric_type == "counter" else GaugeMetricFamily
            metric = cls(client_name(figure), figure.help, labels=figure.labels)
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
        for figure in self._figures:
            name = figure.metric
            if isinstance(figure, HistogramFigure):
                for i, (labels, counts) in enumerate(self._histograms.get(name, ())):
                    if i == 0:
                        parts.append(_HEADERS[name])
                    parts.append(_histogram_text(figure, labels, counts))
                continue
            rows = self._rows.get(name)
            if not rows:
                continue
            parts.append(_HEADERS[name])
            line = _LINE_FORMATS[name]
            before = known.get(name, {})
            lines = written[name] = {}
            for labels, value in rows:
                hit = before.get(labels)
                if hit is None:
                    prefix = line % tuple(map(_escape, labels)) if line else _prefix(figure, labels)
                    hit = (value, prefix, prefix + _number(value))
                elif hit[0] != value:
                    hit = (value, hit[1], hit[1] + _number(value))
                lines[labels] = hit
                parts.append(hit[2])
        return "".join(parts).encode(), written


def client_name(figure: AnyFigure) -> str:
    """The name prometheus_client wants: a counter's without `_total`."""
    return figure.metric.removesuffix("_total") if figure.metric_type == "counter" else figure.metric


def _header(figure: AnyFigure) -> str:
    text = figure.help.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {figure.metric} {text}\n# TYPE {figure.metric} {figure.metric_type}\n"


def _family_with_context(figure: AnyFigure, rows: list[tuple[Labels, float]]) -> Metric:
    """A family whose samples carry context labels only where known: label sets differ."""
    metric = Metric(client_name(figure), figure.help, figure.metric_type)
    sample_name = figure.metric
    for labels, value in rows:
        pairs = zip(figure.metric_labels, labels, strict=True)
        metric.add_sample(sample_name, {n: v for n, v in pairs if v or n in figure.labels}, value)
    return metric


def _prefix(figure: AnyFigure, labels: Labels) -> str:
    """A sample line's prefix where context labels may be left out (`EntityKind.context_labels`)."""
    key = figure.labels
    pairs = zip(figure.metric_labels, labels, strict=True)
    inner = ",".join(f'{n}="{_escape(v)}"' for n, v in pairs if v or n in key)
    return f"{figure.metric}{{{inner}}} "


def _line_format(figure: AnyFigure) -> str | None:
    """`name{a="%s",b="%s"} `: one %-format per family for a sample line's prefix; None for a
    family whose context labels are left out where unknown (`_prefix` writes each)."""
    if figure.entity.context_labels:
        return None
    if not figure.labels:
        return figure.metric + " "
    return figure.metric + "{" + ",".join(f'{label}="%s"' for label in figure.labels) + "} "


WITH_DCGM: tuple[AnyFigure, ...] = ALL + dcgm.FIGURES
"""Every family with `[metrics] dcgm_exporter_names` on: gpuwatch's, then dcgm-exporter's."""
_HEADERS = {f.metric: _header(f) for f in WITH_DCGM}
_LINE_FORMATS = {f.metric: _line_format(f) for f in WITH_DCGM}


def _histogram_text(figure: HistogramFigure[Any], labels: Labels, counts: BatchCounts) -> str:
    inner = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(figure.labels, labels, strict=True))
    bounds = [*(str(b) for b in figure.bounds), "+Inf"]
    name, buckets = figure.metric, counts.buckets
    lines = [f'{name}_bucket{{{inner},le="{b}"}} {n}\n' for b, n in zip(bounds, buckets, strict=True)]
    lines.append(f"{name}_count{{{inner}}} {buckets[-1]}\n")
    lines.append(f"{name}_sum{{{inner}}} {counts.batch_size_sum}\n")
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

    def __init__(self, state: MetricsState, figures: tuple[AnyFigure, ...] = ALL) -> None:
        self._state = state
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        yield from build(self._state.view(), self._figures).metrics()


def build(reading: Reading, figures: tuple[AnyFigure, ...] = ALL) -> _Families:
    """Every family's rows for one reading of the state (`figures`: ALL, or WITH_DCGM)."""
    return _Families(reading, figures)


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
        dcgm_names: bool = False,
    ) -> None:
        self.state = state
        self.figures = WITH_DCGM if dcgm_names else ALL
        """What /metrics serves: `dcgm_names` adds dcgm-exporter's families (catalog.dcgm)."""
        self.registry = CollectorRegistry(auto_describe=False)
        """The same families through prometheus_client, for anything that wants a registry."""
        self.registry.register(SnapshotCollector(state, self.figures))
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
            body, self._lines = build(self.state.view(), self.figures).text(self._lines)
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
