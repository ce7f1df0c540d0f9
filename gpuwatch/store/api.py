"""The store as the daemon and the CLI see it: `open_store`, `Store`, `open_history`.

Place in the flow: the daemon opens one `Store` next to its engine and `attach`es it (each
snapshot is submitted, the store's health goes into every snapshot, store errors become
events); the JSON API and the TUI read `store.history`; `gpuwatch query` and `gpuwatch events`
use `open_history` on the file alone, read-only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from sqlalchemy import Connection, Engine

from gpuwatch import model
from gpuwatch.config import Settings
from gpuwatch.store import database
from gpuwatch.store.lock import WriterLock, acquire_writer_lock
from gpuwatch.store.query import StoreHistory
from gpuwatch.store.retention import parse_retention
from gpuwatch.store.writer import Writer

T = TypeVar("T")


class EngineLike(Protocol):
    """What `Store.attach` needs of `gpuwatch.engine.Engine`."""

    def subscribe(self, callback: Callable[[model.Snapshot], None]) -> None: ...
    def set_store_health(self, provider: Callable[[], model.StoreHealth | None]) -> None: ...
    def record_event(self, event: model.Event) -> None: ...


class Store:
    """An open database with its writer thread. Make one with `open_store`."""

    def __init__(
        self, path: Path, writer: Writer, history: StoreHistory, reader_engine: Engine, lock: WriterLock
    ) -> None:
        self.path = path
        self.history = history
        """`series.History` over this database, for the JSON API and the TUI."""
        self._writer = writer
        self._reader_engine = reader_engine
        self._lock = lock
        self._closed = False

    def submit(self, snapshot: model.Snapshot) -> None:
        """Queue a snapshot for writing; returns at once (subscribe it to the engine)."""
        self._writer.submit(snapshot)

    def record_events(self, events: tuple[model.Event, ...]) -> None:
        """Queue events that come with no snapshot (the daemon's stop, after the last tick)."""
        if events:
            self._writer.submit(events)

    def health(self) -> model.StoreHealth:
        """For every snapshot (`engine.set_store_health(store.health)`), /metrics and the API."""
        return self._writer.health()

    def attach(self, engine: EngineLike) -> None:
        """Subscribe to the engine's snapshots, report health in them, and send store errors to
        the engine's events (they reach the events table once writing works again)."""
        self.send_errors_to(engine.record_event)
        engine.subscribe(self.submit)
        engine.set_store_health(self.health)

    def send_errors_to(self, record_event: Callable[[model.Event], None]) -> None:
        """Where `store_error` events go (`attach` does this; so does a `WaitingStore`)."""
        self._writer.set_event_sink(record_event)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted is written and due rollups and purges have run."""
        return self._writer.flush(timeout)

    def call(self, fn: Callable[[Connection], T], timeout: float | None = None) -> T:
        """Run `fn(connection)` on the writer thread (maintenance by hand, and tests)."""
        return self._writer.call(fn, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (for at most `timeout` seconds) and close the file."""
        if self._closed:
            return
        self._closed = True
        self._writer.close(timeout)
        database.close_quietly(self._reader_engine)
        self._lock.release()


def open_store(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] | None = None,
    path: Path | None = None,
) -> Store:
    """Open (or create) the database at `path` (default `settings.database_path`) and start its
    writer. Raises `config.ConfigError` for a bad `[store] retention`, `StoreError` for a
    database that cannot be used (see `gpuwatch.store.errors`; `NoSpaceError` when it cannot be
    written now, as on a full disk), `DatabaseInUseError` when
    another daemon is writing it (checked before the file is read or touched)."""
    tiers = parse_retention(settings.store.retention)
    db_path = path or settings.database_path
    database.prepare_directory(db_path.parent)
    lock = acquire_writer_lock(db_path)
    try:
        opened = database.open_database(db_path, tiers, clock)
        writer = Writer(opened, settings.store, db_path, clock=clock, monotonic=monotonic)
        reader = database.make_engine(db_path, "reader")
    except BaseException:
        lock.release()
        raise
    store = Store(db_path, writer, StoreHistory(reader, opened.schema, db_path, clock), reader, lock)
    writer.start()
    return store


def open_history(path: Path, *, clock: Callable[[], float] = time.time) -> StoreHistory:
    """A read-only `series.History` over an existing database file (`gpuwatch query`).
    Raises `StoreError` when there is no database there or it cannot be read."""
    engine, schema = database.open_read_only(path)
    return StoreHistory(engine, schema, path, clock)
