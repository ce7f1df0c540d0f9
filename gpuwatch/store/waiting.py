"""A store waiting for its disk: what the daemon uses when the database cannot be written at start.

Place in the flow: `open_store` raised `NoSpaceError` (the disk is full, or failing) → the daemon
makes a **`WaitingStore`** in its place → the engine's snapshots are held here, in memory, and
served as history (the last `keep_seconds`) while opening is retried every `RETRY_SECONDS` → once
the file opens, the held snapshots are written first (oldest first, at most `write_queue_max`
of them, within `write_queue_max_bytes`) and the real `Store` takes over: health, history and
events all come from it.

Live data never depends on the disk: `/metrics`, the API's snapshot and `top` are served from
the first tick. Until the file opens, `health()` says why, with `ok=false`, so
`gpuwatch_store_up` is 0 and `/api/v1/health` names the reason.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from gpuwatch import model, series
from gpuwatch.store.api import EngineLike, Store
from gpuwatch.store.errors import NoSpaceError
from gpuwatch.store.writer import item_bytes

log = logging.getLogger("gpuwatch.store")

RETRY_SECONDS = 5.0
"""How often a database that could not be written at start is tried again."""


class WaitingStore:
    """Stands in for a `Store` until `open_store()` (the `opener`) succeeds; then forwards to it."""

    def __init__(
        self,
        opener: Callable[[], Store],
        path: Path,
        reason: str,
        *,
        hold_max: int,
        hold_max_bytes: int,
        keep_seconds: float,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.path = path
        self._opener = opener
        self._reason = reason
        self._retry_seconds = retry_seconds
        self._memory = series.MemoryHistory(keep_seconds=keep_seconds)
        self._held: deque[model.Snapshot | tuple[model.Event, ...]] = deque()
        self._hold_max, self._hold_max_bytes, self._held_bytes = hold_max, hold_max_bytes, 0
        self._dropped = 0
        self._attempts = 1
        self._lock = threading.Lock()
        self._store: Store | None = None
        self._engine: EngineLike | None = None
        self._stop = threading.Event()
        self.history: series.History = _History(self)
        """Memory until the file opens, then the file's (for the JSON API and the TUI)."""
        self._thread = threading.Thread(target=self._retry, name="store-waiting", daemon=True)
        self._thread.start()

    @property
    def opened(self) -> Store | None:
        """The real store once the file could be opened, else None."""
        with self._lock:
            return self._store

    def submit(self, snapshot: model.Snapshot) -> None:
        with self._lock:
            store = self._store
            if store is None:
                self._memory.add(snapshot)
                self._hold(snapshot)
                return
        store.submit(snapshot)

    def record_events(self, events: tuple[model.Event, ...]) -> None:
        if not events:
            return
        with self._lock:
            store = self._store
            if store is None:
                self._hold(events)
                return
        store.record_events(events)

    def health(self) -> model.StoreHealth:
        with self._lock:
            store = self._store
            if store is None:
                dropped = f"; {self._dropped} oldest snapshots dropped" if self._dropped else ""
                return model.StoreHealth(
                    ok=False,
                    path=str(self.path),
                    last_error=(
                        f"{self._reason}; live data is served, {len(self._held)} snapshots are held "
                        f"in memory and opening is retried every {self._retry_seconds:g} s{dropped}"
                    ),
                    write_errors_count=self._attempts,
                    queue_length=len(self._held),
                )
        return store.health()

    def attach(self, engine: EngineLike) -> None:
        """As `Store.attach`: this object stays subscribed and forwards once the file opens."""
        self._engine = engine
        engine.subscribe(self.submit)
        engine.set_store_health(self.health)

    def flush(self, timeout: float | None = None) -> bool:
        store = self.opened
        return store.flush(timeout) if store is not None else False

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        with self._lock:
            store, held = self._store, len(self._held)
        if store is not None:
            store.close(timeout)
        elif held:
            log.error(
                "the database %s never opened (%s): %d snapshots held in memory were not written",
                self.path,
                self._reason,
                held,
            )

    # -- the retry thread --------------------------------------------------------------------

    def _hold(self, item: model.Snapshot | tuple[model.Event, ...]) -> None:
        """Keep `item`, dropping the oldest beyond the write queue's bounds (as the writer does)."""
        size = item_bytes(item)
        while self._held and (
            len(self._held) >= self._hold_max or self._held_bytes + size > self._hold_max_bytes
        ):
            self._held_bytes -= item_bytes(self._held.popleft())
            self._dropped += 1
        self._held.append(item)
        self._held_bytes += size

    def _retry(self) -> None:
        while not self._stop.wait(self._retry_seconds):
            try:
                store = self._opener()
            except NoSpaceError as exc:
                with self._lock:
                    self._attempts += 1
                    self._reason = str(exc)
                continue
            except Exception as exc:  # a different failure now (the file was replaced): say it once
                log.error("the database %s still cannot be opened: %s", self.path, exc)
                with self._lock:
                    self._attempts += 1
                    self._reason = str(exc)
                continue
            if self._engine is not None:
                store.send_errors_to(self._engine.record_event)
            with self._lock:
                held, self._held, self._held_bytes = list(self._held), deque(), 0
                for item in held:  # oldest first, before any newer tick can be submitted
                    if isinstance(item, model.Snapshot):
                        store.submit(item)
                    else:
                        store.record_events(item)
                self._store = store
            log.warning("the database %s opened at last: %d held snapshots written", self.path, len(held))
            return


class _History:
    """`series.History` over the waiting store's memory, then over the file once it opens."""

    def __init__(self, owner: WaitingStore) -> None:
        self._owner = owner

    def _source(self) -> series.History:
        store = self._owner.opened
        return store.history if store is not None else self._owner._memory

    def query(
        self, name: str, match: dict[str, str], start: float, end: float, points: int
    ) -> list[series.SeriesData]:
        return self._source().query(name, match, start, end, points)

    def events(
        self,
        start: float,
        end: float,
        kinds: Iterable[model.EventKind] | None = None,
        limit: int = 1000,
    ) -> list[model.Event]:
        return self._source().events(start, end, kinds, limit)
