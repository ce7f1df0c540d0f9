"""Pure parsers: the bodies of Triton's endpoints → plain values.

Place in the flow: the Triton collector (`triton.py`) fetches `/metrics`, `/v2/models/stats`,
`POST /v2/repository/index`, `/v2/models/NAME/config` and `/v2`, and hands each body to one
function here; `triton_derive.py` turns two parsed polls into figures. Nothing here does I/O,
and everything raises `ShapeError` (one line, naming where the body went wrong) or returns
per-model problems, so one bad model never hides the others.

`/metrics` is read with `prometheus_client.parser`, summed over every series of one model and
version (a GPU instance's counters carry a `gpu_uuid` label; the pending count and failures do
not) and keyed by family name (the parser names a counter's samples `…_total`). Triton prints
the same series on every scrape with new values, so `MetricsParser` parses each series once
and afterwards only reads its value: the text format puts the value (and an optional
timestamp) after the series, so the part of a line before the value identifies the series.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import isnan
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

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
LLM_PREFIXES = ("nv_trt_llm_", "vllm:")
"""The LLM backends' own families (TensorRT-LLM, vLLM), kept per model with their labels."""
_LLM_LABELS_DROPPED = frozenset({"model", "version", "gpu_uuid", "model_name"})


class ShapeError(ValueError):
    """A body that does not have the shape Triton gives. str() is one line."""


ModelKey = tuple[str, str]
"""(model name, version): Triton's versions are strings."""


# --------------------------------------------------------------------------- /metrics


@dataclass(frozen=True, slots=True)
class MetricsModel:
    """One model version in /metrics: every series summed, keyed by family name."""

    values: dict[str, float]
    failures_by_reason: dict[str, float] = field(default_factory=dict)
    """Reason label → failures. A server older than 2.48 has one unlabelled series: key ""."""
    gpu_uuids: tuple[str, ...] = ()
    """The `gpu_uuid` labels of this model's series: the GPUs its instances run on."""
    llm: dict[str, float] = field(default_factory=dict)


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
    """"value" (a model family), "failure", "llm", or "unused" (server gauges, quantiles)."""
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
                                problems.append(f"unparseable value in {_quote(line)}")
                            continue
                        value = read
                    else:
                        lines[raw] = (series, value)
                else:
                    parsed = _parse_line(type_line, line)
                    if parsed is None:
                        bad_lines += 1
                        if bad_lines == 1:
                            problems.append(f"unparseable line {_quote(line)}")
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
    __slots__ = ("failures", "gpus", "llm", "values")

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.failures: dict[str, float] = {}
        self.gpus: set[str] = set()
        self.llm: dict[str, float] = {}

    def freeze(self) -> MetricsModel:
        return MetricsModel(self.values, self.failures, tuple(sorted(self.gpus)), self.llm)


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
    if family in MODEL_FAMILIES and not histogram:
        return _Series(family, key, "value", gpu, family)
    return _Series(family, key, "unused", gpu, "")


