"""Pure derivations: parsed polls of one model version → totals, resets and interval figures.

Place in the flow: the model bookkeeping (`models.py`) keeps, per model version, the last
reading of each source (`/v2/models/stats` and `/metrics`, each with the monotonic time it was
read) and calls these functions with the previous and the current one. docs/triton.md gives
every formula; in short, with Δ the change between the two readings of one source and Δt the
time between them:

- requests/s = Δsuccess / Δt, inferences/s = Δinference_count / Δt, executions/s = Δexec / Δt;
  failures/s from /metrics by reason (stats' `fail` when /metrics is not there);
- average batch = Σ b·n_b / Σ n_b over the interval's batch histogram (Δbatch_stats), else
  Δinference_count / Δexec_count; fill = average batch / max_batch_size; preferred share =
  executions at a preferred size / executions;
- average request, queue and compute times = Δns / Δcount of each leaf; queue share =
  Δqueue.ns / Δsuccess.ns; queue:compute = Δqueue.ns / Δcompute_infer.ns; queue delay ratio =
  average queue / max_queue_delay; mean queue depth (Little's law) = Δqueue.ns / Δt;
- cache hit ratio = Δcache_hit / Δsuccess (share of requests answered from the cache).

Totals also carry the cumulative request, queue and compute durations in seconds (stats' ns /
1e9, /metrics' µs / 1e6), which /metrics exports as counters so that any window can divide
them by the request counter.

Counts come from one source per figure and both readings of a Δ come from the same source, so
the two sources never mix in a ratio. A counter that went down means that source restarted
(`restarted`): the interval is then a reset, with no rates (`reset_interval`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from gpuwatch import model
from gpuwatch.collect.triton.parse_config import ModelConfig
from gpuwatch.collect.triton.parse_metrics import (
    CACHE_HITS,
    CACHE_MISSES,
    COMPUTE_INFER_US,
    COMPUTE_INPUT_US,
    COMPUTE_OUTPUT_US,
    EXECUTIONS,
    INFERENCES,
    PENDING,
    QUEUE_US,
    REQUEST_US,
    SUCCESS,
    MetricsModel,
)
from gpuwatch.collect.triton.parse_stats import Duration, StatsModel

MIN_INTERVAL_SECONDS = 1e-3
"""Two readings closer than this give no rates (they would be noise over almost nothing)."""


class Reading(NamedTuple):
    """The last reading of each source for one model version, with its monotonic time.
    (A NamedTuple: the collector makes three per model per poll, and it stays inside it.)"""

    stats: StatsModel | None = None
    stats_at: float | None = None
    metrics: MetricsModel | None = None
    metrics_at: float | None = None


# --------------------------------------------------------------------------- totals


def totals(reading: Reading, *, cache_enabled: bool | None = None) -> model.ModelTotals:
    """Cumulative counters: stats first (they restart exactly when the model is (re)loaded),
    /metrics where stats are not there; failures by reason only /metrics has. Statistics
    always carry cache counters: they are None when the config says the cache is off."""
    s, m = reading.stats, reading.metrics
    by_reason = {r: int(v) for r, v in m.failures_by_reason.items() if r} if m else {}
    metrics_failures = int(sum(m.failures_by_reason.values())) if m and m.failures_by_reason else None
    if s is not None:
        return model.ModelTotals(
            request_success_count=s.success.count,
            request_failure_count=s.fail.count,
            failure_count_by_reason=by_reason,
            inference_count=s.inference_count,
            execution_count=s.execution_count,
            cache_hit_count=s.cache_hit.count if s.cache_hit and cache_enabled is not False else None,
            cache_miss_count=s.cache_miss.count if s.cache_miss and cache_enabled is not False else None,
            request_seconds=s.success.ns / 1e9,
            queue_seconds=s.queue.ns / 1e9,
            compute_input_seconds=s.compute_input.ns / 1e9,
            compute_infer_seconds=s.compute_infer.ns / 1e9,
            compute_output_seconds=s.compute_output.ns / 1e9,
        )
    if m is None:
        return model.ModelTotals()
    return model.ModelTotals(
        request_success_count=_int(m.values.get(SUCCESS)),
        request_failure_count=metrics_failures,
        failure_count_by_reason=by_reason,
        inference_count=_int(m.values.get(INFERENCES)),
        execution_count=_int(m.values.get(EXECUTIONS)),
        cache_hit_count=_int(m.values.get(CACHE_HITS)),
        cache_miss_count=_int(m.values.get(CACHE_MISSES)),
        request_seconds=_seconds_from_us(m.values.get(REQUEST_US)),
        queue_seconds=_seconds_from_us(m.values.get(QUEUE_US)),
        compute_input_seconds=_seconds_from_us(m.values.get(COMPUTE_INPUT_US)),
        compute_infer_seconds=_seconds_from_us(m.values.get(COMPUTE_INFER_US)),
        compute_output_seconds=_seconds_from_us(m.values.get(COMPUTE_OUTPUT_US)),
    )


def pending(metrics: MetricsModel | None) -> int | None:
    """Requests waiting now: only /metrics has it, and only from Triton 2.38 (23.09)."""
    if metrics is None:
        return None
    return _int(metrics.values.get(PENDING))


# --------------------------------------------------------------------------- resets


def stats_restarted(old: StatsModel, new: StatsModel) -> bool:
    """Any cumulative counter of /v2/models/stats went down."""
    if (
        new.success.count < old.success.count
        or new.fail.count < old.fail.count
        or new.inference_count < old.inference_count
        or new.execution_count < old.execution_count
        or new.queue.ns < old.queue.ns
        or new.success.ns < old.success.ns
        or new.compute_infer.ns < old.compute_infer.ns
    ):
        return True
    return any(new.batch_executions.get(b, 0) < n for b, n in old.batch_executions.items())


def metrics_restarted(old: MetricsModel, new: MetricsModel) -> bool:
    """Any counter family of one model version in /metrics went down (the pending gauge may)."""
    for family, value in old.values.items():
        if family == PENDING:
            continue
        now = new.values.get(family)
        if now is not None and now < value:
            return True
    return any(new.failures_by_reason.get(r, v) < v for r, v in old.failures_by_reason.items())


def reset_interval(seconds: float, reason: str) -> model.ModelInterval:
    """The interval across a reset: marked, with no rates (they would be negative or absurd)."""
    return model.ModelInterval(interval_seconds=max(0.0, seconds), reset=True, reset_reason=reason)


# --------------------------------------------------------------------------- one interval


def interval(
    prev: Reading,
    cur: Reading,
    config: ModelConfig | None,
    *,
    ensemble: bool = False,
) -> model.ModelInterval | None:
    """Figures between two readings of one model version, or None without two readings.

    The caller has already ruled out resets (`stats_restarted`, `metrics_restarted`)."""
    s_dt = _dt(prev.stats_at, cur.stats_at)
    m_dt = _dt(prev.metrics_at, cur.metrics_at)
    s0, s1 = (prev.stats, cur.stats) if s_dt else (None, None)
    m0, m1 = (prev.metrics, cur.metrics) if m_dt else (None, None)
    if s_dt and s0 is not None and s0 is s1 and (m0 is None or m1 is None or _same_metrics(m0, m1)):
        return _idle(s_dt, m0, m1)
    if s0 is not None and s1 is not None and s_dt:
        figures = _from_stats(s0, s1, s_dt, config, ensemble)
        dt = s_dt
    elif m0 is not None and m1 is not None and m_dt:
        figures = _from_metrics(m0, m1, m_dt, config, ensemble)
        dt = m_dt
    else:
        return None
    if m0 is not None and m1 is not None and m_dt and m0.failures_by_reason and m1.failures_by_reason:
        by_reason = {
            r: max(0.0, v - m0.failures_by_reason.get(r, 0.0)) / m_dt
            for r, v in m1.failures_by_reason.items()
        }
        figures["failures_per_second"] = sum(by_reason.values())
        # A server older than 2.48 has one series without a reason: a total, no breakdown.
        figures["failures_per_second_by_reason"] = {r: v for r, v in by_reason.items() if r}
    return model.ModelInterval(interval_seconds=dt, **figures)  # type: ignore[arg-type]


def _same_metrics(a: MetricsModel, b: MetricsModel) -> bool:
    return a.values == b.values and a.failures_by_reason == b.failures_by_reason


def _idle(dt: float, m0: MetricsModel | None, m1: MetricsModel | None) -> model.ModelInterval:
    """What `interval` gives when nothing changed (the statistics parser hands back the very
    same entry for an idle model): every rate 0, no averages, an empty histogram. Built
    directly, because most models of a big server are idle at any moment."""
    by_reason = (
        {r: 0.0 for r in m1.failures_by_reason if r}
        if m0 is not None and m1 is not None and m0.failures_by_reason and m1.failures_by_reason
        else {}
    )
    return model.ModelInterval(
        interval_seconds=dt,
        requests_per_second=0.0,
        inferences_per_second=0.0,
        executions_per_second=0.0,
        failures_per_second=0.0,
        failures_per_second_by_reason=by_reason,
        mean_queue_depth=0.0,
    )


Figures = dict[str, object]


def _from_stats(
    s0: StatsModel, s1: StatsModel, dt: float, config: ModelConfig | None, ensemble: bool
) -> Figures:
    success = s1.success.count - s0.success.count
    success_ns = s1.success.ns - s0.success.ns
    queue_n = s1.queue.count - s0.queue.count
    queue_ns = s1.queue.ns - s0.queue.ns
    infer_ns = s1.compute_infer.ns - s0.compute_infer.ns
    inferences = s1.inference_count - s0.inference_count
    executions = s1.execution_count - s0.execution_count
    histogram = {
        b: n - s0.batch_executions.get(b, 0)
        for b, n in s1.batch_executions.items()
        if n - s0.batch_executions.get(b, 0) > 0
    }
    average_queue = _ratio(queue_ns, queue_n, 1e-9)
    f: Figures = {
        "requests_per_second": success / dt,
        "inferences_per_second": inferences / dt,
        "executions_per_second": executions / dt,
        "failures_per_second": (s1.fail.count - s0.fail.count) / dt,
        "average_request_seconds": _ratio(success_ns, success, 1e-9),
        "average_queue_seconds": average_queue,
        "average_compute_input_seconds": _leaf_average(s0.compute_input, s1.compute_input),
        "average_compute_infer_seconds": _leaf_average(s0.compute_infer, s1.compute_infer),
        "average_compute_output_seconds": _leaf_average(s0.compute_output, s1.compute_output),
        "queue_share_ratio": _ratio(queue_ns, success_ns),
        "queue_to_compute_ratio": _ratio(queue_ns, infer_ns),
        "mean_queue_depth": queue_ns / (dt * 1e9),
    }
    f.update(_queue_delay(average_queue, config))
    if not ensemble:
        f.update(_batch_figures(histogram, inferences, executions, config))
    if s1.cache_hit is not None and s0.cache_hit is not None:
        hits = s1.cache_hit.count - s0.cache_hit.count
        misses = (s1.cache_miss.count - s0.cache_miss.count) if s1.cache_miss and s0.cache_miss else 0
        if (config is not None and config.response_cache) or hits or misses:
            f["cache_hit_ratio"] = _ratio(hits, success)
    return f


def _from_metrics(
    m0: MetricsModel, m1: MetricsModel, dt: float, config: ModelConfig | None, ensemble: bool
) -> Figures:
    def delta(family: str) -> float | None:
        a, b = m0.values.get(family), m1.values.get(family)
        return None if a is None or b is None else b - a

    success = delta(SUCCESS)
    inferences = delta(INFERENCES)
    executions = delta(EXECUTIONS)
    queue_us = delta(QUEUE_US)
    hits = delta(CACHE_HITS)
    computed = None if success is None else success - (hits or 0.0)

    def per_request(family: str, count: float | None) -> float | None:
        d = delta(family)
        return None if d is None or count is None else _ratio(d, count, 1e-6)

    average_queue = per_request(QUEUE_US, success)
    request_us = delta(REQUEST_US)
    infer_us = delta(COMPUTE_INFER_US)
    f: Figures = {
        "requests_per_second": _per(success, dt),
        "inferences_per_second": _per(inferences, dt),
        "executions_per_second": _per(executions, dt),
        "average_request_seconds": per_request(REQUEST_US, success),
        "average_queue_seconds": average_queue,
        "average_compute_input_seconds": per_request(COMPUTE_INPUT_US, computed),
        "average_compute_infer_seconds": per_request(COMPUTE_INFER_US, computed),
        "average_compute_output_seconds": per_request(COMPUTE_OUTPUT_US, computed),
        "queue_share_ratio": None if queue_us is None or request_us is None else _ratio(queue_us, request_us),
        "queue_to_compute_ratio": None
        if queue_us is None or infer_us is None
        else _ratio(queue_us, infer_us),
        "mean_queue_depth": None if queue_us is None else queue_us / (dt * 1e6),
    }
    f.update(_queue_delay(average_queue, config))
    if not ensemble and inferences is not None and executions is not None:
        f.update(_batch_figures({}, inferences, executions, config))
    if hits is not None and success is not None:
        f["cache_hit_ratio"] = _ratio(hits, success)
    return f


def _batch_figures(
    histogram: dict[int, int], inferences: float, executions: float, config: ModelConfig | None
) -> Figures:
    ran = sum(histogram.values())
    if ran:
        average: float | None = sum(b * n for b, n in histogram.items()) / ran
    else:
        average = _ratio(inferences, executions)
    f: Figures = {"average_batch_size": average, "batch_size_histogram": histogram}
    if config is not None:
        if config.max_batch_size and average is not None:
            f["batch_fill_ratio"] = average / config.max_batch_size
        if config.preferred_batch_sizes and ran:
            f["preferred_batch_ratio"] = sum(histogram.get(b, 0) for b in config.preferred_batch_sizes) / ran
    return f


def _queue_delay(average_queue: float | None, config: ModelConfig | None) -> Figures:
    delay = config.max_queue_delay_seconds if config is not None else None
    if average_queue is None or not delay:
        return {}
    return {"queue_delay_ratio": average_queue / delay}


def _leaf_average(a: Duration, b: Duration) -> float | None:
    return _ratio(b.ns - a.ns, b.count - a.count, 1e-9)


def _dt(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    dt = b - a
    return dt if dt >= MIN_INTERVAL_SECONDS else None


def _ratio(num: float, den: float, scale: float = 1.0) -> float | None:
    """num/den (times scale); None when there is nothing to divide by."""
    return num / den * scale if den > 0 else None


def _per(value: float | None, dt: float) -> float | None:
    return None if value is None else value / dt


def _int(value: float | None) -> int | None:
    """A count as an integer; None for none, and for NaN or ±Inf (int() of those raised, and
    failed every poll of the whole server)."""
    return None if value is None or not math.isfinite(value) else int(value)


def _seconds_from_us(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value / 1e6
