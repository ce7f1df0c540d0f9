"""The database layout, its version, and the migrations between versions.

Place in the flow: `database.py` opens the file and calls `prepare` here before the writer
starts; the writer, rollups, purges and queries use the `Schema`'s tables.

Tables (SQLAlchemy Core; docs/storage.md shows them as SQL):

- `schema_version(version)`: one row. A newer version than `DATABASE_SCHEMA_VERSION` is refused;
  an older one is brought forward by `MIGRATIONS`, one step per version, in one transaction.
- `store_meta(name, value)`: small facts about the file (was the last shutdown clean).
- `tier(resolution_s, keep_s, rolled_until_ms)`: the retention tiers the writer runs with,
  and how far each rollup tier is complete. Readers take the tiers from here, not from a
  config file, so `gpuwatch query --db FILE` needs nothing else.
- `entity(id, kind, labels)`: each GPU, model version and server ever seen; labels as JSON.
- `event(id, ts_ms, kind, severity, message, gpu_index, gpu_uuid, server, model, version, code)`.
- One table per entity kind and tier: `gpu_raw`, `gpu_60s`, `gpu_3600s`, `model_raw`, ….
  Raw rows hold one integer column per series (`figures.py`); rollup rows hold
  `<series>_min`, `<series>_mean`, `<series>_max` and `samples` (raw rows in the bucket).
  Their INTEGER PRIMARY KEY is `ts_ms << 20 | entity_id` (`row_key`): rows lie in time
  order, a time range is a key range (rollups and purges need no other index), and for a
  rollup tier the key is the unique index per bucket and entity that makes a rollup
  idempotent. Rollup tables have an index on `entity_id` for the query of one GPU or model;
  raw tables have none: every tick would touch one index page per entity (several times the
  bytes written per tick, bench/store_bench.py), and the raw tier only answers short ranges,
  where scanning the range for every entity is cheap.

A series added to the catalog by a newer gpuwatch becomes a new column at start
(`add_missing_columns`); that is not a schema version change.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from gpuwatch.store.figures import FIGURES, KINDS
from gpuwatch.store.retention import Tier

DATABASE_SCHEMA_VERSION = 1
"""The layout of the database file (the `schema_version` row); the JSON document's version is
`model.SCHEMA_VERSION`, which moves on its own."""
ENTITY_BITS = 20
"""Row keys are `ts_ms << ENTITY_BITS | entity_id`: about a million entities, and millisecond
timestamps up to the year 2248, inside SQLite's signed 64-bit integer."""
MAX_ENTITIES = 1 << ENTITY_BITS
MAX_KEY_TS_MS = ((1 << 63) - 1) >> ENTITY_BITS
"""The latest millisecond a row key can hold (the year 2248): a query reaching past it (the
API accepts times up to the year 5138) is cut there, since no row can lie beyond."""
ROLLUP_PARTS = ("min", "mean", "max")

Migration = Callable[[Connection], None]
MIGRATIONS: dict[int, Migration] = {}
"""`MIGRATIONS[v]` upgrades a database from version v to v + 1 (none yet: version 1 is the first)."""


def row_key(ts_ms: int, entity_id: int) -> int:
    return (ts_ms << ENTITY_BITS) | entity_id


def key_floor(ts_ms: int) -> int:
    """The smallest row key at or after `ts_ms` (clamped to the keys that exist: 1970 to 2248)."""
    return max(0, min(ts_ms, MAX_KEY_TS_MS)) << ENTITY_BITS


def data_table_name(kind: str, tier_index: int, tier: Tier) -> str:
    return f"{kind}_raw" if tier_index == 0 else f"{kind}_{tier.resolution_seconds}s"


class Schema:
    """The tables for one list of retention tiers."""

    def __init__(self, tiers: tuple[Tier, ...]) -> None:
        self.tiers = tiers
        self.metadata = MetaData()
        m = self.metadata
        self.schema_version = Table("schema_version", m, Column("version", Integer, nullable=False))
        self.store_meta = Table(
            "store_meta", m, Column("name", Text, primary_key=True), Column("value", Text, nullable=False)
        )
        self.tier = Table(
            "tier",
            m,
            Column("resolution_s", Integer, primary_key=True, autoincrement=False),
            Column("keep_s", Integer, nullable=False),
            Column("rolled_until_ms", Integer, nullable=False, server_default=text("0")),
        )
        self.entity = Table(
            "entity",
            m,
            Column("id", Integer, primary_key=True),
            Column("kind", Text, nullable=False),
            Column("labels", Text, nullable=False),
            UniqueConstraint("kind", "labels"),
        )
        self.event = Table(
            "event",
            m,
            Column("id", Integer, primary_key=True),
            Column("ts_ms", Integer, nullable=False),
            Column("kind", Text, nullable=False),
            Column("severity", Text, nullable=False),
            Column("message", Text, nullable=False),
            Column("gpu_index", Integer),
            Column("gpu_uuid", Text),
            Column("server", Text),
            Column("model", Text),
            Column("version", Text),
            Column("code", Integer),
            Index("event_ts", "ts_ms"),
        )
        self.data: dict[tuple[str, int], Table] = {}
        for kind in KINDS:
            for index, tier in enumerate(tiers):
                self.data[(kind, index)] = self._data_table(kind, index, tier)

    def _data_table(self, kind: str, index: int, tier: Tier) -> Table:
        name = data_table_name(kind, index, tier)
        columns = [
            Column("key", Integer, primary_key=True, autoincrement=False),
            Column("entity_id", Integer, nullable=False),
        ]
        if index == 0:
            columns += [Column(f.column, Integer) for f in FIGURES[kind]]
            return Table(name, self.metadata, *columns)
        columns.append(Column("samples", Integer, nullable=False))
        columns += [Column(f"{f.column}_{part}", Integer) for f in FIGURES[kind] for part in ROLLUP_PARTS]
        return Table(name, self.metadata, *columns, Index(f"{name}_entity", "entity_id"))

    def table(self, kind: str, tier_index: int) -> Table:
        return self.data[(kind, tier_index)]


def read_version(conn: Connection) -> int | None:
    """The schema version, or None for a database without gpuwatch's version table."""
    exists = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).first()
    if exists is None:
        return None
    row = conn.exec_driver_sql("SELECT max(version) FROM schema_version").first()
    return None if row is None or row[0] is None else int(row[0])


def table_count(conn: Connection) -> int:
    row = conn.exec_driver_sql(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).first()
    return 0 if row is None else int(row[0])


def migrate(
    conn: Connection,
    found: int,
    *,
    migrations: dict[int, Migration] | None = None,
    target: int = DATABASE_SCHEMA_VERSION,
) -> list[int]:
    """Bring a database at version `found` to `target`, one migration per version, inside the
    caller's transaction. Returns the versions passed through."""
    steps = MIGRATIONS if migrations is None else migrations
    passed = []
    for version in range(found, target):
        step = steps.get(version)
        if step is None:
            raise RuntimeError(f"no migration from schema version {version}")  # a bug in gpuwatch
        step(conn)
        passed.append(version + 1)
    conn.exec_driver_sql("DELETE FROM schema_version")
    conn.exec_driver_sql("INSERT INTO schema_version (version) VALUES (?)", (target,))
    return passed


def add_missing_columns(conn: Connection, table: Table) -> list[str]:
    """Add the columns of `table` the database lacks (a series new in the catalog)."""
    present = {row[1] for row in conn.exec_driver_sql(f'PRAGMA table_info("{table.name}")')}
    added = []
    for column in table.columns:
        if column.name not in present:
            conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" INTEGER')
            added.append(column.name)
    return added
