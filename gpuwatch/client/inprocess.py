"""`InProcessClient`: the `Client` protocol over an engine running in this process.

Place in the flow: engine (in this process) → **InProcessClient** → TUI. `gpuwatch top` with no
daemon, and `--demo`, read the engine's latest snapshot and an in-memory history through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from gpuwatch import model, series
from gpuwatch.client.protocol import NotReadyError, SourceUnavailableError


class SnapshotSource(Protocol):
    """What `InProcessClient` needs of an engine: its latest published snapshot."""

    def latest(self) -> model.Snapshot | None: ...


class InProcessClient:
    """A node whose engine runs in this process; history from a `series.History` (in memory).

    "Stale" is judged by the snapshot's age on `clock`: an engine whose tick thread stopped or
    hangs keeps returning its last snapshot, so after `stale_after_seconds` without a new one
    this client says the source is unavailable, as a daemon that stopped answering would."""

    def __init__(
        self,
        engine: SnapshotSource,
        history: series.History,
        *,
        name: str,
        clock: Callable[[], float] = time.time,
        stale_after_seconds: float = 5.0,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._history = history
        self._name = name
        self._clock = clock
        self._stale_after = stale_after_seconds
        self._on_close = on_close

    @property
    def name(self) -> str:
        return self._name

    @property
    def origin(self) -> str:
        return "in-process"

    def snapshot(self) -> model.Snapshot:
        latest = self._engine.latest()
        if latest is None:
            raise NotReadyError("starting: no snapshot yet")
        age = self._clock() - latest.timestamp
        if age > self._stale_after:
            raise SourceUnavailableError(f"no new snapshot for {age:.0f} s: the engine has stopped ticking")
        return latest

    def history(
        self, name: str, match: Mapping[str, str], start: float, end: float, points: int
    ) -> list[series.SeriesData]:
        return self._history.query(name, dict(match), start, end, points)

    def events(
        self,
        start: float,
        end: float,
        kinds: Iterable[model.EventKind] | None = None,
        limit: int = 200,
    ) -> list[model.Event]:
        return self._history.events(start, end, kinds, limit)

    def close(self) -> None:
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()
