"""The store's idea of "now" for purges and rollups: the wall clock, unless it has just jumped.

Place in the flow: the writer asks `StoreClock.now()` before every purge and caps rollups at
it; snapshots keep the wall-clock stamps the engine gave them. A wall clock that steps (NTP
after a bad RTC, a VM restored from a snapshot) would otherwise purge on its evidence: +400
days for 70 s deleted every stored row, and the rollup marks it left 400 days ahead stopped
the minute and hour tiers for good.

The rule: "now" is the wall clock while it keeps pace with the monotonic clock (within
`TOLERANCE_SECONDS`). When it steps, "now" goes on from the last trusted moment at the
monotonic clock's pace, and the step is reported once (`take_step`, an event). A wall clock
that then keeps its new pace for `SETTLE_SECONDS` is believed (a real correction): "now"
follows it again, and so do purges. A step shorter than that (the clock comes back) is never
acted upon. Without a monotonic clock (a test's manual clock) the wall clock is trusted as is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

TOLERANCE_SECONDS = 5.0
SETTLE_SECONDS = 3600.0


class StoreClock:
    def __init__(
        self,
        wall: Callable[[], float],
        monotonic: Callable[[], float] | None,
        *,
        settle_seconds: float = SETTLE_SECONDS,
    ) -> None:
        self._wall = wall
        self._mono = monotonic
        self._settle = settle_seconds
        self._lock = threading.Lock()
        self._offset: float | None = None
        """wall − monotonic at the last trusted reading."""
        self._candidate: tuple[float, float] | None = None
        """(wall − monotonic, monotonic when first seen) of a stepped clock not yet believed."""
        self._step: float | None = None

    def now(self) -> float:
        wall = self._wall()
        if self._mono is None:
            return wall
        mono = self._mono()
        offset = wall - mono
        with self._lock:
            if self._offset is None or abs(offset - self._offset) <= TOLERANCE_SECONDS:
                self._offset, self._candidate = offset, None
                return wall
            if self._candidate is None or abs(offset - self._candidate[0]) > TOLERANCE_SECONDS:
                if self._candidate is None:
                    self._step = offset - self._offset
                self._candidate = (offset, mono)
            elif mono - self._candidate[1] >= self._settle:
                self._offset, self._candidate = offset, None  # kept its new pace: believed
                return wall
            return self._offset + mono

    @property
    def stepped(self) -> bool:
        """Whether the wall clock is away from "now" (a step not yet believed)."""
        with self._lock:
            return self._candidate is not None

    def take_step(self) -> float | None:
        """Seconds the wall clock stepped by (+ ahead, − back) since last asked, once."""
        with self._lock:
            step, self._step = self._step, None
            return step
