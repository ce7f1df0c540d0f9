"""Faults a demo scenario puts on the recorded Triton server: a model that fails a share of its
requests, one that stalls, one that is not ready, one whose requests queue, one configured
otherwise.

Place in the flow: `demo/scenarios.py` (the demo's fault scenarios) asks the recorded source
(`demo/triton.RecordedTriton`) for these faults; the source renders its replay as recorded
and hands each faulted model's counters through `FaultPlan.apply` just before they are served.
The real collector then sees what a real server in that trouble would show.

A fault changes what a model's counters *gain* from the moment it starts, so every counter
stays monotonic and consistent with the others (Triton's rules hold: a failed request counts in
executions and batches but not in inferences; a stalled request is pending, not counted):

- failing (share r): completed requests, inferences and their times gain (1 − r) of what the
  recording gains; the failure counter (reason BACKEND) gains r of the recorded requests;
- stalled: no counter gains anything; the pending count grows by every recorded request;
- queueing (share r): the queue time gains r of the request time, compute the rest;
- a state (UNAVAILABLE, …): the index says so, and the model leaves statistics and /metrics;
- a config change: the config the source serves for the model has keys replaced or removed
  (no `dynamic_batching`, other preferred sizes), as after an operator's edit and a reload;
- healed: the recording's own failures are not served (its failure counters gain nothing), so
  a scenario starts from models that fail only as it says.

A recorded reset (a counter that goes down) restarts the faulted counters from 0 as well.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

COMPLETING = frozenset(
    {
        "success",
        "success_ns",
        "inference",
        "queue_n",
        "queue_ns",
        "compute_input_n",
        "compute_input_ns",
        "compute_infer_n",
        "compute_infer_ns",
        "compute_output_n",
        "compute_output_ns",
    }
)
"""Counters of requests that complete: a failing model completes fewer, a stalled one none."""
COMPUTE_NS = ("compute_input_ns", "compute_infer_ns", "compute_output_ns")
GAUGES = frozenset({"pending", "last_inference"})

METRICS_ROLES = {
    "nv_inference_request_success": "success",
    "nv_inference_count": "inference",
    "nv_inference_exec_count": "execution",
    "nv_inference_request_duration_us": "success_ns",
    "nv_inference_queue_duration_us": "queue_ns",
    "nv_inference_compute_input_duration_us": "compute_input_ns",
    "nv_inference_compute_infer_duration_us": "compute_infer_ns",
    "nv_inference_compute_output_duration_us": "compute_output_ns",
    "nv_inference_pending_request_count": "pending",
}
"""/metrics family → role (durations in µs there, ns in statistics: each source on its own)."""


def metrics_role(key: str) -> str:
    family = key.split("{", 1)[0]
    if family == "nv_inference_request_failure":
        # A scenario's failures are BACKEND (a model that raises); the other reasons are kept
        # apart so that healing and stalling clear them too.
        return "fail" if 'reason="BACKEND"' in key or "reason=" not in key else "fail_other"
    return METRICS_ROLES.get(family, "other")


def stats_role(path: tuple[object, ...]) -> str:
    """The role of one leaf of a statistics entry, by its path in the entry."""
    if path[0] == "batch":
        return "execution"
    if path[0] in ("inference_count", "execution_count"):
        return "inference" if path[0] == "inference_count" else "execution"
    if path[0] in ("cache_hit", "cache_miss"):
        return "other"
    leaf, part = path[0], path[1]
    if leaf == "success":
        return "success" if part == "count" else "success_ns"
    if leaf == "fail":
        return "fail" if part == "count" else "fail_ns"
    return f"{leaf}_{'n' if part == 'count' else 'ns'}"


@dataclass
class Fault:
    kind: str
    """"heal", "fail", "stall", "queue", "state" or "config"."""
    from_seconds: float
    ratio: float = 0.0
    state: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    """For "config": keys of the model's config replaced (None removes the key; an object is
    merged into the config's object of that name)."""


