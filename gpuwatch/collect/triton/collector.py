"""Triton Inference Servers → per-model statistics, server status and events.

Place in the flow: the engine runs one job per configured server (`jobs()`), each on its own
thread, so a stalled server never delays another server or an NVML tick; it reads `view()`,
`drain_events()` and `link_processes()` when it builds a snapshot. Nothing here formats, stores
or serves, and nothing here calls NVML: GPU UUIDs are resolved to indexes by the engine
(`link.resolve_gpu_indexes`).

One poll of one server, all under one deadline (`timeout_seconds`) and a byte cap per body
(`triton_http`):

1. `GET /v2/health/ready` — refused, timed out or HTTP 5xx: the server is `down` (the implicit
   default server with nothing listening is `absent`, quietly); 4xx: up but not ready.
2. `GET /v2` once per contact, for the version.
3. `POST /v2/repository/index` (model states and load-error reasons), `GET /v2/models/stats`.
4. `GET /v2/models/NAME/versions/V/config` for models whose cached config is older than
   `config_refresh_seconds` or that were just reset (instance_group can change without a reload),
   using at most half the poll's time so the other endpoints are never starved.
5. `GET metrics_url` (`/metrics` on the metrics port), fetched and parsed on a worker of its
   own from the start of the poll: the two ports answer side by side, and a stall on one
   leaves the other its whole deadline.

Each endpoint that fails adds one clause to the server's reason and the poll goes on with the
others: the server is `up` when any of index, stats and metrics could be used, `down` when they
all failed by timeout, refusal or HTTP 5xx, and `error` when what came back was unusable.

Resets (`triton_derive` detects, this module names): a counter that goes down, or a model that
vanished from a source and came back, re-baselines that model and marks its interval. Both
sources restarted: "unload/load"; only /v2/models/stats: a reload of a loaded model (a config
override). After the server was unreachable every model is re-baselined, and if counters went
down that was a restart (TRITON_RESTART); so is every model restarting at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field, replace
from urllib.parse import quote

import httpx

from gpuwatch import model
from gpuwatch.collect.contract import Job
from gpuwatch.collect.triton import derive, link
from gpuwatch.collect.triton.http import BoundedFetcher, FetchError, decode_json, decode_text
from gpuwatch.collect.triton.parse_config import ModelConfig, parse_config
from gpuwatch.collect.triton.parse_index import IndexEntry, parse_index
from gpuwatch.collect.triton.parse_metrics import SUCCESS, MetricsModel, MetricsParser, MetricsScrape
from gpuwatch.collect.triton.parse_server import parse_server_metadata
from gpuwatch.collect.triton.parse_shape import ModelKey, ShapeError
from gpuwatch.collect.triton.parse_stats import StatsModel, StatsParser, StatsScrape
from gpuwatch.config import TritonServerSettings, TritonSettings

CONFIG_RETRY_SECONDS = 10.0
"""A config that could not be read is tried again after this long (not every poll)."""
_UNREACHABLE = frozenset({"refused", "timeout", "network"})


@dataclass
class _Model:
    """What a server's poller remembers of one model version between polls."""

    reading: derive.Reading = field(default_factory=derive.Reading)
    stats_gone: bool = False
    """/v2/models/stats answered without this model since its last stats reading."""
    metrics_gone: bool = False
    config: ModelConfig | None = None
    config_due_at: float = 0.0
    config_error: str | None = None
    state: str | None = None
    seen: bool = False
    """A poll of an up server has shown it: its state changes are events from now on."""
    totals: model.ModelTotals | None = None
    totals_from: tuple[object, ...] = ()
    """What `totals` was made from: an idle model's are not made again each poll."""


