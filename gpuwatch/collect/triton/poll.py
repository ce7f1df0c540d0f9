"""One poll of one Triton server: its HTTP requests, all under one deadline → a `PollResult`.

Place in the flow: the server's poller (`poller.py`) asks `PollFetcher.fetch` once per poll,
on the engine's job thread for that server; the model bookkeeping (`models.py`) and the
poller turn the result into the server's status. This module knows the endpoints, the
deadline and what a failed request means; it keeps no figures between polls (only the
parsers' memories, the server's version and the metrics request that may still be running).

The requests of one poll, all under one deadline (`timeout_seconds`) and a byte cap per body
(`http.py`):

1. `GET /v2/health/ready`: refused, timed out or HTTP 5xx, the server is unreachable and
   nothing else is asked (`PollResult.unreachable`); 4xx: up but not ready.
2. `GET /v2` once per contact, for the version.
3. `POST /v2/repository/index` (model states and load-error reasons), `GET /v2/models/stats`.
4. `GET /v2/models/NAME/versions/V/config` for the ready models whose config the bookkeeping
   says is due, using at most half the poll's time so the other endpoints are never starved;
   one cut off by that time is simply not in `configs` (it stays due).
5. `GET metrics_url` (`/metrics` on the metrics port), fetched and parsed on a worker of its
   own from the start of the poll: the two ports answer side by side, and a stall on one
   leaves the other its whole deadline.

Each endpoint that fails adds one clause to `problems` (and its kind to `failure_kinds`) and
the poll goes on with the others.

Every request that goes unanswered on a kept-alive connection for half of what is left of the
deadline is sent once more on a fresh connection (`BoundedFetcher.fetch`'s `retry_at`): Triton
2.51 stalls kept-alive connections for seconds while it loads a model, and a new connection is
answered at once. Only a server that answers on neither is unreachable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from gpuwatch import model
from gpuwatch.collect.triton.http import BoundedFetcher, FetchError, decode_json, decode_text
from gpuwatch.collect.triton.parse_config import ModelConfig, parse_config
from gpuwatch.collect.triton.parse_index import IndexEntry, parse_index
from gpuwatch.collect.triton.parse_metrics import MetricsParser, MetricsScrape
from gpuwatch.collect.triton.parse_server import parse_server_metadata
from gpuwatch.collect.triton.parse_shape import ModelKey, ShapeError
from gpuwatch.collect.triton.parse_stats import StatsParser, StatsScrape
from gpuwatch.config import TritonServerSettings, TritonSettings

UNREACHABLE_KINDS = frozenset({"refused", "timeout", "network", "http5xx"})
"""Failure kinds that mean the server did not answer (rather than answered with garbage)."""


@dataclass(frozen=True, slots=True)
class Unreachable:
    """The health check was refused, timed out or answered 5xx: nothing else was asked."""

    kind: str
    """A `FetchError` kind ("refused", "timeout", "network", "http")."""
    reason: str


@dataclass(frozen=True, slots=True)
class ConfigRead:
    """One model's config request: the config, or why it could not be read."""

    config: ModelConfig | None
    error: str | None = None
    """"config: <reason>" when the request or the body failed."""


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of one server gathered. Times `started`, `stats_at` and `metrics_at` are
    monotonic seconds; `wall` is the clock's time when the poll began."""

    started: float
    wall: float
    unreachable: Unreachable | None = None
    not_ready: str | None = None
    """The health check's 4xx, in words: the server is up but says it is not ready."""
    version: str | None = None
    """The server's version as last read on this contact (None: unknown)."""
    problems: tuple[str, ...] = ()
    """One clause per endpoint that failed, in the order of the requests."""
    failure_kinds: tuple[str, ...] = ()
    index: tuple[IndexEntry, ...] | None = None
    stats: StatsScrape | None = None
    stats_at: float | None = None
    metrics: MetricsScrape | None = None
    metrics_at: float | None = None
    configs: dict[ModelKey, ConfigRead] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """Any of index, statistics and metrics came back."""
        return self.index is not None or self.stats is not None or self.metrics is not None

    @property
    def only_unreachable(self) -> bool:
        """Something failed, and everything that failed failed by timeout, refusal or HTTP 5xx."""
        kinds = set(self.failure_kinds)
        return bool(kinds) and kinds <= UNREACHABLE_KINDS


