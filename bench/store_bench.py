"""The store's costs: writing a tick, range queries over 30 days of 8 GPUs, bytes per GPU-day.

    /work/venv/bin/python bench/store_bench.py [--keep DIR]

Every figure comes with a baseline measured in the same run on the same machine, and the
ratio between them (speed is never asserted in tests; this prints it):

1. Write cost per tick, 8 GPUs and 20 Triton models: the CPU time of the store's writer thread
   (extracting the figures, encoding, one transaction per tick, and the rollups and purge
   checks that fall due), against plain `sqlite3` inserting the same rows, already encoded,
   into the same table with the same settings, one transaction per tick.
2. A store filled with 30 days of 8 GPUs, then the 24 h and 30-day queries of one series
   downsampled to 200 points (goals: 50 ms and 100 ms), against plain `sqlite3` reading the
   rows such a query covers (the minute or hour rows of that GPU), and reading the raw seconds
   a store without tiers would have to scan.
3. Database size per GPU-day for each tier, and at the default retention, against the same
   ticks stored as REAL columns and as one row per value (the Home Assistant recorder's shape).
4. Database size per Triton model-day, raw seconds and minute rollups, with the weights the
   weighted history keeps (schema 2) against the same rows without them (schema 1's columns).
   `--model-day` runs this part alone (a few seconds: an hour of 20 busy models and 20 idle).

How the 30 days are filled, fast but through the store where it matters: the newest 24 hours
are 86 400 ticks of 8 recorded GPUs (the real H100 trace, `gpuwatch.demo.nvml`)
submitted to the store, which writes them, rolls them up into minutes and hours as it goes;
the 29 days before are that day's minute rows copied back a day at a time (SQL, same
distribution), and the hour tier is then back-filled from them by the store's own rollup.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpuwatch import config, model, series
from gpuwatch.assemble import build_engine
from gpuwatch.store import Store, open_store
from gpuwatch.store.figures import FIGURES, SCALES, encode_values

GPUS = 8
MODELS = 20
DAY = 86_400
END = 1_795_564_800.0  # a whole hour: the fill ends here
SERIES = "gpu_power_watts"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- ticks


def recorded_gpus(count: int) -> list[tuple[model.GpuSample, ...]]:
    """`count` distinct ticks of 8 GPUs from the recorded H100 trace."""
    clock = Clock(END - DAY)
    base = config.Settings()
    settings = dataclasses.replace(base, demo=dataclasses.replace(base.demo, gpus=GPUS, triton=False))
    engine = build_engine(settings, demo=True, clock=clock)
    ticks = []
    try:
        for _ in range(count):
            ticks.append(engine.collect_once(0.01).gpus)
            clock.now += 1.7  # the trace is 72 s long; this walks through it
    finally:
        engine.stop()
    return ticks


def synthetic_models(rng: random.Random) -> tuple[model.TritonServerStatus, ...]:
    models = []
    for i in range(MODELS):
        requests = rng.uniform(5, 800)
        interval = model.ModelInterval(
            interval_seconds=1.0,
            requests_per_second=requests,
            inferences_per_second=requests * rng.uniform(1, 8),
            executions_per_second=requests / rng.uniform(1, 8),
            failures_per_second=0.0,
            average_batch_size=rng.uniform(1, 32),
            batch_fill_ratio=rng.random(),
            preferred_batch_ratio=rng.random(),
            average_request_seconds=rng.uniform(0.002, 0.08),
            average_queue_seconds=rng.uniform(0, 0.02),
            average_compute_input_seconds=rng.uniform(0, 0.001),
            average_compute_infer_seconds=rng.uniform(0.001, 0.05),
            average_compute_output_seconds=rng.uniform(0, 0.001),
            queue_share_ratio=rng.random(),
            queue_to_compute_ratio=rng.uniform(0, 3),
            queue_delay_ratio=rng.random(),
            mean_queue_depth=rng.uniform(0, 12),
        )
        models.append(
            model.ModelStats(
                server="local",
                name=f"model-{i:02d}",
                version="1",
                state="READY",
                pending_requests=rng.randint(0, 30),
                interval=interval,
            )
        )
    return (
        model.TritonServerStatus(
            "local", "http://127.0.0.1:8000", model.ServerState.UP, models=tuple(models)
        ),
    )


NODE = model.NodeInfo("bench", "0.1.0", "recorded")


def snapshots(
    gpu_ticks: list[tuple[model.GpuSample, ...]], start: float, count: int, triton: list[Any] | None = None
) -> list[model.Snapshot]:
    return [
        model.Snapshot(
            timestamp=start + i,
            node=NODE,
            gpus=gpu_ticks[i % len(gpu_ticks)],
            triton=triton[i % len(triton)] if triton else (),
        )
        for i in range(count)
    ]


def settings_for(db: Path, **store: Any) -> config.Settings:
    base = config.Settings()
    return dataclasses.replace(
        base,
        daemon=dataclasses.replace(base.daemon, database=str(db)),
        store=dataclasses.replace(base.store, **store),
    )


def writer_cpu_clock() -> Callable[[], float]:
    thread = next(t for t in threading.enumerate() if t.name == "store-writer")
    assert thread.ident is not None
    clock_id = time.pthread_getcpuclockid(thread.ident)
    return lambda: time.clock_gettime(clock_id)


def bytes_written() -> int:
    """Bytes this process has handed to write() so far (Linux): the WAL, checkpoints, all."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def wait_drained(store: Store) -> None:
    while store.health().queue_length:
        time.sleep(0.0002)


