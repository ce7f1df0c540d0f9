"""Per-model bookkeeping of one Triton server: polls → `ModelStats` and model events.

Place in the flow: the server's poller (`poller.py`) hands each usable `PollResult` (`poll.py`)
to `ModelBook.update`, which keeps, per model version, the last reading of each source, its
config, its state and its cumulative totals, and gives back this poll's `ModelStats` and the
events it saw. The figures themselves come from the pure functions of `derive.py`; this module
decides which readings they compare. It does no I/O; `config_due` tells the poll which configs
to read.

Resets (`derive` detects, this module names): a counter that goes down, or a model that
vanished from a source and came back, re-baselines that model and marks its interval. Both
sources restarted: "unload/load"; only /v2/models/stats: a reload of a loaded model (a config
override). Every model that had counters restarting at once is a server restart
(TRITON_RESTART), and so is the only model's after the server was unreachable; one model's
reset while the others' counters go on is never one (a model load stalls Triton's kept-alive
connections, which once read as an outage, then a restart). After the server was unreachable
every model is re-baselined.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpuwatch import model
from gpuwatch.collect.triton import derive
from gpuwatch.collect.triton.parse_config import ModelConfig
from gpuwatch.collect.triton.parse_index import IndexEntry
from gpuwatch.collect.triton.parse_metrics import SUCCESS, SUMMARIES, MetricsModel
from gpuwatch.collect.triton.parse_shape import ModelKey
from gpuwatch.collect.triton.parse_stats import StatsModel
from gpuwatch.collect.triton.poll import PollResult

CONFIG_RETRY_SECONDS = 10.0
"""A config that could not be read is tried again after this long (not every poll)."""
_UNTROUBLED = (model.ModelState.READY, model.ModelState.LOADING, model.ModelState.UNLOADING)
"""States a model may change to without a warning (an unknown state is worth one)."""


REPEAT_SECONDS = 60.0
"""A reset within this long of the previous one is the same condition going on: a server whose
counters keep going backwards (a proxy in front of several servers, a lying server) is said once
as unreliable, not as a restart or a model reset at every poll; its rates are re-baselined."""


@dataclass
class _Flapping:
    """When a reset was last seen, and whether the resets have been said to repeat."""

    last_at: float | None = None
    said: bool = False

    def saw(self, now: float) -> str:
        """One reset seen at `now` (monotonic): "new" (say it), "repeating" (say so once) or
        "quiet" (said already)."""
        repeat = self.last_at is not None and now - self.last_at < REPEAT_SECONDS
        self.last_at = now
        if not repeat:
            self.said = False
            return "new"
        if self.said:
            return "quiet"
        self.said = True
        return "repeating"


@dataclass
class _Model:
    """What the book remembers of one model version between polls."""

    reading: derive.Reading = field(default_factory=derive.Reading)
    stats_gone: bool = False
    """/v2/models/stats answered without this model since its last stats reading."""
    metrics_gone: bool = False
    config: ModelConfig | None = None
    config_due_at: float = 0.0
    config_error: str | None = None
    state: model.ModelState | str | None = None
    seen: bool = False
    """A poll of an up server has shown it: its state changes are events from now on."""
    totals: model.ModelTotals | None = None
    totals_from: tuple[object, ...] = ()
    """What `totals` was made from: an idle model's are not made again each poll."""
    base: derive.Reading | None = None
    """The reading the last interval was measured from (None after a reset): an interval no
    snapshot took is measured again, from here, by the next poll."""
    resets: _Flapping = field(default_factory=_Flapping)
    """This model's own resets: one that keeps resetting is said once, not at every poll."""


@dataclass(frozen=True, slots=True)
class ModelsUpdate:
    """One poll's models of one server, and the events the poll showed (oldest first)."""

    models: tuple[model.ModelStats, ...]
    events: tuple[model.Event, ...]


