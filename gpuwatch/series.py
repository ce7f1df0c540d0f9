"""Named time series over snapshots, and the history interface every reader of history uses.

A series is a figure of one entity over time: `gpu_power_watts{gpu="0"}`,
`model_requests_per_second{server="local",model="resnet",version="1"}`. The figures the history
keeps are declared in the catalog (`gpuwatch.catalog.index.HISTORY`, each with a `stored_scale`);
this module is the history's view of them: which series exist (`CATALOG`), how each is read out
of a snapshot (`extract`, and its wide form `entity_values` for the store), which labels a query
may filter by (`check_query`, for the CLI and the API alike), and what asking for history looks
like (`History`). The SQLite store implements `History` on disk; `MemoryHistory` implements it
over recent snapshots in memory, for the in-process TUI and for tests of readers.

Place in the flow: catalog → **series** → store (columns, rows), JSON API, CLI, TUI.

Series names are gpuwatch's metric names without the `gpuwatch_` prefix, so `gpuwatch query
gpu_power_watts` and the Prometheus metric `gpuwatch_gpu_power_watts` are the same figure
(`Figure.metric` names the family where the two differ: clocks in hertz, `_total` counters).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from gpuwatch import model
from gpuwatch.catalog.figures import Figure, as_number
from gpuwatch.catalog.index import HISTORY, HISTORY_BY_KIND, HISTORY_KINDS
from gpuwatch.catalog.reading import Reading


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


# --------------------------------------------------------------------------- the catalog's series

CATALOG: tuple[Figure[Any], ...] = HISTORY
"""Every series, in catalog order."""
KINDS: tuple[str, ...] = tuple(kind.name for kind in HISTORY_KINDS)
"""The entity kinds of series ("gpu", "mig", "model", "server")."""
_BY_NAME: dict[str, Figure[Any]] = {f.name: f for f in HISTORY}


def info(name: str) -> Figure[Any]:
    """The figure behind the series called `name`; UnknownSeriesError for any other name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownSeriesError(name) from None


class LabelError(ValueError):
    """A query filters a series by a label its entity kind does not have (`gpu` for a model series)."""

    def __init__(self, label: str, figure: Figure[Any]) -> None:
        super().__init__(f"{label} does not apply to {figure.name}, a {figure.entity.name} series")
        self.label = label
        self.figure = figure


def check_query(name: str, labels: Iterable[str]) -> Figure[Any]:
    """The series `name`, when every label in `labels` is one of its entity kind's: what
    `gpuwatch query` and /api/v1/history both check before asking the history. Raises
    UnknownSeriesError for a name not in the catalog, LabelError for a label that does not apply."""
    figure = info(name)
    for label in labels:
        if label not in figure.labels:
            raise LabelError(label, figure)
    return figure


def extract(
    snapshot: model.Snapshot, names: Iterable[str] | None = None
) -> Iterator[tuple[SeriesKey, float]]:
    """Every (series, value) a snapshot holds, or those of the series in `names`. A None
    value is no point, never a 0."""
    chosen = HISTORY if names is None else [_BY_NAME[n] for n in names if n in _BY_NAME]
    reading = Reading(snapshot)
    objects: dict[str, list[tuple[tuple[tuple[str, str], ...], Any]]] = {}
    for figure in chosen:
        kind, read = figure.entity, figure.read
        items = objects.get(kind.name)
        if items is None:
            items = objects[kind.name] = [(kind.label_pairs(obj), obj) for obj in kind.each(reading)]
        for labels, obj in items:
            value = as_number(read(obj))
            if value is not None:
                yield SeriesKey(figure.name, labels), value


def extract_weighted(
    snapshot: model.Snapshot, repeated: frozenset[str] = frozenset()
) -> Iterator[tuple[SeriesKey, float, float | None]]:
    """`extract` with each value's weight (`Figure.weight`: the interval's requests, seconds, …),
    1.0 for a figure whose samples weigh alike and None for a weighted value whose weight the
    snapshot lacks (it then counts in a bucket's extremes, not in its mean); 0 for the
    entities of a server in `repeated` (`repeated_servers`)."""
    reading = Reading(snapshot)
    objects: dict[str, list[tuple[tuple[tuple[str, str], ...], Any]]] = {}
    for figure in HISTORY:
        kind, read, weight = figure.entity, figure.read, figure.weight
        items = objects.get(kind.name)
        if items is None:
            items = objects[kind.name] = [(kind.label_pairs(obj), obj) for obj in kind.each(reading)]
        for labels, obj in items:
            value = as_number(read(obj))
            if value is not None:
                w = 1.0 if weight is None else as_number(weight.read(obj))
                if (
                    weight is not None
                    and w is not None
                    and repeated
                    and dict(labels).get("server") in repeated
                ):
                    w = 0.0
                yield SeriesKey(figure.name, labels), value, w


def entity_series(kind: str) -> tuple[str, ...]:
    """The series of one entity kind ("gpu", "mig", "model", "server"), in catalog order."""
    return tuple(f.name for f in HISTORY_BY_KIND.get(kind, ()))


