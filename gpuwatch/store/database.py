"""Opening the database file: the directory, corruption, the schema version, SQLite's settings.

Place in the flow: `open_store` (and the read-only `open_history`) call this first; nothing is
written until it has said the file is usable. It is the one boundary where SQLite's own errors
become `StoreError`s with one line for a person:

- the directory cannot be created or written → `StateDirectoryError`;
- the file is not SQLite, or SQLite finds it corrupt (on open, or by `PRAGMA quick_check`
  after a shutdown that was not clean) → the file (and its -wal/-shm) is renamed to
  `NAME.corrupt-YYYYmmddTHHMMSSZ`, a fresh database is started, one error line is logged,
  and a `store_error` event saying so is the first event of the new file;
- a newer schema version → `NewerSchemaError`, the file untouched;
- an SQLite file with tables but no `schema_version` → `NotAStoreError`, untouched.

Settings every connection gets: WAL (readers never block the writer), `synchronous=NORMAL`
(a commit survives a killed process; only an OS crash can lose the last commits, never
corrupt), incremental auto-vacuum (a purge can give space back to the file system), and
transactions begun explicitly (`BEGIN IMMEDIATE` for the writer).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from sqlalchemy import URL, Connection, Engine, create_engine, event, exc, insert, pool, select

from gpuwatch import model
from gpuwatch.store import schema as sch
from gpuwatch.store.errors import (
    NewerSchemaError,
    NoSpaceError,
    NotAStoreError,
    StateDirectoryError,
    StoreError,
)
from gpuwatch.store.retention import Tier

log = logging.getLogger("gpuwatch.store")

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_SECONDS = 5.0
WHERE_HINT = "set [daemon] state_dir or --db to a writable place"
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
"""OS errors that can pass on their own: a full disk or quota, a file-size limit, a failing disk."""
Role = Literal["writer", "reader", "read_only"]


@dataclass(frozen=True)
class Opened:
    """A database ready for the writer: its engine, its tables, and what happened on the way."""

    engine: Engine
    schema: sch.Schema
    events: tuple[model.Event, ...]


class _Corrupt(Exception):
    """Internal: the file cannot be used as a database; str() says why."""


def make_engine(path: Path, role: Role) -> Engine:
    """An SQLAlchemy engine for the file. The writer's has a single connection; a read-only
    one opens the file with `mode=ro` so that reading can never change it."""
    # auto_vacuum can only be chosen for a new, empty file, and setting it on an existing one
    # still rewrites its header: so only for a file that does not exist yet.
    new_file = role == "writer" and (not path.exists() or path.stat().st_size == 0)
    if role == "read_only":
        url: str | URL = f"sqlite+pysqlite:///file:{quote(str(path.absolute()))}?mode=ro&uri=true"
    else:
        url = URL.create("sqlite+pysqlite", database=str(path))
    engine = create_engine(
        url,
        poolclass=pool.StaticPool if role == "writer" else pool.QueuePool,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not BEGIN on its own
        if role == "writer":
            nonlocal new_file
            if new_file:
                dbapi_connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
                new_file = False
            for pragma in (
                "PRAGMA synchronous = NORMAL",
                "PRAGMA secure_delete = OFF",  # purges need not overwrite freed pages
                "PRAGMA journal_size_limit = 16777216",
                "PRAGMA cache_size = -8192",
                "PRAGMA temp_store = MEMORY",
            ):
                dbapi_connection.execute(pragma)
        else:
            dbapi_connection.execute("PRAGMA temp_store = MEMORY")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if role == "writer" else "BEGIN")

    return engine


def prepare_directory(directory: Path) -> None:
    """Create the database's directory and prove it can be written, or say why not."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StateDirectoryError(
            f"cannot create the database directory {directory}: {_why(error)} ({WHERE_HINT})"
        ) from None
    probe = directory / f".gpuwatch-write-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as error:
        if error.errno in _NO_SPACE_ERRNOS:
            raise NoSpaceError(f"cannot write in the database directory {directory}: {_why(error)}") from None
        raise StateDirectoryError(
            f"cannot write in the database directory {directory}: {_why(error)} ({WHERE_HINT})"
        ) from None


