"""The writer: one thread that owns the only write connection to the database.

Place in the flow: engine tick → `Store.submit` → **writer buffer** → one transaction per
batch → raw tables and events; then, as they fall due, the maintenance tasks of `tasks.py`
(rollups, purges, the size budget) on the same thread. Nothing else writes.

`submit` never blocks the tick: it appends to a buffer under a short lock and returns. The
buffer holds at most `write_queue_max` items and `write_queue_max_bytes` of their estimated
memory (`item_bytes`: a node with 10 000 Triton models makes ~26 MB snapshots); beyond either,
the oldest is dropped and counted. Whatever is in the buffer is written oldest first, up to
`BATCH_MAX` items or `BATCH_MAX_ROWS` rows per transaction (a backlog after an outage is caught
up in a few large transactions, none so large that a stop has to wait for it).

A stop (`close(timeout)`) writes what is queued until shortly before `timeout`, then stops and
logs how many snapshots it did not write, as it logs how many a full queue dropped.

When a write fails (disk full, I/O error, the file locked by someone else), the transaction is
rolled back, the items stay in the buffer, the error goes into `health()`, one log line and one
`store_error` event are emitted, and the write is retried on the next submit (that is, the next
tick) or after `RETRY_SECONDS`, whichever comes first: writing resumes within one tick of the
cause going away, and nothing within the buffer's bound is lost.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, exc, func, insert, select
from sqlalchemy.dialects import sqlite

from gpuwatch import model, series
from gpuwatch.config import StoreSettings
from gpuwatch.store import database, purge, rollup
from gpuwatch.store import schema as sch
from gpuwatch.store import tasks as t
from gpuwatch.store.clock import TOLERANCE_SECONDS, StoreClock
from gpuwatch.store.figures import KINDS, SCALES, encode_values
from gpuwatch.store.watch import CHECK_SECONDS as FILE_CHECK_SECONDS
from gpuwatch.store.watch import FileWatch

log = logging.getLogger("gpuwatch.store")

T = TypeVar("T")
Item = model.Snapshot | tuple[model.Event, ...]
"""What the buffer holds: a snapshot, or events handed to the store directly."""
EntityKey = tuple[str, tuple[tuple[str, str], ...]]
"""(kind, labels) of a GPU, model version or server."""

BATCH_MAX = 600
BATCH_MAX_ROWS = 20_000
"""Rows (GPUs, models, servers) per transaction at most: a transaction is never longer than a
second or so, even for 10 000 models, so a stop can end between two of them."""
STOP_MARGIN_SECONDS = 1.0
"""A stop gives up writing this long before its timeout, to log what it did not write."""
RETRY_SECONDS = 1.0
CHECK_SECONDS = 60.0
"""How often (by the store's clock) purges and the size budget are checked."""
WAKE_SECONDS = 1.0
SIZE_CHECK_SECONDS = 10.0
RELEASE_FREE_RATIO = 0.1
"""Give free pages back to the file system when the file is over the size budget, or when they
are more than this share of it (below that, SQLite reuses them for new rows)."""


class _Write:
    """Marker: the next work is writing the buffer."""


class _Stop:
    """Marker: the writer should finish."""


_WRITE = _Write()
_STOP = _Stop()


class Writer:
    def __init__(
        self,
        opened: database.Opened,
        settings: StoreSettings,
        path: Path,
        *,
        clock: Callable[[], float],
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """`clock` stamps events and, through `StoreClock`, decides purges; with `monotonic`
        (the daemon's) a step of `clock` is noticed and never acted upon (see store/clock.py)."""
        self._engine = opened.engine
        self._schema = opened.schema
        self._tiers = opened.schema.tiers
        self._settings = settings
        self._path = path
        self._clock = clock
        self._now = StoreClock(clock, monotonic)
        self._cadence = monotonic or clock
        self._monotonic = monotonic is not None
        """What check intervals are timed on: a wall clock stepped back must not pause them."""
        self._watch = FileWatch(path)
        self._watch_due = 0.0
        self._file_error: str | None = None
        self._size_cached: int | None = None
        self._size_due = 0.0
        self._on_event: Callable[[model.Event], None] | None = None
        self._cond = threading.Condition()
        # Shared with other threads, under _cond:
        self._buffer: deque[tuple[int, Item]] = deque()
        self._buffer_bytes = 0
        self._stop_by = float("inf")
        self._next_seq = 0
        self._tasks: deque[t.Task] = deque()
        self._queued: set[t.Maintenance] = set()
        self._stopping = False
        self._retry_now = False
        self._retry_at = 0.0
        self._write_error: str | None = None
        self._maintenance_error: str | None = None
        self._errors = 0
        self._dropped = 0
        # The writer thread's own:
        self._entities: dict[EntityKey, int] = {}
        self._insert_sql = {kind: _insert_sql(self._schema.table(kind, 0)) for kind in KINDS}
        self._newest_ms = 0
        self._rolled_until = [0] * len(self._tiers)
        self._polled: dict[str, float] = {}
        """Each Triton server's last `polled_at` written (`series.repeated_servers`)."""
        self._next_check = 0.0
        self._saw_corruption = False
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._finished = threading.Event()
        if opened.events:
            self.submit(opened.events)

    # -- any thread ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def set_event_sink(self, sink: Callable[[model.Event], None]) -> None:
        """Where `store_error` events go (the engine's `record_event`)."""
        self._on_event = sink

    def submit(self, item: Item) -> None:
        """Queue a snapshot (or events) for writing. Never blocks on the database."""
        size = item_bytes(item)
        with self._cond:
            limit, limit_bytes = self._settings.write_queue_max, self._settings.write_queue_max_bytes
            while self._buffer and (len(self._buffer) >= limit or self._buffer_bytes + size > limit_bytes):
                _, oldest = self._buffer.popleft()
                self._buffer_bytes -= item_bytes(oldest)
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 1000 == 0:
                    log.error(
                        "the store's write queue is full (%d snapshots, %.0f MiB at most): dropped "
                        "the oldest snapshot (%d so far)",
                        limit,
                        limit_bytes / 2**20,
                        self._dropped,
                    )
            self._buffer.append((self._next_seq, item))
            self._buffer_bytes += size
            self._next_seq += 1
            self._retry_now = True
            self._cond.notify()

    def call(self, fn: Callable[[Connection], T], timeout: float | None = None) -> T:
        """Run `fn(connection)` on the writer thread and return what it returns. Runs even while
        writes fail (it is how an operator's or a test's fix reaches the connection)."""
        task = t.Call(fn)
        self._push(task)
        result: T = task.future.result(timeout)
        return result

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written and due maintenance has run.
        False if that did not happen within `timeout` (writes failing, or slow)."""
        barrier = t.Barrier()
        self._push(barrier)
        return barrier.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._stop_by = time.monotonic() + max(0.0, timeout - STOP_MARGIN_SECONDS)
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the store writer did not finish within %.0f s", timeout)

    def health(self) -> model.StoreHealth:
        with self._cond:
            error = self._write_error or self._maintenance_error
            if error and self._dropped:
                error += f"; {self._dropped} snapshots dropped (queue full)"
            queued = len(self._buffer)
            errors = self._errors
        return model.StoreHealth(
            ok=error is None,
            path=str(self._path),
            last_error=error,
            write_errors_count=errors,
            queue_length=queued,
            size_bytes=self._size_bytes(),
        )

    def _size_bytes(self) -> int | None:
        """The file's size, looked up at most every SIZE_CHECK_SECONDS (health is asked per tick)."""
        now = time.monotonic()
        if now >= self._size_due:
            self._size_cached = _file_bytes(self._path)
            self._size_due = now + SIZE_CHECK_SECONDS
        return self._size_cached

    # -- the writer thread -----------------------------------------------------------------

    def _push(self, task: t.Task) -> None:
        with self._cond:
            self._tasks.append(task)
            self._cond.notify()
        if self._finished.is_set():
            self._release_waiters()

    def _queue(self, task: t.Maintenance) -> None:
        with self._cond:
            if task not in self._queued:
                self._queued.add(task)
                self._tasks.append(task)

    def _run(self) -> None:
        try:
            with self._engine.connect() as conn:
                self._load_state(conn)
                while True:
                    work = self._next_work()
                    if isinstance(work, _Stop):
                        break
                    if isinstance(work, _Write):
                        self._write_buffer(conn)
                    else:
                        self._run_task(conn, work)
                self._shutdown(conn)
        except Exception:  # a bug here must be loud, but the daemon goes on serving live data
            log.exception("the store writer stopped")
            with self._cond:
                self._write_error = "the store writer stopped (see the log)"
        finally:
            self._finished.set()
            self._release_waiters()
            database.close_quietly(self._engine)

    def _load_state(self, conn: Connection) -> None:
        with conn.begin():
            for kind in KINDS:
                key = conn.execute(select(func.max(self._schema.table(kind, 0).c.key))).scalar()
                if key is not None:
                    self._newest_ms = max(self._newest_ms, int(key) >> sch.ENTITY_BITS)
            rolled = dict(
                conn.execute(
                    select(self._schema.tier.c.resolution_s, self._schema.tier.c.rolled_until_ms)
                ).all()
            )
            for index, tier in enumerate(self._tiers):
                self._rolled_until[index] = int(rolled.get(tier.resolution_seconds, 0))
            for row in conn.execute(select(self._schema.entity)):
                labels = tuple((str(k), str(v)) for k, v in json.loads(row.labels))
                self._entities[(row.kind, labels)] = int(row.id)
        self._schedule_rollups()  # the back-fill after downtime starts here
        self._schedule_checks(force=True)

    def _next_work(self) -> _Write | _Stop | t.Task:
        with self._cond:
            while True:
                if self._stopping and time.monotonic() >= self._stop_by:
                    return _STOP
                if self._buffer and (
                    self._write_error is None or self._retry_now or time.monotonic() >= self._retry_at
                ):
                    return _WRITE
                if self._stopping:  # what is still due (a long back-fill) waits for the next start
                    return _STOP
                task = self._take_task()
                if task is not None:
                    return task
                # Idle, the writer sleeps until its next check (each tick's submit wakes it
                # anyway); on a manual clock (tests), whose time moves by jumps, every second.
                wait = WAKE_SECONDS
                if self._monotonic:
                    wait = min(CHECK_SECONDS, max(WAKE_SECONDS, self._next_check - self._cadence()))
                if self._buffer:
                    wait = max(0.0, min(wait, self._retry_at - time.monotonic()))
                self._cond.wait(wait)
                self._schedule_checks_locked()

    def _take_task(self) -> t.Task | None:
        """The next task: any, in order, when the buffer is empty; else only calls (a fix for
        what makes writes fail must be able to reach the connection)."""
        if not self._buffer:
            if self._tasks:
                task = self._tasks.popleft()
                if not isinstance(task, t.Call | t.Barrier):
                    self._queued.discard(task)
                return task
            return None
        for task in self._tasks:
            if isinstance(task, t.Call):
                self._tasks.remove(task)
                return task
        return None

    # -- writing ---------------------------------------------------------------------------

    def _file_is_gone(self) -> bool:
        """Whether the open file is no longer the one at the path (see store/watch.py); the
        first time, a write error with one log line and one event. Checked every few seconds."""
        now = time.monotonic()
        if self._file_error is None and now < self._watch_due:
            return False
        self._watch_due = now + FILE_CHECK_SECONDS
        problem = self._file_error or self._watch.problem()
        if problem is None:
            return False
        with self._cond:
            first = self._file_error is None
            self._file_error = problem
            self._write_error = problem
            self._errors += first
            self._retry_now = False
            self._retry_at = now + RETRY_SECONDS
            limit = _queue_limit(self._settings)
        if first:
            message = (
                f"{problem}: not writing; holding snapshots in memory (at most {limit}); "
                "restart to start a fresh file"
            )
            log.error(message)
            if self._on_event is not None:
                self._on_event(
                    model.Event(self._clock(), model.EventKind.STORE_ERROR, model.Severity.CRITICAL, message)
                )
        return True

    def _write_buffer(self, conn: Connection) -> None:
        if self._file_is_gone():
            return
        with self._cond:
            batch: list[tuple[int, Item]] = []
            rows = 0
            for entry in itertools.islice(self._buffer, BATCH_MAX):
                if batch and rows + item_rows(entry[1]) > BATCH_MAX_ROWS:
                    break
                batch.append(entry)
                rows += item_rows(entry[1])
            self._retry_now = False
        new_entities: dict[EntityKey, int] = {}
        try:
            with conn.begin():
                oldest, newest = self._insert(conn, [item for _, item in batch], new_entities)
        except exc.DBAPIError as error:
            self._write_failed(error)
            return
        except Exception:  # a bug, or a snapshot it cannot handle: drop it, never stop writing
            log.exception("could not write %d snapshots; dropping them", len(batch))
            with self._cond:
                self._errors += 1
                self._drop_through(batch[-1][0])
            return
        self._entities.update(new_entities)
        if newest and oldest < self._newest_ms - TOLERANCE_SECONDS * 1000:
            self._rewind(oldest)
            self._newest_ms = newest
        else:
            self._newest_ms = max(self._newest_ms, newest)
        with self._cond:
            self._drop_through(batch[-1][0])
            recovered, self._write_error = self._write_error, None
            waiting = len(self._buffer)
        if recovered:
            log.warning(
                "database writes work again; %d held snapshots are being written", len(batch) + waiting
            )
        self._schedule_rollups()

    def _drop_through(self, seq: int) -> None:
        while self._buffer and self._buffer[0][0] <= seq:
            _, item = self._buffer.popleft()
            self._buffer_bytes -= item_bytes(item)

    def _insert(
        self, conn: Connection, items: list[Item], new_entities: dict[EntityKey, int]
    ) -> tuple[int, int]:
        """Write the rows and events of `items`; the oldest and newest snapshot stamps (ms), 0 and
        0 for none."""
        rows: dict[str, list[tuple[int | None, ...]]] = {kind: [] for kind in KINDS}
        events: list[model.Event] = []
        oldest, newest = 0, 0
        for item in items:
            if not isinstance(item, model.Snapshot):
                events.extend(item)
                continue
            ts_ms = round(item.timestamp * 1000)
            newest = max(newest, ts_ms)
            oldest = ts_ms if not oldest else min(oldest, ts_ms)
            repeated = series.repeated_servers(self._polled, item)  # shown again, not counted again
            entity_values = list(series.entity_values(item, repeated))
            self._create_entities(conn, [(kind, labels) for kind, labels, _ in entity_values], new_entities)
            for kind, labels, values in entity_values:
                entity_id = self._entity_id(conn, kind, labels, new_entities)
                if entity_id is None:
                    continue
                rows[kind].append(
                    (sch.row_key(ts_ms, entity_id), entity_id, *encode_values(values, SCALES[kind]))
                )
            events.extend(item.events)
        for kind, kind_rows in rows.items():
            if kind_rows:
                conn.exec_driver_sql(self._insert_sql[kind], kind_rows)
        if events:
            conn.execute(insert(self._schema.event), [_event_row(e) for e in events])
        return oldest, newest

    def _create_entities(
        self, conn: Connection, keys: list[EntityKey], new_entities: dict[EntityKey, int]
    ) -> None:
        """Create the entities among `keys` not yet known in two statements, not two each: the
        first snapshot of a server with 10 000 models took 3 s of CPU one by one."""
        unknown = [k for k in dict.fromkeys(keys) if k not in self._entities and k not in new_entities]
        if len(unknown) < 2:
            return  # `_entity_id` creates a single one
        table = self._schema.entity
        encoded = {(k, json.dumps(labels, separators=(",", ":"))): (k, labels) for k, labels in unknown}
        conn.execute(insert(table).prefix_with("OR IGNORE"), [{"kind": k, "labels": v} for k, v in encoded])
        wanted = list(encoded)
        for start in range(0, len(wanted), 500):  # SQLite's limit on bound parameters
            chunk = wanted[start : start + 500]
            found = conn.execute(
                select(table.c.kind, table.c.labels, table.c.id).where(
                    table.c.labels.in_([labels for _, labels in chunk])
                )
            )
            for kind, labels, entity_id in found:
                key = encoded.get((kind, labels))
                if key is not None and int(entity_id) < sch.MAX_ENTITIES:
                    new_entities[key] = int(entity_id)

    def _entity_id(
        self,
        conn: Connection,
        kind: str,
        labels: tuple[tuple[str, str], ...],
        new_entities: dict[EntityKey, int],
    ) -> int | None:
        found = self._entities.get((kind, labels)) or new_entities.get((kind, labels))
        if found is not None:
            return found
        key = (kind, json.dumps(labels, separators=(",", ":")))
        table = self._schema.entity
        conn.execute(insert(table).prefix_with("OR IGNORE").values(kind=key[0], labels=key[1]))
        entity_id = int(
            conn.execute(
                select(table.c.id).where(table.c.kind == key[0], table.c.labels == key[1])
            ).scalar_one()
        )
        if entity_id >= sch.MAX_ENTITIES:
            log.error("the database has %d entities, its most; not storing %s %s", entity_id, kind, key[1])
            return None
        new_entities[(kind, labels)] = entity_id
        return entity_id

    def _write_failed(self, error: exc.DBAPIError) -> None:
        why = database.describe(error)
        self._saw_corruption = self._saw_corruption or database.is_corruption(error)
        with self._cond:
            first = self._write_error is None
            self._errors += 1
            self._write_error = f"writing {self._path}: {why}"
            self._retry_at = time.monotonic() + RETRY_SECONDS
            limit = _queue_limit(self._settings)
        if first:
            message = (
                f"database writes failing ({self._path}: {why}); holding snapshots in memory "
                f"(at most {limit}) until it works again"
            )
            log.error(message)
            if self._on_event is not None:
                self._on_event(
                    model.Event(self._clock(), model.EventKind.STORE_ERROR, model.Severity.CRITICAL, message)
                )

    # -- maintenance -----------------------------------------------------------------------

    def _raw_complete_ms(self) -> int:
        """How far raw rows are complete: the newest snapshot's stamp, but never past the store's
        "now" while the wall clock is stepped (a rollup mark left 400 days ahead froze the
        rollup tiers for good)."""
        if self._now.stepped:
            return min(self._newest_ms, round(self._now.now() * 1000))
        return self._newest_ms

    def _rewind(self, oldest_ms: int) -> None:
        """Snapshots stamped before those already written (the wall clock stepped back): every
        rollup tier is done again from there (INSERT OR REPLACE makes that safe), so the
        buckets they land in are rolled up with them."""
        for index in range(1, len(self._tiers)):
            horizon = rollup.horizon_ms(oldest_ms, self._tiers[index].resolution_ms)
            self._rolled_until[index] = min(self._rolled_until[index], horizon)
        log.warning(
            "snapshots are stamped %.0f s before the newest stored one (the wall clock stepped back): "
            "rollups are done again from there",
            (self._newest_ms - oldest_ms) / 1000,
        )

    def _schedule_rollups(self) -> None:
        for index in range(1, len(self._tiers)):
            source_complete = self._raw_complete_ms() if index == 1 else self._rolled_until[index - 1]
            due = rollup.horizon_ms(source_complete, self._tiers[index].resolution_ms)
            if due > self._rolled_until[index]:
                self._queue(t.Rollup(index))

    def _schedule_checks(self, force: bool = False) -> None:
        with self._cond:
            self._schedule_checks_locked(force)

    def _schedule_checks_locked(self, force: bool = False) -> None:
        now = self._cadence()
        if not force and now < self._next_check:
            return
        self._next_check = now + CHECK_SECONDS
        checks: list[t.Maintenance] = [t.Purge(i) for i in range(len(self._tiers))]
        checks += [t.PurgeEvents(), t.TrimToBudget()]
        for task in checks:
            if task not in self._queued:
                self._queued.add(task)
                self._tasks.append(task)

    def _run_task(self, conn: Connection, task: t.Task) -> None:
        if isinstance(task, t.Call):
            try:
                result = task.fn(conn)
                if conn.in_transaction():
                    conn.commit()
            except Exception as error:
                if conn.in_transaction():
                    conn.rollback()
                task.future.set_exception(error)
            else:
                task.future.set_result(result)
        elif isinstance(task, t.Barrier):
            self._settle(conn)
            task.done.set()
        else:
            self._maintain(conn, task)

    def _settle(self, conn: Connection) -> None:
        """Run every due maintenance task to its end (for `flush`)."""
        self._schedule_checks(force=True)
        while True:
            self._schedule_rollups()
            with self._cond:
                task = next((x for x in self._tasks if not isinstance(x, t.Call | t.Barrier)), None)
                if task is None:
                    return
                self._tasks.remove(task)
                self._queued.discard(task)
            if not self._maintain(conn, task):
                return

    def _maintain(self, conn: Connection, task: t.Maintenance) -> bool:
        """One step of a maintenance task; queues it again when it has more to do. False if it failed."""
        try:
            if isinstance(task, t.ReleaseFreePages):
                more, rolled_until = purge.release_free_pages(conn) > purge.FREE_PAGES_PER_STEP, None
            else:
                with conn.begin():
                    more, rolled_until = self._step(conn, task)
        except exc.DBAPIError as error:
            self._saw_corruption = self._saw_corruption or database.is_corruption(error)
            self._maintenance_failed(task, database.describe(error))
            return False
        except Exception as error:  # a bug in one step must not stop the writer
            log.exception("database maintenance %s failed", task)
            self._maintenance_failed(task, f"{type(error).__name__}: {error}")
            return False
        if isinstance(task, t.Rollup) and rolled_until is not None:
            self._rolled_until[task.tier_index] = rolled_until
        with self._cond:
            self._maintenance_error = None
        if more:
            self._queue(task)
        self._schedule_rollups()
        return True

    def _step(self, conn: Connection, task: t.Maintenance) -> tuple[bool, int | None]:
        """Run one step inside the caller's transaction: (more to do, a rollup's new mark)."""
        now_ms = round(self._now.now() * 1000)
        step = self._now.take_step()
        if step is not None:
            log.warning(
                "the wall clock stepped %+.0f s (%s): purges and rollups go on from the last trusted "
                "time until it keeps its new time for an hour",
                step,
                "ahead" if step > 0 else "back",
            )
        batch = self._settings.purge_batch_rows
        if isinstance(task, t.Rollup):
            index = task.tier_index
            source_complete = self._raw_complete_ms() if index == 1 else self._rolled_until[index - 1]
            rolled = rollup.rollup_step(conn, self._schema, index, self._rolled_until[index], source_complete)
            return rolled.more, rolled.rolled_until_ms
        if isinstance(task, t.Purge):
            index = task.tier_index
            following = self._rolled_until[index + 1] if index + 1 < len(self._tiers) else None
            purged = purge.purge_tier_step(
                conn, self._schema, index, now_ms=now_ms, next_rolled_until_ms=following, batch_rows=batch
            )
            return purged.more, None
        if isinstance(task, t.PurgeEvents):
            return purge.purge_events_step(conn, self._schema, now_ms, batch).more, None
        budget = self._settings.size_budget_bytes
        trimmed = purge.trim_events_step(conn, self._schema, budget, batch)
        if trimmed.rows:
            return True, None
        trimmed = purge.trim_step(conn, self._schema, budget, batch)
        if not trimmed.rows:
            use = purge.page_use(conn)
            if use.free_pages and (
                use.file_bytes > budget or use.free_pages > RELEASE_FREE_RATIO * use.page_count
            ):
                self._queue(t.ReleaseFreePages())
        return trimmed.more, None

    def _maintenance_failed(self, task: t.Maintenance, why: str) -> None:
        with self._cond:
            first = self._maintenance_error is None
            self._errors += 1
            self._maintenance_error = f"{type(task).__name__.lower()} in {self._path}: {why}"
        if first:
            log.error(
                "database maintenance failed (%s in %s: %s); retrying", type(task).__name__, self._path, why
            )

    # -- the end -------------------------------------------------------------------------------

    def _shutdown(self, conn: Connection) -> None:
        # What is still queued (the loop drains the buffer before it stops; this is for a
        # buffer held back by a write error), every batch of it, until one is not written.
        while True:
            with self._cond:
                pending = len(self._buffer)
                self._retry_now = True
                late = time.monotonic() >= self._stop_by
            if not pending:
                break
            if late:
                log.error(
                    "the store stopped with %d snapshots (about %.0f MiB) not written: writing them "
                    "would have taken longer than the stop allows",
                    pending,
                    self._buffer_bytes / 2**20,
                )
                break
            self._write_buffer(conn)
            with self._cond:
                left = len(self._buffer)
                failing = self._write_error is not None
            if failing or left >= pending:
                log.error("the store stopped with %d snapshots it could not write", left)
                break
        if self._dropped:
            log.error("%d snapshots were dropped while the write queue was full", self._dropped)
        if not self._saw_corruption and self._file_error is None:
            try:
                database.mark_clean_shutdown(conn, self._schema)
            except exc.DBAPIError as error:
                log.warning(
                    "could not mark the database %s as cleanly closed: %s",
                    self._path,
                    database.describe(error),
                )

    def _release_waiters(self) -> None:
        with self._cond:
            left, self._tasks = list(self._tasks), deque()
            self._queued.clear()
        for task in left:
            if isinstance(task, t.Barrier):
                task.done.set()
            elif isinstance(task, t.Call):
                task.future.set_exception(RuntimeError("the store is closed"))


def _event_row(event: model.Event) -> dict[str, Any]:
    return {
        "ts_ms": round(event.timestamp * 1000),
        "kind": event.kind.value,
        "severity": event.severity.value,
        "message": event.message,
        "gpu_index": event.gpu_index,
        "gpu_uuid": event.gpu_uuid,
        "server": event.server,
        "model": event.model,
        "version": event.version,
        "code": event.code,
    }


def _insert_sql(table: Table) -> str:
    """The raw tier's INSERT as SQL text with positional parameters, compiled once from the
    table: each tick then costs one executemany of plain tuples per entity kind."""
    statement = insert(table).prefix_with("OR REPLACE")
    return str(statement.compile(dialect=sqlite.dialect(paramstyle="qmark")))


def _file_bytes(path: Path) -> int | None:
    total = None
    for suffix in ("", "-wal"):
        try:
            size = Path(f"{path}{suffix}").stat().st_size
        except OSError:
            continue
        total = (total or 0) + size
    return total


def _queue_limit(settings: StoreSettings) -> str:
    return f"{settings.write_queue_max} snapshots or {settings.write_queue_max_bytes / 2**20:.0f} MiB"


def item_rows(item: Item) -> int:
    """The rows an item writes (GPUs, model versions, servers; events count as one)."""
    if not isinstance(item, model.Snapshot):
        return 1
    return 1 + len(item.gpus) + sum(1 + len(server.models) for server in item.triton)


def item_bytes(item: Item) -> int:
    """The memory an item holds, estimated from its parts: measured on the demo's snapshots
    (deep sizes: ~2.6 KB a model, ~1.5 KB a GPU, ~0.5 KB a process or an event)."""
    if not isinstance(item, model.Snapshot):
        return 512 * len(item)
    return (
        4096
        + 1536 * len(item.gpus)
        + 768 * len(item.devices)
        + 512 * (len(item.processes) + len(item.events))
        + 1024 * len(item.findings)
        + sum(1024 + 2688 * len(server.models) for server in item.triton)
    )
