"""Faults the store survives, each on real SQLite files: kill -9, disk full, a corrupt file,
an unusable directory, and a GPU lost while the others go on."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpuwatch import errors, model
from gpuwatch.config import NvmlSettings
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.engine import Engine
from gpuwatch.store import DatabaseInUseError, StateDirectoryError, Store, open_store, writer
from tests.conftest import REPO, ManualClock, make_collector
from tests.storekit import gpu, model_stats, open_test_store, rows, settings, snapshot


@contextlib.contextmanager
def _opened(db: Path) -> Iterator[sqlite3.Connection]:
    """A read-write connection, as the next daemon would open the file after a crash (a
    read-only one could not replay the WAL)."""
    conn = sqlite3.connect(db)
    try:
        yield conn
    finally:
        conn.close()


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# --------------------------------------------------------------------------- kill -9


@pytest.mark.timeout(180)
def _writer_child(db: Path) -> subprocess.Popen[str]:
    """A daemon-shaped process writing recorded ticks into `db` (tests/store_writer_child.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store_writer_child", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )


def test_kill_9_at_random_moments_loses_at_most_the_last_tick(tmp_path: Path) -> None:
    db = tmp_path / "gpuwatch.db"
    rng = random.Random(20261124)
    stored_before = 0
    for _round in range(4):
        child = _writer_child(db)
        assert child.stdout is not None
        ticks: list[float] = []
        want = rng.randint(2, 8)
        for line in child.stdout:
            if line.startswith("tick "):
                ticks.append(float(line.split()[1]))
                if len(ticks) >= want:
                    break
        # Right after a tick is handed over (mid-transaction), a little later, or anywhere.
        time.sleep(rng.choice([0.0, rng.uniform(0, 0.004), rng.uniform(0, 0.25)]))
        child.kill()
        rest, errors = child.communicate(timeout=30)
        ticks += [float(line.split()[1]) for line in rest.splitlines() if line.startswith("tick ")]
        assert ticks, f"the child never ticked: {errors}"

        with _opened(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            stored = {ts for (ts,) in conn.execute("SELECT DISTINCT key >> 20 FROM gpu_raw")}
            per_tick = conn.execute("SELECT count(*) FROM gpu_raw GROUP BY key >> 20").fetchall()
        lost = [t for t in ticks if round(t * 1000) not in stored]
        assert lost in ([], [ticks[-1]]), f"lost {lost} of {ticks}"
        assert set(per_tick) == {(4,)}  # every tick that is there is whole: 4 GPUs
        assert len(stored) > stored_before  # and what earlier rounds wrote is still there
        stored_before = len(stored)
    assert not list(tmp_path.glob("*.corrupt-*"))  # a killed writer never leaves a corrupt file


# --------------------------------------------------------------------------- disk full


def _fill_pages(conn: Any) -> None:
    """Let the file grow no further: SQLite answers SQLITE_FULL, as on a full disk."""
    pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}").all()


def _space_returns(conn: Any) -> None:
    conn.exec_driver_sql("PRAGMA max_page_count = 1073741823").all()


class _EngineSink:
    """Stands in for the engine in `Store.attach`: collects what the store hands it."""

    def __init__(self) -> None:
        self.events: list[model.Event] = []
        self.health: Callable[[], model.StoreHealth | None] | None = None

    def subscribe(self, callback: Callable[[model.Snapshot], None]) -> None:
        self.submit = callback

    def set_store_health(self, provider: Callable[[], model.StoreHealth | None]) -> None:
        self.health = provider

    def record_event(self, event: model.Event) -> None:
        self.events.append(event)


def _tick(clock: ManualClock, i: int) -> model.Snapshot:
    clock.now += 1
    return snapshot(clock.now, [gpu(g, power_watts=100.0 + i, memory_used_bytes=2**30 * i) for g in range(8)])


@pytest.fixture
def full_disk_store(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Store, _EngineSink]]:
    # Retries come from new ticks only, so "resumed within 2 ticks" is what is tested.
    monkeypatch.setattr(writer, "RETRY_SECONDS", 3600.0)
    store = open_test_store(tmp_path / "gpuwatch.db", clock, write_queue_max=50)
    sink = _EngineSink()
    store.attach(sink)
    yield store, sink
    store.close()


