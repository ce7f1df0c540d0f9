"""The conditions that hold in one snapshot, one function per group of kinds.

Place in the flow: engine's snapshot → **rules** (what holds now) → `stage` (hold times) →
findings. Pure: a snapshot in, observations out; every threshold is read from `kinds.RULES`.
An ensemble gets only the state and stalled verdicts: its queue, batches and failures are its
steps' (Triton counts a failed step in the ensemble's statistics too), and its steps are judged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple

from gpuwatch import model
from gpuwatch.assess.kinds import RULES
from gpuwatch.catalog.nvml_codes import CRITICAL_XIDS
from gpuwatch.model import FindingKind as K
from gpuwatch.model import Subject, SubjectKind

# The thresholds, read once from the kinds' declarations (kinds.RULES).
_GPU_MEMORY_NEARLY_FULL__MEMORY_USED_RATIO = RULES[K.GPU_MEMORY_NEARLY_FULL].thresholds["memory_used_ratio"]
_MODEL_DELAY_WASTED__BATCH_FILL_RATIO = RULES[K.MODEL_DELAY_WASTED].thresholds["batch_fill_ratio"]
_MODEL_DELAY_WASTED__QUEUE_DELAY_RATIO = RULES[K.MODEL_DELAY_WASTED].thresholds["queue_delay_ratio"]
_MODEL_DELAY_WASTED__QUEUE_DELAY_RATIO_MAX = RULES[K.MODEL_DELAY_WASTED].thresholds["queue_delay_ratio_max"]
_MODEL_FAILING__FAILURE_RATIO = RULES[K.MODEL_FAILING].thresholds["failure_ratio"]
_MODEL_FAILING__REQUESTS_PER_SECOND = RULES[K.MODEL_FAILING].thresholds["requests_per_second"]
_MODEL_PREFERRED_UNUSED__AVERAGE_BATCH_SIZE = RULES[K.MODEL_PREFERRED_UNUSED].thresholds["average_batch_size"]
_MODEL_PREFERRED_UNUSED__PREFERRED_BATCH_RATIO = RULES[K.MODEL_PREFERRED_UNUSED].thresholds[
    "preferred_batch_ratio"
]
_MODEL_QUEUE_BOUND__GPU_ACTIVITY_RATIO = RULES[K.MODEL_QUEUE_BOUND].thresholds["gpu_activity_ratio"]
_MODEL_QUEUE_BOUND__QUEUE_SHARE_RATIO = RULES[K.MODEL_QUEUE_BOUND].thresholds["queue_share_ratio"]
_MODEL_STALLED__PENDING_REQUESTS = RULES[K.MODEL_STALLED].thresholds["pending_requests"]

_READY = model.ModelState.READY
_LINK_DOWN = model.NvlinkState.DOWN
_THERMAL = frozenset({"hw_thermal_slowdown", "sw_thermal_slowdown"})
_HARDWARE = frozenset({"hw_slowdown", "hw_power_brake_slowdown"})
_CLOCK_REASONS = _THERMAL | _HARDWARE | {"sw_power_cap"}
"""The clock event reasons `_gpu` judges (any other, such as idle, is no finding)."""


class Observation(NamedTuple):
    """A condition of one kind that holds for one subject at this snapshot.

    A named tuple, not a dataclass: the stage compares each with the previous tick's, and a
    tuple is built and compared in C (bench/assess_bench.py)."""

    kind: model.FindingKind
    subject: Subject
    words: str
    message: str
    evidence: Mapping[str, float] = MappingProxyType({})
    advice: str | None = None


def observe(snapshot: model.Snapshot) -> list[Observation]:
    """Every condition that holds in `snapshot`."""
    found: list[Observation] = []
    found.extend(_node(snapshot))
    for gpu in snapshot.gpus:
        if not _gpu_quiet(gpu):
            found.extend(_gpu(gpu))
    found.extend(_gpu_events(snapshot.events))
    found.extend(_daemon(snapshot))
    activity = {g.index: gpu_activity(g) for g in snapshot.gpus}
    for server in snapshot.triton:
        found.extend(_server(server))
        if server.state is not model.ServerState.UP:
            continue
        for m in server.models:
            # The healthy model, inline: ready, finishing requests, none failing, and none of
            # `_model`'s batching gates open. Most models at every tick are this, and a call
            # per model is what the stage cost most (bench/assess_bench.py).
            i = m.interval
            if (
                i is not None
                and i.requests_per_second
                and not i.failures_per_second
                and not i.reset
                and ((st := m.state) is _READY or st is None or st == _READY)
                and ((q := i.queue_share_ratio) is None or q <= _MODEL_QUEUE_BOUND__QUEUE_SHARE_RATIO)
                and ((d := i.queue_delay_ratio) is None or d < _MODEL_DELAY_WASTED__QUEUE_DELAY_RATIO)
                and (
                    not m.preferred_batch_sizes
                    or (p := i.preferred_batch_ratio) is None
                    or p >= _MODEL_PREFERRED_UNUSED__PREFERRED_BATCH_RATIO
                )
            ):
                continue
            _model(m, activity, found)
    return found


def _gpu_quiet(g: model.GpuSample) -> bool:
    """Whether `_gpu` would find nothing: checked first, as most GPUs at every tick are quiet."""
    if g.state is not model.GpuState.OK:
        return False
    if g.remapped_rows_failed or g.remapped_rows_pending:
        return False
    if g.clock_event_reasons and not _CLOCK_REASONS.isdisjoint(g.clock_event_reasons):
        return False
    if any(n.state is _LINK_DOWN for n in g.nvlinks):
        return False
    used, total = g.memory_used_bytes, g.memory_total_bytes
    return used is None or not total or used / total <= _GPU_MEMORY_NEARLY_FULL__MEMORY_USED_RATIO


def gpu_activity(gpu: model.GpuSample) -> float | None:
    """The honest "how busy": GPM SM activity where there is GPM, NVML utilization otherwise."""
    if gpu.gpm is not None and gpu.gpm.sm_activity_ratio is not None:
        return gpu.gpm.sm_activity_ratio
    return gpu.utilization_ratio


# --------------------------------------------------------------------------- node and GPUs


def _node(s: model.Snapshot) -> Iterator[Observation]:
    if s.nvml_status is not None:
        yield Observation(
            K.NVML_UNAVAILABLE, Subject(SubjectKind.NODE), "NVML unavailable", f"no GPU data: {s.nvml_status}"
        )


def _gpu(g: model.GpuSample) -> Iterator[Observation]:
    subject = _gpu_subject(g.index)
    why = f": {g.state_reason}" if g.state_reason else ""
    if g.state is model.GpuState.LOST:
        yield Observation(K.GPU_LOST, subject, "LOST", f"lost{why}")
        return
    if g.state is model.GpuState.HUNG:
        yield Observation(K.GPU_HUNG, subject, "HUNG", f"hung{why}")
        return
    if g.state is not model.GpuState.OK:
        return
    if g.remapped_rows_failed:
        yield Observation(
            K.GPU_ROW_REMAP_FAILED,
            subject,
            "remap failed",
            "could not remap a faulty memory row",
            advice="take the GPU out of service (RMA)",
        )
    if g.remapped_rows_pending:
        yield Observation(
            K.GPU_ROW_REMAP_PENDING,
            subject,
            "remap pending",
            "a memory row remap is waiting for a reset",
            advice="drain the GPU and reset it (nvidia-smi -r)",
        )
    down = [n.link for n in g.nvlinks if n.state is _LINK_DOWN]
    if down:
        yield Observation(
            K.GPU_NVLINK_DOWN,
            subject,
            f"NVLink {len(down)} down",
            f"NVLink link{'s' if len(down) > 1 else ''} {', '.join(map(str, down))} down of {len(g.nvlinks)}",
            evidence={"nvlink_links_down": float(len(down)), "nvlink_links": float(len(g.nvlinks))},
            advice="drain the GPU and reset it (nvidia-smi -r); see docs/runbooks.md#gpunvlinkdown",
        )
    reasons = set(g.clock_event_reasons)
    if reasons & _THERMAL:
        yield Observation(
            K.GPU_THERMAL_SLOWDOWN,
            subject,
            "thermal",
            "clocks held down by temperature",
            evidence={"temperature_celsius": g.temperature_celsius}
            if g.temperature_celsius is not None
            else {},
            advice="check the node's cooling and airflow",
        )
    if reasons & _HARDWARE:
        yield Observation(
            K.GPU_HARDWARE_SLOWDOWN,
            subject,
            "HW slowdown",
            "clocks held down by hardware (power brake or slowdown signal)",
            advice="check the power supply and the board's sensors",
        )
    if "sw_power_cap" in reasons:
        evidence = {}
        if g.power_watts is not None:
            evidence["power_watts"] = g.power_watts
        if g.power_limit_watts is not None:
            evidence["power_limit_watts"] = g.power_limit_watts
        yield Observation(
            K.GPU_POWER_CAPPED,
            subject,
            "power cap",
            "clocks held at the power limit",
            evidence=evidence,
        )
    if g.memory_used_bytes is not None and g.memory_total_bytes:
        used = g.memory_used_bytes / g.memory_total_bytes
        if used > _GPU_MEMORY_NEARLY_FULL__MEMORY_USED_RATIO:
            yield Observation(
                K.GPU_MEMORY_NEARLY_FULL,
                subject,
                "memory full",
                f"memory {used:.0%} used",
                evidence={"memory_used_ratio": used},
                advice="free memory or move a model to another GPU before the next load fails",
            )


def _gpu_events(events: tuple[model.Event, ...]) -> Iterator[Observation]:
    for e in events:
        if e.gpu_index is None:
            continue
        subject = _gpu_subject(e.gpu_index)
        if e.kind is model.EventKind.XID and e.code in CRITICAL_XIDS:
            yield Observation(
                K.GPU_XID_CRITICAL,
                subject,
                f"XID {e.code}",
                e.message,
                evidence={"xid": float(e.code)},
                advice="drain the GPU; see docs/runbooks.md#gpuxidcritical",
            )
        elif e.kind is model.EventKind.NVLINK_ERRORS:
            yield Observation(
                K.GPU_NVLINK_ERRORS,
                subject,
                "NVLink errors",
                e.message,
                advice="watch the link's counters (gpuwatch topo); see docs/runbooks.md#gpunvlinkerrors",
            )
        elif e.kind is model.EventKind.ECC_UNCORRECTED:
            yield Observation(
                K.GPU_ECC_UNCORRECTED,
                subject,
                "ECC error",
                e.message,
                advice="restart what ran on the GPU; reset it to remap the row",
            )


def _daemon(s: model.Snapshot) -> Iterator[Observation]:
    for c in s.collectors:
        subject = Subject(SubjectKind.COLLECTOR, collector=c.name)
        if c.stale:
            yield Observation(
                K.COLLECTOR_STALE,
                subject,
                "stale",
                f"stale: {c.last_error or 'no run within two cadences'}",
            )
        elif c.runs_count and not c.ok:
            yield Observation(
                K.COLLECTOR_FAILING,
                subject,
                "failing",
                f"failing: {c.last_error or 'no reason given'}",
                evidence={"errors_count": float(c.errors_count)},
            )
    if s.store is not None and not s.store.ok:
        yield Observation(
            K.STORE_WRITE_ERRORS,
            Subject(SubjectKind.STORE),
            "store errors",
            f"history store: {s.store.last_error or 'writes failing'}",
            evidence={
                "write_errors_count": float(s.store.write_errors_count),
                "queue_length": float(s.store.queue_length),
            },
            advice="check the disk under the store's path (space, permissions)",
        )


# --------------------------------------------------------------------------- Triton


def _server(srv: model.TritonServerStatus) -> Iterator[Observation]:
    subject = Subject(SubjectKind.SERVER, server=srv.name)
    why = f": {srv.reason}" if srv.reason else ""
    if srv.state is model.ServerState.DOWN:
        yield Observation(K.SERVER_DOWN, subject, "down", f"down{why}")
    elif srv.state is model.ServerState.ERROR:
        yield Observation(K.SERVER_ERROR, subject, "error", f"answers what gpuwatch cannot use{why}")


def _subject_of(m: model.ModelStats) -> Subject:
    """Asked only for a model that has a finding: most models have none, at every tick."""
    return _model_subject(m.server, m.name, m.version)


@lru_cache(maxsize=4096)
def _model_subject(server: str, name: str, version: str) -> Subject:
    """One `Subject` per model version, kept: the same object tick after tick compares at once."""
    return Subject(SubjectKind.MODEL, server=server, model=name, version=version)


@lru_cache(maxsize=1024)
def _gpu_subject(index: int) -> Subject:
    return Subject(SubjectKind.GPU, gpu_index=index)


def _model(m: model.ModelStats, activity: dict[int, float | None], out: list[Observation]) -> None:
    """Appends to `out` (not a generator: most of the models at every tick have no finding, and
    this runs for each of them)."""
    state = m.state
    if state is not None and state is not _READY and state != _READY:
        why = f": {m.state_reason}" if m.state_reason else ""
        out.append(Observation(K.MODEL_NOT_READY, _subject_of(m), str(m.state).lower(), f"{m.state}{why}"))
        return
    i = m.interval
    if i is None or i.reset:
        return
    ok = i.requests_per_second or 0.0
    failed = i.failures_per_second or 0.0
    if ok == 0 and failed == 0:
        pending = m.pending_requests or 0
        if pending <= _MODEL_STALLED__PENDING_REQUESTS:
            return  # nothing finished and nothing waits: no verdict holds
        out.append(
            Observation(
                K.MODEL_STALLED,
                _subject_of(m),
                "stalled",
                f"{pending} requests pending, none finishing",
                evidence={"pending_requests": float(pending), "requests_per_second": 0.0},
                advice="look at the backend's log; the model may need a reload",
            )
        )
        return
    if m.ensemble_steps:
        return  # its failures and batches are its steps' (and Triton counts failures twice)
    total = ok + failed
    if (
        failed
        and total > _MODEL_FAILING__REQUESTS_PER_SECOND
        and failed / total > _MODEL_FAILING__FAILURE_RATIO
    ):
        share = failed / total
        reasons = ", ".join(
            f"{r} {v:.1f}/s" for r, v in sorted(i.failures_per_second_by_reason.items()) if v > 0
        )
        out.append(
            Observation(
                K.MODEL_FAILING,
                _subject_of(m),
                f"failing {share:.0%}",
                f"failing {share:.0%} of requests" + (f": {reasons}" if reasons else f" ({failed:.1f}/s)"),
                evidence={"failure_ratio": share, "failures_per_second": failed},
            )
        )
    if ok == 0:
        return
    # The gate of `_batching`'s three rules, each weaker than its rule: most models pass none.
    queue = i.queue_share_ratio
    delay = i.queue_delay_ratio
    preferred = i.preferred_batch_ratio
    if (
        (queue is not None and queue > _MODEL_QUEUE_BOUND__QUEUE_SHARE_RATIO)
        or (delay is not None and delay >= _MODEL_DELAY_WASTED__QUEUE_DELAY_RATIO)
        or (
            preferred is not None
            and preferred < _MODEL_PREFERRED_UNUSED__PREFERRED_BATCH_RATIO
            and m.preferred_batch_sizes
        )
    ):
        _batching(m, i, activity, out)


def _batching(
    m: model.ModelStats, i: model.ModelInterval, activity: dict[int, float | None], out: list[Observation]
) -> None:
    queue = i.queue_share_ratio
    batching = (m.max_batch_size or 0) > 0
    batcher_on = m.dynamic_batching is True
    # Stated by the config Triton serves, never guessed: unknown (config not read yet) is neither.
    batcher_off = batching and m.dynamic_batching is False
    if queue is not None and queue > _MODEL_QUEUE_BOUND__QUEUE_SHARE_RATIO:
        evidence = {"queue_share_ratio": queue}
        if batcher_off:
            out.append(
                Observation(
                    K.MODEL_BATCHER_OFF,
                    _subject_of(m),
                    "batcher off",
                    f"{queue:.0%} of latency queued, no dynamic batching (max_batch_size {m.max_batch_size})",
                    evidence=evidence,
                    advice="enable dynamic batching (dynamic_batching { } in config.pbtxt)",
                )
            )
        else:
            busy = [a for g in m.gpu_indexes if (a := activity.get(g)) is not None]
            gpu_busy = max(busy) if busy else None
            count = m.instance_count or 1
            if gpu_busy is not None:
                evidence["gpu_activity_ratio"] = gpu_busy
            if gpu_busy is not None and gpu_busy >= _MODEL_QUEUE_BOUND__GPU_ACTIVITY_RATIO:
                out.append(
                    Observation(
                        K.MODEL_QUEUE_BOUND,
                        _subject_of(m),
                        "GPU-bound",
                        f"{queue:.0%} of latency queued, its GPU {gpu_busy:.0%} busy",
                        evidence=evidence,
                        advice="this GPU is the limit: another GPU or a faster engine",
                    )
                )
            else:
                room = f"its GPU {gpu_busy:.0%} busy" if gpu_busy is not None else "GPU activity unknown"
                out.append(
                    Observation(
                        K.MODEL_QUEUE_BOUND,
                        _subject_of(m),
                        "queue-bound",
                        f"{queue:.0%} of latency queued, {room}",
                        evidence=evidence,
                        advice=f"add an instance (instance_group count {count} → {count + 1})",
                    )
                )
    if batching and batcher_on and m.max_queue_delay_seconds:
        delay = i.queue_delay_ratio
        fill = i.batch_fill_ratio
        if (
            delay is not None
            and fill is not None
            and delay >= _MODEL_DELAY_WASTED__QUEUE_DELAY_RATIO
            and delay <= _MODEL_DELAY_WASTED__QUEUE_DELAY_RATIO_MAX
            and fill <= _MODEL_DELAY_WASTED__BATCH_FILL_RATIO
        ):
            us = m.max_queue_delay_seconds * 1e6
            out.append(
                Observation(
                    K.MODEL_DELAY_WASTED,
                    _subject_of(m),
                    "long delay",
                    f"requests wait {delay:.0%} of the queue delay, batches {fill:.0%} full",
                    evidence={"queue_delay_ratio": delay, "batch_fill_ratio": fill},
                    advice=f"lower max_queue_delay_microseconds (now {us:.0f} µs)",
                )
            )
    formed = (
        i.average_batch_size is not None
        and i.average_batch_size >= _MODEL_PREFERRED_UNUSED__AVERAGE_BATCH_SIZE
    )
    if m.preferred_batch_sizes and i.preferred_batch_ratio is not None and formed:
        share = i.preferred_batch_ratio
        if share < _MODEL_PREFERRED_UNUSED__PREFERRED_BATCH_RATIO:
            sizes = ", ".join(str(b) for b in m.preferred_batch_sizes)
            out.append(
                Observation(
                    K.MODEL_PREFERRED_UNUSED,
                    _subject_of(m),
                    "pref unused",
                    f"{share:.0%} of batches at a preferred size ({sizes})",
                    evidence={"preferred_batch_ratio": share},
                    advice="remove preferred_batch_size (Triton advises against it for most models)",
                )
            )