def _same_inputs(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """The same statistics object, equal /metrics values and the same cache setting."""
    return len(a) == len(b) and a[0] is b[0] and a[1:] == b[1:]


class ModelBook:
    """Every model version of one server across polls. Used from the server's job thread only."""

    def __init__(self, server: str, *, config_refresh_seconds: float) -> None:
        self.server = server
        self._refresh = config_refresh_seconds
        self._models: dict[ModelKey, _Model] = {}
        self._index: tuple[IndexEntry, ...] = ()
        """The last repository index that came back (a poll whose index failed keeps it)."""
        self._restarts = _Flapping()

    def config_due(self, key: ModelKey, now: float) -> bool:
        """Whether a ready model's config should be read by a poll begun at `now` (monotonic):
        a model not seen before, one just reset, or one whose config is older than the refresh."""
        mem = self._models.get(key)
        return mem is None or mem.config_due_at <= now

    def update(self, p: PollResult, *, recovering: bool, extend: bool = False) -> ModelsUpdate:
        """This poll's models, from a poll that gave something usable. `recovering`: the server
        was unreachable since the last usable poll, so every model is re-baselined. `extend`:
        no snapshot took the last poll's models, so each interval is measured from where the
        last one began, and the counts of that poll land in this one (none is ever lost)."""
        if p.index is not None:
            self._index = p.index
        keys = self._keys(p)
        for key, read in p.configs.items():
            mem = self._models[key]
            mem.config_error = read.error
            if read.config is not None:
                mem.config = read.config
                mem.config_due_at = p.started + self._refresh
            else:
                mem.config_due_at = p.started + CONFIG_RETRY_SECONDS
        events: list[model.Event] = []
        models = self._derive(p, keys, recovering, events, extend)
        return ModelsUpdate(models, tuple(events))

    def _keys(self, p: PollResult) -> list[ModelKey]:
        """Every model version this poll knows of, creating memory for new ones."""
        keys: dict[ModelKey, None] = {}
        for e in self._index:
            keys[(e.name, e.version or "")] = None
        if p.stats is not None:
            keys.update(dict.fromkeys(p.stats.models))
        if p.metrics is not None:
            keys.update(dict.fromkeys(p.metrics.models))
        for key in keys:
            if key not in self._models:
                self._models[key] = _Model()
        return sorted(keys)

    def _derive(
        self,
        p: PollResult,
        keys: list[ModelKey],
        recovering: bool,
        events: list[model.Event],
        extend: bool,
    ) -> tuple[model.ModelStats, ...]:
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
        # A restart needs evidence that the process changed: every model that had counters
        # started again together (after an outage, a single model's reset is enough only when
        # it is the only one). One model's reset while others go on is that model's load or
        # reload, whatever happened to the connection in between.
        everyone = bool(resets) and len(resets) >= had_baseline
        restart = everyone and (had_baseline >= 2 or recovering)
        if restart:
            seen = self._restarts.saw(p.started)
            if seen == "new":
                events.append(
                    self._event(
                        p,
                        model.EventKind.TRITON_RESTART,
                        model.Severity.WARNING,
                        f"Triton {self.server} restarted: every counter started again",
                    )
                )
            elif seen == "repeating":
                events.append(
                    self._event(
                        p,
                        model.EventKind.TRITON_RESTART,
                        model.Severity.WARNING,
                        f"Triton {self.server}'s counters keep going backwards (twice within "
                        f"{REPEAT_SECONDS:g} s): not a restart each time; its statistics are "
                        "unreliable, its rates are measured again after each drop",
                    )
                )
        out = []
        for key in keys:
            mem = self._models[key]
            entry = states.get(key)
            state = entry.state if entry is not None else (model.ModelState.READY if key in stats else None)
            if mem.seen and state != mem.state:
                events.append(self._state_event(p, key, mem.state, state, entry))
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
                    extend=extend,
                )
            )
            if reason is not None and key in resets and not restart:
                seen = mem.resets.saw(p.started)
                if seen != "quiet":
                    again = f" (and again within {REPEAT_SECONDS:g} s: its counters are unreliable)"
                    events.append(
                        self._event(
                            p,
                            model.EventKind.MODEL_RESET,
                            model.Severity.INFO if seen == "new" else model.Severity.WARNING,
                            f"{key[0]}:{key[1]} on {self.server}: {reason}{again if seen != 'new' else ''}",
                            key,
                        )
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
        p: PollResult,
        s_new: StatsModel | None,
        m_new: MetricsModel | None,
        reset_reason: str | None,
        entry: IndexEntry | None,
        extend: bool,
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
            mem.base = None
            mem.config_due_at = 0.0  # re-read the config: a reload may have changed it
        else:
            if s_new is not None or m_new is not None:
                start = mem.base if extend and mem.base is not None else old
                interval = derive.interval(start, cur, cfg, ensemble=ensemble)
                mem.base = start if interval is not None else None
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
        if entry is not None and entry.reason and entry.state != model.ModelState.READY:
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
            server=self.server,
            name=key[0],
            version=key[1],
            state=mem.state,
            state_reason="; ".join(reasons) or None,
            backend=cfg.backend if cfg else None,
            platform=cfg.platform if cfg else None,
            max_batch_size=cfg.max_batch_size if cfg else None,
            dynamic_batching=cfg.dynamic_batching if cfg else None,
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
            latency_percentiles=_percentiles(p, m),
        )

    def _state_event(
        self,
        p: PollResult,
        key: ModelKey,
        before: model.ModelState | str | None,
        after: model.ModelState | str | None,
        entry: IndexEntry | None,
    ) -> model.Event:
        words = f"{key[0]}:{key[1]} on {self.server}: {before or 'unknown'} → {after or 'unknown'}"
        if entry is not None and entry.reason and after != model.ModelState.READY:
            words += f" ({entry.reason})"
        severity = model.Severity.INFO if after in _UNTROUBLED else model.Severity.WARNING
        if after == model.ModelState.UNAVAILABLE and entry is not None and entry.reason == "unloaded":
            severity = model.Severity.INFO
        return self._event(p, model.EventKind.MODEL_STATE, severity, words, key)

    def _event(
        self,
        p: PollResult,
        kind: model.EventKind,
        severity: model.Severity,
        message: str,
        model_key: ModelKey | None = None,
    ) -> model.Event:
        return model.Event(
            p.wall,
            kind,
            severity,
            message,
            server=self.server,
            model=model_key[0] if model_key else None,
            version=model_key[1] if model_key else None,
        )


def _percentiles(p: PollResult, m: MetricsModel | None) -> model.LatencyPercentiles | None:
    """The model's quantiles where this poll's /metrics has Triton's latency summaries."""
    if p.metrics is None or m is None or not any(f in p.metrics.families for f in SUMMARIES):
        return None
    q = m.quantiles

    def seconds(name: str) -> float | None:
        value = q.get(name)
        return None if value is None else value / 1e6

    return model.LatencyPercentiles(
        **{
            f"{stage}_{p}_seconds": seconds(f"{stage}_{p}")
            for stage in SUMMARIES.values()
            for p in ("p50", "p90", "p99")
        }
    )