def test_disk_full_holds_snapshots_reports_and_resumes_within_two_ticks(
    full_disk_store: tuple[Store, _EngineSink], clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    store, sink = full_disk_store
    db = store.path
    submitted = []
    for i in range(3):
        submitted.append(_tick(clock, i))
        sink.submit(submitted[-1])
    assert store.flush(10)
    store.call(_fill_pages)

    i = 3
    while store.health().ok and i < 500:  # until a tick needs a page the file may not have
        submitted.append(_tick(clock, i))
        sink.submit(submitted[-1])
        _wait_for(lambda: store.health().queue_length == 0 or not store.health().ok, 5)
        i += 1
    health = store.health()
    assert not health.ok
    assert health.last_error is not None and "database or disk is full" in health.last_error
    assert health.write_errors_count >= 1
    failed_at = len(submitted)

    for _ in range(10):  # the engine goes on ticking; the store holds what it cannot write
        submitted.append(_tick(clock, i))
        sink.submit(submitted[-1])
        i += 1
    assert _wait_for(lambda: store.health().queue_length == 11)
    assert sink.health is not None and sink.health() is not None
    assert [e.kind for e in sink.events] == [model.EventKind.STORE_ERROR]  # one event, not one per tick
    assert "database or disk is full" in sink.events[0].message
    assert len([r for r in caplog.records if "database writes failing" in r.message]) == 1

    store.call(_space_returns)  # space comes back ...
    submitted.append(_tick(clock, i))  # ... and the next tick brings everything in
    sink.submit(submitted[-1])
    assert _wait_for(lambda: store.health().ok and store.health().queue_length == 0)
    assert store.health().last_error is None

    stored = {ts for (ts,) in rows(db, "SELECT DISTINCT key >> 20 FROM gpu_raw")}
    assert stored == {round(s.timestamp * 1000) for s in submitted}  # nothing lost
    assert failed_at < len(submitted)
    # The store_error event, handed back to the engine, is an ordinary event of a snapshot.
    store.submit(snapshot(clock.now + 1, events=sink.events))
    assert store.flush(10)
    assert [e.kind for e in store.history.events(0, clock.now + 2)] == [model.EventKind.STORE_ERROR]


def test_a_full_write_queue_drops_the_oldest_snapshots_only(
    full_disk_store: tuple[Store, _EngineSink], clock: ManualClock
) -> None:
    store, sink = full_disk_store
    store.call(_fill_pages)
    submitted = []
    for i in range(80):  # write_queue_max is 50
        submitted.append(_tick(clock, i))
        sink.submit(submitted[-1])
    assert _wait_for(lambda: not store.health().ok and store.health().queue_length == 50)
    health = store.health()
    assert health.last_error is not None and "snapshots dropped (queue full)" in health.last_error

    store.call(_space_returns)
    submitted.append(_tick(clock, 80))
    sink.submit(submitted[-1])
    assert _wait_for(lambda: store.health().queue_length == 0 and store.health().write_errors_count > 0)
    assert store.flush(10)
    stored = sorted(ts for (ts,) in rows(store.path, "SELECT DISTINCT key >> 20 FROM gpu_raw"))
    written_before_full = [round(s.timestamp * 1000) for s in submitted[: len(submitted) - 51]]
    newest = [round(s.timestamp * 1000) for s in submitted[-50:]]
    assert set(newest) <= set(stored)  # the newest 50 are all there
    assert len(stored) < len(submitted)
    assert set(stored) - set(newest) <= set(written_before_full)


def _huge_tick(clock: ManualClock, models: tuple[model.ModelStats, ...]) -> model.Snapshot:
    clock.now += 1
    return snapshot(clock.now, [gpu(g, power_watts=100.0) for g in range(8)], models)


def test_the_write_queue_is_bounded_in_bytes_when_each_snapshot_holds_10000_models(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The case: 10 000 models made ~26 MB snapshots, and a queue bounded only in
    # snapshots grew RSS by 480 MB. Bounded in bytes, it holds what fits and drops the oldest.
    monkeypatch.setattr(writer, "RETRY_SECONDS", 3600.0)
    store = open_test_store(tmp_path / "gpuwatch.db", clock, write_queue_max_bytes=64 * 2**20)
    sink = _EngineSink()
    store.attach(sink)
    try:
        store.call(_fill_pages)
        models = tuple(model_stats(f"m{i}", requests_per_second=float(i)) for i in range(10_000))
        huge = [_huge_tick(clock, models) for _ in range(12)]
        for item in huge:
            sink.submit(item)
        fits = 64 * 2**20 // writer.item_bytes(huge[0])
        assert 1 <= fits < 12
        assert _wait_for(lambda: not store.health().ok and store.health().queue_length == fits)
        health = store.health()
        assert health.last_error is not None
        assert f"{12 - fits} snapshots dropped (queue full)" in health.last_error
    finally:
        store.close()


def test_a_stop_with_more_queued_than_it_can_write_in_time_says_how_many_it_did_not_write(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_test_store(tmp_path / "gpuwatch.db", clock, write_queue_max_bytes=1 << 40)
    sink = _EngineSink()
    store.attach(sink)
    models = tuple(model_stats(f"m{i}", requests_per_second=float(i)) for i in range(10_000))
    submitted = 40
    for _ in range(submitted):
        sink.submit(_huge_tick(clock, models))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="gpuwatch.store"):
        store.close(timeout=3.0)
    took = time.monotonic() - started
    written = rows(store.path, "SELECT COUNT(DISTINCT key >> 20) FROM model_raw")[0][0]
    said = [r.getMessage() for r in caplog.records if "not written" in r.getMessage()]
    assert took < 3.0 + 0.5  # a stop ends within its timeout, between two transactions
    if written < submitted:  # it could not write them all in time: it says exactly how many
        assert said and said[0].startswith(f"the store stopped with {submitted - written} snapshots"), said
    else:
        assert not said
    assert rows(store.path, "PRAGMA integrity_check") == [("ok",)]


# --------------------------------------------------------------------------- corrupt file


def _corrupt_pages(db: Path) -> None:
    """Keep the header and the schema, scribble over the data pages, and make the file look
    like it was not closed cleanly (as after a crash), so the store checks it."""
    with _opened(db) as conn:
        conn.execute("UPDATE store_meta SET value = '0' WHERE name = 'clean_shutdown'")
        conn.commit()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    with db.open("r+b") as f:
        for page in range(pages // 2, pages):
            f.seek(page * page_size)
            f.write(random.Random(page).randbytes(page_size))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda db: db.write_bytes(b"not a database at all\n" * 100), id="not-sqlite"),
        pytest.param(lambda db: db.write_bytes(db.read_bytes()[:10]), id="truncated-header"),
        pytest.param(_corrupt_pages, id="scribbled-pages"),
    ],
)
def test_a_corrupt_file_is_moved_aside_and_a_fresh_one_started(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture, damage: Callable[[Path], None]
) -> None:
    db = tmp_path / "gpuwatch.db"
    store = open_test_store(db, clock)
    for i in range(300):
        store.submit(_tick(clock, i))
    store.close()
    damage(db)
    damaged = db.read_bytes()

    caplog.set_level("INFO", logger="gpuwatch")
    clock.now = 1_795_560_000.0
    store = open_test_store(db, clock)
    try:
        aside = tmp_path / "gpuwatch.db.corrupt-20261124T224000Z"
        assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == [aside.name]
        assert aside.read_bytes() == damaged
        (line,) = [r for r in caplog.records if r.levelname == "ERROR"]
        assert line.getMessage().startswith(f"database {db} is corrupt (")
        assert line.getMessage().endswith(f"): moved it to {aside.name} and started a fresh one")

        store.submit(_tick(clock, 1))
        assert store.flush(10)
        assert store.health().ok
        (event,) = store.history.events(0, clock.now + 1)
        assert (event.kind, event.message) == (model.EventKind.STORE_ERROR, line.getMessage())
        assert len(store.history.query("gpu_power_watts", {}, clock.now - 1, clock.now, 5)) == 8
    finally:
        store.close()


