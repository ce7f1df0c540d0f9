"""Named time series over snapshots, and the history interface every reader of history uses.

A series is a figure of one entity over time: `gpu_power_watts{gpu="0"}`,
`model_requests_per_second{server="local",model="resnet",version="1"}`. This module says which
series exist (`CATALOG`), how each is read out of a snapshot (`extract`), and what asking for
history looks like (`History`). The SQLite store implements `History` on disk; `MemoryHistory`
implements it over recent snapshots in memory, for the in-process TUI and for tests of readers.

Series names are gpuwatch's metric names without the `gpuwatch_` prefix, so `gpuwatch query
gpu_power_watts` and the Prometheus metric `gpuwatch_gpu_power_watts` are the same figure.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any, Protocol

from gpuwatch import model
from gpuwatch.catalog import nvml_codes


class Entity:
    GPU = "gpu"
    MODEL = "model"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    name: str
    entity: str
    """"gpu" (labels gpu, uuid), "model" (server, model, version) or "server" (server)."""
    description: str


@dataclass(frozen=True, slots=True)
class SeriesKey:
    name: str
    labels: tuple[tuple[str, str], ...]

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)

    def __str__(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.name}{{{inner}}}"


@dataclass(frozen=True, slots=True)
class Point:
    """One bucket of a series: the mean, and the extremes within the bucket."""

    timestamp: float
    mean: float
    minimum: float
    maximum: float


@dataclass(frozen=True, slots=True)
class SeriesData:
    key: SeriesKey
    resolution_seconds: float
    """The width of each point's bucket: 1 for raw seconds, 60 for the minute tier, …"""
    points: tuple[Point, ...]


class UnknownSeriesError(KeyError):
    """A series name that is not in the catalog."""


class History(Protocol):
    """What readers of history (JSON API, TUI, `gpuwatch query`) ask of a history source."""

    def query(
        self,
        name: str,
        match: dict[str, str],
        start: float,
        end: float,
        points: int,
    ) -> list[SeriesData]:
        """Every series called `name` whose labels include `match`, between `start` and
        `end`, downsampled to at most `points` buckets (the coarsest stored resolution that
        still gives that many). Raises UnknownSeriesError for a name not in CATALOG."""
        ...

    def events(
        self,
        start: float,
        end: float,
        kinds: Iterable[model.EventKind] | None = None,
        limit: int = 1000,
    ) -> list[model.Event]:
        """Events in [start, end], newest first."""
        ...


# --------------------------------------------------------------------------- the catalog

_GPU_FIELDS_SKIPPED = {
    "index",
    "uuid",
    "state",
    "state_reason",
    "clock_event_reasons",
    "clock_event_reasons_mask",
    "gpm",
}
_GPM_FIELDS_SKIPPED = {"interval_seconds"}
_MODEL_INTERVAL_SKIPPED = {
    "interval_seconds",
    "reset",
    "reset_reason",
    "failures_per_second_by_reason",
    "batch_size_histogram",
}

Extractor = Callable[[Any], float | None]


def _field_getter(name: str) -> Extractor:
    def get(obj: Any) -> float | None:
        value = getattr(obj, name)
        if value is None:
            return None
        return float(value)

    return get


def _gpm_getter(name: str) -> Extractor:
    def get(sample: model.GpuSample) -> float | None:
        if sample.gpm is None:
            return None
        value = getattr(sample.gpm, name)
        return None if value is None else float(value)

    return get


def _interval_getter(name: str) -> Extractor:
    def get(stats: model.ModelStats) -> float | None:
        if stats.interval is None:
            return None
        value = getattr(stats.interval, name)
        return None if value is None else float(value)

    return get


def _reason_getter(bit: int) -> Extractor:
    def get(sample: model.GpuSample) -> float | None:
        mask = sample.clock_event_reasons_mask
        return None if mask is None else float(bool(mask & bit))

    return get


def _numeric(tp: Any) -> bool:
    text = str(tp)
    return any(t in text for t in ("int", "float", "bool")) and "tuple" not in text and "dict" not in text


