"""What one read of one GPU saw, as frozen records.

Place in the flow: `readers` build these from NVML; `TrackedGpu` keeps the latest of each;
`view` joins them, field by field, into `model.GpuSample` and `model.ProcessSample`. The fields
keep `model.GpuSample`'s names and units so that join is a plain copy that mypy checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gpuwatch import model


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A process NVML lists on a GPU (compute or graphics), before the host's facts are joined."""

    pid: int
    kind: str
    """"compute" or "graphics"."""
    used_memory_bytes: int | None
    gpu_instance_id: int | None = None
    """On a GPU in MIG mode, the instances it runs in (NVML's 0xFFFFFFFF off MIG is None)."""
    compute_instance_id: int | None = None


@dataclass(frozen=True, slots=True)
class ProcessUtilization:
    """What one process used of a GPU between two slow reads, as ratios."""

    sm_ratio: float | None
    memory_ratio: float | None
    encoder_ratio: float | None
    decoder_ratio: float | None


IDLE_PROCESS = ProcessUtilization(0.0, 0.0, 0.0, 0.0)
"""A process NVML had no sample for while it answered for others: it ran nothing."""


@dataclass(frozen=True, slots=True)
class FastReading:
    """The fields read every tick, and the processes on the GPU. All None before a first read."""

    utilization_ratio: float | None = None
    memory_utilization_ratio: float | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    memory_reserved_bytes: int | None = None
    temperature_celsius: float | None = None
    fan_speed_ratio: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    sm_clock_mhz: int | None = None
    memory_clock_mhz: int | None = None
    graphics_clock_mhz: int | None = None
    performance_state: int | None = None
    clock_event_reasons_mask: int | None = None
    clock_event_reasons: tuple[str, ...] = ()
    ecc_corrected_volatile_count: int | None = None
    ecc_uncorrected_volatile_count: int | None = None
    encoder_utilization_ratio: float | None = None
    decoder_utilization_ratio: float | None = None
    processes: tuple[GpuProcess, ...] = ()
    """Each PID once: a process that is both compute and graphics is listed as compute."""


@dataclass(frozen=True, slots=True)
class SlowReading:
    """The fields read on the slow cadence. All None before a first read.

    `gpm` and `process_utilization` are None when this read had none to give (GPM needs two
    samples; utilization may be off or unsupported): the GPU keeps the previous ones then."""

    energy_joules: float | None = None
    """Read on its own, slower cadence; carried from the previous slow read in between."""
    pcie_tx_bytes_per_second: float | None = None
    pcie_rx_bytes_per_second: float | None = None
    memory_temperature_celsius: float | None = None
    pcie_replay_count: int | None = None
    nvlink_tx_bytes_per_second: float | None = None
    nvlink_rx_bytes_per_second: float | None = None
    ecc_corrected_aggregate_count: int | None = None
    ecc_uncorrected_aggregate_count: int | None = None
    remapped_rows_correctable_count: int | None = None
    remapped_rows_uncorrectable_count: int | None = None
    remapped_rows_pending: bool | None = None
    remapped_rows_failed: bool | None = None
    gpm: model.GpmActivity | None = None
    nvlinks: tuple[model.NvlinkLink, ...] = ()
    """Each NVLink link (gpuwatch/collect/nvml/links.py); empty for a GPU without links."""
    process_utilization: Mapping[int, ProcessUtilization] | None = None
    """By PID, since the previous read."""
