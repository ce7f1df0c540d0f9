"""Whether the database file the writer holds open is still the one at its path.

Place in the flow: the writer asks `FileWatch.problem()` every `CHECK_SECONDS` before it
writes. SQLite goes on writing into an open file that was deleted, replaced (a restore, a
`mv` over it) or had its `-wal` removed, and reports success: the history went nowhere while
`gpuwatch_store_up` said 1, and the next start began an empty database. A problem found here
is a write error like a full disk: health down, one log line, one event, snapshots held in
memory (bounded by `write_queue_max`) while live data is served.
"""

from __future__ import annotations

import os
from pathlib import Path

from gpuwatch.store.database import SQLITE_HEADER

CHECK_SECONDS = 2.0


class FileWatch:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._wal = path.with_name(path.name + "-wal")
        self._identity = _identity(path)

    def problem(self) -> str | None:
        """What is wrong with the file at the path, in one line; None when it is the one open."""
        if self._identity is None:
            return None
        found = _identity(self._path)
        if found is None:
            return f"the database file {self._path} was deleted while running; what is written goes nowhere"
        if found != self._identity:
            return f"the database file {self._path} was replaced while running (another file at its path)"
        try:
            with self._path.open("rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as error:
            return f"cannot read the database file {self._path}: {error.strerror or error}"
        if head != SQLITE_HEADER:
            return f"the database file {self._path} was overwritten while running (not an SQLite file now)"
        if not self._wal.exists():
            return f"the write-ahead log {self._wal} was deleted while running; what it held is lost"
        return None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
