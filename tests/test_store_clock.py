"""The store across wall-clock steps (issue #15, finding 4), on real SQLite files.

The store is handed a wall clock and a monotonic clock, both moved by the test: a step of the
wall clock alone is what NTP after a bad RTC, or a VM restored from a snapshot, does.
"""

from __future__ import annotations

from pathlib import Path

from gpuwatch.store import Store, open_store
from gpuwatch.store.clock import StoreClock
from tests.conftest import ManualClock
from tests.storekit import gpu, rows, settings, snapshot

T0 = 1_795_557_600.0  # a whole hour
DAY = 86400.0
RETENTION = "1s:1h,1m:1d,1h:30d"


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _write(store: Store, wall: ManualClock, mono: Monotonic, seconds: int, every: int = 5) -> None:
    """Snapshots of 2 GPUs every `every` seconds from the wall clock's time, both clocks moving."""
    for _ in range(0, seconds, every):
        store.submit(snapshot(wall.now, [gpu(g, power_watts=100.0 + g) for g in range(2)]))
        wall.now += every
        mono.now += every
    assert store.flush(30)


def _min_max_count(db: Path, table: str) -> tuple[float, float, int]:
    lo, hi, n = rows(db, f"SELECT min(key >> 20), max(key >> 20), count(*) FROM {table}")[0]
    return lo / 1000, hi / 1000, n


def _rolled_until(db: Path) -> dict[int, float]:
    return {int(r): ms / 1000 for r, ms in rows(db, "SELECT resolution_s, rolled_until_ms FROM tier")}


def test_a_step_forward_and_back_purges_nothing_and_rollups_go_on(tmp_path: Path) -> None:
    """+400 days for 70 s used to delete all stored history and leave the minute and hour
    tiers' marks 400 days ahead, never rolling up again."""
    db = tmp_path / "g.db"
    wall, mono = ManualClock(T0), Monotonic()
    store = open_store(settings(db, retention=RETENTION), clock=wall, monotonic=mono)
    try:
        _write(store, wall, mono, 2 * 3600)
        before = {t: _min_max_count(db, t) for t in ("gpu_raw", "gpu_60s", "gpu_3600s")}
        back_to = wall.now
        wall.now += 400 * DAY  # the step; the monotonic clock goes on as before
        _write(store, wall, mono, 70)
        during = {t: _min_max_count(db, t) for t in ("gpu_raw", "gpu_60s", "gpu_3600s")}
        wall.now = back_to + 70  # NTP puts it right again
        _write(store, wall, mono, 3600)
        after = {t: _min_max_count(db, t) for t in ("gpu_raw", "gpu_60s", "gpu_3600s")}
        marks = _rolled_until(db)
    finally:
        store.close()
    end = back_to + 70 + 3600
    # Nothing was purged on the stepped clock's evidence: raw seconds are kept an hour before
    # the trusted time (not before +400 days: that would be all of them), the minute and hour
    # tiers keep everything (their KEEP is 1 and 30 days: +400 days would empty them).
    trusted = back_to + 70
    assert during["gpu_raw"][0] <= trusted - 3600 + 60 and during["gpu_raw"][2] >= 2 * (700 + 14)
    assert during["gpu_raw"][1] == back_to + 400 * DAY + 65  # the stepped seconds are stored too
    for tier in ("gpu_60s", "gpu_3600s"):
        assert during[tier][0] == before[tier][0] == T0 and during[tier][2] >= before[tier][2]
    # Once back, raw seconds are kept an hour by the right time; rollups went on up to now.
    assert after["gpu_raw"][0] >= end - 3600 - 5
    assert after["gpu_60s"][0] == T0 and after["gpu_3600s"][0] == T0  # the whole history kept
    assert end - 120 <= marks[60] <= end and end - 2 * 3600 <= marks[3600] <= end
    assert after["gpu_60s"][2] >= 2 * (3 * 60 - 2)  # a minute row per GPU for (nearly) every minute


def test_a_step_back_rolls_up_the_seconds_written_after_it(tmp_path: Path) -> None:
    """A step back of 1 h: the snapshots stamped after it land in minutes already rolled up;
    they are rolled up again with them (the seconds written after +2 h were never rolled up)."""
    db = tmp_path / "g.db"
    wall, mono = ManualClock(T0), Monotonic()
    store = open_store(settings(db, retention=RETENTION), clock=wall, monotonic=mono)
    try:
        _write(store, wall, mono, 1800)
        wall.now -= 3600
        _write(store, wall, mono, 1800)
        minutes = rows(
            db,
            "SELECT count(DISTINCT key >> 20) FROM gpu_60s WHERE key >> 20 >= ? AND key >> 20 < ?",
            (int((T0 - 1800) * 1000), int(T0 * 1000)),
        )[0][0]
        marks = _rolled_until(db)
    finally:
        store.close()
    assert minutes >= 29  # the half hour stamped before T0, after the step, is rolled up
    assert marks[60] >= T0 - 120


def test_the_store_clock_follows_a_step_only_once_it_has_held() -> None:
    wall, mono = ManualClock(T0), Monotonic()
    clock = StoreClock(wall, mono, settle_seconds=600)
    assert clock.now() == T0 and not clock.stepped
    wall.now += 400 * DAY
    mono.now += 10
    assert clock.now() == T0 + 10 and clock.stepped and clock.take_step() == 400 * DAY - 10
    assert clock.take_step() is None  # reported once
    wall.now += 600
    mono.now += 600
    assert clock.now() == T0 + 400 * DAY + 600 and not clock.stepped  # held for 600 s: believed
    wall.now -= 3600
    mono.now += 1
    assert clock.now() == T0 + 400 * DAY + 601 and clock.stepped


def test_a_clean_stop_writes_every_queued_snapshot(tmp_path: Path) -> None:
    """A clean stop writes everything queued (more than one batch of 600) before it closes."""
    import threading
    import time

    db = tmp_path / "g.db"
    wall = ManualClock(T0)
    store = open_store(settings(db, retention=RETENTION), clock=wall)
    busy = threading.Thread(target=store.call, args=(lambda conn: time.sleep(1.0),))
    busy.start()
    time.sleep(0.3)  # the writer is inside that call: what follows queues up
    for i in range(1500):
        store.submit(snapshot(T0 + i, [gpu(0, power_watts=100.0)]))
    assert store.health().queue_length >= 1400
    store.close(timeout=30)
    busy.join()
    assert rows(db, "SELECT count(*) FROM gpu_raw")[0][0] == 1500
