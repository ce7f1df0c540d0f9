"""Weighted history: over steady and bursty synthetic Triton counters, every stored, rolled-up
and queried mean is the window's ratio of sums (Δqueue_ns / Δcount), not a mean of means; and
a database written by schema version 1 is migrated on a real file.

The intervals are what the collector derives (`derive.interval`) from cumulative statistics, as
Triton's /v2/models/stats gives them, with poll intervals of 0.8–1.3 s; the truth is the change
of those counters over each window. The tolerance is the store's precision: a per-interval
mean is kept to 0.1 µs, and each rollup tier rounds its mean to 0.1 µs again.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuwatch import model, series
from gpuwatch.collect.triton import derive
from gpuwatch.collect.triton.parse_config import ModelConfig
from gpuwatch.collect.triton.parse_stats import Duration, StatsModel
from gpuwatch.store import Store, figures, open_history, schema
from tests.conftest import ManualClock
from tests.data.store import make_v1
from tests.storekit import NODE, open_test_store, rows

HOUR = 1_795_557_600.0
TICKS = 430  # seven whole minutes, and some raw seconds not rolled up yet
RETENTION = "1s:2h,10s:1d,1m:30d"
PRECISION = 0.2e-6  # seconds: three roundings to 0.1 µs (interval, 10 s tier, minute tier)
FIXTURE = Path(__file__).parent / "data" / "store" / "v1.db"


@dataclasses.dataclass(frozen=True)
class Delta:
    """One poll interval of one model: what its counters moved by."""

    dt: float
    requests: int
    queue_ns: int
    infer_ns: int
    request_ns: int
    executions: int


def steady(i: int) -> Delta:
    return Delta(1.0, 40, 40 * 2_000_000, 40 * 5_000_000, 40 * 7_500_000, 10)


def bursty(i: int) -> Delta:
    """Concurrency alternating every 7 s: bursts queue 40 ms per request, lulls 0.3 ms; poll
    intervals of 0.8 to 1.3 s (a slow poll now and then)."""
    dt = (0.8, 1.0, 1.3, 0.9)[i % 4]
    if (i // 7) % 2 == 0:
        n = round(300 * dt)
        return Delta(dt, n, n * 40_000_000 + i, n * 6_000_000, n * 47_000_000 + 3 * i, n // 8 or 1)
    n = (i % 3) + 1
    return Delta(dt, n, n * 300_000, n * 5_000_000, n * 5_400_000, n)


def _stats(total: Delta) -> StatsModel:
    n = total.requests
    return StatsModel(
        name="m",
        version="1",
        last_inference_ms=None,
        inference_count=n,
        execution_count=total.executions,
        success=Duration(n, total.request_ns),
        fail=Duration(0, 0),
        queue=Duration(n, total.queue_ns),
        compute_input=Duration(n, n * 1000),
        compute_infer=Duration(n, total.infer_ns),
        compute_output=Duration(n, n * 1000),
        cache_hit=None,
        cache_miss=None,
        batch_executions={},
    )


def _series(shape: object) -> Iterator[tuple[float, Delta, model.ModelInterval]]:
    """(snapshot time, the interval's counter deltas, the interval as the collector derives it)."""
    config = ModelConfig(max_batch_size=8)
    total = Delta(0.0, 0, 0, 0, 0, 0)
    at = 0.0
    prev = derive.Reading(_stats(total), at)
    for i in range(TICKS):
        d: Delta = shape(i)  # type: ignore[operator]
        total = Delta(
            *(a + b for a, b in zip(dataclasses.astuple(total), dataclasses.astuple(d), strict=True))
        )
        at += d.dt
        cur = derive.Reading(_stats(total), at)
        interval = derive.interval(prev, cur, config)
        assert interval is not None
        yield HOUR + i, d, interval
        prev = cur


def _fill(
    store: Store, clock: ManualClock, shape: object, repeat_every: int = 0
) -> list[tuple[float, Delta]]:
    """Write the series, a snapshot a second. With `repeat_every`, every n-th snapshot shows
    the status before it again (no poll finished in between: the same `polled_at`), as the
    engine does after a late poll: shown again, it must not count again."""
    written = []
    previous: model.TritonServerStatus | None = None
    for i, (ts, delta, interval) in enumerate(_series(shape)):
        clock.now = ts
        if repeat_every and i % repeat_every == repeat_every - 1 and previous is not None:
            status = previous
        else:
            stats = model.ModelStats(server="local", name="m", version="1", state="READY", interval=interval)
            status = model.TritonServerStatus(
                "local", "http://127.0.0.1:8000", model.ServerState.UP, polled_at=ts - 0.1, models=(stats,)
            )
            written.append((ts, delta))
        store.submit(model.Snapshot(timestamp=ts, node=NODE, triton=(status,)))
        previous = status
    assert store.flush(30)
    return written


def _truth(written: list[tuple[float, Delta]], lo: float, hi: float) -> dict[str, float]:
    window = [d for ts, d in written if lo <= ts < hi]
    n = sum(d.requests for d in window)
    return {
        "model_average_queue_seconds": sum(d.queue_ns for d in window) / n / 1e9,
        "model_average_compute_infer_seconds": sum(d.infer_ns for d in window) / n / 1e9,
        "model_average_request_seconds": sum(d.request_ns for d in window) / n / 1e9,
        "model_requests_per_second": n / sum(d.dt for d in window),
        "model_average_batch_size": n / sum(d.executions for d in window),
        "model_queue_share_ratio": sum(d.queue_ns for d in window) / sum(d.request_ns for d in window),
        "model_mean_queue_depth": sum(d.queue_ns for d in window) / 1e9 / sum(d.dt for d in window),
    }


def _close(name: str, stored: float, truth: float) -> None:
    """Equal to the store's precision: half a step of the figure's scale for each of the three
    roundings (latencies: 0.1 µs; rates: 0.001/s; ratios: 0.01 %)."""
    scale = series.info(name).stored_scale
    assert scale is not None
    assert abs(stored - truth) <= 1.5 / scale, (name, stored, truth)
    assert stored == pytest.approx(truth, rel=0.02), name  # the bound, for the record


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    clock.now = HOUR
    opened = open_test_store(tmp_path / "gpuwatch.db", clock, retention=RETENTION)
    yield opened
    opened.close()


@pytest.mark.parametrize("shape", [steady, bursty])
def test_every_tier_keeps_the_ratio_of_the_sums(
    store: Store, clock: ManualClock, tmp_path: Path, shape: object
) -> None:
    written = _fill(store, clock, shape)
    db = tmp_path / "gpuwatch.db"
    for table, width in (("model_10s", 10), ("model_60s", 60)):
        found = rows(db, f"SELECT key >> 20, model_average_queue_seconds_mean FROM {table} ORDER BY 1")
        assert len(found) >= 7, table
        for ts_ms, mean in found:
            truth = _truth(written, ts_ms / 1000, ts_ms / 1000 + width)["model_average_queue_seconds"]
            assert abs(mean / 1e7 - truth) <= PRECISION, (table, ts_ms, mean, truth)


@pytest.mark.parametrize(("shape", "repeat_every"), [(steady, 0), (bursty, 0), (bursty, 5)])
@pytest.mark.parametrize(
    ("lo", "hi", "points"),
    [
        (0, 360, 1),  # one bucket of six minutes, from the minute tier
        (0, TICKS, 1),  # the minute tier, then the 10 s tier and the raw seconds after it
        (60, 120, 6),  # the 10 s tier
        (100, 130, 30),  # raw seconds
        (413, 427, 1),  # raw seconds not rolled up yet
    ],
)
def test_every_query_gives_the_ratio_of_the_sums(  # noqa: PLR0917 - fixtures and parameters
    store: Store, clock: ManualClock, shape: object, repeat_every: int, lo: int, hi: int, points: int
) -> None:
    written = _fill(store, clock, shape, repeat_every)
    for name in _truth(written, HOUR, HOUR + 1):
        found = store.history.query(name, {}, HOUR + lo, HOUR + hi - 1, points)
        assert len(found) == 1, name
        data = found[0]
        assert len(data.points) <= points, name
        for point in data.points:
            # A bucket holds the whole stored rows that start in it; the last one ends the range.
            start = point.timestamp
            end = min(point.timestamp + data.resolution_seconds, HOUR + hi)
            if not any(start <= ts < end for ts, _ in written):
                assert repeat_every, "a bucket without data"  # a second that only repeats
                continue
            _close(name, point.mean, _truth(written, start, end)[name])


def test_a_mean_of_means_would_be_far_off() -> None:
    """What the test above guards against: the bursty series' unweighted mean of the
    per-interval queue times is nowhere near the truth."""
    intervals = list(_series(bursty))
    means = [i.average_queue_seconds for _, _, i in intervals if i.average_queue_seconds is not None]
    truth = _truth([(ts, d) for ts, d, _ in intervals], HOUR, HOUR + TICKS)["model_average_queue_seconds"]
    assert abs(sum(means) / len(means) - truth) / truth > 0.4


def test_the_memory_history_weighs_alike(clock: ManualClock) -> None:
    memory = series.MemoryHistory(keep_seconds=3600)
    written = []
    for ts, delta, interval in _series(bursty):
        stats = model.ModelStats(server="local", name="m", version="1", state="READY", interval=interval)
        status = model.TritonServerStatus("local", "", model.ServerState.UP, models=(stats,))
        memory.add(model.Snapshot(timestamp=ts, node=NODE, triton=(status,)))
        written.append((ts, delta))
    (data,) = memory.query("model_average_queue_seconds", {}, HOUR, HOUR + 359, 1)
    (point,) = data.points
    truth = _truth(written, HOUR, HOUR + 360)["model_average_queue_seconds"]
    assert point.mean == pytest.approx(truth, rel=1e-9)


def test_a_version_1_database_is_migrated_and_weighted(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "gpuwatch.db"
    shutil.copy(FIXTURE, db)
    assert rows(db, "SELECT version FROM schema_version") == [(1,)]
    # Version 1's minute rows are means of means: 0.02025 s, where the traffic says 0.039 s.
    assert rows(db, "SELECT DISTINCT model_average_queue_seconds_mean FROM model_60s") == [(202_500,)]
    n_burst, q_burst = make_v1.burst(0)
    n_lull, q_lull = make_v1.burst(10)
    truth = (n_burst * q_burst + n_lull * q_lull) / (n_burst + n_lull)

    clock.now = make_v1.START + make_v1.TICKS
    store = open_test_store(db, clock)
    assert store.flush(30)
    store.close()
    assert rows(db, "SELECT version FROM schema_version") == [(schema.DATABASE_SCHEMA_VERSION,)]
    # The raw rows' weights are estimated from the rates they hold (requests = rate × 1 s) …
    assert rows(db, "SELECT DISTINCT weight_requests FROM model_raw ORDER BY 1") == [(n_lull,), (n_burst,)]
    assert rows(db, "SELECT DISTINCT weight_ms FROM model_raw") == [(1000,)]
    # … and the minutes the raw tier holds whole are rolled up again, weighted.
    minutes = rows(
        db, "SELECT model_average_queue_seconds_mean, model_average_queue_seconds_weight FROM model_60s"
    )
    assert minutes == [(round(truth * 1e7), 30 * (n_burst + n_lull))] * 3
    history = open_history(db)
    (data,) = history.query("model_average_queue_seconds", {}, make_v1.START, make_v1.START + 179, 1)
    assert data.resolution_seconds == 180
    assert data.points[0].mean == pytest.approx(truth, abs=1e-7)
    (data,) = history.query("gpu_power_watts", {}, make_v1.START, make_v1.START + 59, 1)
    assert data.points[0].mean == pytest.approx(129.5)  # unweighted figures as before


def test_the_migration_writes_the_layout_the_catalog_declares() -> None:
    # Version 2's weights are written out in the migration; the catalog must still agree.
    assert {f.series: f.raw_weight_column for f in figures.WEIGHTED["model"]} == schema._V2_WEIGHTED
    assert [column for column, _ in figures.RAW_WEIGHTS["model"]] == list(schema._V2_RAW_WEIGHTS)
    for estimate in schema._V2_RAW_WEIGHTS.values():
        assert set(schema._columns_in(estimate)) <= {f.series for f in figures.FIGURES["model"]}