def _float(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


def _same(a: float | None, b: float) -> bool:
    return a is not None and (a == b or (isnan(a) and isnan(b)))


def _quote(text: str, width: int = 60) -> str:
    text = text if len(text) <= width else text[: width - 1] + "…"
    return repr(text)


# --------------------------------------------------------------------------- /v2/models/stats


@dataclass(frozen=True, slots=True)
class Duration:
    """One leaf of the statistics extension: how many, and their total nanoseconds."""

    count: int
    ns: int


@dataclass(frozen=True, slots=True)
class StatsModel:
    """One model version in /v2/models/stats: cumulative since it was loaded."""

    name: str
    version: str
    last_inference_ms: int | None
    """Unix milliseconds of the last inference; None when it never ran (Triton says 0)."""
    inference_count: int
    execution_count: int
    success: Duration
    fail: Duration
    queue: Duration
    compute_input: Duration
    compute_infer: Duration
    compute_output: Duration
    cache_hit: Duration | None
    cache_miss: Duration | None
    batch_executions: dict[int, int]
    """Executed batch size → executions of that size (batch_stats[].compute_infer.count)."""


@dataclass(frozen=True, slots=True)
class StatsScrape:
    models: dict[ModelKey, StatsModel]
    problems: dict[str, str]
    """Model name → why its entry could not be used (the other entries still are)."""


_INFERENCE_STATS = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


class StatsParser:
    """Parses `GET /v2/models/stats`, reusing the parsed entry of a model whose entry is the
    same as last time (an idle model's: every count, every ns and last_inference unchanged).
    The same object comes back, so the derivations can tell "nothing happened" by identity.
    Not thread-safe: one per server, polled from one thread."""

    def __init__(self) -> None:
        self._last: dict[ModelKey, tuple[Any, StatsModel]] = {}

    def parse(self, doc: Any) -> StatsScrape:
        if not isinstance(doc, dict):
            raise ShapeError(f"expected a JSON object with model_stats, got {_kind(doc)}")
        entries = doc.get("model_stats")
        if not isinstance(entries, list):
            raise ShapeError(f"model_stats: expected a list, got {_kind(entries)}")
        last = self._last
        kept: dict[ModelKey, tuple[Any, StatsModel]] = {}
        models: dict[ModelKey, StatsModel] = {}
        problems: dict[str, str] = {}
        for i, entry in enumerate(entries):
            name = entry.get("name") if isinstance(entry, dict) else None
            version = entry.get("version") if isinstance(entry, dict) else None
            label = name if isinstance(name, str) and name else f"model_stats[{i}]"
            memo = (name, version) if isinstance(name, str) and isinstance(version, str) else None
            previous = last.get(memo) if memo is not None else None
            if previous is not None and previous[0] == entry:
                stats = previous[1]
            else:
                try:
                    parsed = _stats_entry_fast(entry)
                    if parsed is None:  # something is off: the careful path says exactly what
                        parsed = _stats_entry(entry, f"model_stats[{i}]")
                except ShapeError as exc:
                    problems[label] = str(exc)
                    continue
                stats = parsed
            if memo is not None:
                kept[memo] = (entry, stats)
            models[(stats.name, stats.version)] = stats
        self._last = kept
        return StatsScrape(models, problems)


def parse_stats(doc: Any) -> StatsScrape:
    """`GET /v2/models/stats` → per model version statistics, with no memory of earlier ones."""
    return StatsParser().parse(doc)


def _stats_entry_fast(entry: Any) -> StatsModel | None:
    """The usual, well-formed entry, read without naming every field's path; None at the
    first thing that does not fit (then `_stats_entry` finds and names it)."""
    try:
        st = entry["inference_stats"]
        leaves = [st[k] for k in _INFERENCE_STATS]
        hit, miss = st.get("cache_hit"), st.get("cache_miss")
        ints = [leaf[f] for leaf in leaves for f in ("count", "ns")]
        ints += [entry["inference_count"], entry["execution_count"], entry.get("last_inference", 0)]
        cache = [Duration(c["count"], c["ns"]) if c is not None else None for c in (hit, miss)]
        batches: dict[int, int] = {}
        for b in entry.get("batch_stats", ()):
            size, n = b["batch_size"], b["compute_infer"]["count"]
            ints += (size, n)
            batches[size] = batches.get(size, 0) + n
        name, version = entry["name"], entry["version"]
    except (KeyError, TypeError, AttributeError):
        return None
    for c in cache:
        if c is not None:
            ints += (c.count, c.ns)
    if type(name) is not str or not name or type(version) is not str:
        return None
    if not all(type(v) is int and v >= 0 for v in ints):
        return None  # a negative, a float, a quoted 64-bit integer: the careful path decides
    d = [Duration(ints[j], ints[j + 1]) for j in range(0, 12, 2)]
    return StatsModel(
        name=name,
        version=version,
        last_inference_ms=ints[14] or None,
        inference_count=ints[12],
        execution_count=ints[13],
        success=d[0],
        fail=d[1],
        queue=d[2],
        compute_input=d[3],
        compute_infer=d[4],
        compute_output=d[5],
        cache_hit=cache[0],
        cache_miss=cache[1],
        batch_executions=batches,
    )


def _stats_entry(entry: Any, where: str) -> StatsModel:
    if not isinstance(entry, dict):
        raise ShapeError(f"{where}: expected an object, got {_kind(entry)}")
    name = _string(entry, "name", where)
    version = _string(entry, "version", where)
    inference_stats = entry.get("inference_stats")
    if not isinstance(inference_stats, dict):
        raise ShapeError(f"{where}.inference_stats: expected an object, got {_kind(inference_stats)}")
    leaves = {k: _duration(inference_stats.get(k), f"{where}.inference_stats.{k}") for k in _INFERENCE_STATS}
    cache = {
        k: _duration(inference_stats[k], f"{where}.inference_stats.{k}") if k in inference_stats else None
        for k in ("cache_hit", "cache_miss")
    }
    batches: dict[int, int] = {}
    raw_batches = entry.get("batch_stats", [])
    if not isinstance(raw_batches, list):
        raise ShapeError(f"{where}.batch_stats: expected a list, got {_kind(raw_batches)}")
    for j, b in enumerate(raw_batches):
        bw = f"{where}.batch_stats[{j}]"
        if not isinstance(b, dict):
            raise ShapeError(f"{bw}: expected an object, got {_kind(b)}")
        size = _count(b.get("batch_size"), f"{bw}.batch_size")
        batches[size] = batches.get(size, 0) + _duration(b.get("compute_infer"), f"{bw}.compute_infer").count
    last = _count(entry.get("last_inference", 0), f"{where}.last_inference")
    return StatsModel(
        name=name,
        version=version,
        last_inference_ms=last or None,
        inference_count=_count(entry.get("inference_count"), f"{where}.inference_count"),
        execution_count=_count(entry.get("execution_count"), f"{where}.execution_count"),
        success=leaves["success"],
        fail=leaves["fail"],
        queue=leaves["queue"],
        compute_input=leaves["compute_input"],
        compute_infer=leaves["compute_infer"],
        compute_output=leaves["compute_output"],
        cache_hit=cache["cache_hit"],
        cache_miss=cache["cache_miss"],
        batch_executions=batches,
    )


def _duration(value: Any, where: str) -> Duration:
    if not isinstance(value, dict):
        raise ShapeError(f"{where}: expected {{count, ns}}, got {_kind(value)}")
    return Duration(_count(value.get("count"), f"{where}.count"), _count(value.get("ns"), f"{where}.ns"))


def _count(value: Any, where: str) -> int:
    """A non-negative integer (protobuf's JSON may quote 64-bit integers)."""
    if isinstance(value, bool):
        raise ShapeError(f"{where}: expected a non-negative integer, got {value!r}")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value >= 0 and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    shown = _kind(value) if value is None or isinstance(value, dict | list) else repr(value)
    raise ShapeError(f"{where}: expected a non-negative integer, got {shown}")


def _string(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or (key == "name" and not value):
        raise ShapeError(f"{where}.{key}: expected a string, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing" if value is None else "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {_quote(value, 30)}"
    return f"the number {value!r}" if isinstance(value, int | float) else type(value).__name__


# --------------------------------------------------------------------------- config, index, server


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """What gpuwatch needs of a model's effective config (`GET /v2/models/NAME/config`)."""

    max_batch_size: int | None = None
    """0 means the model does not batch."""
    dynamic_batching: bool = False
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_seconds: float | None = None
    instance_count: int | None = None
    instance_kind: str | None = None
    """"GPU", "CPU", "MODEL", or kinds joined by "+"."""
    gpu_devices: tuple[int, ...] = ()
    """instance_group `gpus`: CUDA device numbers as the Triton process sees them."""
    backend: str | None = None
    platform: str | None = None
    ensemble_steps: tuple[str, ...] = ()
    response_cache: bool = False
    decoupled: bool = False


def parse_config(doc: Any) -> ModelConfig:
    if not isinstance(doc, dict):
        raise ShapeError(f"expected a model config object, got {_kind(doc)}")
    mbs = doc.get("max_batch_size")
    max_batch = _count(mbs, "max_batch_size") if mbs is not None else None
    dyn = doc.get("dynamic_batching")
    preferred: tuple[int, ...] = ()
    delay: float | None = None
    if dyn is not None:
        if not isinstance(dyn, dict):
            raise ShapeError(f"dynamic_batching: expected an object, got {_kind(dyn)}")
        pref = dyn.get("preferred_batch_size", [])
        if not isinstance(pref, list):
            raise ShapeError(f"dynamic_batching.preferred_batch_size: expected a list, got {_kind(pref)}")
        preferred = tuple(
            sorted({_count(p, f"dynamic_batching.preferred_batch_size[{i}]") for i, p in enumerate(pref)})
        )
        raw_delay = dyn.get("max_queue_delay_microseconds", 0)
        delay = _count(raw_delay, "dynamic_batching.max_queue_delay_microseconds") / 1e6
    groups = doc.get("instance_group", [])
    if not isinstance(groups, list):
        raise ShapeError(f"instance_group: expected a list, got {_kind(groups)}")
    count = 0
    kinds: list[str] = []
    gpus: set[int] = set()
    for i, g in enumerate(groups):
        where = f"instance_group[{i}]"
        if not isinstance(g, dict):
            raise ShapeError(f"{where}: expected an object, got {_kind(g)}")
        n = _count(g.get("count", 1), f"{where}.count")
        kind = str(g.get("kind", "KIND_AUTO")).removeprefix("KIND_")
        devices = g.get("gpus", [])
        if not isinstance(devices, list):
            raise ShapeError(f"{where}.gpus: expected a list, got {_kind(devices)}")
        listed = [_count(d, f"{where}.gpus[{j}]") for j, d in enumerate(devices)]
        gpus.update(listed)
        # `count` instances on each listed GPU (Triton's effective config lists them all).
        count += n * len(listed) if kind == "GPU" and listed else n
        if kind not in kinds:
            kinds.append(kind)
    steps: tuple[str, ...] = ()
    scheduling = doc.get("ensemble_scheduling")
    if isinstance(scheduling, dict):
        raw_steps = scheduling.get("step", [])
        if not isinstance(raw_steps, list):
            raise ShapeError(f"ensemble_scheduling.step: expected a list, got {_kind(raw_steps)}")
        names = []
        for i, s in enumerate(raw_steps):
            if not isinstance(s, dict) or not isinstance(s.get("model_name"), str):
                raise ShapeError(f"ensemble_scheduling.step[{i}].model_name: expected a string")
            names.append(s["model_name"])
        steps = tuple(names)
    cache = doc.get("response_cache")
    policy = doc.get("model_transaction_policy")
    return ModelConfig(
        max_batch_size=max_batch,
        dynamic_batching=dyn is not None,
        preferred_batch_sizes=preferred,
        max_queue_delay_seconds=delay,
        instance_count=count if groups else None,
        instance_kind="+".join(kinds) if kinds else None,
        gpu_devices=tuple(sorted(gpus)),
        backend=_text(doc.get("backend")),
        platform=_text(doc.get("platform")),
        ensemble_steps=steps,
        response_cache=isinstance(cache, dict) and cache.get("enable") is True,
        decoupled=isinstance(policy, dict) and policy.get("decoupled") is True,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One row of `POST /v2/repository/index`."""

    name: str
    version: str | None
    """None for a model in the repository that was never loaded (explicit model control)."""
    state: str | None
    reason: str | None


def parse_index(doc: Any) -> tuple[IndexEntry, ...]:
    if not isinstance(doc, list):
        raise ShapeError(f"expected a list of models, got {_kind(doc)}")
    out = []
    for i, row in enumerate(doc):
        if not isinstance(row, dict) or not isinstance(row.get("name"), str) or not row["name"]:
            raise ShapeError(f"[{i}]: expected an object with a name, got {_kind(row)}")
        version = row.get("version")
        state = row.get("state")
        reason = row.get("reason")
        out.append(
            IndexEntry(
                row["name"],
                version if isinstance(version, str) and version else None,
                state if isinstance(state, str) and state else None,
                _one_line(reason) if isinstance(reason, str) and reason else None,
            )
        )
    return tuple(out)


def parse_server_metadata(doc: Any) -> str | None:
    """`GET /v2` → Triton's version ("2.51.0"), or None when it does not say."""
    if not isinstance(doc, dict):
        raise ShapeError(f"expected the server metadata object, got {_kind(doc)}")
    version = doc.get("version")
    return version if isinstance(version, str) and version else None


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    """ "2.51.0" → (2, 51, 0); None when there is no readable version."""
    if not version:
        return None
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


def _one_line(text: str, width: int = 300) -> str:
    """Triton's load errors carry a Python traceback: keep the first line that says something."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    first = lines[0] if lines else text.strip()
    return first if len(first) <= width else first[: width - 1] + "…"