class _Gathering:
    """The mutable side of one poll while its requests run (it becomes the `PollResult`)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.failure_kinds: list[str] = []
        self.index: tuple[IndexEntry, ...] | None = None
        self.stats: StatsScrape | None = None
        self.stats_at: float | None = None
        self.metrics: MetricsScrape | None = None
        self.metrics_at: float | None = None
        self.not_ready: str | None = None
        self.configs: dict[ModelKey, ConfigRead] = {}

    def fail(self, what: str, kind: str, reason: str) -> None:
        self.problems.append(f"{what}: {reason}")
        self.failure_kinds.append(kind)

    def failed(self, what: str, exc: FetchError) -> None:
        self.fail(what, _kind(exc), exc.reason)


class PollFetcher:
    """Fetches the endpoints of one server, one poll at a time (from one thread)."""

    def __init__(
        self,
        server: TritonServerSettings,
        settings: TritonSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = server.url.rstrip("/")
        self.metrics_url = server.metrics_url
        self._headers = dict(server.headers)
        self._timeout = settings.timeout_seconds
        self._clock = clock
        self._monotonic = monotonic
        # The configured headers go to the API only: the metrics port has no authentication,
        # and a restricted-API key has no business travelling there.
        self._fetcher = BoundedFetcher(
            max_bytes=settings.max_response_bytes, transport=transport, monotonic=monotonic
        )
        # The metrics port is read on a worker of its own, beside the API: a port that stalls
        # leaves the other its whole deadline, and the poll costs the slower of the two.
        self._metrics_fetcher = BoundedFetcher(
            max_bytes=settings.max_response_bytes, transport=transport, monotonic=monotonic
        )
        self._metrics_worker = ThreadPoolExecutor(1, thread_name_prefix=f"triton-{server.name}-metrics")
        self._metrics_pending: Future[tuple[MetricsScrape, float]] | None = None
        self._metrics_parser = MetricsParser()
        self._stats_parser = StatsParser()
        self._version: str | None = None

    @property
    def fresh_retries(self) -> int:
        """Requests sent again on a fresh connection after a kept-alive one stalled."""
        return self._fetcher.fresh_retries + self._metrics_fetcher.fresh_retries

    def close(self) -> None:
        self._metrics_worker.shutdown(wait=False, cancel_futures=True)
        self._fetcher.close()
        self._metrics_fetcher.close()

    def fetch(self, started: float, config_due: Callable[[ModelKey], bool]) -> PollResult:
        """One poll begun at `started` (monotonic): every endpoint, within the deadline.

        `config_due(key)` says whether a ready model's config should be read this poll."""
        wall = self._clock()
        deadline = started + self._timeout
        metrics = self._start_metrics(deadline)
        g = _Gathering()
        try:
            self._api("GET", "/v2/health/ready", deadline)
        except FetchError as exc:
            if exc.kind == "http" and exc.status is not None and exc.status < 500:
                g.not_ready = f"not ready ({exc.reason})"
            else:
                self._version = None  # a new contact: read the version again
                return PollResult(started, wall, unreachable=Unreachable(exc.kind, exc.reason))
        if self._version is None:
            self._read_version(g, deadline)
        self._read_index(g, deadline)
        self._read_stats(g, deadline)
        self._read_configs(g, config_due, until=min(started + self._timeout / 2, deadline))
        self._collect_metrics(g, metrics, deadline)
        return PollResult(
            started,
            wall,
            not_ready=g.not_ready,
            version=self._version,
            problems=tuple(g.problems),
            failure_kinds=tuple(g.failure_kinds),
            index=g.index,
            stats=g.stats,
            stats_at=g.stats_at,
            metrics=g.metrics,
            metrics_at=g.metrics_at,
            configs=g.configs,
        )

    def _api(self, method: str, path: str, deadline: float, body: object = None) -> bytes:
        _, data = self._fetcher.fetch(
            method,
            self.url + path,
            deadline,
            json_body=body,
            headers=self._headers or None,
            retry_at=_halfway(self._monotonic(), deadline),
        )
        return data

    def _read_version(self, g: _Gathering, deadline: float) -> None:
        try:
            self._version = parse_server_metadata(decode_json(self._api("GET", "/v2", deadline)))
        except FetchError as exc:
            g.failed("server metadata", exc)
        except (ValueError, ShapeError) as exc:
            g.fail("server metadata", "garbage", str(exc))

    def _read_index(self, g: _Gathering, deadline: float) -> None:
        try:
            g.index = parse_index(decode_json(self._api("POST", "/v2/repository/index", deadline, {})))
        except FetchError as exc:
            g.failed("repository index", exc)
        except ShapeError as exc:
            g.fail("repository index", "shape", f"unexpected shape: {exc}")
        except ValueError as exc:
            g.fail("repository index", "garbage", str(exc))

    def _read_stats(self, g: _Gathering, deadline: float) -> None:
        try:
            body = self._api("GET", "/v2/models/stats", deadline)
            g.stats_at = self._monotonic()
            g.stats = self._stats_parser.parse(decode_json(body))
        except FetchError as exc:
            g.failed("statistics", exc)
        except ShapeError as exc:
            g.fail("statistics", "shape", f"unexpected shape: {exc}")
        except ValueError as exc:
            g.fail("statistics", "garbage", str(exc))

    def _read_configs(self, g: _Gathering, config_due: Callable[[ModelKey], bool], until: float) -> None:
        if g.index is not None:
            ready = {(e.name, e.version or "") for e in g.index if e.state == model.ModelState.READY}
        else:
            ready = set(g.stats.models) if g.stats is not None else set()
        for key in sorted(ready):
            if not config_due(key):
                continue
            if self._monotonic() >= until:
                return  # the rest next poll: the other endpoints must keep their time
            name, version = key
            path = f"/v2/models/{quote(name, safe='')}"
            if version:
                path += f"/versions/{quote(version, safe='')}"
            try:
                g.configs[key] = ConfigRead(
                    parse_config(decode_json(self._api("GET", path + "/config", until)))
                )
            except FetchError as exc:
                if exc.kind == "timeout":
                    return
                g.configs[key] = ConfigRead(None, f"config: {exc.reason}")
            except ValueError as exc:  # ShapeError included
                g.configs[key] = ConfigRead(None, f"config: {exc}")

    def _start_metrics(self, deadline: float) -> Future[tuple[MetricsScrape, float]] | None:
        """Fetch and parse /metrics on the worker; None while the last one is still going.

        The last one ran under its own poll's deadline, so it is over, or about to be: a poll
        that ended early (the API was down) may not have waited for it."""
        pending = self._metrics_pending
        if pending is not None and not pending.done():
            wait([pending], timeout=max(0.0, deadline - self._monotonic()))
            if not pending.done():
                return None
        self._metrics_pending = self._metrics_worker.submit(self._fetch_metrics, deadline)
        return self._metrics_pending

    def _fetch_metrics(self, deadline: float) -> tuple[MetricsScrape, float]:
        _, body = self._metrics_fetcher.fetch(
            "GET", self.metrics_url, deadline, retry_at=_halfway(self._monotonic(), deadline)
        )
        at = self._monotonic()
        return self._metrics_parser.parse(decode_text(body)), at

    def _collect_metrics(
        self, g: _Gathering, future: Future[tuple[MetricsScrape, float]] | None, deadline: float
    ) -> None:
        if future is None:
            g.fail("metrics", "timeout", "the previous request has not finished")
            return
        try:
            g.metrics, g.metrics_at = future.result(timeout=max(0.0, deadline - self._monotonic()))
        except FuturesTimeout:
            g.fail("metrics", "timeout", f"no answer within {self._timeout:.2g} s")
        except FetchError as exc:
            g.failed("metrics", exc)
        except ShapeError as exc:
            g.fail("metrics", "shape", str(exc))
        except ValueError as exc:
            g.fail("metrics", "garbage", str(exc))
        else:
            if g.metrics.problems:
                g.problems.append("metrics: " + "; ".join(g.metrics.problems))


def _halfway(now: float, deadline: float) -> float:
    """When a request on a kept-alive connection is sent again on a fresh one (`http.py`)."""
    return now + (deadline - now) / 2


def _kind(exc: FetchError) -> str:
    """A fetch failure's kind, with a server error (HTTP 5xx) told apart from other statuses."""
    server_error = exc.kind == "http" and exc.status is not None and exc.status >= 500
    return "http5xx" if server_error else exc.kind
