"""One writer per database file: an advisory lock held by the daemon that writes it.

Place in the flow: `open_store` takes the lock before it reads, migrates or moves aside the
file, and `Store.close` lets it go. Without it a second `gpuwatch daemon` started on the same
`--db` (a second unit, a hand-started copy during an incident) would fight the first for
SQLite's write lock, could move a healthy database aside as "corrupt", and would leave both
daemons reporting write errors. `gpuwatch query` and `gpuwatch events` read without it.

The lock is `flock(2)` on `<database>.lock` beside the file, which holds the owner's pid for
the message only, and `flock(2)` on the database file itself: that one is held by inode, so a
second daemon reaching the same file through a symlink or a hard link (another path, another
`.lock`) is refused too (its WAL replay overwrote the first daemon's rows). flock and SQLite's
own POSIX locks do not interact on Linux, and the descriptor is closed only after SQLite's
connections are. The kernel drops both when the owner exits, `kill -9` included, so a stale
lock file never blocks a restart.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path

from gpuwatch.store.errors import DatabaseInUseError, StateDirectoryError

log = logging.getLogger(__name__)


def lock_path_for(database_path: Path) -> Path:
    """Where the lock for `database_path` lives."""
    return database_path.with_name(database_path.name + ".lock")


class WriterLock:
    """The held lock; `release()` (idempotent) lets the next writer in."""

    def __init__(self, path: Path, fd: int | None, file_fd: int | None = None) -> None:
        self.path = path
        self._fd = fd
        self._file_fd = file_fd

    def release(self) -> None:
        for name in ("_file_fd", "_fd"):
            fd = getattr(self, name)
            setattr(self, name, None)
            if fd is not None:
                os.close(fd)  # closing the descriptor drops the flock


def acquire_writer_lock(database_path: Path) -> WriterLock:
    """Take the database's writer lock without waiting. Raises `DatabaseInUseError` naming
    the pid that holds it; `StateDirectoryError` when the lock file cannot be created."""
    path = lock_path_for(database_path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise StateDirectoryError(f"cannot create the lock file {path}: {error.strerror or error}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EACCES):
            owner = _read_owner(fd)
            os.close(fd)
            who = f"pid {owner}" if owner else "another process"
            raise DatabaseInUseError(
                f"database {database_path} is already being written by {who} "
                f"(another gpuwatch daemon?); stop it or give this one its own --db"
            ) from None
        # A filesystem without locks (ENOLCK, EOPNOTSUPP): run as before, and say so once.
        os.close(fd)
        log.warning("cannot lock %s (%s); nothing stops a second daemon writing this database", path, error)
        return WriterLock(path, None)
    try:
        file_fd = _lock_the_file(database_path)
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # a full disk: the pid only names the owner in a second daemon's message
    return WriterLock(path, fd, file_fd)


def _lock_the_file(database_path: Path) -> int | None:
    """flock the database file itself (created empty if absent: SQLite takes an empty file as a
    new database), so the lock holds by inode whatever path reached it."""
    try:
        fd = os.open(database_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise StateDirectoryError(
            f"cannot open the database {database_path}: {error.strerror or error}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EACCES):
            real = Path(os.path.realpath(database_path))
            owner = _owner_of(lock_path_for(real)) if real != database_path else None
            who = f"pid {owner}" if owner else "another process"
            raise DatabaseInUseError(
                f"database {database_path} (the file {real}) is already being written by {who} "
                "through another path (a symlink or a hard link); stop it or give this one its own --db"
            ) from None
        return None  # no locks on this filesystem: the path lock (if any) is all there is
    return fd


def _owner_of(lock_path: Path) -> int | None:
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _read_owner(fd)
    finally:
        os.close(fd)


def _read_owner(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