def open_database(path: Path, tiers: tuple[Tier, ...], clock: Callable[[], float]) -> Opened:
    """Open (or create) the database for writing: checked, migrated, tiers in place."""
    prepare_directory(path.parent)
    reason = _header_problem(path)
    if reason is None:
        engine = make_engine(path, "writer")
        try:
            return Opened(engine, _prepare(engine, path, tiers), ())
        except _Corrupt as problem:
            reason = str(problem)
            engine.dispose()
        except BaseException:
            engine.dispose()
            raise
    moved = move_aside(path, clock())
    message = f"database {path} is corrupt ({reason}): moved it to {moved.name} and started a fresh one"
    log.error(message)
    engine = make_engine(path, "writer")
    try:
        schema = _prepare(engine, path, tiers)
    except BaseException:
        engine.dispose()
        raise
    note = model.Event(clock(), model.EventKind.STORE_ERROR, model.Severity.WARNING, message)
    return Opened(engine, schema, (note,))


def open_read_only(path: Path) -> tuple[Engine, sch.Schema]:
    """Open an existing database for reading only (`gpuwatch query`); it is never changed."""
    if not path.exists():
        raise StoreError(f"no database at {path} (is the daemon running there? name one with --db)")
    reason = _header_problem(path)
    if reason is not None:
        raise StoreError(f"cannot read the database {path}: {reason}")
    engine = make_engine(path, "read_only")
    try:
        with engine.connect() as conn:
            version = sch.read_version(conn)
            if version is None:
                raise NotAStoreError(f"{path} is an SQLite database, but not one of gpuwatch's")
            if version > sch.DATABASE_SCHEMA_VERSION:
                raise _newer(path, version)
            if version < sch.DATABASE_SCHEMA_VERSION:
                raise StoreError(
                    f"the database {path} has schema version {version}; start the gpuwatch "
                    "daemon on it once to upgrade it"
                )
            rows = conn.exec_driver_sql("SELECT resolution_s, keep_s FROM tier ORDER BY resolution_s")
            tiers = tuple(Tier(int(r[0]), int(r[1])) for r in rows)
    except exc.DBAPIError as error:
        engine.dispose()
        raise StoreError(f"cannot read the database {path}: {describe(error)}") from None
    except BaseException:
        engine.dispose()
        raise
    return engine, sch.Schema(tiers)


def move_aside(path: Path, now: float) -> Path:
    """Rename a database that cannot be used (and its -wal and -shm) out of the way."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    if path.exists():
        os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            os.replace(companion, Path(f"{target}{suffix}"))
    return target


def describe(error: BaseException) -> str:
    """SQLite's own words for an error, without SQLAlchemy's wrapping and SQL text."""
    orig = getattr(error, "orig", None) or error
    return str(orig).splitlines()[0] if str(orig) else type(orig).__name__


def is_no_space(error: BaseException) -> bool:
    """A failure that can pass without anyone touching the file: a full disk or quota
    (SQLITE_FULL), an I/O error (SQLITE_IOERR and its extended codes, as for EFBIG or ENOSPC)."""
    orig = getattr(error, "orig", None) or error
    if isinstance(orig, OSError):
        return orig.errno in _NO_SPACE_ERRNOS
    name = getattr(orig, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_FULL", "SQLITE_IOERR"))


def is_corruption(error: BaseException) -> bool:
    orig = getattr(error, "orig", None) or error
    name = getattr(orig, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


# --------------------------------------------------------------------------- internals


def _why(error: OSError) -> str:
    return error.strerror or str(error)


def _newer(path: Path, version: int) -> NewerSchemaError:
    return NewerSchemaError(
        f"the database {path} was written by a newer gpuwatch (schema version {version}; this "
        f"gpuwatch knows up to {sch.DATABASE_SCHEMA_VERSION}): upgrade gpuwatch, or move the file aside"
    )


def _header_problem(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StoreError(f"cannot read the database {path}: {_why(error)}") from None
    if head and head != SQLITE_HEADER[: len(head)]:
        return "not an SQLite file"
    if 0 < len(head) < len(SQLITE_HEADER):
        return "truncated"
    return None


def _pragma(conn: Connection, statement: str) -> list[Any]:
    """Run a PRAGMA outside any transaction (journal_mode and auto_vacuum refuse to run inside)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    return [row[0] for row in driver.execute(statement).fetchall()]


