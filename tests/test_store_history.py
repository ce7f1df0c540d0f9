"""Writing snapshots and reading history back: the store keeps `series.History`'s promises.

Every test writes real SQLite files through the store's writer thread with a manual clock, so
tier boundaries, rollups and tier choices are exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuwatch import model, series
from gpuwatch.store import Store, Tier
from gpuwatch.store.query import bucket_width, choose_tier
from tests.conftest import ManualClock
from tests.storekit import gpu, model_stats, open_test_store, rows, snapshot

HOUR_ALIGNED = 1_795_557_600.0  # a whole hour, so minute and hour buckets start with the data


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gpuwatch.db"


@pytest.fixture
def store(db: Path, clock: ManualClock) -> Iterator[Store]:
    clock.now = HOUR_ALIGNED
    opened = open_test_store(db, clock)
    yield opened
    opened.close()


def _varied(i: int) -> model.Snapshot:
    """Tick i: values that change every second, with a gap and a value the source lacks."""
    gpus = [
        gpu(
            0,
            power_watts=100 + (i * 7) % 50 + 0.125,
            utilization_ratio=(i % 11) / 10,
            temperature_celsius=40.0 + i % 3,
            fan_speed_ratio=None,
        ),
        gpu(1, power_watts=300.5 - i % 13, utilization_ratio=0.5, memory_used_bytes=2**34 + i),
    ]
    if 100 <= i < 130:
        gpus = gpus[:1]  # GPU 1 missing for 30 s: no rows, and no zeros in its history
    models = [model_stats("resnet", requests_per_second=10.0 + i % 5, average_queue_seconds=0.00125)]
    return snapshot(HOUR_ALIGNED + i, gpus, models)


def _fill(store: Store, clock: ManualClock, ticks: int, make: object = _varied) -> list[model.Snapshot]:
    written = []
    for i in range(ticks):
        snap = make(i)  # type: ignore[operator]
        clock.now = snap.timestamp
        store.submit(snap)
        written.append(snap)
        if i % 1000 == 999:  # the writer's queue holds an hour; the test hands over faster
            assert store.flush(30)
    assert store.flush(30)
    return written


def _same(a: list[series.SeriesData], b: list[series.SeriesData]) -> None:
    assert [d.key for d in a] == [d.key for d in b]
    for x, y in zip(a, b, strict=True):
        assert x.resolution_seconds == y.resolution_seconds
        assert [p.timestamp for p in x.points] == [p.timestamp for p in y.points]
        for p, q in zip(x.points, y.points, strict=True):
            assert (p.mean, p.minimum, p.maximum) == pytest.approx((q.mean, q.minimum, q.maximum), rel=1e-9)


@pytest.mark.parametrize(
    ("name", "match", "offsets", "points"),
    [
        ("gpu_power_watts", {}, (0, 299), 300),
        ("gpu_power_watts", {"gpu": "1"}, (50, 200), 7),
        ("gpu_utilization_ratio", {"gpu": "0"}, (0, 299), 30),
        ("gpu_memory_used_bytes", {}, (90, 140), 100),
        ("gpu_up", {}, (95, 135), 4),
        ("model_requests_per_second", {"model": "resnet"}, (10, 20), 3),
        ("model_average_queue_seconds", {}, (0, 299), 20),
    ],
)
def test_raw_history_is_what_memory_history_gives(  # noqa: PLR0917 - fixtures and parameters
    store: Store,
    clock: ManualClock,
    name: str,
    match: dict[str, str],
    offsets: tuple[int, int],
    points: int,
) -> None:
    memory = series.MemoryHistory(keep_seconds=3600)
    for snap in _fill(store, clock, 300):
        memory.add(snap)
    start, end = HOUR_ALIGNED + offsets[0], HOUR_ALIGNED + offsets[1]
    stored = store.history.query(name, match, start, end, points)
    assert stored, "the query found nothing"
    _same(stored, memory.query(name, match, start, end, points))


def test_a_series_the_source_never_gave_has_no_points(store: Store, clock: ManualClock) -> None:
    _fill(store, clock, 60)
    assert store.history.query("gpu_fan_speed_ratio", {}, HOUR_ALIGNED, HOUR_ALIGNED + 60, 10) == []
    with pytest.raises(series.UnknownSeriesError):
        store.history.query("gpu_power_wats", {}, HOUR_ALIGNED, HOUR_ALIGNED + 60, 10)


def test_values_are_kept_at_their_stated_precision(store: Store, clock: ManualClock) -> None:
    def make(i: int) -> model.Snapshot:
        return snapshot(
            HOUR_ALIGNED + i,
            [gpu(0, power_watts=70.56125, utilization_ratio=0.123456, energy_joules=2959.1064)],
            [
                model_stats(
                    "m",
                    average_queue_seconds=0.00012345678,
                    requests_per_second=3.0,
                    failures_per_second=math.nan,
                )
            ],
        )

    _fill(store, clock, 1, make)

    def value(name: str) -> float:
        (data,) = store.history.query(name, {}, HOUR_ALIGNED, HOUR_ALIGNED, 1)
        return data.points[0].mean

    assert value("gpu_power_watts") == 70.561  # milliwatts, as NVML reports power
    assert value("gpu_utilization_ratio") == 0.1235  # 0.01 %
    assert value("gpu_energy_joules") == 2959.106  # millijoules
    assert value("model_average_queue_seconds") == 0.0001235  # 0.1 µs
    assert store.history.query("model_failures_per_second", {}, HOUR_ALIGNED, HOUR_ALIGNED, 1) == []


def _sawtooth(i: int) -> model.Snapshot:
    """GPU 0 draws 100 + (i mod 60) W: every minute has min 100, max 159, mean 129.5."""
    return snapshot(HOUR_ALIGNED + i, [gpu(0, power_watts=100.0 + i % 60), gpu(1, power_watts=50.0)])


def test_rollups_are_exact_min_mean_max_per_bucket(store: Store, clock: ManualClock, db: Path) -> None:
    _fill(store, clock, 2 * 3600 + 300, _sawtooth)
    # The last tick is 2 h 4 min 59 s in: 124 whole minutes are complete, and 2 whole hours.
    minute = rows(
        db,
        "SELECT key >> 20, samples, gpu_power_watts_min, gpu_power_watts_mean, gpu_power_watts_max "
        "FROM gpu_60s WHERE entity_id = (SELECT id FROM entity WHERE labels LIKE '%\"0\"%') ORDER BY key",
    )
    start_ms = int(HOUR_ALIGNED * 1000)
    assert [r[0] for r in minute] == [start_ms + 60_000 * m for m in range(124)]
    assert {r[1:] for r in minute} == {(60, 100_000, 129_500, 159_000)}
    hour = rows(db, "SELECT key >> 20, samples, gpu_power_watts_min, gpu_power_watts_mean FROM gpu_3600s")
    assert sorted(hour) == sorted(
        [
            (start_ms, 3600, 100_000, 129_500),
            (start_ms + 3_600_000, 3600, 100_000, 129_500),
            (start_ms, 3600, 50_000, 50_000),
            (start_ms + 3_600_000, 3600, 50_000, 50_000),
        ]
    )
    assert rows(db, "SELECT resolution_s, rolled_until_ms FROM tier WHERE resolution_s > 1") == [
        (60, start_ms + 124 * 60_000),
        (3600, start_ms + 2 * 3_600_000),
    ]

    # Rolling up again (as after a crash between rows and bookkeeping) changes nothing.
    before = rows(db, "SELECT * FROM gpu_60s ORDER BY key")
    store.call(lambda conn: conn.exec_driver_sql("UPDATE tier SET rolled_until_ms = 0"))
    assert store.flush(30)
    assert rows(db, "SELECT * FROM gpu_60s ORDER BY key") == before
    assert len(rows(db, "SELECT * FROM gpu_3600s")) == 4


def test_a_long_query_reads_the_rollups_and_the_newest_raw_seconds(store: Store, clock: ManualClock) -> None:
    def make(i: int) -> model.Snapshot:
        snap = _sawtooth(i)
        if i >= 7200 - 30:  # the last 30 s are not rolled up yet: only the raw tier has them
            snap = snapshot(snap.timestamp, [gpu(0, power_watts=500.0)])
        return snap

    _fill(store, clock, 7200, make)
    start, end = HOUR_ALIGNED, HOUR_ALIGNED + 7199
    (data,) = store.history.query("gpu_power_watts", {"gpu": "0"}, start, end, 100)
    assert data.resolution_seconds == 120  # the minute tier, in buckets of two minutes
    assert len(data.points) == 60
    assert {(p.minimum, p.maximum, p.mean) for p in data.points[:-1]} == {(100.0, 159.0, 129.5)}
    last = data.points[-1]
    assert (last.timestamp, last.minimum, last.maximum) == (start + 7080, 100.0, 500.0)
    # 90 s of sawtooth (two whole minutes less the last 30 s) and 30 s at 500 W:
    sawtooth_sum = sum(100 + i % 60 for i in range(7080, 7170))
    assert last.mean == pytest.approx((sawtooth_sum + 30 * 500) / 120)


def test_the_tier_that_answers() -> None:
    tiers = (Tier(1, 86_400), Tier(60, 30 * 86_400), Tier(3600, 365 * 86_400))
    now = 1_800_000_000.0
    day, month = 86_400, 30 * 86_400
    assert choose_tier(tiers, now - day, now, 200, now) == 1
    assert bucket_width(60, now - day, now, 200) == 480
    assert choose_tier(tiers, now - month, now, 200, now) == 2
    assert bucket_width(3600, now - month, now, 200) == 14_400
    assert choose_tier(tiers, now - 3600, now, 200, now) == 0
    assert choose_tier(tiers, now - 3600, now, 60, now) == 1
    # Raw seconds no longer cover a range that starts two days ago, however many points.
    assert choose_tier(tiers, now - 2 * day, now - 2 * day + 60, 10_000, now) == 1
    # Nothing covers two years ago: the coarsest tier answers.
    assert choose_tier(tiers, now - 730 * day, now, 200, now) == 2


def test_events_by_range_and_kind_newest_first(store: Store, clock: ManualClock) -> None:
    xid = model.Event(
        HOUR_ALIGNED + 1, model.EventKind.XID, model.Severity.CRITICAL, "XID 79", 2, "GPU-2", code=79
    )
    lost = model.Event(HOUR_ALIGNED + 5, model.EventKind.GPU_LOST, model.Severity.CRITICAL, "GPU 2 lost", 2)
    state = model.Event(
        HOUR_ALIGNED + 9,
        model.EventKind.MODEL_STATE,
        model.Severity.WARNING,
        "resnet v1 UNAVAILABLE",
        server="local",
        model="resnet",
        version="1",
    )
    store.submit(snapshot(HOUR_ALIGNED + 2, events=[xid]))
    store.submit(snapshot(HOUR_ALIGNED + 10, events=[lost, state]))
    store.record_events(
        (model.Event(HOUR_ALIGNED + 11, model.EventKind.DAEMON_STOP, model.Severity.INFO, "bye"),)
    )
    assert store.flush(10)
    history = store.history
    assert history.events(HOUR_ALIGNED, HOUR_ALIGNED + 20) == [
        model.Event(HOUR_ALIGNED + 11, model.EventKind.DAEMON_STOP, model.Severity.INFO, "bye"),
        state,
        lost,
        xid,
    ]
    assert history.events(
        HOUR_ALIGNED, HOUR_ALIGNED + 20, [model.EventKind.XID, model.EventKind.GPU_LOST]
    ) == [
        lost,
        xid,
    ]
    assert history.events(HOUR_ALIGNED + 2, HOUR_ALIGNED + 9) == [state, lost]
    assert history.events(HOUR_ALIGNED, HOUR_ALIGNED + 20, limit=1)[0].kind == model.EventKind.DAEMON_STOP


def test_the_wide_form_of_a_snapshot_holds_what_extract_gives() -> None:
    snaps = [_varied(i) for i in (0, 105)]
    snaps.append(snapshot(HOUR_ALIGNED, [gpu(3, power_watts=math.nan, temperature_celsius=51.0)]))
    for snap in snaps:
        wide = {
            series.SeriesKey(name, labels): value
            for kind, labels, values in series.entity_values(snap)
            for name, value in zip(
                series.entity_series(kind), values[: len(series.entity_series(kind))], strict=True
            )
            if value is not None
        }
        assert wide == dict(series.extract(snap))


@pytest.mark.parametrize(("start", "end"), [(0.0, 1e11), (0.0, 253402300740.0), (HOUR_ALIGNED - 60, 1e11)])
def test_a_range_reaching_past_the_row_keys_is_cut_there_not_an_error(
    store: Store, clock: ManualClock, start: float, end: float
) -> None:
    """Row keys hold milliseconds up to the year 2248; the API accepts times up to 5138 (its
    documented `LATEST`): a range reaching past the keys used to overflow SQLite's INTEGER
    (a 503 with a traceback per request); it is cut at the last key and answers what is stored."""
    written = _fill(store, clock, 30)
    near = store.history.query("gpu_power_watts", {}, written[0].timestamp - 1, written[-1].timestamp + 1, 1)
    far = store.history.query("gpu_power_watts", {}, start, end, 1)
    assert near and [d.key for d in far] == [d.key for d in near]
    for x, y in zip(far, near, strict=True):
        (p,) = x.points  # one bucket as wide as the range
        assert p.minimum == min(q.minimum for q in y.points)
        assert p.maximum == max(q.maximum for q in y.points)


@pytest.mark.parametrize("points", [1, 2, 3, 7, 60, 200])
@pytest.mark.parametrize("resolution", [1.0, 60.0, 3600.0])
def test_never_more_buckets_than_points(points: int, resolution: float) -> None:
    # Cut at the epoch, a window one bucket wide straddled two (`query --points 1` printed 2).
    for start in (1_800_000_000.0, 1_800_000_000.4, 1_800_000_017.0, 1_800_000_059.9):
        for span in (1.0, 59.0, 60.0, 61.0, 3600.0, 86_400.0, 86_401.0):
            origin, width = series.bucket_grid(resolution, start, start + span, points)
            assert origin <= start and width % resolution == 0
            assert origin % resolution == 0  # every stored row of the tier lies in one bucket
            raw = [(start + span * i / 500, 1.0) for i in range(501)]
            found = series.downsample(raw, start, start + span, points, resolution)[1]
            assert 1 <= len(found) <= points
            assert all(p.timestamp == origin + k * width for k, p in enumerate(found) if len(found) == points)


@pytest.mark.parametrize(
    ("span", "points"), [(1, 1), (7, 1), (59, 1), (61, 2), (299, 3), (3599, 1), (200, 200)]
)
def test_a_stored_query_never_gives_more_buckets_than_points(
    store: Store, clock: ManualClock, span: int, points: int
) -> None:
    _fill(store, clock, 3700)
    for start in (HOUR_ALIGNED + 13.4, HOUR_ALIGNED + 59, HOUR_ALIGNED + 60):
        for data in store.history.query("gpu_power_watts", {"gpu": "0"}, start, start + span, points):
            assert 1 <= len(data.points) <= points, (start, span)
