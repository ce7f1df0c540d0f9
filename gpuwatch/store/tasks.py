"""The typed tasks of the writer's queue (the Home Assistant recorder's shape).

Place in the flow: snapshots and events handed to the store wait in the writer's buffer; every
other piece of work on the database is one of these small tasks, queued by the writer itself
when it is due (or by `Store.flush` / `Writer.call`) and run on the writer thread, the only
one that writes. A task that has more to do queues itself again behind the snapshots that
arrived meanwhile, so no task holds the write lock for long.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection


@dataclass(frozen=True, slots=True)
class Rollup:
    """Roll completed buckets of tier `tier_index - 1` up into tier `tier_index` (one step)."""

    tier_index: int


@dataclass(frozen=True, slots=True)
class Purge:
    """Delete one batch of rows tier `tier_index` keeps no longer."""

    tier_index: int


@dataclass(frozen=True, slots=True)
class PurgeEvents:
    """Delete one batch of events older than the longest tier keeps."""


@dataclass(frozen=True, slots=True)
class TrimToBudget:
    """While over the size budget: delete one batch of the oldest rows, finest tier first."""


@dataclass(frozen=True, slots=True)
class ReleaseFreePages:
    """Give a bounded number of free pages back to the file system."""


Maintenance = Rollup | Purge | PurgeEvents | TrimToBudget | ReleaseFreePages


@dataclass(frozen=True, slots=True, eq=False)
class Call:
    """Run `fn(connection)` on the writer thread; its result or exception goes to `future`."""

    fn: Callable[[Connection], Any]
    future: Future[Any] = field(default_factory=Future)


@dataclass(frozen=True, slots=True, eq=False)
class Barrier:
    """Set `done` once everything queued before it is written and due maintenance has run."""

    done: threading.Event = field(default_factory=threading.Event)


Task = Maintenance | Call | Barrier