def _prepare(engine: Engine, path: Path, tiers: tuple[Tier, ...]) -> sch.Schema:
    schema = sch.Schema(tiers)
    try:
        with engine.connect() as conn:
            version = sch.read_version(conn)
            tables = sch.table_count(conn)
            clean = _read_meta(conn, "clean_shutdown") == "1"
            conn.rollback()
            if version is None and tables:
                raise NotAStoreError(
                    f"{path} is an SQLite database, but not one of gpuwatch's: name another file "
                    "with --db or [daemon] database"
                )
            if version is not None and version > sch.DATABASE_SCHEMA_VERSION:
                raise _newer(path, version)
            fresh = version is None
            if not fresh and not clean:
                problems = _pragma(conn, "PRAGMA quick_check")
                if problems != ["ok"]:
                    raise _Corrupt(f"quick_check: {problems[0]}")
            _pragma(conn, "PRAGMA journal_mode = WAL")
            with conn.begin():
                if fresh:
                    schema.metadata.create_all(conn)
                    conn.execute(insert(schema.schema_version).values(version=sch.DATABASE_SCHEMA_VERSION))
                else:
                    assert version is not None
                    passed = sch.migrate(conn, version) if version < sch.DATABASE_SCHEMA_VERSION else []
                    if passed:
                        log.warning("upgraded the database %s to schema version %d", path, passed[-1])
                    schema.metadata.create_all(conn)  # tables of tiers new in the config
                    for table in schema.data.values():
                        added = sch.add_missing_columns(conn, table)
                        if added:
                            log.info("added columns for new series to %s: %s", table.name, ", ".join(added))
                _sync_tiers(conn, schema, path)
                _write_meta(conn, schema, "clean_shutdown", "0")
    except (exc.DBAPIError, sqlite3.DatabaseError) as error:  # the latter from _pragma
        if is_corruption(error):
            raise _Corrupt(describe(error)) from None
        if is_no_space(error):
            raise NoSpaceError(f"cannot write the database {path}: {describe(error)}") from None
        raise StoreError(f"cannot open the database {path}: {describe(error)}") from None
    return schema


def _read_meta(conn: Connection, name: str) -> str | None:
    exists = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'store_meta'"
    ).first()
    if exists is None:
        return None
    row = conn.exec_driver_sql("SELECT value FROM store_meta WHERE name = ?", (name,)).first()
    return None if row is None else str(row[0])


def _write_meta(conn: Connection, schema: sch.Schema, name: str, value: str) -> None:
    conn.execute(insert(schema.store_meta).prefix_with("OR REPLACE").values(name=name, value=value))


def mark_clean_shutdown(conn: Connection, schema: sch.Schema) -> None:
    with conn.begin():
        _write_meta(conn, schema, "clean_shutdown", "1")


def _sync_tiers(conn: Connection, schema: sch.Schema, path: Path) -> None:
    """Make the tier table say what this run keeps; keep how far each rollup has come."""
    table = schema.tier
    known = {int(r.resolution_s): int(r.rolled_until_ms) for r in conn.execute(select(table))}
    configured = {t.resolution_seconds for t in schema.tiers}
    dropped = sorted(set(known) - configured)
    if dropped:
        log.warning(
            "the database %s has tiers no longer configured (%s): their tables are kept but no "
            "longer written or purged",
            path,
            json.dumps(dropped),
        )
    conn.execute(table.delete())
    for tier in schema.tiers:
        conn.execute(
            insert(table).values(
                resolution_s=tier.resolution_seconds,
                keep_s=tier.keep_seconds,
                rolled_until_ms=known.get(tier.resolution_seconds, 0),
            )
        )


def close_quietly(engine: Engine) -> None:
    with contextlib.suppress(Exception):
        engine.dispose()