def entity_values(
    snapshot: model.Snapshot, repeated: frozenset[str] = frozenset()
) -> Iterator[tuple[str, tuple[tuple[str, str], ...], tuple[float | None, ...]]]:
    """The wide form of `extract`: each entity of a snapshot once, as (entity kind, labels,
    values in the order of `entity_series(kind)`, then the weights in `entity_weights(kind)`
    order), with the same values as `extract` and None where `extract` gives no point. For
    stores that keep one row per entity and tick. The weights of the entities of a server in
    `repeated` (`repeated_servers`: not polled again since the last snapshot, whose interval
    this one shows again) are 0: shown again, not counted again."""
    reading = Reading(snapshot)
    for kind in HISTORY_KINDS:
        readers = tuple(f.read for f in HISTORY_BY_KIND[kind.name])
        weights = _weight_readers(kind.name)
        for obj in kind.each(reading):
            labels = kind.label_pairs(obj)
            values = tuple(as_number(read(obj)) for read in readers)
            if weights and repeated and dict(labels).get("server") in repeated:
                weighed = tuple(None if as_number(read(obj)) is None else 0.0 for read in weights)
            else:
                weighed = tuple(as_number(read(obj)) for read in weights)
            yield kind.name, labels, values + weighed


def repeated_servers(polled: dict[str, float], snapshot: model.Snapshot) -> frozenset[str]:
    """The Triton servers of `snapshot` whose status is the one the last snapshot had (no poll
    finished in between: the same `polled_at`), given `polled`, each server's last `polled_at`,
    which this updates. Their intervals are shown again, and must not be counted again."""
    same = set()
    for server in snapshot.triton:
        if server.polled_at is not None and polled.get(server.name) == server.polled_at:
            same.add(server.name)
        if server.polled_at is not None:
            polled[server.name] = server.polled_at
    return frozenset(same)


def _weight_readers(kind: str) -> tuple[Any, ...]:
    weights = {f.weight.column: f.weight.read for f in HISTORY_BY_KIND.get(kind, ()) if f.weight is not None}
    return tuple(weights.values())


def entity_weights(kind: str) -> tuple[str, ...]:
    """The weights of one entity kind's series (`Weight.column`), each once, in catalog order:
    their order after the values in `entity_values`."""
    return tuple(
        dict.fromkeys(f.weight.column for f in HISTORY_BY_KIND.get(kind, ()) if f.weight is not None)
    )


def matches(key: SeriesKey, match: dict[str, str]) -> bool:
    labels = dict(key.labels)
    return all(labels.get(k) == v for k, v in match.items())


def bucket_grid(resolution: float, start: float, end: float, points: int) -> tuple[float, float]:
    """Where a query's buckets start and how wide they are: `origin` is `start` rounded down to
    a whole resolution, `width` the smallest whole multiple of the resolution at least
    span / points. Bucket k is [origin + k·width, origin + (k + 1)·width), except that the last,
    bucket points − 1, also takes what lies past it (at most one resolution, and the end of the
    range itself): never more than `points` buckets (`bucket_index`). A range aligned to its
    width (the TUI's, whose slots are on the epoch grid) has its buckets on its slots."""
    origin = math.floor(start / resolution) * resolution
    span = max(end - start, resolution)
    width = max(resolution, math.ceil(span / max(1, points) / resolution - 1e-9) * resolution)
    return origin, width


def bucket_index(timestamp: float, origin: float, width: float, points: int) -> int:
    return min(max(1, points) - 1, math.floor((timestamp - origin) / width))


def downsample(
    raw: list[tuple[float, float]] | list[tuple[float, float, float | None]],
    start: float,
    end: float,
    points: int,
    resolution: float,
) -> tuple[float, tuple[Point, ...]]:
    """Bucket (timestamp, value) or (timestamp, value, weight) tuples into at most `points`
    buckets of whole resolutions (`bucket_grid`). A bucket's mean is Σ(value × weight) / Σ weight (weight 1
    where none is given); a value without its weight (None) counts in the extremes only, and a
    bucket whose weights add up to 0 (every value in it shown again, not counted again) has the
    plain mean of its values."""
    origin, width = bucket_grid(resolution, start, end, points)
    buckets: dict[float, list[float]] = {}
    for item in raw:
        ts, value = item[0], item[1]
        weight = item[2] if len(item) > 2 else 1.0
        if start <= ts <= end:
            bucket = origin + bucket_index(ts, origin, width, points) * width
            acc = buckets.setdefault(bucket, [0.0, 0.0, value, value, 0.0, 0.0])
            if weight is not None:
                acc[0] += value * weight
                acc[1] += weight
                acc[4] += value
                acc[5] += 1
            acc[2], acc[3] = min(acc[2], value), max(acc[3], value)
    out = tuple(
        Point(b, total / weight if weight > 0 else plain / count, low, high)
        for b, (total, weight, low, high, plain, count) in sorted(buckets.items())
        if count
    )
    return width, out


# --------------------------------------------------------------------------- in memory


class MemoryHistory:
    """History of the last `keep_seconds` of snapshots, in memory (the in-process TUI's)."""

    def __init__(self, keep_seconds: float = 3600.0, keep_events: int = 1000) -> None:
        self._keep = keep_seconds
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, deque[tuple[float, float, float | None]]] = {}
        self._events: deque[model.Event] = deque(maxlen=keep_events)
        self._polled: dict[str, float] = {}

    def add(self, snapshot: model.Snapshot) -> None:
        """Subscribe this to the engine: `engine.subscribe(history.add)`."""
        cutoff = snapshot.timestamp - self._keep
        with self._lock:
            repeated = repeated_servers(self._polled, snapshot)
            for key, value, weight in extract_weighted(snapshot, repeated):
                ring = self._series.get(key)
                if ring is None:
                    ring = self._series[key] = deque()
                ring.append((snapshot.timestamp, value, weight))
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
            times = [item[0] for item in raw]
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
