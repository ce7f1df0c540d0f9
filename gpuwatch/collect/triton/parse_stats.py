"""`GET /v2/models/stats` → per model version cumulative statistics (`StatsScrape`).

Place in the flow: the poll (`poll.py`) fetches the statistics each poll and hands the decoded
JSON to `StatsParser.parse`; `derive` turns two readings into figures. Pure apart from the
parser's memory of the last entries; no I/O. A body of the wrong shape is a `ShapeError`; one
bad entry is a problem of that model only, so it never hides the others.

Each entry is read first by `read_entry_fast`, which takes the usual well-formed entry without
naming every field's path, and only where that gives up by `read_entry`, which checks each
field and names the first one that is wrong. Both give the same `StatsModel` for any entry the
fast path accepts (checked over every capture by tests/triton/test_triton_parse.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpuwatch.collect.triton import parse_shape as shape
from gpuwatch.collect.triton.parse_shape import ModelKey, ShapeError


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
            raise ShapeError(f"expected a JSON object with model_stats, got {shape.kind(doc)}")
        entries = doc.get("model_stats")
        if not isinstance(entries, list):
            raise ShapeError(f"model_stats: expected a list, got {shape.kind(entries)}")
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
                    parsed = read_entry_fast(entry)
                    if parsed is None:  # something is off: the careful path says exactly what
                        parsed = read_entry(entry, f"model_stats[{i}]")
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


def read_entry_fast(entry: Any) -> StatsModel | None:
    """The usual, well-formed entry, read without naming every field's path; None at the
    first thing that does not fit (then `read_entry` finds and names it)."""
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


def read_entry(entry: Any, where: str) -> StatsModel:
    if not isinstance(entry, dict):
        raise ShapeError(f"{where}: expected an object, got {shape.kind(entry)}")
    name = shape.string(entry, "name", where)
    version = shape.string(entry, "version", where)
    inference_stats = entry.get("inference_stats")
    if not isinstance(inference_stats, dict):
        raise ShapeError(f"{where}.inference_stats: expected an object, got {shape.kind(inference_stats)}")
    leaves = {k: _duration(inference_stats.get(k), f"{where}.inference_stats.{k}") for k in _INFERENCE_STATS}
    cache = {
        k: _duration(inference_stats[k], f"{where}.inference_stats.{k}") if k in inference_stats else None
        for k in ("cache_hit", "cache_miss")
    }
    batches: dict[int, int] = {}
    raw_batches = entry.get("batch_stats", [])
    if not isinstance(raw_batches, list):
        raise ShapeError(f"{where}.batch_stats: expected a list, got {shape.kind(raw_batches)}")
    for j, b in enumerate(raw_batches):
        bw = f"{where}.batch_stats[{j}]"
        if not isinstance(b, dict):
            raise ShapeError(f"{bw}: expected an object, got {shape.kind(b)}")
        size = shape.count(b.get("batch_size"), f"{bw}.batch_size")
        batches[size] = batches.get(size, 0) + _duration(b.get("compute_infer"), f"{bw}.compute_infer").count
    last = shape.count(entry.get("last_inference", 0), f"{where}.last_inference")
    return StatsModel(
        name=name,
        version=version,
        last_inference_ms=last or None,
        inference_count=shape.count(entry.get("inference_count"), f"{where}.inference_count"),
        execution_count=shape.count(entry.get("execution_count"), f"{where}.execution_count"),
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
        raise ShapeError(f"{where}: expected {{count, ns}}, got {shape.kind(value)}")
    return Duration(
        shape.count(value.get("count"), f"{where}.count"), shape.count(value.get("ns"), f"{where}.ns")
    )
