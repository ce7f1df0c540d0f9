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


def column_seconds(span_seconds: float, slots: int) -> float:
    """The width of one slot, rounded up to whole seconds, minutes or hours, so that it is a
    whole multiple of every resolution a store may answer at (1 s, 1 min, 1 h): each stored
    bucket then falls in exactly one slot and no slot is left empty between two that are not."""
    raw = span_seconds / max(1, slots)
    for unit in (3600.0, 60.0, 1.0):
        if raw >= unit:
            return math.ceil(raw / unit) * unit
    return 1.0


def aligned_range(now: float, span_seconds: float, slots: int) -> tuple[float, float]:
    """(start, end) of about `span_seconds` ending at the first slot boundary at or after `now`,
    with slots of `column_seconds` aligned to the epoch, as stores align their buckets."""
    column = column_seconds(span_seconds, slots)
    end = math.ceil(now / column) * column
    return end - column * max(1, slots), end
