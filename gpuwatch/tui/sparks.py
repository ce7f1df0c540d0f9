"""`SparkLines`: the GPU rows' sparklines, fetched once per slot and kept live in between.

Place in the flow: the node screen asks `want()` on every snapshot; only when the sparkline's
window has moved by a whole slot (or the figure or width changed) is there something to fetch,
so a daemon gets one history request per slot (every 10–15 s), not one per refresh. Between
fetches each snapshot's value of the figure is folded into the last, still filling slot, so the
newest character moves every refresh as the number beside it does.

Pure: no client, no widget. The last slot's mean weighs what the fetch saw in it by the number
of ticks it spans, and each later snapshot as one tick; with the refresh at the daemon's tick
(the default) that is the store's own mean of the slot.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from gpuwatch import model, series
from gpuwatch.series import Point
from gpuwatch.tui.buckets import aligned_range

LIVE_KEPT = 64
"""Snapshots remembered for folding into a fetch that lands after them."""


@dataclass(frozen=True, slots=True)
class Window:
    """A sparkline's request: `slots` equal slots of [start, end] of one series."""

    series: str
    start: float
    end: float
    slots: int

    @property
    def slot_seconds(self) -> float:
        return (self.end - self.start) / self.slots

    @property
    def last_slot_start(self) -> float:
        return self.end - self.slot_seconds

    def in_last_slot(self, timestamp: float) -> bool:
        return self.last_slot_start <= timestamp < self.end


def window_for(series_name: str, now: float, span_seconds: float, slots: int) -> Window:
    """The window whose last slot is the one `now` falls in: a snapshot stamped exactly on a
    boundary starts a slot (as the store buckets it), it does not end the previous one."""
    start, end, count = aligned_range(now, span_seconds, slots)
    if end <= now:
        column = (end - start) / count
        start, end = start + column, end + column
    return Window(series_name, start, end, count)


def gpu_values(snapshot: model.Snapshot, series_name: str) -> dict[int, float]:
    """GPU index → this snapshot's value of a GPU series (absent where it has none)."""
    out: dict[int, float] = {}
    for key, value in series.extract(snapshot, names=(series_name,)):
        gpu = key.label("gpu")
        if gpu is not None:
            out[int(gpu)] = value
    return out


def tick_seconds(snapshot: model.Snapshot) -> float:
    """The node's tick, as its fastest collector's cadence says (1 s unless configured)."""
    cadences = [c.cadence_seconds for c in snapshot.collectors if c.cadence_seconds > 0]
    return min(cadences) if cadences else 1.0


class SparkLines:
    def __init__(self, span_seconds: float) -> None:
        self.span_seconds = span_seconds
        self._asked: Window | None = None
        self._window: Window | None = None
        self._base: dict[int, list[Point | None]] = {}
        self._ticks_in_base = 0
        self._fetched_at = -math.inf
        self._live: deque[tuple[float, dict[int, float]]] = deque(maxlen=LIVE_KEPT)
        self._folded: dict[int, tuple[float, int]] = {}
        """GPU → (sum, count) of the snapshots folded into the last slot since the fetch."""

    def want(self, series_name: str, now: float, slots: int) -> Window | None:
        """The window to fetch now, or None when the one shown (or one on its way) still fits."""
        window = window_for(series_name, now, self.span_seconds, slots)
        if window == self._asked:
            return None
        self._asked = window
        return window

    def failed(self, window: Window) -> None:
        """The fetch of `window` did not come back: ask again on the next snapshot."""
        if self._asked == window:
            self._asked = None

    def fetched(
        self, window: Window, at: float, tick_seconds: float, slots: dict[int, list[Point | None]]
    ) -> None:
        """History for `window`, asked for when the latest snapshot was stamped `at`."""
        self._window = window
        self._base = slots
        self._fetched_at = at
        tick = tick_seconds if tick_seconds > 0 else 1.0
        self._ticks_in_base = int((at - window.last_slot_start) / tick + 1e-6) + 1
        self._folded = {}
        for timestamp, values in self._live:
            if timestamp > at:
                self._fold(timestamp, values)

    def observe(self, snapshot: model.Snapshot, series_name: str) -> bool:
        """Fold a snapshot into the last slot; True when the sparklines changed."""
        values = gpu_values(snapshot, series_name)
        self._live.append((snapshot.timestamp, values))
        if self._window is None or self._window.series != series_name:
            return False
        if snapshot.timestamp <= self._fetched_at:
            return False
        return self._fold(snapshot.timestamp, values)

    def _fold(self, timestamp: float, values: dict[int, float]) -> bool:
        window = self._window
        if window is None or not window.in_last_slot(timestamp):
            return False
        for gpu, value in values.items():
            total, count = self._folded.get(gpu, (0.0, 0))
            self._folded[gpu] = (total + value, count + 1)
        return bool(values)

    def values(self) -> dict[int, list[float | None]]:
        """GPU index → one value per character, oldest first (None: no data in that slot)."""
        out: dict[int, list[float | None]] = {}
        gpus = set(self._base) | set(self._folded)
        slots = self._window.slots if self._window is not None else 0
        for gpu in sorted(gpus):
            line: list[float | None] = [
                None if p is None else p.mean for p in self._base.get(gpu, [None] * slots)
            ]
            folded = self._folded.get(gpu)
            if folded is not None and line:
                total, count = folded
                seed = self._base.get(gpu, [None] * slots)[-1]
                if seed is not None:
                    total += seed.mean * self._ticks_in_base
                    count += self._ticks_in_base
                line[-1] = total / count
            out[gpu] = line
        return out