def _build_catalog() -> dict[str, tuple[SeriesInfo, Extractor]]:
    catalog: dict[str, tuple[SeriesInfo, Extractor]] = {}

    def add(name: str, entity: str, description: str, getter: Extractor) -> None:
        catalog[name] = (SeriesInfo(name, entity, description), getter)

    add(
        "gpu_up",
        Entity.GPU,
        "1 when the GPU answers, 0 when lost, hung or NVML is unavailable",
        lambda s: 1.0 if s.state == model.GpuState.OK else 0.0,
    )
    for f in fields(model.GpuSample):
        if f.name not in _GPU_FIELDS_SKIPPED and _numeric(f.type):
            add(f"gpu_{f.name}", Entity.GPU, f.name.replace("_", " "), _field_getter(f.name))
    for f in fields(model.GpmActivity):
        # GPM's PCIe and NVLink rates are already the sample's own pcie_*/nvlink_* fields.
        if f.name not in _GPM_FIELDS_SKIPPED and not f.name.startswith(("pcie", "nvlink")):
            add(f"gpu_{f.name}", Entity.GPU, f"GPM {f.name.replace('_', ' ')}", _gpm_getter(f.name))
    for reason in nvml_codes.CLOCK_EVENT_REASONS:
        if reason.slows_work:
            add(
                f"gpu_clock_event_{reason.name}",
                Entity.GPU,
                f"1 while the clocks are held down by: {reason.words}",
                _reason_getter(reason.bit),
            )
    add(
        "model_pending_requests",
        Entity.MODEL,
        "requests waiting in the queue now",
        _field_getter("pending_requests"),
    )
    add(
        "model_up",
        Entity.MODEL,
        "1 when the model version is READY",
        lambda m: 1.0 if m.state == model.ModelState.READY else 0.0,
    )
    for f in fields(model.ModelInterval):
        if f.name not in _MODEL_INTERVAL_SKIPPED:
            add(f"model_{f.name}", Entity.MODEL, f.name.replace("_", " "), _interval_getter(f.name))
    add(
        "triton_up",
        Entity.SERVER,
        "1 when the Triton server answers",
        lambda s: 1.0 if s.state == model.ServerState.UP else 0.0,
    )
    return catalog


_CATALOG = _build_catalog()
CATALOG: tuple[SeriesInfo, ...] = tuple(info for info, _ in _CATALOG.values())


def info(name: str) -> SeriesInfo:
    try:
        return _CATALOG[name][0]
    except KeyError:
        raise UnknownSeriesError(name) from None


def gpu_labels(sample: model.GpuSample) -> tuple[tuple[str, str], ...]:
    return (("gpu", str(sample.index)), ("uuid", sample.uuid))


def model_labels(stats: model.ModelStats) -> tuple[tuple[str, str], ...]:
    return (("server", stats.server), ("model", stats.name), ("version", stats.version))


def extract(
    snapshot: model.Snapshot, names: Iterable[str] | None = None
) -> Iterator[tuple[SeriesKey, float]]:
    """Every (series, value) a snapshot holds, or those of the series in `names`. A None
    value is no point, never a 0."""
    chosen = _CATALOG.items() if names is None else [(n, _CATALOG[n]) for n in names if n in _CATALOG]
    for name, (series_info, getter) in chosen:
        if series_info.entity == Entity.GPU:
            for gpu in snapshot.gpus:
                value = getter(gpu)
                if value is not None and not math.isnan(value):
                    yield SeriesKey(name, gpu_labels(gpu)), value
        elif series_info.entity == Entity.MODEL:
            for server in snapshot.triton:
                for stats in server.models:
                    value = getter(stats)
                    if value is not None and not math.isnan(value):
                        yield SeriesKey(name, model_labels(stats)), value
        else:
            for server in snapshot.triton:
                value = getter(server)
                if value is not None:
                    yield SeriesKey(name, (("server", server.name),)), value


def matches(key: SeriesKey, match: dict[str, str]) -> bool:
    labels = dict(key.labels)
    return all(labels.get(k) == v for k, v in match.items())


