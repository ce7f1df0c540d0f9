"""The schema's version, migrations, and what the store refuses to touch."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Connection

from gpuwatch.store import NewerSchemaError, NotAStoreError, StoreError, open_history, schema
from gpuwatch.store.database import make_engine
from tests.conftest import ManualClock
from tests.storekit import gpu, open_test_store, rows, snapshot


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fresh(db: Path, clock: ManualClock) -> None:
    store = open_test_store(db, clock)
    store.submit(snapshot(clock.now, [gpu(0, power_watts=100.0)]))
    store.close()


def test_a_fresh_database(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "new" / "dir" / "gpuwatch.db"
    _fresh(db, clock)
    assert rows(db, "SELECT version FROM schema_version") == [(schema.DATABASE_SCHEMA_VERSION,)]
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]
    assert rows(db, "PRAGMA auto_vacuum") == [(2,)]  # incremental: purges can shrink the file
    assert rows(db, "SELECT resolution_s, keep_s FROM tier ORDER BY 1") == [
        (1, 86_400),
        (60, 2_592_000),
        (3600, 31_536_000),
    ]
    assert rows(db, "SELECT value FROM store_meta WHERE name = 'clean_shutdown'") == [("1",)]
    tables = {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"gpu_raw", "gpu_60s", "gpu_3600s", "model_raw", "server_3600s", "event", "entity"} <= tables


def test_a_database_from_a_newer_gpuwatch_is_refused_and_left_alone(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "gpuwatch.db"
    _fresh(db, clock)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    before = _digest(db)
    with pytest.raises(NewerSchemaError) as caught:
        open_test_store(db, clock)
    message = str(caught.value)
    assert message == (
        f"the database {db} was written by a newer gpuwatch (schema version 99; this gpuwatch knows up "
        f"to {schema.DATABASE_SCHEMA_VERSION}): upgrade gpuwatch, or move the file aside"
    )
    with pytest.raises(NewerSchemaError):
        open_history(db)
    assert _digest(db) == before
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_an_sqlite_file_of_something_else_is_refused_and_left_alone(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE accounts (name TEXT)")
    conn.close()
    before = _digest(db)
    with pytest.raises(NotAStoreError, match="not one of gpuwatch's"):
        open_test_store(db, clock)
    assert _digest(db) == before


def test_migrations_run_one_version_at_a_time_in_one_transaction(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "gpuwatch.db"
    _fresh(db, clock)

    def add_hostname(conn: Connection) -> None:
        conn.exec_driver_sql("ALTER TABLE entity ADD COLUMN hostname TEXT")

    def fail(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE half_done (x)")
        raise RuntimeError("migration 2 → 3 broke")

    engine = make_engine(db, "writer")
    try:
        with engine.connect() as conn, conn.begin():
            assert schema.migrate(conn, 1, migrations={1: add_hostname}, target=2) == [2]
        assert rows(db, "SELECT version FROM schema_version") == [(2,)]
        assert "hostname" in {r[1] for r in rows(db, "PRAGMA table_info(entity)")}

        with pytest.raises(RuntimeError, match="broke"), engine.connect() as conn, conn.begin():
            schema.migrate(conn, 2, migrations={2: fail}, target=3)
        assert rows(db, "SELECT version FROM schema_version") == [(2,)]
        assert rows(db, "SELECT name FROM sqlite_master WHERE name = 'half_done'") == []
    finally:
        engine.dispose()


def test_a_series_new_in_the_catalog_becomes_a_column(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "gpuwatch.db"
    _fresh(db, clock)
    with sqlite3.connect(db) as conn:  # as if written by a gpuwatch without this series
        conn.execute("ALTER TABLE gpu_raw DROP COLUMN gpu_fan_speed_ratio")
    conn.close()
    history = open_history(db)
    assert history.query("gpu_fan_speed_ratio", {}, 0, clock.now + 1, 10) == []
    assert history.query("gpu_power_watts", {}, 0, clock.now + 1, 10)[0].points[0].mean == 100.0

    caplog.set_level("INFO", logger="gpuwatch.store")
    store = open_test_store(db, clock)
    store.submit(snapshot(clock.now + 1, [gpu(0, fan_speed_ratio=0.3)]))
    assert store.flush(10)
    store.close()
    assert "gpu_fan_speed_ratio" in {r[1] for r in rows(db, "PRAGMA table_info(gpu_raw)")}
    assert rows(db, "SELECT gpu_fan_speed_ratio FROM gpu_raw WHERE gpu_fan_speed_ratio IS NOT NULL") == [
        (3000,)
    ]
    assert any(
        "added columns for new series to gpu_raw: gpu_fan_speed_ratio" in r.message for r in caplog.records
    )


def test_reading_needs_a_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no database at"):
        open_history(tmp_path / "missing.db")
    (tmp_path / "text.db").write_text("hello, this is not a database at all")
    with pytest.raises(StoreError, match="not an SQLite file"):
        open_history(tmp_path / "text.db")
