"""Purges: forgetting what a tier no longer keeps, and the oldest data when over the size budget.

Place in the flow: the writer runs these as tasks; each call deletes at most `batch_rows` rows
per table and says whether more is left, and the writer queues it again after the snapshots
that arrived meanwhile (a purge never holds the write lock for long).

- `purge_tier_step`: rows older than the tier's KEEP, but never rows the next tier has not
  rolled up yet (a back-fill after downtime finishes before its source is purged).
- `purge_events_step`: events older than the longest tier keeps.
- `trim_events_step`: the oldest events, while they take more than `EVENTS_BUDGET_SHARE` of the
  size budget (a server whose counters go backwards once wrote an event a second, unbounded).
- `trim_step`: while the database's pages in use exceed the size budget, the oldest rows of
  the finest tier that has any (raw seconds first, then minutes, …), across every entity kind
  up to the same moment.
- `release_free_pages`: gives freed pages back to the file system (incremental vacuum), a
  bounded number per step.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Table, delete, func, select

from gpuwatch.store import schema as sch
from gpuwatch.store.figures import KINDS

FREE_PAGES_PER_STEP = 2048


@dataclass(frozen=True, slots=True)
class PurgeResult:
    rows: int
    more: bool


@dataclass(frozen=True, slots=True)
class PageUse:
    page_size: int
    page_count: int
    free_pages: int

    @property
    def used_bytes(self) -> int:
        return (self.page_count - self.free_pages) * self.page_size

    @property
    def file_bytes(self) -> int:
        return self.page_count * self.page_size


def page_use(conn: Connection) -> PageUse:
    def pragma(name: str) -> int:
        return int(conn.exec_driver_sql(f"PRAGMA {name}").scalar() or 0)

    return PageUse(pragma("page_size"), pragma("page_count"), pragma("freelist_count"))


def purge_tier_step(
    conn: Connection,
    schema: sch.Schema,
    tier_index: int,
    *,
    now_ms: int,
    next_rolled_until_ms: int | None,
    batch_rows: int,
) -> PurgeResult:
    """Delete one batch of rows that tier `tier_index` keeps no longer."""
    tier = schema.tiers[tier_index]
    cutoff = now_ms - tier.keep_seconds * 1000
    if tier_index > 0:
        cutoff -= tier.resolution_ms  # a bucket goes when all of it is older than KEEP
    if next_rolled_until_ms is not None:
        cutoff = min(cutoff, next_rolled_until_ms)
    rows, more = 0, False
    for kind in KINDS:
        deleted = _delete_oldest(conn, schema.table(kind, tier_index), sch.key_floor(cutoff), batch_rows)
        rows += deleted
        more = more or deleted >= batch_rows
    return PurgeResult(rows, more)


def purge_events_step(conn: Connection, schema: sch.Schema, now_ms: int, batch_rows: int) -> PurgeResult:
    keep_ms = max(t.keep_seconds for t in schema.tiers) * 1000
    event = schema.event
    oldest = select(event.c.id).where(event.c.ts_ms < now_ms - keep_ms).order_by(event.c.ts_ms)
    result = conn.execute(delete(event).where(event.c.id.in_(oldest.limit(batch_rows).scalar_subquery())))
    rows = max(0, result.rowcount)
    return PurgeResult(rows, rows >= batch_rows)


EVENTS_BUDGET_SHARE = 0.1
"""The share of `size_budget_bytes` events may take; beyond it the oldest go first."""
EVENT_ROW_BYTES = 96
"""An event row's bytes besides its message: the other columns, the row header, its index entry."""


def events_bytes(conn: Connection, schema: sch.Schema) -> int:
    """The events' size, estimated: their count times the newest 200's average row."""
    event = schema.event
    count = int(conn.execute(select(func.count()).select_from(event)).scalar_one())
    if not count:
        return 0
    newest = select(func.length(event.c.message).label("n")).order_by(event.c.id.desc()).limit(200).subquery()
    average = float(conn.execute(select(func.avg(newest.c.n))).scalar() or 0.0)
    return round(count * (EVENT_ROW_BYTES + average))


def trim_events_step(conn: Connection, schema: sch.Schema, budget_bytes: int, batch_rows: int) -> PurgeResult:
    """Delete one batch of the oldest events if they take more than their share of the budget."""
    if events_bytes(conn, schema) <= EVENTS_BUDGET_SHARE * budget_bytes:
        return PurgeResult(0, False)
    event = schema.event
    oldest = select(event.c.id).order_by(event.c.ts_ms, event.c.id).limit(batch_rows).scalar_subquery()
    rows = max(0, conn.execute(delete(event).where(event.c.id.in_(oldest))).rowcount)
    return PurgeResult(rows, rows > 0)


def trim_step(conn: Connection, schema: sch.Schema, budget_bytes: int, batch_rows: int) -> PurgeResult:
    """Delete one batch of the oldest data if the pages in use exceed `budget_bytes`."""
    if page_use(conn).used_bytes <= budget_bytes:
        return PurgeResult(0, False)
    for tier_index in range(len(schema.tiers)):
        tables = [schema.table(kind, tier_index) for kind in KINDS]
        # Up to which moment: the batch-th oldest row of the table whose data starts first.
        oldest = [(conn.execute(select(func.min(t.c.key))).scalar(), t) for t in tables]
        present = [(int(key), t) for key, t in oldest if key is not None]
        if not present:
            continue
        _, first_table = min(present, key=lambda kt: kt[0] >> sch.ENTITY_BITS)
        first_ms = min(key for key, _ in present) >> sch.ENTITY_BITS
        edge = conn.execute(
            select(first_table.c.key).order_by(first_table.c.key).offset(batch_rows - 1).limit(1)
        ).scalar()
        if edge is None:
            edge = conn.execute(select(func.max(first_table.c.key))).scalar_one()
        # Whole ticks only: up to (not including) the moment of the batch-th oldest row.
        until_ms = max(int(edge) >> sch.ENTITY_BITS, first_ms + 1)
        rows = 0
        for table in tables:
            rows += max(0, conn.execute(delete(table).where(table.c.key < sch.key_floor(until_ms))).rowcount)
        return PurgeResult(rows, True)
    return PurgeResult(0, False)


def release_free_pages(conn: Connection) -> int:
    """Return up to FREE_PAGES_PER_STEP free pages to the file system; how many were free.
    Runs outside the caller's transactions: the pragma is its own write transaction."""
    with conn.begin():
        free = page_use(conn).free_pages
    if free:
        # Python's sqlite3 steps a statement without result columns once, which frees one
        # page; executescript steps it to the end.
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.executescript(f"PRAGMA incremental_vacuum({FREE_PAGES_PER_STEP})")
    return free


def _delete_oldest(conn: Connection, table: Table, below_key: int, batch_rows: int) -> int:
    """Delete at most `batch_rows` rows with key < `below_key`, oldest first."""
    edge = conn.execute(
        select(table.c.key).where(table.c.key < below_key).order_by(table.c.key).offset(batch_rows).limit(1)
    ).scalar()
    limit = below_key if edge is None else int(edge)
    result = conn.execute(delete(table).where(table.c.key < limit))
    return max(0, result.rowcount)