# --------------------------------------------------------------------------- 1. write cost


def bench_write(workdir: Path, gpu_ticks: list[tuple[model.GpuSample, ...]]) -> None:
    rng = random.Random(7)
    triton = [synthetic_models(rng) for _ in range(30)]
    ticks = snapshots(gpu_ticks, END - 3600, 1200, triton)
    clock = Clock(ticks[0].timestamp)
    store = open_store(settings_for(workdir / "write.db"), clock=clock)
    try:
        for snap in ticks[:60]:  # entities known, caches warm
            clock.now = snap.timestamp
            store.submit(snap)
            wait_drained(store)
        cpu = writer_cpu_clock()
        measured = ticks[60:]
        started, wall, written = cpu(), time.perf_counter(), bytes_written()
        for snap in measured:
            clock.now = snap.timestamp
            store.submit(snap)
            wait_drained(store)
        store_cpu = (cpu() - started) / len(measured)
        store_wall = (time.perf_counter() - wall) / len(measured)
        store_bytes = (bytes_written() - written) / len(measured)
    finally:
        store.close()

    # Baseline: the same rows, encoded beforehand, into the same tables with plain sqlite3.
    db = workdir / "write-baseline.db"
    shutil.copy(workdir / "write.db", db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    ids = {(kind, labels): n for n, (kind, labels) in enumerate(_entity_keys(measured[0]))}
    prepared = []
    for snap in measured:
        rows: dict[str, list[tuple[Any, ...]]] = {"gpu": [], "model": [], "server": []}
        ts_ms = round((snap.timestamp + 7200) * 1000)  # after what the store wrote
        for kind, labels, values in series.entity_values(snap):
            entity = ids[(kind, labels)] + 1
            rows[kind].append(((ts_ms << 20) | entity, entity, *encode_values(values, SCALES[kind])))
        prepared.append(rows)
    statements = {
        kind: f"INSERT INTO {kind}_raw VALUES ({', '.join('?' * (2 + len(FIGURES[kind])))})"
        for kind in ("gpu", "model", "server")
    }

    def insert_all(shift_ms: int) -> tuple[float, float]:
        started, written = time.thread_time(), bytes_written()
        for rows in prepared:
            conn.execute("BEGIN IMMEDIATE")
            for kind, kind_rows in rows.items():
                conn.executemany(statements[kind], [((r[0] + (shift_ms << 20)), *r[1:]) for r in kind_rows])
            conn.execute("COMMIT")
        return (time.thread_time() - started) / len(prepared), (bytes_written() - written) / len(prepared)

    baseline_cpu, baseline_bytes = insert_all(0)
    # The layout not taken: an index on entity_id in the raw tables.
    for kind in ("gpu", "model", "server"):
        conn.execute(f"CREATE INDEX {kind}_raw_entity ON {kind}_raw (entity_id)")
    _, indexed_bytes = insert_all(3_600_000)
    conn.close()

    print(f"1. write cost per tick ({GPUS} GPUs, {MODELS} models, {len(measured)} ticks)")
    print(f"   store writer CPU      {store_cpu * 1e3:7.3f} ms/tick  (rollups and purge checks included)")
    print(f"   store submit→written  {store_wall * 1e3:7.3f} ms/tick  (wall)")
    print(f"   baseline sqlite3      {baseline_cpu * 1e3:7.3f} ms/tick  (same rows pre-encoded, same table)")
    print(f"   ratio store/baseline  {store_cpu / baseline_cpu:7.2f}")
    kib = 1024
    print(f"   written to disk       {store_bytes / kib:7.1f} KiB/tick  (write() calls: WAL and checkpoints)")
    print(f"   baseline written      {baseline_bytes / kib:7.1f} KiB/tick")
    print(f"   with an entity index  {indexed_bytes / kib:7.1f} KiB/tick  (the raw tables' layout not taken)")


def _entity_keys(snap: model.Snapshot) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    return [(kind, labels) for kind, labels, _ in series.entity_values(snap)]


# --------------------------------------------------------------------------- 2. fill and query


def fill(db: Path, gpu_ticks: list[tuple[model.GpuSample, ...]]) -> tuple[Store, Clock, float]:
    clock = Clock(END - DAY)
    store = open_store(settings_for(db, write_queue_max=1_000_000), clock=clock)
    started = time.perf_counter()
    ticks = snapshots(gpu_ticks, END - DAY, DAY)
    for i, snap in enumerate(ticks):
        clock.now = snap.timestamp
        store.submit(snap)
        if i % 20_000 == 19_999:
            store.flush(600)
    clock.now = END
    store.flush(600)
    raw_seconds = time.perf_counter() - started

    day_ms = DAY * 1000
    end_ms = int(END * 1000)

    def copy_back(conn: Any) -> None:
        for days in range(1, 30):
            conn.exec_driver_sql(
                "INSERT INTO gpu_60s SELECT key - (? << 20), entity_id, "
                + ", ".join(c for c in _columns(conn, "gpu_60s")[2:])
                + " FROM gpu_60s WHERE key >= ? AND key < ?",
                (days * day_ms, (end_ms - day_ms) << 20, end_ms << 20),
            )
        conn.exec_driver_sql("DELETE FROM gpu_3600s")
        conn.exec_driver_sql("UPDATE tier SET rolled_until_ms = 0 WHERE resolution_s = 3600")

    store.call(copy_back)
    store.close()  # reopening starts the hour tier's back-fill from the copied minutes
    store = open_store(settings_for(db), clock=clock)
    store.flush(600)
    print(
        f"   filled in {time.perf_counter() - started:.0f} s ({raw_seconds:.0f} s for the 86 400 raw ticks)"
    )
    return store, clock, raw_seconds


def _columns(conn: Any, table: str) -> list[str]:
    return [row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({table})")]


def timed(fn: Callable[[], object], repeat: int = 25) -> tuple[float, float]:
    fn()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def bench_queries(store: Store, db: Path, clock: Clock) -> None:
    history = store.history
    now = clock.now
    match = {"gpu": "3"}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    (entity,) = conn.execute(
        "SELECT id FROM entity WHERE kind = 'gpu' AND labels LIKE '[[\"gpu\",\"3\"]%'"
    ).fetchone()

    def scan(table: str, column: str, start: float) -> Callable[[], object]:
        sql = f"SELECT key, {column} FROM {table} WHERE entity_id = ? AND key >= ? AND key < ?"
        args = (entity, int(start * 1000) << 20, (int(now * 1000) + 1) << 20)
        return lambda: conn.execute(sql, args).fetchall()

    print("2. range queries of one series, one GPU, downsampled to 200 points (warm page cache)")
    for label, span, goal, table, column in (
        ("24 h", DAY, 50, "gpu_60s", f"{SERIES}_mean"),
        ("30 d", 30 * DAY, 100, "gpu_3600s", f"{SERIES}_mean"),
    ):
        start = now - span
        (data,) = history.query(SERIES, match, start, now, 200)
        median, p90 = timed(lambda start=start: history.query(SERIES, match, start, now, 200))
        rows_read = len(scan(table, column, start)())
        base, _ = timed(scan(table, column, start))
        raw_rows = len(scan("gpu_raw", SERIES, now - DAY)())
        raw, _ = timed(scan("gpu_raw", SERIES, now - DAY), repeat=5)
        print(
            f"   {label}: {median * 1e3:6.2f} ms median, {p90 * 1e3:6.2f} ms p90 (goal ≤ {goal} ms); "
            f"{len(data.points)} points of {data.resolution_seconds:g} s"
        )
        print(f"         baseline: sqlite3 fetching the {rows_read} {table} rows: {base * 1e3:6.2f} ms")
        print(f"         ratio store/baseline {median / base:5.2f}")
        if span == DAY:
            print(f"         a store without tiers, scanning {raw_rows} raw rows: {raw * 1e3:6.2f} ms")
            print(f"         ratio store/tierless {median / raw:5.3f}")
    conn.close()


# --------------------------------------------------------------------------- 3. size


def table_bytes(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master"))
    sizes: dict[str, int] = {}
    for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
        table = owner.get(name, name)
        sizes[table] = sizes.get(table, 0) + int(size)
    conn.close()
    return sizes


def baseline_sizes(workdir: Path, gpu_ticks: list[tuple[model.GpuSample, ...]]) -> tuple[float, float]:
    """Bytes per GPU-day of one hour of the same ticks as REAL columns and as one row per value."""
    ticks = snapshots(gpu_ticks, END, 3600)
    names = series.entity_series("gpu")
    real = sqlite3.connect(workdir / "real.db", isolation_level=None)
    per_value = sqlite3.connect(workdir / "per-value.db", isolation_level=None)
    for conn in (real, per_value):
        conn.execute("PRAGMA journal_mode = WAL")
    columns = ", ".join(f"{n} REAL" for n in names)
    real.execute(f"CREATE TABLE gpu (key INTEGER PRIMARY KEY, entity_id INTEGER, {columns})")
    real.execute("CREATE INDEX gpu_entity ON gpu (entity_id)")
    per_value.execute("CREATE TABLE states (id INTEGER PRIMARY KEY, series_id INTEGER, ts REAL, value REAL)")
    per_value.execute("CREATE INDEX states_series_ts ON states (series_id, ts)")
    real.execute("BEGIN")
    per_value.execute("BEGIN")
    for snap in ticks:
        ts_ms = round(snap.timestamp * 1000)
        for index, (_kind, _labels, values) in enumerate(series.entity_values(snap)):
            real.execute(
                f"INSERT INTO gpu VALUES ({', '.join('?' * (2 + len(names)))})",
                ((ts_ms << 20) | index, index, *values),
            )
            per_value.executemany(
                "INSERT INTO states (series_id, ts, value) VALUES (?, ?, ?)",
                [(index * 100 + n, snap.timestamp, v) for n, v in enumerate(values) if v is not None],
            )
    real.execute("COMMIT")
    per_value.execute("COMMIT")
    real.close()
    per_value.close()
    scale = DAY / 3600 / GPUS
    return (
        sum(table_bytes(workdir / "real.db").values()) * scale,
        sum(table_bytes(workdir / "per-value.db").values()) * scale,
    )


def bench_size(db: Path, workdir: Path, gpu_ticks: list[tuple[model.GpuSample, ...]]) -> None:
    sizes = table_bytes(db)
    raw = sizes["gpu_raw"] / GPUS  # one day of seconds
    minute = sizes["gpu_60s"] / GPUS / 30
    hour = sizes["gpu_3600s"] / GPUS / 30
    real, per_value = baseline_sizes(workdir, gpu_ticks)
    mib = 1024 * 1024
    steady = raw + 30 * minute + 365 * hour
    print("3. database size per GPU-day (dbstat: pages of each table and its indexes)")
    print(f"   raw seconds          {raw / mib:7.2f} MiB/GPU-day")
    print(f"   minute rollups       {minute / mib:7.3f} MiB/GPU-day")
    print(f"   hour rollups         {hour / mib:7.4f} MiB/GPU-day")
    print(
        f"   default retention (24 h raw, 30 d minutes, 1 y hours): {steady / mib:.1f} MiB per GPU, "
        f"{GPUS * steady / mib:.0f} MiB for {GPUS} GPUs"
    )
    print(
        f"   baseline REAL columns      {real / mib:7.2f} MiB/GPU-day; ratio store/baseline {raw / real:.2f}"
    )
    print(f"   baseline row per value     {per_value / mib:7.2f} MiB/GPU-day; ratio {raw / per_value:.3f}")
    print(f"   whole file after the 30-day fill: {db.stat().st_size / mib:.0f} MiB")


# --------------------------------------------------------------------------- 4. model-day size


def _idle_models(status: model.TritonServerStatus) -> model.TritonServerStatus:
    """The same server with MODELS more models that served nothing (rates 0, no averages)."""
    idle = [
        model.ModelStats(
            server="local",
            name=f"idle-{i:02d}",
            version="1",
            state="READY",
            pending_requests=0,
            interval=model.ModelInterval(
                interval_seconds=1.0,
                requests_per_second=0.0,
                inferences_per_second=0.0,
                executions_per_second=0.0,
                failures_per_second=0.0,
                mean_queue_depth=0.0,
            ),
        )
        for i in range(MODELS)
    ]
    return dataclasses.replace(status, models=status.models + tuple(idle))


def bench_model_size(workdir: Path) -> None:
    rng = random.Random(11)
    triton = [(_idle_models(synthetic_models(rng)[0]),) for _ in range(30)]
    db = workdir / "models.db"
    clock = Clock(END - 3600)
    store = open_store(settings_for(db, write_queue_max=1_000_000), clock=clock)
    for i, snap in enumerate(snapshots([()], END - 3600, 3600, triton)):
        clock.now = snap.timestamp
        store.submit(snap)
        if i % 500 == 499:
            store.flush(600)
    clock.now = END
    store.flush(600)
    store.close()
    before = workdir / "models-without-weights.db"
    shutil.copy(db, before)
    conn = sqlite3.connect(before)
    for table in ("model_raw", "model_60s"):
        for column in _columns_sqlite(conn, table):
            if column.endswith("_weight") or column.startswith("weight_"):
                conn.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    with sqlite3.connect(db) as conn:
        conn.execute("VACUUM")
    kib = 1024
    print(f"4. database size per Triton model-day ({MODELS} busy and {MODELS} idle models, an hour × 24)")
    for label, table, scale in (("raw seconds", "model_raw", 24), ("minute rollups", "model_60s", 24)):
        without = table_bytes(before)[table] / (2 * MODELS) * scale
        with_weights = table_bytes(db)[table] / (2 * MODELS) * scale
        print(
            f"   {label:15} {without / kib:8.0f} KiB/model-day without weights, "
            f"{with_weights / kib:8.0f} KiB with them (× {with_weights / without:.2f})"
        )


def _columns_sqlite(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the databases in this directory")
    parser.add_argument("--model-day", action="store_true", help="only part 4, the size per model-day")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="gpuwatch-store-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.model_day:
        try:
            bench_model_size(workdir)
        finally:
            if args.keep is None:
                shutil.rmtree(workdir, ignore_errors=True)
        return
    try:
        gpu_ticks = recorded_gpus(40)
        bench_write(workdir, gpu_ticks)
        db = workdir / "30days.db"
        print("   (filling a store with 30 days of 8 GPUs …)")
        store, clock, _ = fill(db, gpu_ticks)
        try:
            bench_queries(store, db, clock)
        finally:
            store.close()
        bench_size(db, workdir, gpu_ticks)
        bench_model_size(workdir)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