# --------------------------------------------------------------------------- the directory


def test_a_directory_that_cannot_be_created_is_a_clear_error(tmp_path: Path, clock: ManualClock) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(StateDirectoryError) as caught:
        open_store(settings(blocker / "gpuwatch.db"), clock=clock)
    assert isinstance(caught.value, errors.Unavailable)  # the command line: one line, exit 1
    assert str(caught.value) == (
        f"cannot create the database directory {blocker}: File exists "
        "(set [daemon] state_dir or --db to a writable place)"
    )
    with pytest.raises(StateDirectoryError, match="Not a directory"):
        open_store(settings(blocker / "deeper" / "gpuwatch.db"), clock=clock)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any directory")
def test_a_directory_that_cannot_be_written_is_a_clear_error(tmp_path: Path, clock: ManualClock) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o500)
    try:
        with pytest.raises(StateDirectoryError) as caught:
            open_store(settings(state / "gpuwatch.db"), clock=clock)
        assert str(caught.value) == (
            f"cannot write in the database directory {state}: Permission denied "
            "(set [daemon] state_dir or --db to a writable place)"
        )
    finally:
        state.chmod(0o700)


# --------------------------------------------------------------------------- one writer


def test_a_second_writer_is_refused_before_it_touches_the_file(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "gpuwatch.db"
    first = open_test_store(db, clock)
    try:
        first.submit(_tick(clock, 0))
        assert first.flush(10)
        before = db.read_bytes()
        with pytest.raises(DatabaseInUseError) as caught:
            open_test_store(db, clock)
        assert isinstance(caught.value, errors.Unavailable)  # one line, exit 1
        assert str(caught.value) == (
            f"database {db} is already being written by pid {os.getpid()} "
            "(another gpuwatch daemon?); stop it or give this one its own --db"
        )
        assert db.read_bytes() == before
        first.submit(_tick(clock, 1))  # the first writer is undisturbed
        assert first.flush(10) and first.health().ok
    finally:
        first.close()
    second = open_test_store(db, clock)  # closing let it go
    second.close()
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_a_killed_writer_leaves_no_lock_behind(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "gpuwatch.db"
    child = _writer_child(db)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.stderr
        with pytest.raises(DatabaseInUseError, match=f"by pid {child.pid} "):
            open_test_store(db, clock)
    finally:
        child.kill()
        child.communicate(timeout=30)
    store = open_test_store(db, clock)  # the kernel dropped the dead writer's lock
    try:
        assert store.health().ok
    finally:
        store.close()


# --------------------------------------------------------------------------- a GPU lost


def test_a_lost_gpu_leaves_the_other_three_at_every_tick(
    tmp_path: Path, fast_nvml_settings: NvmlSettings
) -> None:
    recorded = RecordedNvml(4, clock=time.time, tick_seconds=fast_nvml_settings.interval_seconds)
    engine = Engine(
        make_collector(recorded, fast_nvml_settings, time.time),  # type: ignore[arg-type]
        tick_seconds=fast_nvml_settings.interval_seconds,
    )
    store = open_store(settings(tmp_path / "gpuwatch.db"))
    store.attach(engine)
    seen: list[model.Snapshot] = []
    engine.subscribe(seen.append)
    engine.start()
    try:
        assert _wait_for(lambda: len(seen) >= 3)
        recorded.inject("GPU_IS_LOST", gpu=1)
        lost_from = len(seen)
        assert _wait_for(lambda: len(seen) >= lost_from + 8)
    finally:
        engine.stop()
        recorded.close()
    assert store.flush(10)
    store.close()

    ticks = [s for s in seen if s.gpus]
    assert any(g.index == 1 and g.state == model.GpuState.LOST for g in ticks[-1].gpus)
    power = rows(
        store.path,
        "SELECT key >> 20, json_extract(entity.labels, '$[0][1]'), gpu_power_watts, gpu_up "
        "FROM gpu_raw JOIN entity ON entity.id = gpu_raw.entity_id",
    )
    by_tick: dict[int, dict[str, tuple[Any, Any]]] = {}
    for ts, index, watts, up in power:
        by_tick.setdefault(ts, {})[index] = (watts, up)
    for snap in ticks:
        at = by_tick[round(snap.timestamp * 1000)]
        for index in ("0", "2", "3"):
            watts, up = at[index]
            assert watts is not None and up == 1, f"GPU {index} at {snap.timestamp}"
    last = by_tick[round(ticks[-1].timestamp * 1000)]
    assert last.get("1", (None, 0))[1] == 0