def downsample(
    raw: list[tuple[float, float]], start: float, end: float, points: int, resolution: float
) -> tuple[float, tuple[Point, ...]]:
    """Bucket (timestamp, value) pairs into at most `points` buckets of whole resolutions."""
    span = max(end - start, resolution)
    width = max(resolution, math.ceil(span / max(1, points) / resolution) * resolution)
    buckets: dict[float, list[float]] = {}
    for ts, value in raw:
        if start <= ts <= end:
            buckets.setdefault(math.floor(ts / width) * width, []).append(value)
    out = tuple(Point(b, sum(v) / len(v), min(v), max(v)) for b, v in sorted(buckets.items()))
    return width, out


# --------------------------------------------------------------------------- in memory


class MemoryHistory:
    """History of the last `keep_seconds` of snapshots, in memory (the in-process TUI's)."""

    def __init__(self, keep_seconds: float = 3600.0, keep_events: int = 1000) -> None:
        self._keep = keep_seconds
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, deque[tuple[float, float]]] = {}
        self._events: deque[model.Event] = deque(maxlen=keep_events)

    def add(self, snapshot: model.Snapshot) -> None:
        """Subscribe this to the engine: `engine.subscribe(history.add)`."""
        cutoff = snapshot.timestamp - self._keep
        with self._lock:
            for key, value in extract(snapshot):
                ring = self._series.get(key)
                if ring is None:
                    ring = self._series[key] = deque()
                ring.append((snapshot.timestamp, value))
                while ring and ring[0][0] < cutoff:
                    ring.popleft()
            self._events.extend(snapshot.events)

    def query(
        self, name: str, match: dict[str, str], start: float, end: float, points: int
    ) -> list[SeriesData]:
        info(name)
        out = []
        with self._lock:
            selected = [(k, list(v)) for k, v in self._series.items() if k.name == name and matches(k, match)]
        for key, raw in sorted(selected, key=lambda kv: kv[0].labels):
            times = [t for t, _ in raw]
            lo, hi = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
            width, pts = downsample(raw[lo:hi], start, end, points, 1.0)
            out.append(SeriesData(key, width, pts))
        return out

    def events(
        self, start: float, end: float, kinds: Iterable[model.EventKind] | None = None, limit: int = 1000
    ) -> list[model.Event]:
        wanted = set(kinds) if kinds is not None else None
        with self._lock:
            chosen = [
                e
                for e in self._events
                if start <= e.timestamp <= end and (wanted is None or e.kind in wanted)
            ]
        chosen.sort(key=lambda e: e.timestamp, reverse=True)
        return chosen[:limit]


def entity_series(entity: str) -> tuple[str, ...]:
    """The series of one entity kind ("gpu", "model", "server"), in catalog order."""
    return tuple(name for name, _ in _GETTERS_BY_ENTITY.get(entity, ()))


def entity_values(
    snapshot: model.Snapshot,
) -> Iterator[tuple[str, tuple[tuple[str, str], ...], tuple[float | None, ...]]]:
    """The wide form of `extract`: each entity of a snapshot once, as (entity kind, labels,
    values in the order of `entity_series(kind)`), with the same values as `extract` and None
    where `extract` gives no point. For stores that keep one row per entity and tick."""
    by_entity = _GETTERS_BY_ENTITY
    for gpu in snapshot.gpus:
        yield Entity.GPU, gpu_labels(gpu), _values(by_entity[Entity.GPU], gpu, skip_nan=True)
    for server in snapshot.triton:
        for stats in server.models:
            yield Entity.MODEL, model_labels(stats), _values(by_entity[Entity.MODEL], stats, skip_nan=True)
    for server in snapshot.triton:
        yield Entity.SERVER, (("server", server.name),), _values(by_entity[Entity.SERVER], server, False)


_GETTERS_BY_ENTITY: dict[str, list[tuple[str, Extractor]]] = {}
for _name, (_info, _getter) in _CATALOG.items():
    _GETTERS_BY_ENTITY.setdefault(_info.entity, []).append((_name, _getter))


def _values(getters: list[tuple[str, Extractor]], obj: Any, skip_nan: bool) -> tuple[float | None, ...]:
    if skip_nan:
        return tuple(None if (v := getter(obj)) is None or math.isnan(v) else v for _, getter in getters)
    return tuple(getter(obj) for _, getter in getters)
