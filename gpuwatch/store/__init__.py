"""The SQLite history: one writer fed by the engine, retention tiers, rollups and range queries.

Place in the flow: engine → **store** (every snapshot, on its own writer thread) → history for
the JSON API, the TUI and `gpuwatch query` / `gpuwatch events`. The store persists snapshots
it is handed; it never collects and never serves (its layer rule in pyproject.toml keeps pynvml,
the collectors and the server out; tests/test_layers.py holds it). docs/storage.md describes
the schema, the tiers, rollups, purges and every fault.

The daemon's use of it::

    store = open_store(settings)         # ConfigError: bad [store] retention; StoreError: unusable file
    store.attach(engine)                 # engine.subscribe(store.submit), health, store_error events
    ...                                  # store.history answers the API: series.History
    store.record_events((stop_event,))   # after the engine stopped
    store.close()                        # writes what is queued, then closes

The public names:

- `open_store(settings, *, clock=time.time, monotonic=None, path=None) -> Store` — open or create the file
  (with `monotonic`, a step of `clock` is noticed and never purged or rolled up on: store/clock.py)
  and start the writer; the clock stamps purges and retention (tests pass a manual one).
- `Store.submit(snapshot)` never blocks; `Store.health() -> model.StoreHealth`;
  `Store.attach(engine)`; `Store.record_events(events)`; `Store.flush(timeout) -> bool`;
  `Store.call(fn, timeout)` runs `fn(connection)` on the writer thread; `Store.close(timeout)`;
  `Store.history` and `Store.path`.
- `WaitingStore(opener, path, reason, ...)` — stands in for a `Store` whose file cannot be
  written at start (`NoSpaceError`): holds snapshots in memory, serves them as history, retries.
- `open_history(path, *, clock=time.time) -> StoreHistory` — read-only `series.History` over a
  file, for the CLI; `StoreHistory.tiers`.
- `parse_retention(text) -> tuple[Tier, ...]` (raises `config.ConfigError`), `Tier`.
- `StoreError` and its kinds (`StateDirectoryError`, `NewerSchemaError`, `NotAStoreError`,
  `DatabaseInUseError`, `NoSpaceError`):
  every message is one line naming the file or directory and what to do.
"""

from gpuwatch.store.api import Store, open_history, open_store
from gpuwatch.store.errors import (
    DatabaseInUseError,
    NewerSchemaError,
    NoSpaceError,
    NotAStoreError,
    StateDirectoryError,
    StoreError,
)
from gpuwatch.store.query import StoreHistory
from gpuwatch.store.retention import Tier, parse_retention
from gpuwatch.store.waiting import WaitingStore

__all__ = [
    "DatabaseInUseError",
    "NewerSchemaError",
    "NoSpaceError",
    "NotAStoreError",
    "StateDirectoryError",
    "Store",
    "StoreError",
    "StoreHistory",
    "Tier",
    "WaitingStore",
    "open_history",
    "open_store",
    "parse_retention",
]
