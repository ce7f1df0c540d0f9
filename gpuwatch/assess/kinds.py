"""Every kind of finding, declared once: severity, words, thresholds, hold times and sources.

Place in the flow: read by `rules` (the thresholds), `stage` (the hold times), docs/findings.md
and tests/test_findings_alerts.py, which holds each threshold equal to its shipped alert rule's.

A condition must hold for `onset_seconds` before its finding begins and be clear for
`clear_seconds` before it ends, so a finding neither flickers nor lingers. The alert rules judge
over longer windows (`for: 5m`) because they page people; the findings show on screen, so they
begin sooner, but on the same thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpuwatch.model import FindingKind, Severity

K = FindingKind


@dataclass(frozen=True, slots=True)
class KindRule:
    kind: FindingKind
    severity: Severity
    title: str
    """What the kind is, in a few words: "queue-bound, GPU has room"."""
    onset_seconds: float
    clear_seconds: float
    thresholds: dict[str, float] = field(default_factory=dict)
    """Named thresholds the rule compares figures against (units in names)."""
    alert: str | None = None
    """The shipped alert rule (prometheus/gpuwatch.rules.yml) that judges the same condition."""
    source: str = ""
    """Where the rule comes from: NVIDIA's or Triton's documentation, or our measurement."""


QUEUE_SHARE_RATIO = 0.5
"""Queue time over request time above which a model is queue-bound (TritonModelQueueShareHigh)."""

RULES: dict[FindingKind, KindRule] = {
    r.kind: r
    for r in (
        KindRule(
            K.GPU_LOST,
            Severity.CRITICAL,
            "GPU lost",
            0,
            10,
            alert="GpuLost",
            source="NVML: GPU_IS_LOST / Unknown (nvml.h); XID 79",
        ),
        KindRule(
            K.GPU_HUNG,
            Severity.CRITICAL,
            "GPU hung",
            0,
            10,
            alert="GpuHung",
            source="our deadline on NVML calls (nvml.call_timeout_seconds)",
        ),
        KindRule(
            K.GPU_XID_CRITICAL,
            Severity.CRITICAL,
            "critical XID",
            0,
            900,
            thresholds={"xid_window_seconds": 900},
            alert="GpuXidCritical",
            source="NVIDIA XID catalog (catalog/nvml_codes.py CRITICAL_XIDS)",
        ),
        KindRule(
            K.GPU_ECC_UNCORRECTED,
            Severity.CRITICAL,
            "uncorrectable ECC",
            0,
            900,
            thresholds={"ecc_window_seconds": 900},
            alert="GpuEccUncorrectedErrors",
            source="NVML ECC counters; NVIDIA GPU memory error management guide",
        ),
        KindRule(
            K.GPU_ROW_REMAP_PENDING,
            Severity.WARNING,
            "row remap pending",
            0,
            0,
            alert="GpuRowRemapPending",
            source="NVIDIA GPU memory error management guide",
        ),
        KindRule(
            K.GPU_ROW_REMAP_FAILED,
            Severity.CRITICAL,
            "row remap failed",
            0,
            0,
            alert="GpuRowRemapFailed",
            source="NVIDIA GPU memory error management guide",
        ),
        KindRule(
            K.GPU_NVLINK_DOWN,
            Severity.CRITICAL,
            "NVLink link down",
            0,
            30,
            alert="GpuNvlinkDown",
            source="NVML: nvmlDeviceGetNvLinkState; an NVLinked GPU's links are all up in service",
        ),
        KindRule(
            K.GPU_NVLINK_ERRORS,
            Severity.WARNING,
            "NVLink errors rising",
            0,
            900,
            thresholds={"nvlink_errors_window_seconds": 900},
            alert="GpuNvlinkErrors",
            source="NVML: nvmlDeviceGetNvLinkErrorCounter (CRC flit, replay, recovery)",
        ),
        KindRule(
            K.GPU_THERMAL_SLOWDOWN,
            Severity.WARNING,
            "thermal slowdown",
            30,
            30,
            alert="GpuThermalSlowdown",
            source="NVML clock event reasons (nvml.h)",
        ),
        KindRule(
            K.GPU_HARDWARE_SLOWDOWN,
            Severity.WARNING,
            "hardware slowdown",
            30,
            30,
            alert="GpuHardwareSlowdown",
            source="NVML clock event reasons (nvml.h)",
        ),
        KindRule(
            K.GPU_POWER_CAPPED,
            Severity.INFO,
            "power capped",
            30,
            30,
            source="NVML clock event reasons (nvml.h); the alert averages over 15 min instead",
        ),
        KindRule(
            K.GPU_MEMORY_NEARLY_FULL,
            Severity.WARNING,
            "memory nearly full",
            30,
            30,
            thresholds={"memory_used_ratio": 0.95},
            alert="GpuMemoryNearlyFull",
            source="our choice: an allocation or model load above it is likely to fail",
        ),
        KindRule(
            K.NVML_UNAVAILABLE,
            Severity.CRITICAL,
            "NVML unavailable",
            0,
            5,
            alert="GpuwatchNvmlUnavailable",
            source="NVML init and NVML_ERROR_* (nvml.h)",
        ),
        KindRule(
            K.SERVER_DOWN,
            Severity.CRITICAL,
            "server down",
            5,
            5,
            alert="TritonServerDown",
            source="Triton's /v2/health/live and /v2/health/ready",
        ),
        KindRule(
            K.SERVER_ERROR,
            Severity.CRITICAL,
            "server answers garbage",
            5,
            5,
            alert="TritonServerDown",
            source="gpuwatch's parsers (collect/triton/parse_*)",
        ),
        KindRule(
            K.COLLECTOR_FAILING,
            Severity.WARNING,
            "collector failing",
            5,
            5,
            alert="GpuwatchCollectorFailing",
            source="the engine's job health",
        ),
        KindRule(
            K.COLLECTOR_STALE,
            Severity.WARNING,
            "collector stale",
            0,
            5,
            alert="GpuwatchCollectorStale",
            source="the engine's job health (two cadences)",
        ),
        KindRule(
            K.STORE_WRITE_ERRORS,
            Severity.WARNING,
            "store write errors",
            0,
            30,
            alert="GpuwatchStoreWriteErrors",
            source="the store writer's health",
        ),
        KindRule(
            K.MODEL_NOT_READY,
            Severity.CRITICAL,
            "not ready",
            30,
            5,
            alert="TritonModelNotReady",
            source="Triton's model repository index (model states, model_management.md)",
        ),
        KindRule(
            K.MODEL_FAILING,
            Severity.CRITICAL,
            "failing",
            10,
            30,
            thresholds={"failure_ratio": 0.1, "requests_per_second": 0.1},
            alert="TritonModelFailureRatioHigh",
            source="Triton's request_failure / request_success statistics (statistics extension)",
        ),
        KindRule(
            K.MODEL_STALLED,
            Severity.CRITICAL,
            "stalled",
            10,
            5,
            thresholds={"pending_requests": 0},
            alert="TritonModelNoSuccessfulInferences",
            source="Triton's pending request count (nv_inference_pending_request_count)",
        ),
        KindRule(
            K.MODEL_QUEUE_BOUND,
            Severity.WARNING,
            "queue-bound (GPU room or saturated)",
            15,
            15,
            thresholds={"queue_share_ratio": QUEUE_SHARE_RATIO, "gpu_activity_ratio": 0.8},
            alert="TritonModelQueueShareHigh",
            source="Triton optimization.md (model instances); the 0.8 GPU activity that tells room from "
            "saturated is our choice, not yet measured",
        ),
        KindRule(
            K.MODEL_DELAY_WASTED,
            Severity.INFO,
            "delay wasted",
            30,
            30,
            thresholds={"queue_delay_ratio": 0.8, "queue_delay_ratio_max": 1.5, "batch_fill_ratio": 0.25},
            source="Triton batcher.md (dynamic batcher, delayed batching)",
        ),
        KindRule(
            K.MODEL_BATCHER_OFF,
            Severity.WARNING,
            "batcher off",
            15,
            15,
            thresholds={"queue_share_ratio": QUEUE_SHARE_RATIO},
            alert="TritonModelQueueShareHigh",
            source="Triton batcher.md and optimization.md (dynamic batcher)",
        ),
        KindRule(
            K.MODEL_PREFERRED_UNUSED,
            Severity.INFO,
            "preferred sizes unused",
            60,
            60,
            thresholds={"preferred_batch_ratio": 0.2, "average_batch_size": 2},
            source="Triton batcher.md (preferred_batch_size: not advised for most models)",
        ),
    )
}


def rule(kind: FindingKind) -> KindRule:
    return RULES[kind]
