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
  Raw rows hold one integer column per series (`figures.py`) and the weights of the weighted
  series (a per-request mean, a rate: `Figure.weight`), each once: `weight_ms`,
  `weight_requests`, … (the interval's length, its requests, …). Rollup rows hold
  `<series>_min`, `<series>_mean`, `<series>_max` and `samples` (raw rows in the bucket);
  for a weighted series the mean is
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

import re
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

from gpuwatch.store.figures import FIGURES, KINDS, RAW_WEIGHTS, WEIGHTED
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
# Version 1 kept no weights: a row's weight is estimated from the rates it holds, over the raw
# tier's resolution `:res` in seconds (requests = requests_per_second × res, …). Within one
# version-1 row that is what its per-interval mean stood for; across rows it weighs them by
# their traffic instead of alike, which is what a weighted history is for. `{s}` is "" for a
# raw row and "_mean" for a rollup row (whose estimate is then × samples).
_SECONDS = "CASE WHEN model_requests_per_second{s} IS NULL THEN NULL ELSE :res * 1000 END"
_REQUESTS = "model_requests_per_second{s} * :res / 1000.0"
_EXECUTIONS = "model_executions_per_second{s} * :res / 1000.0"
_COMPUTED = f"{_REQUESTS} * (1 - coalesce(model_cache_hit_ratio{{s}}, 0) / 10000.0)"
_REQUEST_US = f"{_REQUESTS} * model_average_request_seconds{{s}} / 10.0"
_INFER_US = f"{_COMPUTED} * model_average_compute_infer_seconds{{s}} / 10.0"
_V2_RAW_WEIGHTS: dict[str, str] = {
    "weight_ms": _SECONDS,
    "weight_executions": _EXECUTIONS,
    "weight_requests": _REQUESTS,
    "weight_computed_requests": _COMPUTED,
    "weight_request_us": _REQUEST_US,
    "weight_compute_infer_us": _INFER_US,
}
_V2_WEIGHTED: dict[str, str] = {
    "model_requests_per_second": "weight_ms",
    "model_inferences_per_second": "weight_ms",
    "model_executions_per_second": "weight_ms",
    "model_failures_per_second": "weight_ms",
    "model_average_batch_size": "weight_executions",
    "model_batch_fill_ratio": "weight_executions",
    "model_preferred_batch_ratio": "weight_executions",
    "model_average_request_seconds": "weight_requests",
    "model_average_queue_seconds": "weight_requests",
    "model_average_compute_input_seconds": "weight_computed_requests",
    "model_average_compute_infer_seconds": "weight_computed_requests",
    "model_average_compute_output_seconds": "weight_computed_requests",
    "model_queue_share_ratio": "weight_request_us",
    "model_queue_to_compute_ratio": "weight_compute_infer_us",
    "model_queue_delay_ratio": "weight_requests",
    "model_mean_queue_depth": "weight_ms",
    "model_cache_hit_ratio": "weight_requests",
}


def _migrate_1(conn: Connection) -> None:
    """Add the weight columns to every model table and estimate them for the rows there; then
    roll up again, weighted, every whole bucket the raw tier still holds."""
    row = conn.exec_driver_sql("SELECT min(resolution_s) FROM tier").first()
    res = 1 if row is None or row[0] is None else int(row[0])
    for table in _tables(conn, "model"):
        present = {str(r[1]) for r in conn.exec_driver_sql(f'PRAGMA table_info("{table}")')}
        raw = "samples" not in present
        targets: list[tuple[str, str, str | None]]
        if raw:
            targets = [(column, estimate, None) for column, estimate in _V2_RAW_WEIGHTS.items()]
        else:
            targets = [
                (f"{series}_weight", f"({_V2_RAW_WEIGHTS[weight]}) * samples", f"{series}_mean")
                for series, weight in _V2_WEIGHTED.items()
                if f"{series}_mean" in present
            ]
        suffix = "" if raw else "_mean"
        sets = []
        for column, estimate, value in targets:
            conn.exec_driver_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" INTEGER')
            if all(f"{name}{suffix}" in present for name in _columns_in(estimate)):
                sql = estimate.format(s=suffix)
                if value is not None:
                    sql = f'CASE WHEN "{value}" IS NULL THEN NULL ELSE {sql} END'
                # At least 1: a mean of a request that the rounding would weigh as none.
                sets.append(f'"{column}" = max(1, round({sql}))')
        if sets:
            conn.exec_driver_sql(f'UPDATE "{table}" SET {", ".join(sets)}', {"res": res})
    _roll_up_again(conn)


def _columns_in(estimate: str) -> list[str]:
    """The columns an estimate reads (each written `name{s}`)."""
    return re.findall(r"(\w+)\{s\}", estimate)


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
        if index == 0:
            columns += [Column(f.column, Integer) for f in FIGURES[kind]]
            columns += [Column(column, Integer) for column, _ in RAW_WEIGHTS[kind]]
            return Table(name, self.metadata, *columns)
        columns.append(Column("samples", Integer, nullable=False))
        columns += [Column(f"{f.column}_{part}", Integer) for f in FIGURES[kind] for part in ROLLUP_PARTS]
        columns += [Column(f"{f.column}_weight", Integer) for f in WEIGHTED[kind]]
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
