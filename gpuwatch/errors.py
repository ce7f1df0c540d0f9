"""Errors a person can meet, by what the command line does with them.

    config.ConfigError      a config file or setting that cannot be used     exit 2
    cli.UsageError          a command-line value that cannot be used          exit 2
    Unavailable             what was asked for cannot be obtained             exit 1
    └── store.StoreError    a database that cannot be opened, created or read

Every one prints as one line (`gpuwatch: MESSAGE`), never a traceback. This module imports
nothing of gpuwatch, so `cli.main` can catch them all without loading the layers that raise them.

What keeps going wrong while the daemon runs is logged, not raised: `RepeatedLines`, a filter
on the log's handler, lets each such line through once per window and then says how many more
there were, so a condition that lasts (a collector failing every second) is one line, not 86 400
a day.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class Unavailable(Exception):
    """What was asked for cannot be obtained (no database, an unusable directory); one line, exit 1."""


class RepeatedLines(logging.Filter):
    """Lets a log line through once per `window_seconds` for each (logger, level, text, arguments,
    exception type); the first one after the window says how many were held back."""

    MAX_KEYS = 4096
    """Distinct lines remembered at most; the oldest are forgotten beyond (their counts with them)."""

    def __init__(self, window_seconds: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._window = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str, str, str], list[float]] = {}
        """key → [when it was last let through, how many were held back since]."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        key = (record.name, record.levelno, str(record.msg), repr(record.args), exc_type)
        now = self._clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self._window:
                entry[1] += 1
                return False
            held = int(entry[1]) if entry is not None else 0
            self._seen.pop(key, None)
            self._seen[key] = [now, 0]
            if len(self._seen) > self.MAX_KEYS:
                del self._seen[next(iter(self._seen))]
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {self._window:g} s)"
        return True