@dataclass
class _Poll:
    """What one poll gathered, before it becomes the server's status."""

    started: float
    deadline: float
    wall: float
    problems: list[str] = field(default_factory=list)
    failure_kinds: list[str] = field(default_factory=list)
    index: tuple[IndexEntry, ...] | None = None
    stats: StatsScrape | None = None
    stats_at: float | None = None
    metrics: MetricsScrape | None = None
    metrics_at: float | None = None
    not_ready: str | None = None

    def fail(self, what: str, kind: str, reason: str) -> None:
        self.problems.append(f"{what}: {reason}")
        self.failure_kinds.append(kind)

    def failed(self, what: str, exc: FetchError) -> None:
        server_error = exc.kind == "http" and exc.status is not None and exc.status >= 500
        self.fail(what, "http5xx" if server_error else exc.kind, exc.reason)


def _same_inputs(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """The same statistics object, equal /metrics values and the same cache setting."""
    return len(a) == len(b) and a[0] is b[0] and a[1:] == b[1:]


ABSENT_RECHECK_SECONDS = 15.0
"""How often the implicit local server is looked for while nothing listens there."""


class ServerPoller:
    """Polls one Triton server; `poll()` runs on the engine's job thread for this server."""

    def __init__(
        self,
        server: TritonServerSettings,
        settings: TritonSettings,
        *,
        implicit: bool = False,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = server.name
        self.url = server.url.rstrip("/")
        self.metrics_url = server.metrics_url
        self._headers = dict(server.headers)
        self._timeout = settings.timeout_seconds
        self._refresh = settings.config_refresh_seconds
        self._implicit = implicit
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
        self._metrics_worker = ThreadPoolExecutor(1, thread_name_prefix=f"triton-{self.name}-metrics")
        self._metrics_pending: Future[tuple[MetricsScrape, float]] | None = None
        self._parser = MetricsParser()
        self._stats_parser = StatsParser()
        self._models: dict[ModelKey, _Model] = {}
        self._index: tuple[IndexEntry, ...] = ()
        self._version: str | None = None
        self._ever_up = False
        self._absent_until: float | None = None
        self._outage = False
        self._polls = 0
        self._pids: tuple[int, ...] = ()
        self._lock = threading.Lock()
        self._events: list[model.Event] = []
        self._status = model.TritonServerStatus(
            self.name, self.url, model.ServerState.ABSENT, "not polled yet"
        )

    # -- readers (any thread) --------------------------------------------------------------

    def status(self) -> model.TritonServerStatus:
        status = self._status
        return replace(status, pids=self._pids) if status.pids != self._pids else status

    def drain_events(self) -> list[model.Event]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def set_pids(self, pids: tuple[int, ...]) -> None:
        self._pids = pids

    def close(self) -> None:
        self._metrics_worker.shutdown(wait=False, cancel_futures=True)
        self._fetcher.close()
        self._metrics_fetcher.close()

    # -- one poll ---------------------------------------------------------------------------

    def poll(self) -> str | None:
        """Poll once; None when the server is up and every endpoint answered (or absent)."""
        started = self._monotonic()
        if self._absent_until is not None and started < self._absent_until:
            return None  # the implicit local server was not there: look again later
        p = _Poll(started=started, deadline=started + self._timeout, wall=self._clock())
        metrics = self._start_metrics(p.deadline)
        try:
            self._api("GET", "/v2/health/ready", p.deadline)
        except FetchError as exc:
            if exc.kind == "http" and exc.status is not None and exc.status < 500:
                p.not_ready = f"not ready ({exc.reason})"
            else:
                return self._unreachable(p, exc)
        if self._version is None:
            self._read_version(p)
        self._read_index(p)
        self._read_stats(p)
        self._read_configs(p, self._keys(p), until=started + self._timeout / 2)
        self._collect_metrics(p, metrics)
        return self._finish(p)

    def _api(self, method: str, path: str, deadline: float, body: object = None) -> bytes:
        _, data = self._fetcher.fetch(
            method, self.url + path, deadline, json_body=body, headers=self._headers or None
        )
        return data

    def _read_version(self, p: _Poll) -> None:
        try:
            self._version = parse_server_metadata(decode_json(self._api("GET", "/v2", p.deadline)))
        except FetchError as exc:
            p.failed("server metadata", exc)
        except (ValueError, ShapeError) as exc:
            p.fail("server metadata", "garbage", str(exc))

    def _read_index(self, p: _Poll) -> None:
        try:
            p.index = parse_index(decode_json(self._api("POST", "/v2/repository/index", p.deadline, {})))
        except FetchError as exc:
            p.failed("repository index", exc)
        except ShapeError as exc:
            p.fail("repository index", "shape", f"unexpected shape: {exc}")
        except ValueError as exc:
            p.fail("repository index", "garbage", str(exc))

    def _read_stats(self, p: _Poll) -> None:
        try:
            body = self._api("GET", "/v2/models/stats", p.deadline)
            p.stats_at = self._monotonic()
            p.stats = self._stats_parser.parse(decode_json(body))
        except FetchError as exc:
            p.failed("statistics", exc)
        except ShapeError as exc:
            p.fail("statistics", "shape", f"unexpected shape: {exc}")
        except ValueError as exc:
            p.fail("statistics", "garbage", str(exc))

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
        _, body = self._metrics_fetcher.fetch("GET", self.metrics_url, deadline)
        at = self._monotonic()
        return self._parser.parse(decode_text(body)), at

    def _collect_metrics(self, p: _Poll, future: Future[tuple[MetricsScrape, float]] | None) -> None:
        if future is None:
            p.fail("metrics", "timeout", "the previous request has not finished")
            return
        try:
            p.metrics, p.metrics_at = future.result(timeout=max(0.0, p.deadline - self._monotonic()))
        except FuturesTimeout:
            p.fail("metrics", "timeout", f"no answer within {self._timeout:.2g} s")
        except FetchError as exc:
            p.failed("metrics", exc)
        except ShapeError as exc:
            p.fail("metrics", "shape", str(exc))
        except ValueError as exc:
            p.fail("metrics", "garbage", str(exc))
        else:
            if p.metrics.problems:
                p.problems.append("metrics: " + "; ".join(p.metrics.problems))

    def _read_configs(self, p: _Poll, keys: list[ModelKey], until: float) -> None:
        ready = self._ready_keys(p)
        for key in keys:
            mem = self._models.get(key)
            if mem is None or key not in ready or mem.config_due_at > p.started:
                continue
            if self._monotonic() >= until:
                return  # the rest next poll: the other endpoints must keep their time
            name, version = key
            path = f"/v2/models/{quote(name, safe='')}"
            if version:
                path += f"/versions/{quote(version, safe='')}"
            try:
                mem.config = parse_config(
                    decode_json(self._api("GET", path + "/config", min(until, p.deadline)))
                )
                mem.config_error = None
                mem.config_due_at = p.started + self._refresh
            except FetchError as exc:
                if exc.kind == "timeout":
                    return
                mem.config_error = f"config: {exc.reason}"
                mem.config_due_at = p.started + CONFIG_RETRY_SECONDS
            except ValueError as exc:  # ShapeError included
                mem.config_error = f"config: {exc}"
                mem.config_due_at = p.started + CONFIG_RETRY_SECONDS

    def _keys(self, p: _Poll) -> list[ModelKey]:
        """Every model version this poll knows of, creating memory for new ones."""
        keys: dict[ModelKey, None] = {}
        index = p.index if p.index is not None else self._index
        for e in index:
            keys[(e.name, e.version or "")] = None
        if p.stats is not None:
            keys.update(dict.fromkeys(p.stats.models))
        if p.metrics is not None:
            keys.update(dict.fromkeys(p.metrics.models))
        for key in keys:
            if key not in self._models:
                self._models[key] = _Model()
        return sorted(keys)

    def _ready_keys(self, p: _Poll) -> set[ModelKey]:
        if p.index is not None:
            return {(e.name, e.version or "") for e in p.index if e.state == "READY"}
        return set(p.stats.models) if p.stats is not None else set()

    # -- turning a poll into a status ----------------------------------------------------------

    def _unreachable(self, p: _Poll, exc: FetchError) -> str | None:
        previous = self._status.state
        if self._implicit and exc.kind == "refused" and not self._ever_up:
            # Nobody configured this server, and nothing listens there: a poll costs ~1 ms of
            # CPU for nothing, so look again every ABSENT_RECHECK_SECONDS, not every second.
            self._absent_until = p.started + ABSENT_RECHECK_SECONDS
            reason = f"nothing listens at {self.url} (looked again every {ABSENT_RECHECK_SECONDS:g} s)"
            self._publish(model.ServerState.ABSENT, reason, p, ())
            return None
        reason = f"{self.url}: {exc.reason}"
        self._outage = True
        self._version = None
        if previous not in (model.ServerState.DOWN, model.ServerState.ERROR):
            self._event(
                model.EventKind.TRITON_DOWN,
                model.Severity.CRITICAL,
                f"Triton {self.name} is down: {reason}",
                p,
            )
        self._publish(model.ServerState.DOWN, reason, p, ())
        return reason

    def _finish(self, p: _Poll) -> str | None:
        usable = p.index is not None or p.stats is not None or p.metrics is not None
        reason_parts = ([p.not_ready] if p.not_ready else []) + p.problems
        reason = "; ".join(reason_parts) or None
        previous = self._status.state
        if not usable:
            kinds = set(p.failure_kinds)
            down = bool(kinds) and kinds <= (_UNREACHABLE | {"http5xx"})
            state = model.ServerState.DOWN if down else model.ServerState.ERROR
            if previous not in (model.ServerState.DOWN, model.ServerState.ERROR):
                self._event(
                    model.EventKind.TRITON_DOWN,
                    model.Severity.CRITICAL if down else model.Severity.WARNING,
                    f"Triton {self.name} gives nothing usable: {reason}",
                    p,
                )
            self._outage = True
            self._publish(state, reason, p, ())
            return reason or "nothing usable"
        if p.index is not None:
            self._index = p.index
        recovering = self._outage and self._ever_up
        if previous in (model.ServerState.DOWN, model.ServerState.ERROR) or (
            previous == model.ServerState.ABSENT and self._polls > 0
        ):
            self._event(
                model.EventKind.TRITON_UP,
                model.Severity.INFO,
                f"Triton {self.name} is up (Triton {self._version or 'version unknown'})",
                p,
            )
        models = self._derive(p, recovering)
        self._outage = False
        self._ever_up = True
        self._publish(model.ServerState.UP, reason, p, models)
        return reason

    def _derive(self, p: _Poll, recovering: bool) -> tuple[model.ModelStats, ...]:
        keys = self._keys(p)
        stats = p.stats.models if p.stats is not None else {}
        # A model version that is not loaded can keep a few series (an unloaded or never-loaded
        # model's failure counters): without its success counter it is not in /metrics.
        metrics = {k: v for k, v in p.metrics.models.items() if SUCCESS in v.values} if p.metrics else {}
        states = {(e.name, e.version or ""): e for e in self._index}
        resets: dict[ModelKey, str] = {}
        had_baseline = 0
        for key in keys:
            mem = self._models[key]
            old = mem.reading
            s_new, m_new = stats.get(key), metrics.get(key)
            # (The statistics parser hands back the same object for an unchanged entry.)
            s_reset = (
                s_new is not None
                and old.stats is not None
                and s_new is not old.stats
                and (mem.stats_gone or derive.stats_restarted(old.stats, s_new))
            )
            m_reset = (
                m_new is not None
                and old.metrics is not None
                and (
                    mem.metrics_gone
                    or (m_new.values != old.metrics.values and derive.metrics_restarted(old.metrics, m_new))
                    or (
                        m_new.failures_by_reason != old.metrics.failures_by_reason
                        and derive.metrics_restarted(old.metrics, m_new)
                    )
                )
            )
            if old.stats is not None or old.metrics is not None:
                had_baseline += 1
            if s_reset and (m_reset or (m_new is None and mem.metrics_gone)):
                resets[key] = "unload/load: statistics and /metrics started again"
            elif s_reset and old.metrics is not None and m_new is not None:
                resets[key] = "reload: statistics started again, /metrics continued (config override?)"
            elif s_reset:
                resets[key] = "statistics started again"
            elif m_reset:
                resets[key] = "/metrics counters started again"
        restart = bool(resets) and (recovering or (had_baseline >= 2 and len(resets) >= had_baseline))
        if restart:
            self._event(
                model.EventKind.TRITON_RESTART,
                model.Severity.WARNING,
                f"Triton {self.name} restarted: every counter started again",
                p,
            )
        out = []
        for key in keys:
            mem = self._models[key]
            entry = states.get(key)
            state = entry.state if entry is not None else ("READY" if key in stats else None)
            if mem.seen and state != mem.state:
                self._model_state_event(key, mem.state, state, entry, p)
            mem.state = state
            mem.seen = True
            reason = "server restart" if restart else resets.get(key)
            if reason is None and recovering and (mem.reading.stats or mem.reading.metrics):
                reason = "re-baselined: the server was unreachable since the last poll"
            out.append(
                self._model_stats(
                    key,
                    mem=mem,
                    p=p,
                    s_new=stats.get(key),
                    m_new=metrics.get(key),
                    reset_reason=reason,
                    entry=entry,
                )
            )
            if reason is not None and key in resets and not restart:
                self._event(
                    model.EventKind.MODEL_RESET,
                    model.Severity.INFO,
                    f"{key[0]}:{key[1]} on {self.name}: {reason}",
                    p,
                    model_key=key,
                )
        # Forget models no source mentions any more, so memory follows the repository.
        live = set(keys) | set(metrics)
        for key in [k for k in self._models if k not in live]:
            del self._models[key]
        return tuple(out)

    def _model_stats(
        self,
        key: ModelKey,
        *,
        mem: _Model,
        p: _Poll,
        s_new: StatsModel | None,
        m_new: MetricsModel | None,
        reset_reason: str | None,
        entry: IndexEntry | None,
    ) -> model.ModelStats:
        old = mem.reading
        cur = derive.Reading(
            s_new,
            p.stats_at if s_new is not None else None,
            m_new,
            p.metrics_at if m_new is not None else None,
        )
        interval: model.ModelInterval | None = None
        cfg = mem.config
        ensemble = cfg is not None and (cfg.platform == "ensemble" or bool(cfg.ensemble_steps))
        if reset_reason is not None:
            since = [t for t in (old.stats_at, old.metrics_at) if t is not None]
            interval = derive.reset_interval(p.started - max(since) if since else 0.0, reset_reason)
            mem.reading = cur
            mem.config_due_at = 0.0  # re-read the config: a reload may have changed it
        else:
            if s_new is not None or m_new is not None:
                interval = derive.interval(old, cur, cfg, ensemble=ensemble)
            mem.reading = derive.Reading(
                s_new if s_new is not None else old.stats,
                cur.stats_at if s_new is not None else old.stats_at,
                m_new if m_new is not None else old.metrics,
                cur.metrics_at if m_new is not None else old.metrics_at,
            )
        # A source that answered without this model: it was unloaded (or is going).
        mem.stats_gone = s_new is None and (p.stats is not None or mem.stats_gone) and old.stats is not None
        mem.metrics_gone = (
            m_new is None and (p.metrics is not None or mem.metrics_gone) and old.metrics is not None
        )
        reasons = []
        if entry is not None and entry.reason and entry.state != "READY":
            reasons.append(entry.reason)
        elif entry is not None and entry.version is None and entry.state is None:
            reasons.append("in the repository, not loaded")
        if p.stats is not None and key[0] in p.stats.problems:
            reasons.append(f"statistics: {p.stats.problems[key[0]]}")
        if mem.config_error:
            reasons.append(mem.config_error)
        s, m = s_new, m_new
        last_ms = s.last_inference_ms if s is not None else None
        cache_enabled = cfg.response_cache if cfg else None
        totals_from = (s, m.values if m else None, m.failures_by_reason if m else None, cache_enabled)
        if mem.totals is None or not _same_inputs(mem.totals_from, totals_from):
            mem.totals = derive.totals(derive.Reading(s, None, m, None), cache_enabled=cache_enabled)
            mem.totals_from = totals_from
        return model.ModelStats(
            server=self.name,
            name=key[0],
            version=key[1],
            state=mem.state,
            state_reason="; ".join(reasons) or None,
            backend=cfg.backend if cfg else None,
            platform=cfg.platform if cfg else None,
            max_batch_size=cfg.max_batch_size if cfg else None,
            preferred_batch_sizes=cfg.preferred_batch_sizes if cfg else (),
            max_queue_delay_seconds=cfg.max_queue_delay_seconds if cfg and cfg.dynamic_batching else None,
            instance_count=cfg.instance_count if cfg else None,
            instance_kind=cfg.instance_kind if cfg else None,
            gpu_indexes=cfg.gpu_devices if cfg and cfg.instance_kind and "GPU" in cfg.instance_kind else (),
            gpu_uuids=m.gpu_uuids if m is not None else (),
            ensemble_steps=cfg.ensemble_steps if cfg else (),
            pending_requests=derive.pending(m),
            last_inference_at=last_ms / 1000.0 if last_ms else None,
            totals=mem.totals,
            interval=interval,
            llm_metrics=dict(m.llm) if m is not None else {},
        )

    def _model_state_event(
        self, key: ModelKey, before: str | None, after: str | None, entry: IndexEntry | None, p: _Poll
    ) -> None:
        words = f"{key[0]}:{key[1]} on {self.name}: {before or 'unknown'} → {after or 'unknown'}"
        if entry is not None and entry.reason and after != "READY":
            words += f" ({entry.reason})"
        severity = (
            model.Severity.INFO if after in ("READY", "LOADING", "UNLOADING") else model.Severity.WARNING
        )
        if after == "UNAVAILABLE" and entry is not None and entry.reason == "unloaded":
            severity = model.Severity.INFO
        self._event(model.EventKind.MODEL_STATE, severity, words, p, model_key=key)

    def _event(
        self,
        kind: model.EventKind,
        severity: model.Severity,
        message: str,
        p: _Poll,
        model_key: ModelKey | None = None,
    ) -> None:
        event = model.Event(
            p.wall,
            kind,
            severity,
            message,
            server=self.name,
            model=model_key[0] if model_key else None,
            version=model_key[1] if model_key else None,
        )
        with self._lock:
            self._events.append(event)

    def _publish(
        self,
        state: model.ServerState,
        reason: str | None,
        p: _Poll,
        models: tuple[model.ModelStats, ...],
    ) -> None:
        self._polls += 1
        self._status = model.TritonServerStatus(
            name=self.name,
            url=self.url,
            state=state,
            reason=reason,
            version=self._version,
            polled_at=p.wall,
            poll_seconds=self._monotonic() - p.started,
            models=models,
            pids=self._pids,
        )


class TritonCollector:
    """Every configured Triton server: the engine's `TritonSource`."""

    def __init__(
        self,
        settings: TritonSettings,
        servers: Sequence[TritonServerSettings],
        *,
        implicit: bool = False,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.pollers = [
            ServerPoller(
                s, settings, implicit=implicit, transport=transport, clock=clock, monotonic=monotonic
            )
            for s in servers
        ]

    def jobs(self) -> list[Job]:
        return [Job(f"triton-{p.name}", self.settings.interval_seconds, p.poll) for p in self.pollers]

    def view(self) -> tuple[model.TritonServerStatus, ...]:
        return tuple(p.status() for p in self.pollers)

    def drain_events(self) -> list[model.Event]:
        events: list[model.Event] = []
        for p in self.pollers:
            events += p.drain_events()
        return events

    def link_processes(self, processes: tuple[model.ProcessSample, ...]) -> tuple[model.ProcessSample, ...]:
        links = link.tritonserver_links(processes, [(p.name, p.url) for p in self.pollers])
        for p in self.pollers:
            p.set_pids(tuple(sorted(pid for pid, name in links.items() if name == p.name)))
        return link.mark_processes(processes, links)

    def close(self) -> None:
        for p in self.pollers:
            p.close()
