"""What a figure declaration holds, and the helpers every declaration is written with.

Place in the flow: the declarations (`catalog.daemon`, `catalog.gpu`, `catalog.processes`,
`catalog.triton`, collected in `catalog.index`) are records of the types below; /metrics
(`serve.metrics`), the history (`series`), the store's columns (`store.figures`), the API's
and the CLI's label checks and docs/metrics.md read them and nothing else.

A figure is one quantity of one entity kind: how it is read (a typed function of the entity's
object), its unit and meaning, its Prometheus name, type and scale, and — for a figure the
history keeps — the integer scale of its column. Three shapes:

- `Figure`: one value per entity (`gpu_power_watts{gpu,uuid}`); the only shape the history
  can keep, as a column of its entity kind's tables named after the figure. A kept figure that
  is a ratio of sums over an interval (a mean queue time, a rate) declares its `weight`: the
  interval's denominator (its requests, its seconds), which the store keeps beside it, so that
  every longer window's value is Σ(value × weight) / Σ weight, the ratio of the sums, never a
  mean of means;
- `LabelledFigure`: several values per entity told apart by more labels (`gpu_state{state}`,
  `model_llm_value{metric}`, the `*_info` families), for /metrics only;
- `HistogramFigure`: a Prometheus histogram (`model_batch_size`), for /metrics only.

A reader returns None for "not available": no point in history, NULL in the store, absent from
/metrics. Never 0.

The declaring modules write their figures as unannotated tuple literals and annotate only the
tuples built from them: the annotation `tuple[AnyFigure, ...]` on a literal would let mypy take
every reader's argument as Any and stop checking the readers against the data model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from gpuwatch.catalog.entities import EntityKind
from gpuwatch.catalog.reading import BatchCounts

T = TypeVar("T")

Value = float | int | bool | None
Labels = tuple[str, ...]
MetricType = Literal["gauge", "counter"]

PREFIX = "gpuwatch_"
"""Prometheus names are the figure's name with this prefix (counters end in `_total`)."""

# --------------------------------------------------------------------------- stored precision
# A kept figure's column holds round(value × scale) as an integer: at or below what the source
# itself can tell, since SQLite stores a small integer in 1–4 bytes where a float takes 8.
WHOLE = 1
"""Whole units: bytes, bytes per second, MHz, counts, 0/1 flags, P-states."""
HUNDREDTHS = 100
"""0.01 °C."""
THOUSANDTHS = 1_000
"""Milliwatts and millijoules (what NVML reports), 0.001 per second for rates."""
RATIO_STEPS = 10_000
"""0.01 % of a 0–1 ratio (NVML's utilizations are whole percent)."""
TENTH_MICROSECONDS = 10_000_000
"""0.1 µs, for Triton's latencies (it reports whole microseconds)."""
MILLIONTHS = 1_000_000
"""Six decimals, for a figure whose unit says nothing (an average batch size)."""


@dataclass(frozen=True, slots=True)
class Weight(Generic[T]):
    """What one value of a weighted figure stands for: the denominator of its ratio over its
    interval (requests, executions, seconds), read from the same object. The raw tier stores
    round(weight × scale) once per row in `column`, however many figures share the weight."""

    name: str
    """In words, for docs/metrics.md: "requests", "seconds"."""
    column: str
    """The raw tier's column: `weight_` and the weight's unit ("weight_ms", "weight_requests")."""
    read: Callable[[T], Value]
    scale: int


@dataclass(frozen=True, slots=True)
class Figure(Generic[T]):
    """One value per entity: a gauge or a counter, and a history series when `stored_scale` is set."""

    name: str
    """The series name (`gpuwatch query NAME`) and the store's column; the Prometheus name
    without `gpuwatch_` unless `metric` says otherwise."""
    entity: EntityKind[T]
    read: Callable[[T], Value]
    help: str
    metric: str
    """The exported name: `gpuwatch_` and the name, or what the declaration says."""
    unit: str = ""
    """The exported unit, in words ("watts", "bytes per second"); "" for ratios, counts, flags."""
    metric_type: MetricType = "gauge"
    metric_scale: float = 1.0
    """Exported value = read value × this (MHz → hertz is 1e6)."""
    stored_scale: int | None = None
    """Stored integer = round(read value × this); None for a figure the history does not keep."""
    weight: Weight[T] | None = None
    """For a kept ratio: what each value weighs when a window is averaged; None for a figure
    whose samples weigh alike (one per tick)."""

    @property
    def labels(self) -> Labels:
        return self.entity.labels

    @property
    def metric_labels(self) -> Labels:
        """`labels`, then the entity's context labels (each on a sample only where known)."""
        return self.entity.labels + self.entity.context_labels


