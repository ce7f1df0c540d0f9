"""The /metrics text → per model version sums (`MetricsScrape`).

Place in the flow: the poll (`poll.py`) fetches `GET metrics_url` on a worker of its own and
hands the body to `MetricsParser.parse`; `derive` reads the sums. Pure apart from the parser's
memory of the series it has parsed; no I/O. A line that cannot be read is a problem in words
(the rest of the body is still used); a body with no readable line is a `ShapeError`.

The text is read with `prometheus_client.parser`, summed over every series of one model and
version (a GPU instance's counters carry a `gpu_uuid` label; the pending count and failures do
not) and keyed by family name (the parser names a counter's samples `…_total`). Triton prints
the same series on every scrape with new values, so `MetricsParser` parses each series once
and afterwards only reads its value: the text format puts the value (and an optional
timestamp) after the series, so the part of a line before the value identifies the series.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import isnan

from prometheus_client.parser import text_string_to_metric_families

from gpuwatch.collect.triton.parse_shape import ModelKey, ShapeError, quote

# /metrics families that describe one model version. Summed over every series of it.
SUCCESS = "nv_inference_request_success"
FAILURE = "nv_inference_request_failure"
INFERENCES = "nv_inference_count"
EXECUTIONS = "nv_inference_exec_count"
REQUEST_US = "nv_inference_request_duration_us"
QUEUE_US = "nv_inference_queue_duration_us"
COMPUTE_INPUT_US = "nv_inference_compute_input_duration_us"
COMPUTE_INFER_US = "nv_inference_compute_infer_duration_us"
COMPUTE_OUTPUT_US = "nv_inference_compute_output_duration_us"
PENDING = "nv_inference_pending_request_count"
CACHE_HITS = "nv_cache_num_hits_per_model"
CACHE_MISSES = "nv_cache_num_misses_per_model"
MODEL_FAMILIES = frozenset(
    {
        SUCCESS,
        INFERENCES,
        EXECUTIONS,
        REQUEST_US,
        QUEUE_US,
        COMPUTE_INPUT_US,
        COMPUTE_INFER_US,
        COMPUTE_OUTPUT_US,
        PENDING,
        CACHE_HITS,
        CACHE_MISSES,
    }
)
SUMMARIES = {
    "nv_inference_request_summary_us": "request",
    "nv_inference_queue_summary_us": "queue",
    "nv_inference_compute_infer_summary_us": "compute_infer",
}
"""Triton's latency summaries (`--metrics-config summary_latencies=true`, Triton ≥ 2.34): one
series per quantile, over Triton's own sliding window (`summary_max_age`, 60 s by default),
µs. The stage each family measures."""
QUANTILES = {"0.5": "p50", "0.9": "p90", "0.99": "p99"}
"""The quantiles gpuwatch reads (Triton's defaults also give 0.95 and 0.999)."""
LLM_PREFIXES = ("nv_trt_llm_", "vllm:")
"""The LLM backends' own families (TensorRT-LLM, vLLM), kept per model with their labels."""
_LLM_LABELS_DROPPED = frozenset({"model", "version", "gpu_uuid", "model_name"})


@dataclass(frozen=True, slots=True)
class MetricsModel:
    """One model version in /metrics: every series summed, keyed by family name."""

    values: dict[str, float]
    failures_by_reason: dict[str, float] = field(default_factory=dict)
    """Reason label → failures. A server older than 2.48 has one unlabelled series: key ""."""
    gpu_uuids: tuple[str, ...] = ()
    """The `gpu_uuid` labels of this model's series: the GPUs its instances run on."""
    llm: dict[str, float] = field(default_factory=dict)
    quantiles: dict[str, float] = field(default_factory=dict)
    """"request_p50", "queue_p99", … → µs, from the latency summaries (`SUMMARIES`); a quantile
    with no observation in Triton's window (NaN) is absent. Several series of one model (one
    per GPU) give their largest value: a quantile cannot be added up."""


@dataclass(frozen=True, slots=True)
class MetricsScrape:
    models: dict[ModelKey, MetricsModel]
    families: frozenset[str]
    """Every family name in the body (tells an older server from a quiet one)."""
    problems: tuple[str, ...] = ()
    """Lines that could not be parsed, in words (the rest of the body is still used)."""


@dataclass(frozen=True, slots=True)
class _Series:
    family: str
    model: ModelKey
    role: str
    """"value" (a model family), "failure", "llm", "quantile" (a latency summary's quantile we
    read), or "unused" (server gauges, other quantiles)."""
    gpu_uuid: str | None
    detail: str
    """The family (role "value"), the failure reason, or the LLM key (family and other labels)."""


class MetricsParser:
    """Parses Triton's /metrics, remembering each series it has parsed (see the module doc).

    Two memories, both rebuilt from each body so they hold only what the server has now: the
    series (the line up to its value → what it is), and the whole lines of the last body (a
    line seen before, value included, needs no parsing at all: an idle model's lines).
    Not thread-safe: the collector keeps one per server and polls a server from one thread."""

    def __init__(self) -> None:
        self._series: dict[str, _Series | None] = {}
        """Series key → what it is; None: a series whose value cannot be read alone."""
        self._lines: dict[str, tuple[_Series, float]] = {}

    def parse(self, text: str) -> MetricsScrape:
        known = self._series
        known_lines = self._lines
        lines: dict[str, tuple[_Series, float]] = {}
        new: dict[str, _Series | None] = {}
        acc: dict[ModelKey, _Accumulator] = {}
        families: set[str] = set()
        problems: list[str] = []
        bad_lines = hits = samples = 0
        type_line = ""
        line_hits = 0
        for raw in text.split("\n"):
            seen = known_lines.get(raw)
            if seen is not None:  # the very same line as last time
                series, value = seen
                families.add(series.family)
                line_hits += 1
                hits += 1
                samples += 1
            else:
                line = raw if raw[:1] not in ("", " ", "\t", "\r") else raw.strip()
                if not line:
                    continue
                if line[0] == "#":
                    parts = line.split(None, 3)
                    if len(parts) >= 3 and parts[1] == "TYPE":
                        type_line = line
                        families.add(parts[2])
                    continue
                brace = line.rfind("}")
                if brace >= 0:
                    key, rest = line[: brace + 1], line[brace + 1 :]
                else:
                    key, _, rest = line.partition(" ")
                cached = known.get(key)
                if cached is not None:  # a series parsed on an earlier poll, with a new value
                    series = cached
                    families.add(series.family)
                    hits += 1
                    try:
                        value = float(rest)
                    except ValueError:  # a timestamp after the value, or no number at all
                        tokens = rest.split()
                        read = _float(tokens[0]) if tokens else None
                        if read is None:
                            bad_lines += 1
                            if bad_lines == 1:
                                problems.append(f"unparseable value in {quote(line)}")
                            continue
                        value = read
                    else:
                        lines[raw] = (series, value)
                else:
                    parsed = _parse_line(type_line, line)
                    if parsed is None:
                        bad_lines += 1
                        if bad_lines == 1:
                            problems.append(f"unparseable line {quote(line)}")
                        continue
                    series, value, cacheable = parsed
                    families.add(series.family)
                    if key in known:
                        hits += 1  # a series whose value cannot be read alone: parsed every time
                    else:
                        tokens = rest.split()
                        readable = cacheable and bool(tokens) and _same(_float(tokens[0]), value)
                        new[key] = series if readable else None
                        if readable and len(tokens) == 1:
                            lines[raw] = (series, value)
                samples += 1
            if series.role == "unused" or isnan(value):
                continue
            bucket = acc.get(series.model)
            if bucket is None:
                bucket = acc[series.model] = _Accumulator()
            if series.gpu_uuid:
                bucket.gpus.add(series.gpu_uuid)
            role = series.role
            if role == "quantile":
                old = bucket.quantiles.get(series.detail)
                bucket.quantiles[series.detail] = value if old is None else max(old, value)
                continue
            target = (
                bucket.values if role == "value" else bucket.failures if role == "failure" else bucket.llm
            )
            target[series.detail] = target.get(series.detail, 0.0) + value
        if bad_lines > 1:
            problems[0] += f" (and {bad_lines - 1} more)"
        if samples == 0 and bad_lines:
            raise ShapeError(f"not Prometheus text: {problems[0]}")
        if line_hits != len(known_lines) or lines:  # some line changed: remember this body's
            lines.update((raw, known_lines[raw]) for raw in text.split("\n") if raw in known_lines)
            self._lines = lines
        if new or hits != len(known):
            self._series = _remember(text, known, new)
        models = {k: a.freeze() for k, a in acc.items()}
        return MetricsScrape(models, frozenset(families), tuple(problems))


def _remember(
    text: str, known: dict[str, _Series | None], new: dict[str, _Series | None]
) -> dict[str, _Series | None]:
    """The series this body has, and only those: an unloaded model's are forgotten, so memory
    follows the server. A second pass, made only when the set of series changed."""
    kept: dict[str, _Series | None] = {}
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        brace = line.rfind("}")
        key = line[: brace + 1] if brace >= 0 else line.partition(" ")[0]
        if key in new:
            kept[key] = new[key]
        elif key in known:
            kept[key] = known[key]
    return kept


class _Accumulator:
    __slots__ = ("failures", "gpus", "llm", "quantiles", "values")

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.failures: dict[str, float] = {}
        self.gpus: set[str] = set()
        self.llm: dict[str, float] = {}
        self.quantiles: dict[str, float] = {}

    def freeze(self) -> MetricsModel:
        return MetricsModel(self.values, self.failures, tuple(sorted(self.gpus)), self.llm, self.quantiles)


def parse_metrics(text: str) -> MetricsScrape:
    """Parse one /metrics body with no memory of earlier ones."""
    return MetricsParser().parse(text)


def _parse_line(type_line: str, line: str) -> tuple[_Series, float, bool] | None:
    """One sample line through prometheus_client, in the context of its family's TYPE line.

    Returns the series, its value, and whether the value can later be read from the line's
    last tokens alone (False for a sample with a timestamp)."""
    text = f"{type_line}\n{line}\n" if type_line else f"{line}\n"
    try:
        found = [(fam, s) for fam in text_string_to_metric_families(text) for s in fam.samples]
    except (ValueError, IndexError, KeyError):
        return None
    if len(found) != 1:
        return None
    family, sample = found[0]
    value = float(sample.value)
    return _classify(family.name, family.type, sample.name, sample.labels), value, sample.timestamp is None


def _classify(family: str, kind: str, sample_name: str, labels: dict[str, str]) -> _Series:
    name = labels.get("model") or labels.get("model_name")
    if name is None:
        return _Series(family, ("", ""), "unused", None, "")  # server-wide: pinned memory, CPU, GPUs
    key = (name, labels.get("version", ""))
    gpu = labels.get("gpu_uuid") or None
    histogram = kind in ("histogram", "summary", "gaugehistogram")
    if family.startswith(LLM_PREFIXES):
        if histogram and not sample_name.endswith(("_sum", "_count")):
            return _Series(family, key, "unused", gpu, "")
        shown = sample_name if histogram else family
        extra = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k not in _LLM_LABELS_DROPPED)
        return _Series(family, key, "llm", gpu, f"{shown}{{{extra}}}" if extra else shown)
    if family == FAILURE:
        return _Series(family, key, "failure", gpu, labels.get("reason", ""))
    stage = SUMMARIES.get(family)
    if stage is not None and sample_name == family:
        quantile = QUANTILES.get(_quantile_text(labels.get("quantile", "")))
        if quantile is not None:
            return _Series(family, key, "quantile", gpu, f"{stage}_{quantile}")
    if family in MODEL_FAMILIES and not histogram:
        return _Series(family, key, "value", gpu, family)
    return _Series(family, key, "unused", gpu, "")


def _quantile_text(label: str) -> str:
    """ "0.50" and "0.5" alike (the client library prints the shortest form; be lenient)."""
    number = _float(label)
    return "" if number is None else repr(number)


def _float(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


def _same(a: float | None, b: float) -> bool:
    return a is not None and (a == b or (isnan(a) and isnan(b)))
