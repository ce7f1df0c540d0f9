"""The store's exceptions: every one is a database gpuwatch cannot use, said in one line.

    errors.Unavailable          (the command line prints it as one line and exits 1)
    └── StoreError              the database cannot be opened, created or read
    ├── StateDirectoryError     its directory cannot be created or written
    ├── NewerSchemaError        a newer gpuwatch wrote it; this one refuses to touch it
    ├── NotAStoreError          an SQLite file that is not a gpuwatch database
    ├── DatabaseInUseError      another daemon holds the file's writer lock
    └── NoSpaceError            it cannot be written now (a full disk, an I/O error): the daemon
                                serves live data and retries (store/waiting.py)

Errors of SQLite itself are translated into these at one boundary (`database.py`); a write
that fails while running (disk full) is not raised at all: the writer keeps the snapshots and
reports the error through `Store.health()`.
"""

from __future__ import annotations

from gpuwatch.errors import Unavailable


class StoreError(Unavailable):
    """The database cannot be used. str() is one line naming the file and what to do."""


class StateDirectoryError(StoreError):
    """The directory that holds the database cannot be created or written."""


class NewerSchemaError(StoreError):
    """The database has a schema version newer than this gpuwatch knows."""


class NotAStoreError(StoreError):
    """A valid SQLite database that gpuwatch did not create."""


class DatabaseInUseError(StoreError):
    """Another process (a second daemon) holds the database's writer lock."""


class NoSpaceError(StoreError):
    """The database cannot be written now: the disk (or the quota) is full, or it fails with
    I/O errors. Unlike the others this can pass: the daemon waits for it (store/waiting.py)."""
