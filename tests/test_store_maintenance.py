"""Purges, the size budget and the back-fill of rollups after downtime, on real files."""

from __future__ import annotations

from pathlib import Path

from gpuwatch import model
from gpuwatch.store import Store, parse_retention, purge
from gpuwatch.store.schema import Schema
from tests.conftest import ManualClock
from tests.storekit import gpu, open_test_store, rows, snapshot

T0 = 1_795_557_600.0  # a whole hour
T0_MS = int(T0 * 1000)


def _write(store: Store, clock: ManualClock, start: float, seconds: int, gpus: int = 2) -> None:
    for i in range(seconds):
        clock.now = start + i
        samples = [
            gpu(
                g,
                power_watts=100.0 + g + i % 60,
                utilization_ratio=(i % 97) / 100,
                memory_used_bytes=2**33 + i,
            )
            for g in range(gpus)
        ]
        store.submit(snapshot(clock.now, samples))
        if i % 1000 == 999:
            assert store.flush(30)
    assert store.flush(30)


def _count(db: Path, table: str) -> int:
    return int(rows(db, f"SELECT count(*) FROM {table}")[0][0])


def test_tiers_forget_what_they_no_longer_keep_in_bounded_batches(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "gpuwatch.db"
    store = open_test_store(db, clock, retention="1s:1h,1m:1d", purge_batch_rows=100)
    try:
        _write(store, clock, T0, 2 * 3600)
        now_ms = round(clock.now * 1000)
        # By now the last hour of raw seconds is kept, and every older minute is rolled up.
        oldest_raw = rows(db, "SELECT min(key >> 20) FROM gpu_raw")[0][0]
        assert oldest_raw >= now_ms - 3_600_000
        assert _count(db, "gpu_raw") == 2 * 3601
        assert rows(db, "SELECT min(key >> 20) FROM gpu_60s")[0][0] == T0_MS
        assert _count(db, "gpu_60s") == 2 * 119

        # One purge step deletes at most purge_batch_rows rows of a table, oldest first.
        # (The store's clock stays put, so the writer's own purges find nothing to do meanwhile.)
        later_ms = round((clock.now + 600) * 1000)
        step = store.call(
            lambda conn: purge.purge_tier_step(
                conn,
                Schema(parse_retention("1s:1h,1m:1d")),
                0,
                now_ms=later_ms,
                next_rolled_until_ms=None,
                batch_rows=100,
            )
        )
        assert (step.rows, step.more) == (100, True)
        assert _count(db, "gpu_raw") == 2 * 3601 - 100
        assert (
            rows(db, "SELECT min(key >> 20) FROM gpu_raw")[0][0] == oldest_raw + 50_000
        )  # 50 ticks of 2 GPUs

        clock.now += 600
        assert store.flush(30)  # the rest, in more steps
        assert rows(db, "SELECT min(key >> 20) FROM gpu_raw")[0][0] >= round(clock.now * 1000) - 3_600_000
    finally:
        store.close()


def test_raw_rows_are_kept_until_rolled_up(tmp_path: Path, clock: ManualClock) -> None:
    """After downtime, raw seconds older than the raw tier keeps are rolled up before they go,
    though the back-fill takes many steps and purges run between them."""
    db = tmp_path / "gpuwatch.db"
    store = open_test_store(db, clock, retention="1s:24h")
    _write(store, clock, T0, 3600)
    store.close()

    clock.now = T0 + 5 * 3600
    store = open_test_store(db, clock, retention="1s:2m,1m:1d", purge_batch_rows=100)
    try:
        assert store.flush(60)
        minutes = rows(db, "SELECT samples, count(*) FROM gpu_60s GROUP BY samples")
        assert minutes == [(60, 2 * 59)]  # every whole minute, each from all its 60 seconds
        # What is left of the raw seconds is the minute not rolled up yet (no later tick came).
        assert rows(db, "SELECT min(key >> 20), count(*) FROM gpu_raw") == [(T0_MS + 59 * 60_000, 2 * 60)]
    finally:
        store.close()


def test_the_size_budget_drops_the_oldest_raw_seconds_first(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "gpuwatch.db"
    budget = 1_048_576
    store = open_test_store(db, clock, size_budget_bytes=budget, purge_batch_rows=500)
    try:
        _write(store, clock, T0, 1500, gpus=8)
        minutes = _count(db, "gpu_60s")
        use = store.call(purge.page_use)
        assert use.used_bytes <= budget
        assert use.file_bytes <= budget  # the freed pages went back to the file system
        newest = rows(db, "SELECT max(key >> 20) FROM gpu_raw")[0][0]
        oldest = rows(db, "SELECT min(key >> 20) FROM gpu_raw")[0][0]
        assert newest == round(clock.now * 1000)
        assert oldest > T0_MS  # the oldest seconds went first ...
        assert _count(db, "gpu_60s") == minutes == 8 * 24  # ... the rollups stayed
        assert (newest - oldest) // 1000 + 1 == _count(db, "gpu_raw") // 8  # a contiguous newest stretch
        assert store.health().size_bytes is not None
    finally:
        store.close()


def test_rollups_are_back_filled_for_tiers_added_later(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "gpuwatch.db"
    store = open_test_store(db, clock, retention="1s:24h")
    _write(store, clock, T0, 3 * 3600)
    store.close()
    assert rows(db, "SELECT name FROM sqlite_master WHERE name = 'gpu_60s'") == []

    store = open_test_store(db, clock, retention="1s:24h,1m:30d,1h:1y")
    try:
        assert store.flush(60)
        assert _count(db, "gpu_60s") == 2 * 179  # the last minute waits for a later tick
        assert _count(db, "gpu_3600s") == 2 * 2
        assert rows(db, "SELECT DISTINCT samples FROM gpu_3600s") == [(3600,)]
    finally:
        store.close()


def test_after_downtime_the_unfinished_minute_is_rolled_up_and_the_gap_stays_empty(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "gpuwatch.db"
    store = open_test_store(db, clock)
    _write(store, clock, T0, 630)  # 10 minutes and 30 s, then the daemon stops
    store.close()
    assert _count(db, "gpu_60s") == 2 * 10

    clock.now = T0 + 2 * 3600
    store = open_test_store(db, clock)
    try:
        store.submit(snapshot(clock.now, [gpu(0, power_watts=1.0), gpu(1, power_watts=2.0)]))
        assert store.flush(30)
        minutes = rows(db, "SELECT key >> 20, samples FROM gpu_60s ORDER BY key")
        assert minutes[-2:] == [(T0_MS + 600_000, 30), (T0_MS + 600_000, 30)]
        assert len(minutes) == 2 * 11  # no rows for the two hours nobody was watching
        assert rows(db, "SELECT key >> 20, samples FROM gpu_3600s") == [(T0_MS, 630), (T0_MS, 630)]
    finally:
        store.close()


def test_events_are_kept_as_long_as_the_longest_tier(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "gpuwatch.db"
    store = open_test_store(db, clock, retention="1s:1h,1m:1d")
    try:
        old = model.Event(T0, model.EventKind.XID, model.Severity.CRITICAL, "old", code=13)
        new = model.Event(T0 + 86_400, model.EventKind.XID, model.Severity.CRITICAL, "new", code=79)
        store.record_events((old, new))
        clock.now = T0 + 86_400 + 10
        assert store.flush(10)
        assert [e.message for e in store.history.events(0, clock.now)] == ["new"]
    finally:
        store.close()


def test_events_are_held_to_their_share_of_the_size_budget_oldest_first(
    tmp_path: Path, clock: ManualClock
) -> None:
    # A lying server once made an event a second, and the size budget never trimmed events.
    db = tmp_path / "gpuwatch.db"
    budget = 1_048_576
    store = open_test_store(db, clock, size_budget_bytes=budget, purge_batch_rows=500)
    try:
        message = "triton_restart: the server's counters went backwards " + "x" * 60
        for i in range(20_000):
            clock.now = T0 + i
            store.record_events(
                (model.Event(clock.now, model.EventKind.TRITON_RESTART, model.Severity.WARNING, message),)
            )
            if i % 1000 == 999:
                assert store.flush(30)
        # ~4 MB of events written, over the 1 MiB budget; size checks ran as the clock went on
        clock.now += 61  # and once more now
        store.submit(snapshot(clock.now, [gpu(0, power_watts=100.0)]))
        assert store.flush(60)
        kept = _count(db, "event")
        assert store.call(lambda conn: purge.events_bytes(conn, Schema(parse_retention("1s:24h")))) <= (
            purge.EVENTS_BUDGET_SHARE * budget
        )
        assert 0 < kept < 20_000
        newest = rows(db, "SELECT min(ts_ms), max(ts_ms) FROM event")[0]
        assert newest == ((T0 + 20_000 - kept) * 1000, (T0 + 19_999) * 1000)  # the newest, contiguous
    finally:
        store.close()
