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

A fleet too large to read daemon by daemon is read through the Prometheus server that scrapes
it: the `Fleet` protocol (`gpuwatch.client.prometheus.PrometheusFleet`) answers one
`FleetView`, a row per scrape target, from a fixed number of instant queries, and opens a node
as a `Client` on its daemon's API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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


# --------------------------------------------------------------------------- a fleet, through Prometheus


@dataclass(frozen=True, slots=True)
class FleetNode:
    """One scrape target of the fleet, as Prometheus has it now. None: no series for it."""

    instance: str
    """The target's `instance` label: its daemon's HOST:PORT."""
    scraped: bool
    """Prometheus's `up` for the target: False when its last scrape failed."""
    gpus: int | None = None
    gpus_up: int | None = None
    busiest_ratio: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    hottest_celsius: float | None = None
    models_ready: int | None = None
    failures_per_second: float | None = None
    critical: int = 0
    warning: int = 0
    info: int = 0
    """Active findings by severity (`gpuwatch_finding`)."""

    @property
    def lost_gpus(self) -> int:
        return (self.gpus or 0) - (self.gpus_up if self.gpus_up is not None else (self.gpus or 0))


@dataclass(frozen=True, slots=True)
class FleetView:
    nodes: tuple[FleetNode, ...]
    at: float
    """Unix time the queries were evaluated at."""
    queries: int
    """Instant queries this view took (a fixed number, whatever the fleet's size)."""


class Fleet(Protocol):
    """A fleet read through Prometheus. Blocking calls: run them in a worker thread."""

    @property
    def origin(self) -> str:
        """Where the rows come from, for the header: "prometheus URL"."""
        ...

    def view(self) -> FleetView:
        """Every target's row now. Raises SourceUnavailableError (one line) when Prometheus
        is down, slow, refuses us or answers an error."""
        ...

    def open(self, instance: str) -> Client:
        """The node's own daemon, read through its JSON API at the target's address."""
        ...

    def close(self) -> None:
        """Release connections, those of the nodes opened included."""
        ...
