"""The Triton servers' and model versions' figures.

Place in the flow: declarations read by every face through `catalog.index` (see
`catalog.figures` for what a declaration holds). `triton_up`, `model_up`, the pending count
and the per-interval figures are kept in history (the `server` and `model` tables); the rest
is /metrics only. Averages over a window are ratios of the counters: the per-interval figures
describe one poll interval only, and each declares its `Weight` (the interval's seconds,
requests, executions, or time that its value is a share of), which the store keeps beside
it: the history of a longer window is Σ(value × weight) / Σ weight, which is Δqueue_ns /
Δcount of the whole window (docs/triton.md), not a mean of per-interval means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gpuwatch import model
from gpuwatch.catalog import entities as e
from gpuwatch.catalog.figures import (
    MILLIONTHS,
    RATIO_STEPS,
    TENTH_MICROSECONDS,
    THOUSANDTHS,
    WHOLE,
    AnyFigure,
    Labels,
    Weight,
    counter,
    gauge,
    histogram,
    labelled,
    one,
)
from gpuwatch.catalog.reading import BATCH_SIZE_BUCKETS


def _triton_up(s: model.TritonServerStatus) -> bool | None:
    # The implicit local server with nothing listening is absent, not down: no figure at all.
    return None if s.state == model.ServerState.ABSENT else s.state == model.ServerState.UP


def _model_up(m: model.ModelStats) -> bool:
    return m.state == model.ModelState.READY


def _interval(
    read: Callable[[model.ModelInterval], float | None],
) -> Callable[[model.ModelStats], float | None]:
    """A figure of the last poll interval: None before the second poll and right after a reset."""
    return lambda m: None if m.interval is None else read(m.interval)


def _requests(i: model.ModelInterval) -> float | None:
    # rate × interval is the interval's count (to 1e-15), rounded back to it when stored.
    rate = i.requests_per_second
    return None if rate is None else rate * i.interval_seconds


def _computed(i: model.ModelInterval) -> float | None:
    """Requests that ran the model: less the cache hits (Triton's compute counts)."""
    requests = _requests(i)
    return None if requests is None else requests * (1.0 - (i.cache_hit_ratio or 0.0))


def _executions(i: model.ModelInterval) -> float | None:
    rate = i.executions_per_second
    return None if rate is None else rate * i.interval_seconds


def _request_time(i: model.ModelInterval) -> float | None:
    requests, average = _requests(i), i.average_request_seconds
    return None if requests is None or average is None else requests * average


def _infer_time(i: model.ModelInterval) -> float | None:
    computed, average = _computed(i), i.average_compute_infer_seconds
    return None if computed is None or average is None else computed * average


BY_SECONDS = Weight("seconds", "weight_ms", _interval(lambda i: i.interval_seconds), THOUSANDTHS)
"""A rate or a Little's-law depth weighs with its interval's length (stored in ms)."""
BY_REQUESTS = Weight("requests", "weight_requests", _interval(_requests), WHOLE)
"""A per-request average weighs with its interval's successful requests."""
BY_COMPUTED = Weight("computed requests", "weight_computed_requests", _interval(_computed), WHOLE)
"""A compute average weighs with the requests that ran the model (cache hits do not)."""
BY_EXECUTIONS = Weight("executions", "weight_executions", _interval(_executions), WHOLE)
"""A per-execution figure (batch size, fill, preferred share) weighs with its executions."""
BY_REQUEST_TIME = Weight("request seconds", "weight_request_us", _interval(_request_time), MILLIONTHS)
"""A share of request time weighs with the interval's total request time (stored in µs)."""
BY_INFER_TIME = Weight("compute seconds", "weight_compute_infer_us", _interval(_infer_time), MILLIONTHS)
"""A ratio to compute time weighs with the interval's total compute time (stored in µs)."""


def _percentile(
    read: Callable[[model.LatencyPercentiles], float | None],
) -> Callable[[model.ModelStats], float | None]:
    """A quantile of Triton's latency summaries: None where the server serves none."""
    return lambda m: None if m.latency_percentiles is None else read(m.latency_percentiles)


def _by_reason(counts: dict[str, int] | dict[str, float]) -> Iterable[tuple[Labels, float | int]]:
    return (((reason,), value) for reason, value in sorted(counts.items()))


SERVER = (
    gauge(
        "triton_up",
        e.SERVER,
        _triton_up,
        "1 when the Triton server answers, 0 when it is down or answers garbage. Not exported for "
        "the implicit local server while nothing listens there (state absent).",
        stored=WHOLE,
    ),
    labelled(
        "triton_state",
        e.SERVER,
        ("state",),
        lambda s: one(s.state.value),
        "1 for the server's current state (up, down, absent, error).",
    ),
    labelled(
        "triton_info",
        e.SERVER,
        ("version",),
        lambda s: () if s.version is None else one(s.version),
        "Always 1; the server's Triton version.",
    ),
    gauge(
        "triton_poll_duration_seconds",
        e.SERVER,
        lambda s: s.poll_seconds,
        "How long the last poll took.",
        unit="seconds",
    ),
    gauge(
        "triton_last_poll_timestamp_seconds",
        e.SERVER,
        lambda s: s.polled_at,
        "Unix time of the last poll.",
        unit="seconds",
    ),
)

MODEL_CONFIG = (
    gauge("model_up", e.MODEL, _model_up, "1 when the model version is READY.", stored=WHOLE),
    labelled(
        "model_state",
        e.MODEL,
        ("state",),
        lambda m: () if m.state is None else one(m.state),
        "1 for the model version's current state (READY, UNAVAILABLE, LOADING, UNLOADING).",
    ),
    labelled(
        "model_info",
        e.MODEL,
        ("backend", "platform", "instance_kind"),
        lambda m: one(m.backend, m.platform, m.instance_kind),
        "Always 1; the model version's backend, platform and instance kind.",
    ),
    labelled(
        "model_gpu_info",
        e.MODEL,
        ("gpu",),
        lambda m: (((str(gpu),), 1) for gpu in m.gpu_indexes),
        "1 for each GPU the model's instances run on (join with the gpu_* families on `gpu`).",
    ),
    gauge(
        "model_max_batch_size", e.MODEL, lambda m: m.max_batch_size, "max_batch_size from the model config."
    ),
    gauge("model_instances", e.MODEL, lambda m: m.instance_count, "Model instances (instance_group count)."),
    gauge(
        "model_max_queue_delay_seconds",
        e.MODEL,
        lambda m: m.max_queue_delay_seconds,
        "The dynamic batcher's max_queue_delay_microseconds.",
        unit="seconds",
    ),
    gauge(
        "model_pending_requests",
        e.MODEL,
        lambda m: m.pending_requests,
        "Requests waiting in the queue now.",
        stored=WHOLE,
    ),
    gauge(
        "model_last_inference_timestamp_seconds",
        e.MODEL,
        lambda m: m.last_inference_at,
        "Unix time of the last inference.",
        unit="seconds",
    ),
)

MODEL_TOTALS = (
    counter(
        "model_request_success_total",
        e.MODEL,
        lambda m: m.totals.request_success_count,
        "Successful requests since the model version was loaded.",
    ),
    counter(
        "model_request_failure_total",
        e.MODEL,
        lambda m: m.totals.request_failure_count,
        "Failed requests since the model version was loaded.",
    ),
    labelled(
        "model_request_failure_by_reason_total",
        e.MODEL,
        ("reason",),
        lambda m: _by_reason(m.totals.failure_count_by_reason),
        "Failed requests by Triton's reason (REJECTED, CANCELED, BACKEND, OTHER), where Triton gives them.",
        metric_type="counter",
    ),
    counter(
        "model_inference_total",
        e.MODEL,
        lambda m: m.totals.inference_count,
        "Inferences (requests × batch) since the model was loaded.",
    ),
    counter(
        "model_execution_total",
        e.MODEL,
        lambda m: m.totals.execution_count,
        "Model executions (batches run) since the model was loaded.",
    ),
    counter("model_cache_hit_total", e.MODEL, lambda m: m.totals.cache_hit_count, "Response cache hits."),
    counter("model_cache_miss_total", e.MODEL, lambda m: m.totals.cache_miss_count, "Response cache misses."),
    counter(
        "model_request_seconds_total",
        e.MODEL,
        lambda m: m.totals.request_seconds,
        "Cumulative latency of the successful requests since the model version was loaded: "
        "rate() of it over rate(gpuwatch_model_request_success_total) is the mean latency of any window.",
        unit="seconds",
    ),
    counter(
        "model_queue_seconds_total",
        e.MODEL,
        lambda m: m.totals.queue_seconds,
        "Cumulative time the successful requests waited in the queue: rate() of it over "
        "rate(model_request_success_total) is the mean queue time of any window.",
        unit="seconds",
    ),
    counter(
        "model_compute_input_seconds_total",
        e.MODEL,
        lambda m: m.totals.compute_input_seconds,
        "Cumulative input-copy time, charged per request (a batch of n charges its time n times).",
        unit="seconds",
    ),
    counter(
        "model_compute_infer_seconds_total",
        e.MODEL,
        lambda m: m.totals.compute_infer_seconds,
        "Cumulative compute time, charged per request (a batch of n charges its time n times): "
        "divide its rate by the rate of requests less cache hits.",
        unit="seconds",
    ),
    counter(
        "model_compute_output_seconds_total",
        e.MODEL,
        lambda m: m.totals.compute_output_seconds,
        "Cumulative output-copy time, charged per request (a batch of n charges its time n times).",
        unit="seconds",
    ),
)

MODEL_INTERVAL = (
    gauge(
        "model_requests_per_second",
        e.MODEL,
        _interval(lambda i: i.requests_per_second),
        "Requests per second over the last poll interval.",
        stored=THOUSANDTHS,
        weight=BY_SECONDS,
    ),
    gauge(
        "model_inferences_per_second",
        e.MODEL,
        _interval(lambda i: i.inferences_per_second),
        "Inferences per second over the last poll interval.",
        stored=THOUSANDTHS,
        weight=BY_SECONDS,
    ),
    gauge(
        "model_executions_per_second",
        e.MODEL,
        _interval(lambda i: i.executions_per_second),
        "Executions per second over the last poll interval.",
        stored=THOUSANDTHS,
        weight=BY_SECONDS,
    ),
    gauge(
        "model_failures_per_second",
        e.MODEL,
        _interval(lambda i: i.failures_per_second),
        "Failed requests per second over the last poll interval.",
        stored=THOUSANDTHS,
        weight=BY_SECONDS,
    ),
    labelled(
        "model_failures_per_second_by_reason",
        e.MODEL,
        ("reason",),
        lambda m: () if m.interval is None else _by_reason(m.interval.failures_per_second_by_reason),
        "Failed requests per second over the last poll interval, by reason.",
    ),
    gauge(
        "model_average_batch_size",
        e.MODEL,
        _interval(lambda i: i.average_batch_size),
        "Mean executed batch size over the last interval: Σ b·n_b / Σ n_b over the executions' batch sizes "
        "(inferences / executions where Triton gives no batch statistics).",
        stored=MILLIONTHS,
        weight=BY_EXECUTIONS,
    ),
    gauge(
        "model_batch_fill_ratio",
        e.MODEL,
        _interval(lambda i: i.batch_fill_ratio),
        "Average executed batch over max_batch_size.",
        stored=RATIO_STEPS,
        weight=BY_EXECUTIONS,
    ),
    gauge(
        "model_preferred_batch_ratio",
        e.MODEL,
        _interval(lambda i: i.preferred_batch_ratio),
        "Share of executions at one of the preferred batch sizes.",
        stored=RATIO_STEPS,
        weight=BY_EXECUTIONS,
    ),
    gauge(
        "model_average_request_seconds",
        e.MODEL,
        _interval(lambda i: i.average_request_seconds),
        "Mean request latency over the last interval.",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
        weight=BY_REQUESTS,
    ),
    gauge(
        "model_average_queue_seconds",
        e.MODEL,
        _interval(lambda i: i.average_queue_seconds),
        "Mean time a request waited in the queue.",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
        weight=BY_REQUESTS,
    ),
    gauge(
        "model_average_compute_input_seconds",
        e.MODEL,
        _interval(lambda i: i.average_compute_input_seconds),
        "Mean time copying inputs per request (Triton charges a batch's time to each of its requests).",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
        weight=BY_COMPUTED,
    ),
    gauge(
        "model_average_compute_infer_seconds",
        e.MODEL,
        _interval(lambda i: i.average_compute_infer_seconds),
        "Mean compute time per request (Triton charges a batch's time to each of its requests).",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
        weight=BY_COMPUTED,
    ),
    gauge(
        "model_average_compute_output_seconds",
        e.MODEL,
        _interval(lambda i: i.average_compute_output_seconds),
        "Mean time copying outputs per request (Triton charges a batch's time to each of its requests).",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
        weight=BY_COMPUTED,
    ),
    gauge(
        "model_queue_share_ratio",
        e.MODEL,
        _interval(lambda i: i.queue_share_ratio),
        "Queue time over request time: how much of latency is waiting.",
        stored=RATIO_STEPS,
        weight=BY_REQUEST_TIME,
    ),
    gauge(
        "model_queue_to_compute_ratio",
        e.MODEL,
        _interval(lambda i: i.queue_to_compute_ratio),
        "Queue time over compute time.",
        stored=RATIO_STEPS,
        weight=BY_INFER_TIME,
    ),
    gauge(
        "model_queue_delay_ratio",
        e.MODEL,
        _interval(lambda i: i.queue_delay_ratio),
        "Mean queue time over max_queue_delay.",
        stored=RATIO_STEPS,
        weight=BY_REQUESTS,
    ),
    gauge(
        "model_mean_queue_depth",
        e.MODEL,
        _interval(lambda i: i.mean_queue_depth),
        "Mean requests in the queue (Little's law).",
        stored=MILLIONTHS,
        weight=BY_SECONDS,
    ),
    gauge(
        "model_cache_hit_ratio",
        e.MODEL,
        _interval(lambda i: i.cache_hit_ratio),
        "Response cache hits over requests in the last interval.",
        stored=RATIO_STEPS,
        weight=BY_REQUESTS,
    ),
)

MODEL_PERCENTILES = (
    gauge(
        "model_request_p50_seconds",
        e.MODEL,
        _percentile(lambda p: p.request_p50_seconds),
        "The 50th percentile of request latency per request, Triton's own summary over its sliding window "
        "(60 s by default; needs tritonserver --metrics-config summary_latencies=true).",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
    ),
    gauge(
        "model_request_p90_seconds",
        e.MODEL,
        _percentile(lambda p: p.request_p90_seconds),
        "The 90th percentile of request latency per request, Triton's own summary over its sliding window "
        "(60 s by default; needs tritonserver --metrics-config summary_latencies=true).",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
    ),
    gauge(
        "model_request_p99_seconds",
        e.MODEL,
        _percentile(lambda p: p.request_p99_seconds),
        "The 99th percentile of request latency per request, Triton's own summary over its sliding window "
        "(60 s by default; needs tritonserver --metrics-config summary_latencies=true).",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
    ),
    gauge(
        "model_queue_p50_seconds",
        e.MODEL,
        _percentile(lambda p: p.queue_p50_seconds),
        "The 50th percentile of queue time per request, Triton's own summary over its sliding window "
        "(60 s by default; needs tritonserver --metrics-config summary_latencies=true).",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
    ),
    gauge(
        "model_queue_p90_seconds",
        e.MODEL,
        _percentile(lambda p: p.queue_p90_seconds),
        "The 90th percentile of queue time per request, Triton's own summary over its sliding window "
        "(60 s by default; needs tritonserver --metrics-config summary_latencies=true).",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
    ),
    gauge(
        "model_queue_p99_seconds",
        e.MODEL,
        _percentile(lambda p: p.queue_p99_seconds),
        "The 99th percentile of queue time per request, Triton's own summary over its sliding window "
        "(60 s by default; needs tritonserver --metrics-config summary_latencies=true).",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
    ),
    gauge(
        "model_compute_infer_p50_seconds",
        e.MODEL,
        _percentile(lambda p: p.compute_infer_p50_seconds),
        "The 50th percentile of compute time per request, Triton's own summary over its sliding window "
        "(60 s by default; needs tritonserver --metrics-config summary_latencies=true).",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
    ),
    gauge(
        "model_compute_infer_p90_seconds",
        e.MODEL,
        _percentile(lambda p: p.compute_infer_p90_seconds),
        "The 90th percentile of compute time per request, Triton's own summary over its sliding window "
        "(60 s by default; needs tritonserver --metrics-config summary_latencies=true).",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
    ),
    gauge(
        "model_compute_infer_p99_seconds",
        e.MODEL,
        _percentile(lambda p: p.compute_infer_p99_seconds),
        "The 99th percentile of compute time per request, Triton's own summary over its sliding window "
        "(60 s by default; needs tritonserver --metrics-config summary_latencies=true).",
        unit="seconds",
        stored=TENTH_MICROSECONDS,
    ),
)
"""Kept in history as they are read each second, unweighted: a window's mean of a percentile
is not the window's percentile (its maximum is the closer bound); Triton's window already
spans a minute."""

MODEL_STREAM = (
    histogram(
        "model_batch_size",
        e.MODEL_BATCHES,
        lambda item: item[1],
        BATCH_SIZE_BUCKETS,
        "Executions by executed batch size, accumulated from Triton's batch statistics since the daemon "
        "started (`_sum` is the inferences they carried).",
    ),
    labelled(
        "model_llm_value",
        e.MODEL,
        ("metric",),
        lambda m: (((metric,), value) for metric, value in sorted(m.llm_metrics.items())),
        "The LLM backends' own figures (nv_trt_llm_*, vllm:*) as Triton reports them, by flattened name.",
    ),
)

FIGURES: tuple[AnyFigure, ...] = (
    SERVER + MODEL_CONFIG + MODEL_TOTALS + MODEL_INTERVAL + MODEL_PERCENTILES + MODEL_STREAM
)
