"""One node in one line: what the cluster view shows of each node's snapshot.

Place in the flow: snapshot → **summary** → cluster view rows. Pure: the busiest and hottest
GPU, total power against total cap, models ready, failures/s, GPUs not answering, and the
node's findings (counted, and in words), by which the cluster view sorts its nodes (`rank`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpuwatch import model


@dataclass(frozen=True, slots=True)
class NodeSummary:
    hostname: str
    gpus: int
    busiest: tuple[int, float] | None
    """(GPU index, utilization ratio) of the busiest GPU that reports utilization."""
    hottest: tuple[int, float] | None
    """(GPU index, °C) of the hottest GPU."""
    power_watts: float | None
    power_limit_watts: float | None
    models_ready: int
    models_total: int
    failures_per_second: float | None
    lost_gpus: int
    """GPUs lost, hung or unreadable at this tick."""
    note: str | None
    """Why there is no GPU data (NVML's status), else None."""
    critical: int = 0
    """The node's findings (gpuwatch/assess/) of each severity: what the cluster view counts."""
    warnings: int = 0
    failing: bool = False
    """A model of the node has a `model_failing` finding (its Fail/s is marked only then)."""
    looks: tuple[str, ...] = ()
    """The node's critical and warning findings, most severe first, each in a few words:
    "GPU 3 LOST", "bert-large:2 failing 16%" (info findings are counted nowhere here)."""


def summarize(snapshot: model.Snapshot) -> NodeSummary:
    ok = [g for g in snapshot.gpus if g.state == model.GpuState.OK]
    utils = [(g.index, g.utilization_ratio) for g in ok if g.utilization_ratio is not None]
    temps = [(g.index, g.temperature_celsius) for g in ok if g.temperature_celsius is not None]
    powers = [g.power_watts for g in ok if g.power_watts is not None]
    limits = [g.power_limit_watts for g in ok if g.power_limit_watts is not None]
    models = [m for server in snapshot.triton for m in server.models]
    failures = [  # each request once: an ensemble's failures are its steps' (counted twice by Triton)
        m.interval.failures_per_second
        for m in models
        if m.interval and m.interval.failures_per_second is not None and not m.ensemble_steps
    ]
    found = snapshot.findings
    return NodeSummary(
        hostname=snapshot.node.hostname,
        gpus=len(snapshot.gpus),
        busiest=max(utils, key=lambda x: (x[1], -x[0])) if utils else None,
        hottest=max(temps, key=lambda x: (x[1], -x[0])) if temps else None,
        power_watts=sum(powers) if powers else None,
        power_limit_watts=sum(limits) if limits else None,
        models_ready=sum(1 for m in models if m.state == model.ModelState.READY),
        models_total=len(models),
        failures_per_second=sum(failures) if failures else None,
        lost_gpus=len(snapshot.gpus) - len(ok),
        note=snapshot.nvml_status if not snapshot.gpus else None,
        critical=sum(1 for f in found if f.severity is model.Severity.CRITICAL),
        warnings=sum(1 for f in found if f.severity is model.Severity.WARNING),
        failing=any(f.kind is model.FindingKind.MODEL_FAILING for f in found),
        looks=tuple(_words(f) for f in found if f.severity is not model.Severity.INFO),
    )


def _words(f: model.Finding) -> str:
    if f.subject.kind is model.SubjectKind.NODE:
        return f.words
    return f"{f.subject.label()} {f.words}"


def rank(summary: NodeSummary | None, down: bool) -> tuple[int, int, int]:
    """Where a node sorts in the cluster view (smallest first): a node that is down, then by
    its critical findings, then by its warnings, most first; a node not heard from yet last."""
    if down:
        return (0, 0, 0)
    if summary is None:
        return (2, 0, 0)
    return (1, -summary.critical, -summary.warnings)
