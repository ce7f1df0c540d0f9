"""What the store keeps of a snapshot: one integer column per series, at the catalog's precision.

Place in the flow: snapshot → `series.entity_values` → **figures** (encode) → rows of the raw
tier; query results → **figures** (decode) → `Point`s. Every figure the history keeps
(`gpuwatch.catalog.index.HISTORY`) is a column of its entity kind's tables (gpu, mig, model,
server), named after the series; its declaration states the integer scale (`stored_scale`), so
this module holds only the mechanics of encoding and decoding.

Values are stored as integers in a fixed unit per series, at or below what the source itself
can tell: milliwatts (NVML reports mW), millijoules, 0.01 °C, 0.01 % for ratios (NVML's
utilizations are whole percent), 0.1 µs for Triton's latencies, whole bytes and MHz. SQLite
stores small integers in 1–4 bytes and 0 or 1 in none, where a float takes 8: this keeps a
GPU-day of 1 s rows about a third smaller than REAL columns would (bench/store_bench.py
measures it). A value that does not fit (NaN, ±inf, beyond 2^63) is stored as NULL, like a
value the source could not give. A scale is part of the file's format: changing a declared
one would misread every database already written (a test pins them).

A weighted figure (`Figure.weight`: a per-request mean, a rate) is averaged with its
interval's weight (requests, executions, ms). Raw rows keep each weight once, however many
figures share it (`Weight.column`: `weight_ms`, `weight_requests`, …), after the figure
columns in `RAW_WEIGHTS[kind]` order, as `series.entity_values` gives them; rollup rows keep
one Σ weight per weighted figure, `<series>_weight`, over the rows where it had a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpuwatch.catalog.index import HISTORY_BY_KIND, HISTORY_KINDS

KINDS: tuple[str, ...] = tuple(kind.name for kind in HISTORY_KINDS)
"""The entity kinds; each has a raw table and one table per rollup tier."""

_INT64_LIMIT = 2**63 - 2**11  # the largest float below 2**63 still rounds into an int64


@dataclass(frozen=True, slots=True)
class StoredFigure:
    """One series as a column: stored integer = round(value × scale)."""

    series: str
    scale: int
    raw_weight_column: str | None = None
    """The raw tier's column of its weight (`Weight.column`); None for a figure whose samples
    weigh alike."""

    @property
    def column(self) -> str:
        return self.series

    @property
    def weight_column(self) -> str | None:
        """The rollup tiers' Σ weight of this figure."""
        return None if self.raw_weight_column is None else f"{self.series}_weight"

    def encode(self, value: float) -> int | None:
        return encode_values((value,), (self.scale,))[0]

    def decode(self, stored: float) -> float:
        return stored / self.scale


FIGURES: dict[str, tuple[StoredFigure, ...]] = {
    kind: tuple(
        StoredFigure(f.name, f.stored_scale, None if f.weight is None else f.weight.column)
        for f in HISTORY_BY_KIND[kind]
        if f.stored_scale is not None
    )
    for kind in KINDS
}
"""Per kind, its figure columns in the order of `series.entity_values`' values."""
WEIGHTED: dict[str, tuple[StoredFigure, ...]] = {
    kind: tuple(f for f in FIGURES[kind] if f.raw_weight_column is not None) for kind in KINDS
}
"""Per kind, the weighted figures: one `<series>_weight` column each in the rollup tiers."""
RAW_WEIGHTS: dict[str, tuple[tuple[str, int], ...]] = {
    kind: tuple(
        dict.fromkeys(
            (f.weight.column, f.weight.scale) for f in HISTORY_BY_KIND[kind] if f.weight is not None
        )
    )
    for kind in KINDS
}
"""Per kind, the raw tier's weight columns and their scales, in `series.entity_weights` order."""
BY_SERIES: dict[str, StoredFigure] = {f.series: f for figures in FIGURES.values() for f in figures}
SCALES: dict[str, tuple[int, ...]] = {
    kind: tuple(f.scale for f in FIGURES[kind]) + tuple(scale for _, scale in RAW_WEIGHTS[kind])
    for kind in KINDS
}
"""Per kind, the scales in the order of `series.entity_values`' values (figures, then weights)."""


def encode_values(values: Sequence[float | None], scales: Sequence[int]) -> list[int | None]:
    """Values → stored integers, None for a value that is missing or does not fit. The writer
    calls this for every row of every tick, hence one loop and no method calls."""
    limit = _INT64_LIMIT
    # The comparison is False for NaN, which is how NaN becomes None here.
    return [
        round(scaled) if value is not None and -limit < (scaled := value * scale) < limit else None
        for value, scale in zip(values, scales, strict=True)
    ]
