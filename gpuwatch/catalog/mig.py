"""The figures of each MIG device of a GPU in MIG mode: memory and GPM per GPU instance.

Place in the flow: declarations read by every face through `catalog.index` (see
`catalog.figures` for what a declaration holds); memory and GPM are kept in history (the
`mig` tables, one row per MIG device and tick), the info series is /metrics only; labelled by
`catalog.entities.MIG` (the parent's `gpu`/`uuid` plus `gpu_instance`, `compute_instance`,
`mig_profile`, `mig_uuid`). What NVML does not give per MIG device (utilization, encoder and
decoder, clocks, power, temperature) is not declared here: those are the parent GPU's figures.
"""

from __future__ import annotations

from collections.abc import Callable

from gpuwatch import model
from gpuwatch.catalog import entities as e
from gpuwatch.catalog.figures import RATIO_STEPS, WHOLE, gauge


def _gpm(read: Callable[[model.GpmActivity], float | None]) -> Callable[[model.MigDevice], float | None]:
    """A GPM figure of a MIG device's GPU instance: None while it has no GPM reading."""
    return lambda d: None if d.gpm is None else read(d.gpm)


FIGURES = (
    gauge(
        "mig_device_info",
        e.MIG,
        lambda d: 1,
        "Always 1; one series per MIG device, with its instance ids, profile and MIG UUID.",
    ),
    gauge(
        "mig_memory_total_bytes",
        e.MIG,
        lambda d: d.memory_total_bytes,
        "Memory of the MIG device (its GPU instance's share).",
        unit="bytes",
        stored=WHOLE,
    ),
    gauge(
        "mig_memory_used_bytes",
        e.MIG,
        lambda d: d.memory_used_bytes,
        "Memory in use on the MIG device.",
        unit="bytes",
        stored=WHOLE,
    ),
    gauge(
        "mig_memory_free_bytes",
        e.MIG,
        lambda d: d.memory_free_bytes,
        "Memory free on the MIG device.",
        unit="bytes",
        stored=WHOLE,
    ),
    gauge(
        "mig_graphics_activity_ratio",
        e.MIG,
        _gpm(lambda g: g.graphics_activity_ratio),
        "GPM of the GPU instance: graphics engine activity.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "mig_sm_activity_ratio",
        e.MIG,
        _gpm(lambda g: g.sm_activity_ratio),
        "GPM of the GPU instance: share of time its SMs had work.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "mig_sm_occupancy_ratio",
        e.MIG,
        _gpm(lambda g: g.sm_occupancy_ratio),
        "GPM of the GPU instance: warps resident over its SMs' capacity.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "mig_tensor_activity_ratio",
        e.MIG,
        _gpm(lambda g: g.tensor_activity_ratio),
        "GPM of the GPU instance: tensor cores busy (any precision).",
        stored=RATIO_STEPS,
    ),
    gauge(
        "mig_dram_bandwidth_ratio",
        e.MIG,
        _gpm(lambda g: g.dram_bandwidth_ratio),
        "GPM of the GPU instance: DRAM bandwidth used over its peak.",
        stored=RATIO_STEPS,
    ),
)
