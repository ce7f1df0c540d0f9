"""What a face that shows a node (the TUI) asks of the node: the `Client` protocol.

Place in the flow: engine or daemon → **client** → TUI. The TUI never sees an engine, a
collector or the database; it holds one `Client` per node and calls it from worker threads,
never from the UI thread, since a client may wait on the network. Two implementations:

- `InProcessClient` (`gpuwatch.client.inprocess`) reads an engine running in this process
  and an in-memory history: `gpuwatch top` with no daemon, and `--demo`;
- `HttpClient` (`gpuwatch.client.http`) speaks a daemon's JSON API: `GET /api/v1/snapshot`
  (decoded by `gpuwatch.jsonform.decode_snapshot`), `/api/v1/history`, `/api/v1/events`.

Errors, the whole tree (as httpx writes its own down in one place):

    ClientError                    anything a client raises on purpose
    ├── SourceUnavailableError     the node cannot answer now: refused, timed out, the engine
    │   │                          stopped ticking, a reply gpuwatch cannot decode. str() is one
    │   │                          line for the screen; the caller keeps its last data and retries.
    │   ├── NotReadyError          it answers but has no snapshot yet (just started): wait.
    │   └── AuthenticationError    it answers, but not to us: no token, or a token it refuses.
    └── (series.UnknownSeriesError, a KeyError: a series name not in the catalog)

Every method may be called from several threads at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from gpuwatch import model, series


class ClientError(Exception):
    """Base of the errors a client raises on purpose."""


class SourceUnavailableError(ClientError):
    """The node does not answer now. `str()` is one line saying why, for the screen."""


class NotReadyError(SourceUnavailableError):
    """The node answers but has no snapshot yet: it has just started. Not a fault."""


class AuthenticationError(SourceUnavailableError):
    """The node requires credentials we did not send, or refused the ones we sent."""


class Client(Protocol):
    """One node, as the TUI sees it. Blocking calls: run them in a worker thread."""

    @property
    def name(self) -> str:
        """A short name for this node: the hostname in-process; a daemon's host, with its port
        unless it is gpuwatch's 9477."""
        ...

    @property
    def origin(self) -> str:
        """Where the data comes from, for the header: "in-process" or "daemon URL"."""
        ...

    def snapshot(self) -> model.Snapshot:
        """The node's latest snapshot. Raises SourceUnavailableError when there is none to
        give: unreachable, not answering in time, or no new snapshot for too long (stale)."""
        ...

    def history(
        self, name: str, match: Mapping[str, str], start: float, end: float, points: int
    ) -> list[series.SeriesData]:
        """Every series `name` whose labels include `match`, in [start, end], at most `points`
        buckets each (see `series.History.query`). Raises UnknownSeriesError for a name not in
        `series.CATALOG`, SourceUnavailableError when the node does not answer."""
        ...

    def events(
        self,
        start: float,
        end: float,
        kinds: Iterable[model.EventKind] | None = None,
        limit: int = 200,
    ) -> list[model.Event]:
        """The node's events in [start, end], newest first, at most `limit`."""
        ...

    def close(self) -> None:
        """Release connections (or nothing). The TUI calls it once, on the way out."""
        ...