@dataclass(frozen=True, slots=True)
class LabelledFigure(Generic[T]):
    """Several values per entity, told apart by `extra_labels`: /metrics only."""

    name: str
    entity: EntityKind[T]
    extra_labels: Labels
    rows: Callable[[T], Iterable[tuple[Labels, Value]]]
    """(values of the extra labels, value) for each row of one entity."""
    help: str
    metric: str
    unit: str = ""
    metric_type: MetricType = "gauge"
    stored_scale: None = None

    @property
    def labels(self) -> Labels:
        return self.entity.labels + self.extra_labels

    @property
    def metric_labels(self) -> Labels:
        return self.labels + self.entity.context_labels


@dataclass(frozen=True, slots=True)
class HistogramFigure(Generic[T]):
    """A Prometheus histogram per entity: /metrics only."""

    name: str
    entity: EntityKind[T]
    read: Callable[[T], BatchCounts | None]
    bounds: tuple[int, ...]
    """The buckets' upper bounds (then +Inf), as `BatchCounts.buckets` counts them."""
    help: str
    metric: str
    unit: str = ""
    metric_type: Literal["histogram"] = "histogram"
    stored_scale: None = None

    @property
    def labels(self) -> Labels:
        return self.entity.labels

    @property
    def metric_labels(self) -> Labels:
        return self.entity.labels + self.entity.context_labels


AnyFigure = Figure[Any] | LabelledFigure[Any] | HistogramFigure[Any]


def as_number(value: Value) -> float | None:
    """A reader's value as a float; None for "not available", NaN included."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


# --------------------------------------------------------------------------- declaring


def gauge(
    name: str,
    entity: EntityKind[T],
    read: Callable[[T], Value],
    help: str,
    *,
    unit: str = "",
    stored: int | None = None,
    weight: Weight[T] | None = None,
    exported_as: str | None = None,
    metric_scale: float = 1.0,
) -> Figure[T]:
    """A gauge; `stored` (one of the precisions above) keeps it in history, `weight` makes its
    history a weighted one, `exported_as` names its Prometheus family where that differs from
    `name` (a clock exported in hertz)."""
    metric = PREFIX + (exported_as or name)
    return Figure(name, entity, read, help, metric, unit, "gauge", metric_scale, stored, weight)


def counter(
    name: str,
    entity: EntityKind[T],
    read: Callable[[T], Value],
    help: str,
    *,
    unit: str = "",
    stored: int | None = None,
) -> Figure[T]:
    """A counter, exported as `_total` in place of a `_count` ending (Prometheus's convention)."""
    metric = PREFIX + name.removesuffix("_count").removesuffix("_total") + "_total"
    return Figure(name, entity, read, help, metric, unit, "counter", 1.0, stored)


def labelled(
    name: str,
    entity: EntityKind[T],
    extra_labels: Labels,
    rows: Callable[[T], Iterable[tuple[Labels, Value]]],
    help: str,
    *,
    unit: str = "",
    metric_type: MetricType = "gauge",
) -> LabelledFigure[T]:
    return LabelledFigure(name, entity, extra_labels, rows, help, PREFIX + name, unit, metric_type)


def histogram(
    name: str,
    entity: EntityKind[T],
    read: Callable[[T], BatchCounts | None],
    bounds: tuple[int, ...],
    help: str,
) -> HistogramFigure[T]:
    return HistogramFigure(name, entity, read, bounds, help, PREFIX + name)


def flag(value: bool | None) -> int | None:
    """A yes/no fact as 1 or 0; None stays None."""
    return None if value is None else int(value)


def one(*labels: str | None) -> tuple[tuple[Labels, int]]:
    """The single row of an `_info`/`_state` family: its label values (None as "") and 1."""
    return ((tuple("" if v is None else v for v in labels), 1),)
