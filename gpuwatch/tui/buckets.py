"""History points → fixed slots on screen: one slot per character of a sparkline or a chart.

Place in the flow: client.history → **buckets** → sparkline cells and charts. The store may
answer at a coarser or finer resolution than a screen column; this puts each point in the slot
its time falls in (averaging when several do) and leaves a slot with no point empty (None),
so a gap in history is drawn as a gap, never as a zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from gpuwatch.series import Point


def slot_of(timestamp: float, start: float, end: float, slots: int) -> int | None:
    if slots <= 0 or end <= start or not start <= timestamp <= end:
        return None
    # The epsilon keeps a point that sits exactly on a slot boundary (as aligned buckets do)
    # in the slot it starts, whatever the float rounding of the division.
    return min(slots - 1, int((timestamp - start) / ((end - start) / slots) + 1e-6))


def to_slots(points: Iterable[Point], start: float, end: float, slots: int) -> list[Point | None]:
    """Merge `points` into `slots` equal slots of [start, end]: mean of means, min of mins,
    max of maxes."""
    merged: list[list[Point]] = [[] for _ in range(max(0, slots))]
    for p in points:
        i = slot_of(p.timestamp, start, end, slots)
        if i is not None:
            merged[i].append(p)
    out: list[Point | None] = []
    for i, group in enumerate(merged):
        if not group:
            out.append(None)
            continue
        out.append(
            Point(
                start + (end - start) * i / slots,
                sum(p.mean for p in group) / len(group),
                min(p.minimum for p in group),
                max(p.maximum for p in group),
            )
        )
    return out


def means(slots: Iterable[Point | None]) -> list[float | None]:
    return [None if p is None else p.mean for p in slots]


NICE_COLUMNS_SECONDS: tuple[float, ...] = (
    1, 2, 5, 10, 15, 20, 30,
    60, 120, 300, 600, 900, 1200, 1800,
    3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800,
)  # fmt: skip
"""Slot widths a chart may use: each a whole multiple of every coarser store resolution below
it (1 s, 1 min, 1 h), so each stored bucket lands in exactly one slot."""


def column_seconds(span_seconds: float, max_slots: int) -> float:
    """The narrowest nice slot width that covers `span_seconds` in at most `max_slots` slots."""
    raw = span_seconds / max(1, max_slots)
    return next((c for c in NICE_COLUMNS_SECONDS if c >= raw), NICE_COLUMNS_SECONDS[-1])


def aligned_range(now: float, span_seconds: float, max_slots: int) -> tuple[float, float, int]:
    """(start, end, slots): `span_seconds` (rounded up to whole slots) ending at the first slot
    boundary at or after `now`. Slots are aligned to the epoch; a store counts its buckets from
    the range's start (`series.bucket_grid`), so each bucket starts where its slot starts."""
    column = column_seconds(span_seconds, max_slots)
    slots = max(1, math.ceil(span_seconds / column - 1e-9))
    end = math.ceil(now / column) * column
    return end - column * slots, end, slots