@dataclass
class _Track:
    """One faulted model in one source: the last raw values seen and what was served."""

    raw: dict[object, float] = field(default_factory=dict)
    served: dict[object, float] = field(default_factory=dict)
    pending_extra: float = 0.0


class FaultPlan:
    """The faults of one recorded server, by model name. Not thread-safe: the source renders
    under its own lock."""

    def __init__(self) -> None:
        self.faults: dict[str, list[Fault]] = {}
        self._tracks: dict[tuple[str, str], _Track] = {}

    def add(self, model: str, fault: Fault) -> None:
        self.faults.setdefault(model, []).append(fault)

    def active(self, model: str, elapsed: float) -> list[Fault]:
        return [f for f in self.faults.get(model, ()) if elapsed >= f.from_seconds]

    def state(self, model: str, elapsed: float) -> str | None:
        """The state the index must report for this model, or None for the recorded one."""
        states = [f.state for f in self.active(model, elapsed) if f.kind == "state"]
        return states[-1] if states else None

    def config(self, model: str, elapsed: float, cfg: dict[str, Any]) -> dict[str, Any]:
        """The config to serve for this model: the recorded one with the active changes."""
        changes = [f.config for f in self.active(model, elapsed) if f.kind == "config"]
        if not changes:
            return cfg
        out = copy.deepcopy(cfg)
        for change in changes:
            for key, value in change.items():
                if value is None:
                    out.pop(key, None)
                elif isinstance(value, dict) and isinstance(out.get(key), dict):
                    out[key] = {**out[key], **value}
                else:
                    out[key] = value
        return out

    def apply(
        self, source: str, model: str, elapsed: float, raw: dict[object, float], roles: dict[object, str]
    ) -> dict[object, float]:
        """The values to serve for one model's counters (`raw`: as recorded, by key)."""
        faults = [f for f in self.active(model, elapsed) if f.kind not in ("state", "config")]
        if not faults:
            return raw
        track = self._tracks.get((source, model))
        if track is None:  # the fault starts now: from here on, only the gains change
            self._tracks[(source, model)] = _Track(dict(raw), dict(raw))
            return raw
        gains = {}
        for key, value in raw.items():
            before = track.raw.get(key)
            if roles.get(key) in GAUGES:
                gains[key] = value
            elif before is None or value < before:  # new, or restarted in the recording
                gains[key] = value
                track.served[key] = 0.0
            else:
                gains[key] = value - before

        def total(role: str) -> float:
            return sum(g for k, g in gains.items() if roles.get(k) == role)

        requests, request_time = total("success"), total("success_ns")
        compute_time = sum(total(r) for r in COMPUTE_NS)
        for fault in faults:
            for key, gain in list(gains.items()):
                role = roles.get(key, "other")
                if fault.kind == "heal":
                    if role in ("fail", "fail_ns", "fail_other"):
                        gains[key] = 0.0
                elif fault.kind == "fail":
                    if role in COMPLETING:
                        gains[key] = gain * (1.0 - fault.ratio)
                    elif role == "fail":
                        gains[key] = gain + fault.ratio * requests
                    elif role == "fail_ns":
                        gains[key] = gain + fault.ratio * request_time
                elif fault.kind == "stall" and role not in GAUGES and role != "other":
                    gains[key] = 0.0
                elif fault.kind == "queue":
                    if role == "queue_ns":
                        gains[key] = fault.ratio * request_time
                    elif role in COMPUTE_NS:
                        share = gain / compute_time if compute_time else 1.0 / len(COMPUTE_NS)
                        gains[key] = (1.0 - fault.ratio) * request_time * share
        stalled = any(f.kind == "stall" for f in faults)
        if stalled:
            track.pending_extra += requests
        served: dict[object, float] = {}
        for key, value in raw.items():
            role = roles.get(key, "other")
            if role == "pending":
                served[key] = value + track.pending_extra
            elif role == "last_inference":
                served[key] = track.served.get(key, value) if stalled else value
            else:
                served[key] = track.served.get(key, value) + gains[key]
        track.raw = dict(raw)
        track.served = served
        return served
