"""What the store keeps of a snapshot: one integer column per series, at a stated precision.

Place in the flow: snapshot → `series.entity_values` → **figures** (encode) → rows of the raw
tier; query results → **figures** (decode) → `Point`s. Every series of the catalog
(`gpuwatch.series.CATALOG`) is a column of its entity's tables (gpu, model, server), named
after the series.

Values are stored as integers in a fixed unit per series, chosen from the unit in its name at
or below what the source itself can tell: milliwatts (NVML reports mW), millijoules, 0.01 °C,
0.01 % for ratios (NVML's utilizations are whole percent), 0.1 µs for Triton's latencies, whole
bytes and MHz. SQLite stores small integers in 1–4 bytes and 0 or 1 in none, where a float
takes 8: this keeps a GPU-day of 1 s rows about a third smaller than REAL columns would
(bench/store_bench.py measures it). A value that does not fit (NaN, ±inf, beyond 2^63) is
stored as NULL, like a value the source could not give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpuwatch.series import CATALOG, Entity, entity_series

KINDS = (Entity.GPU, Entity.MODEL, Entity.SERVER)
"""The entity kinds; each has a raw table and one table per rollup tier."""

_SCALE_BY_SUFFIX = (  # first match wins: "_bytes_per_second" before "_per_second"
    ("_bytes_per_second", 1),
    ("_per_second", 1000),
    ("_ratio", 10_000),
    ("_seconds", 10_000_000),
    ("_watts", 1000),
    ("_joules", 1000),
    ("_celsius", 100),
    ("_bytes", 1),
    ("_mhz", 1),
    ("_count", 1),
    ("_up", 1),
    ("_state", 1),
    ("_pending", 1),
    ("_failed", 1),
    ("_requests", 1),
)
_SCALE_BY_PREFIX = (("gpu_clock_event_", 1),)
DEFAULT_SCALE = 1_000_000
"""For a series whose unit says nothing (an average batch size): six decimals."""

_INT64_LIMIT = 2**63 - 2**11  # the largest float below 2**63 still rounds into an int64


@dataclass(frozen=True, slots=True)
class Figure:
    """One series as a column: stored integer = round(value × scale)."""

    series: str
    scale: int

    @property
    def column(self) -> str:
        return self.series

    def encode(self, value: float) -> int | None:
        return encode_values((value,), (self.scale,))[0]

    def decode(self, stored: float) -> float:
        return stored / self.scale


def scale_for(series: str) -> int:
    for prefix, scale in _SCALE_BY_PREFIX:
        if series.startswith(prefix):
            return scale
    for suffix, scale in _SCALE_BY_SUFFIX:
        if series.endswith(suffix):
            return scale
    return DEFAULT_SCALE


FIGURES: dict[str, tuple[Figure, ...]] = {
    kind: tuple(Figure(s.name, scale_for(s.name)) for s in CATALOG if s.entity == kind) for kind in KINDS
}
BY_SERIES: dict[str, Figure] = {f.series: f for figures in FIGURES.values() for f in figures}
KIND_OF: dict[str, str] = {f.series: kind for kind, figures in FIGURES.items() for f in figures}
SCALES: dict[str, tuple[int, ...]] = {kind: tuple(f.scale for f in FIGURES[kind]) for kind in KINDS}
"""Per kind, the scales in the order of `series.entity_values`' values."""
assert all(tuple(f.series for f in FIGURES[k]) == entity_series(k) for k in KINDS)


def encode_values(values: Sequence[float | None], scales: Sequence[int]) -> list[int | None]:
    """Values → stored integers, None for a value that is missing or does not fit. The writer
    calls this for every row of every tick, hence one loop and no method calls."""
    limit = _INT64_LIMIT
    # The comparison is False for NaN, which is how NaN becomes None here.
    return [
        round(scaled) if value is not None and -limit < (scaled := value * scale) < limit else None
        for value, scale in zip(values, scales, strict=True)
    ]
