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
  Raw rows hold one integer column per series (`figures.py`) and, for a weighted series (a
  per-request mean, a rate: `Figure.weight`), `<series>_weight`, the interval's weight
  (requests, executions, ms). Rollup rows hold `<series>_min`, `<series>_mean`,
  `<series>_max` and `samples` (raw rows in the bucket); for a weighted series the mean is
  Σ(value × weight) / Σ weight and `<series>_weight` holds Σ weight, so a coarser tier or a
  query over several rows weighs it again exactly (`rollup.py`).
  Their INTEGER PRIMARY KEY is `ts_ms << 20 | entity_id` (`row_key`): rows lie in time
  order, a time range is a key range (rollups and purges need no other index), and for a
  rollup tier the key is the unique index per bucket and entity that makes a rollup
  idempotent. Rollup tables have an index on `entity_id` for the query of one GPU or model;
  raw tables have none: every tick would touch one index page per entity (several times the
  bytes written per tick, bench/store_bench.py), and the raw tier only answers short ranges,
  where scanning the range for every entity is cheap.

A series added to the catalog by a newer gpuwatch becomes a new column at start
(`add_missing_columns`); that is not a schema version change.

Versions: 1, the first; 2 adds the weight columns of the Triton model series (`_migrate_1`).
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

from gpuwatch.store.figures import FIGURES, KINDS, WEIGHTED
from gpuwatch.store.retention import Tier

DATABASE_SCHEMA_VERSION = 2
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

# Version 1 → 2: the weights of the Triton model series. Written out here, not taken from the
# catalog: a migration describes the file as version 2 had it, whatever the catalog says later.
# (series, its weight's scale, SQL estimating the weight of a version-1 row from its columns.)
# Version 1 kept no weights: a row's weight is estimated from the rates it holds, over the raw
# tier's resolution `:res` in seconds (requests = requests_per_second × res, …). Within one
# version-1 row the estimate is what the per-interval mean stood for; across rows it weighs them
# by their traffic instead of alike, which is what a weighted history is for.
_REQ = "{p}model_requests_per_second{s} * :res / 1000.0"
_EXE = "{p}model_executions_per_second{s} * :res / 1000.0"
_CMP = f"{_REQ} * (1 - coalesce({{p}}model_cache_hit_ratio{{s}}, 0) / 10000.0)"
_V2_WEIGHTS: tuple[tuple[str, str], ...] = (
    ("model_requests_per_second", ":res * 1000"),
    ("model_inferences_per_second", ":res * 1000"),
    ("model_executions_per_second", ":res * 1000"),
    ("model_failures_per_second", ":res * 1000"),
    ("model_average_batch_size", _EXE),
    ("model_batch_fill_ratio", _EXE),
    ("model_preferred_batch_ratio", _EXE),
    ("model_average_request_seconds", _REQ),
    ("model_average_queue_seconds", _REQ),
    ("model_average_compute_input_seconds", _CMP),
    ("model_average_compute_infer_seconds", _CMP),
    ("model_average_compute_output_seconds", _CMP),
    ("model_queue_share_ratio", f"{_REQ} * {{p}}model_average_request_seconds{{s}} / 10.0"),
    ("model_queue_to_compute_ratio", f"{_CMP} * {{p}}model_average_compute_infer_seconds{{s}} / 10.0"),
    ("model_queue_delay_ratio", _REQ),
    ("model_mean_queue_depth", ":res * 1000"),
    ("model_cache_hit_ratio", _REQ),
)


def _migrate_1(conn: Connection) -> None:
    """Add `<series>_weight` to every model table and estimate it for the rows there; then roll
    up again, weighted, every whole bucket the raw tier still holds."""
    row = conn.exec_driver_sql("SELECT min(resolution_s) FROM tier").first()
    res = 1 if row is None or row[0] is None else int(row[0])
    for table in _tables(conn, "model"):
        present = {str(r[1]) for r in conn.exec_driver_sql(f'PRAGMA table_info("{table}")')}
        raw = "samples" not in present
        # A raw row's value is `<series>`; a rollup row's is `<series>_mean`, over `samples` rows.
        p, s = "", "" if raw else "_mean"
        sets = []
        for series, estimate in _V2_WEIGHTS:
            value = series if raw else f"{series}_mean"
            if value not in present:
                continue  # a series this file never had
            conn.exec_driver_sql(f'ALTER TABLE "{table}" ADD COLUMN "{series}_weight" INTEGER')
            if any(f"{name}{s}" not in present for name in _columns_in(estimate)):
                continue
            sql = estimate.format(p=p, s=s)
            if not raw:
                sql = f"({sql}) * samples"
            sets.append(
                f'"{series}_weight" = CASE WHEN "{value}" IS NULL THEN NULL ELSE max(1, round({sql})) END'
            )
        if sets:
            conn.exec_driver_sql(f'UPDATE "{table}" SET {", ".join(sets)}', {"res": res})
    _roll_up_again(conn)


def _tables(conn: Connection, kind: str) -> list[str]:
    pattern = f"{kind}\\_%"
    return [
        str(r[0])
        for r in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ? ESCAPE '\\'", (pattern,)
        )
    ]


def _roll_up_again(conn: Connection) -> None:
    """Move each rollup tier's `rolled_until_ms` back to the first whole bucket after the oldest
    raw row: the writer then rolls those buckets up again (INSERT OR REPLACE), weighted, from
    the raw rows, and each coarser tier from the finer one. A bucket the raw tier holds only
    part of keeps its version-1 row; the raw rows stay until rolled up (the purge waits)."""
    firsts = []
    for table in _tables(conn, "%"):
        if table.endswith("_raw"):
            key = conn.exec_driver_sql(f'SELECT min(key) FROM "{table}"').scalar()
            if key is not None:
                firsts.append(int(key) >> ENTITY_BITS)
    tiers = conn.exec_driver_sql("SELECT resolution_s, rolled_until_ms FROM tier ORDER BY resolution_s").all()
    if not firsts or len(tiers) < 2:
        return
    start = min(firsts)
    for resolution_s, rolled_until_ms in tiers[1:]:
        resolution_ms = int(resolution_s) * 1000
        start = -(-start // resolution_ms) * resolution_ms  # the first whole bucket
        if start < int(rolled_until_ms):
            conn.exec_driver_sql(
                "UPDATE tier SET rolled_until_ms = ? WHERE resolution_s = ?", (start, int(resolution_s))
            )


def _columns_in(estimate: str) -> list[str]:
    """The columns an estimate reads (each written `{p}name{s}`)."""
    return [part.split("{s}", 1)[0] for part in estimate.split("{p}")[1:]]


MIGRATIONS: dict[int, Migration] = {1: _migrate_1}
"""`MIGRATIONS[v]` upgrades a database from version v to v + 1."""


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
        weights = [Column(f"{f.column}_weight", Integer) for f in WEIGHTED[kind]]
        if index == 0:
            columns += [Column(f.column, Integer) for f in FIGURES[kind]]
            return Table(name, self.metadata, *columns, *weights)
        columns.append(Column("samples", Integer, nullable=False))
        columns += [Column(f"{f.column}_{part}", Integer) for f in FIGURES[kind] for part in ROLLUP_PARTS]
        columns += weights
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
