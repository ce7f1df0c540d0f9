"""The GPUs' figures: state, XIDs, static facts, each tick's sample, GPM and clock-event reasons.

Place in the flow: declarations read by every face through `catalog.index` (see
`catalog.figures` for what a declaration holds). Samples and their GPM figures are kept in
history (the `gpu` tables); the static facts, the state and the XID counts are /metrics only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from gpuwatch import model
from gpuwatch.catalog import entities as e
from gpuwatch.catalog import nvml_codes
from gpuwatch.catalog.figures import (
    HUNDREDTHS,
    RATIO_STEPS,
    THOUSANDTHS,
    WHOLE,
    AnyFigure,
    Labels,
    counter,
    flag,
    gauge,
    labelled,
    one,
)

MHZ_IN_HERTZ = 1e6

_XIDS = ", ".join(str(c) for c in sorted(nvml_codes.XIDS))


def _xid_rows(item: tuple[tuple[str, str], Mapping[int, int]]) -> Iterable[tuple[Labels, int]]:
    return (((str(code),), count) for code, count in sorted(item[1].items()))


def _gpm(read: Callable[[model.GpmActivity], float | None]) -> Callable[[model.GpuSample], float | None]:
    """A GPM figure of a sample: None while the GPU has no GPM reading."""
    return lambda s: None if s.gpm is None else read(s.gpm)


def _clock_event(bit: int) -> Callable[[model.GpuSample], bool | None]:
    return lambda s: None if s.clock_event_reasons_mask is None else bool(s.clock_event_reasons_mask & bit)


STATE = (
    gauge(
        "gpu_up",
        e.GPU,
        lambda s: s.state == model.GpuState.OK,
        "1 when the GPU answers; 0 when it is lost, hung or NVML is unavailable.",
        stored=WHOLE,
    ),
    labelled(
        "gpu_state",
        e.GPU,
        ("state",),
        lambda s: one(s.state.value),
        "1 for the GPU's current state (ok, lost, hung, unavailable); the other states are not exported.",
    ),
    labelled(
        "gpu_xid_errors_total",
        e.GPU_XIDS,
        ("xid",),
        _xid_rows,
        "XID errors since the daemon started, by code. Every code of gpuwatch's XID catalogue "
        f"({_XIDS}) is exported at 0 for every GPU so that the first one counts in increase(); "
        "another code appears when it first happens.",
        metric_type="counter",
    ),
)

PODS = (
    gauge(
        "gpu_pod_info",
        e.GPU_HOLDERS,
        lambda item: 1,
        "Always 1; a Kubernetes container the kubelet allotted the GPU to (`device`: the id it "
        "allotted, the GPU's or a MIG device's UUID). A GPU's other series carry `namespace`, "
        "`pod` and `container` when exactly one container holds it.",
    ),
)

FACTS = (
    labelled(
        "gpu_info",
        e.GPU_FACTS,
        ("name", "serial", "pci_bus_id", "architecture", "cuda_compute_capability"),
        lambda d: one(d.name, d.serial, d.pci_bus_id, d.architecture, d.cuda_compute_capability),
        "Always 1; static facts about the GPU.",
    ),
    gauge(
        "gpu_power_limit_default_watts",
        e.GPU_FACTS,
        lambda d: d.power_limit_default_watts,
        "The power limit the board ships with.",
        unit="watts",
    ),
    gauge(
        "gpu_power_limit_min_watts",
        e.GPU_FACTS,
        lambda d: d.power_limit_min_watts,
        "The lowest power limit that can be set.",
        unit="watts",
    ),
    gauge(
        "gpu_power_limit_max_watts",
        e.GPU_FACTS,
        lambda d: d.power_limit_max_watts,
        "The highest power limit that can be set.",
        unit="watts",
    ),
    gauge(
        "gpu_sm_clock_max_hertz",
        e.GPU_FACTS,
        lambda d: d.max_sm_clock_mhz,
        "Highest SM clock.",
        unit="hertz",
        metric_scale=MHZ_IN_HERTZ,
    ),
    gauge(
        "gpu_memory_clock_max_hertz",
        e.GPU_FACTS,
        lambda d: d.max_memory_clock_mhz,
        "Highest memory clock.",
        unit="hertz",
        metric_scale=MHZ_IN_HERTZ,
    ),
    gauge(
        "gpu_graphics_clock_max_hertz",
        e.GPU_FACTS,
        lambda d: d.max_graphics_clock_mhz,
        "Highest graphics clock.",
        unit="hertz",
        metric_scale=MHZ_IN_HERTZ,
    ),
    gauge(
        "gpu_temperature_slowdown_celsius",
        e.GPU_FACTS,
        lambda d: d.temperature_slowdown_celsius,
        "Temperature at which the GPU slows itself down.",
        unit="celsius",
    ),
    gauge(
        "gpu_temperature_shutdown_celsius",
        e.GPU_FACTS,
        lambda d: d.temperature_shutdown_celsius,
        "Temperature at which the GPU shuts down.",
        unit="celsius",
    ),
    gauge("gpu_ecc_enabled", e.GPU_FACTS, lambda d: flag(d.ecc_enabled), "1 when ECC is on."),
    gauge("gpu_mig_enabled", e.GPU_FACTS, lambda d: flag(d.mig_enabled), "1 when MIG mode is on."),
    gauge(
        "gpu_persistence_mode_enabled",
        e.GPU_FACTS,
        lambda d: flag(d.persistence_mode_enabled),
        "1 when persistence mode is on.",
    ),
    gauge(
        "gpu_pcie_link_generation_max",
        e.GPU_FACTS,
        lambda d: d.pcie_link_generation,
        "Highest PCIe generation of the link.",
    ),
    gauge("gpu_pcie_link_width_max", e.GPU_FACTS, lambda d: d.pcie_link_width, "Widest PCIe link (lanes)."),
    gauge("gpu_nvlink_links", e.GPU_FACTS, lambda d: d.nvlink_link_count, "NVLink links on the GPU."),
    gauge(
        "gpu_gpm_supported",
        e.GPU_FACTS,
        lambda d: flag(d.gpm_supported),
        "1 when GPU Performance Monitoring (Hopper and later) works.",
    ),
)

SAMPLE = (
    gauge(
        "gpu_utilization_ratio",
        e.GPU,
        lambda s: s.utilization_ratio,
        "Share of time a kernel ran (NVML's GPU utilization; see the GPM families).",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_memory_utilization_ratio",
        e.GPU,
        lambda s: s.memory_utilization_ratio,
        "Share of time the memory controller was busy.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_memory_total_bytes",
        e.GPU,
        lambda s: s.memory_total_bytes,
        "Memory on the GPU.",
        unit="bytes",
        stored=WHOLE,
    ),
    gauge(
        "gpu_memory_used_bytes",
        e.GPU,
        lambda s: s.memory_used_bytes,
        "Memory allocated by processes.",
        unit="bytes",
        stored=WHOLE,
    ),
    gauge(
        "gpu_memory_free_bytes",
        e.GPU,
        lambda s: s.memory_free_bytes,
        "Memory free.",
        unit="bytes",
        stored=WHOLE,
    ),
    gauge(
        "gpu_memory_reserved_bytes",
        e.GPU,
        lambda s: s.memory_reserved_bytes,
        "Memory reserved by the driver.",
        unit="bytes",
        stored=WHOLE,
    ),
    gauge(
        "gpu_temperature_celsius",
        e.GPU,
        lambda s: s.temperature_celsius,
        "GPU core temperature.",
        unit="celsius",
        stored=HUNDREDTHS,
    ),
    gauge(
        "gpu_memory_temperature_celsius",
        e.GPU,
        lambda s: s.memory_temperature_celsius,
        "HBM temperature.",
        unit="celsius",
        stored=HUNDREDTHS,
    ),
    gauge(
        "gpu_fan_speed_ratio",
        e.GPU,
        lambda s: s.fan_speed_ratio,
        "Fan speed as a share of its maximum.",
        stored=RATIO_STEPS,
    ),
    gauge("gpu_power_watts", e.GPU, lambda s: s.power_watts, "Power draw.", unit="watts", stored=THOUSANDTHS),
    gauge(
        "gpu_power_limit_watts",
        e.GPU,
        lambda s: s.power_limit_watts,
        "The enforced power limit now.",
        unit="watts",
        stored=THOUSANDTHS,
    ),
    counter(
        "gpu_energy_joules",
        e.GPU,
        lambda s: s.energy_joules,
        "Energy consumed since the driver was loaded.",
        unit="joules",
        stored=THOUSANDTHS,
    ),
    gauge(
        "gpu_sm_clock_mhz",
        e.GPU,
        lambda s: s.sm_clock_mhz,
        "SM clock.",
        unit="hertz",
        stored=WHOLE,
        exported_as="gpu_sm_clock_hertz",
        metric_scale=MHZ_IN_HERTZ,
    ),
    gauge(
        "gpu_memory_clock_mhz",
        e.GPU,
        lambda s: s.memory_clock_mhz,
        "Memory clock.",
        unit="hertz",
        stored=WHOLE,
        exported_as="gpu_memory_clock_hertz",
        metric_scale=MHZ_IN_HERTZ,
    ),
    gauge(
        "gpu_graphics_clock_mhz",
        e.GPU,
        lambda s: s.graphics_clock_mhz,
        "Graphics clock.",
        unit="hertz",
        stored=WHOLE,
        exported_as="gpu_graphics_clock_hertz",
        metric_scale=MHZ_IN_HERTZ,
    ),
    gauge(
        "gpu_performance_state",
        e.GPU,
        lambda s: s.performance_state,
        "P-state number; 0 is P0, maximum performance.",
        stored=WHOLE,
    ),
    gauge(
        "gpu_clock_event_reasons_mask",
        e.GPU,
        lambda s: s.clock_event_reasons_mask,
        "NVML's clock-event (throttle) reasons bitmask; see the gpu_clock_event_* families.",
    ),
    counter(
        "gpu_ecc_corrected_volatile_count",
        e.GPU,
        lambda s: s.ecc_corrected_volatile_count,
        "Corrected ECC errors since the driver was loaded.",
        stored=WHOLE,
    ),
    counter(
        "gpu_ecc_uncorrected_volatile_count",
        e.GPU,
        lambda s: s.ecc_uncorrected_volatile_count,
        "Uncorrected ECC errors since the driver was loaded.",
        stored=WHOLE,
    ),
    counter(
        "gpu_ecc_corrected_aggregate_count",
        e.GPU,
        lambda s: s.ecc_corrected_aggregate_count,
        "Corrected ECC errors over the GPU's life.",
        stored=WHOLE,
    ),
    counter(
        "gpu_ecc_uncorrected_aggregate_count",
        e.GPU,
        lambda s: s.ecc_uncorrected_aggregate_count,
        "Uncorrected ECC errors over the GPU's life.",
        stored=WHOLE,
    ),
    counter(
        "gpu_remapped_rows_correctable_count",
        e.GPU,
        lambda s: s.remapped_rows_correctable_count,
        "Memory rows remapped after correctable errors.",
        stored=WHOLE,
    ),
    counter(
        "gpu_remapped_rows_uncorrectable_count",
        e.GPU,
        lambda s: s.remapped_rows_uncorrectable_count,
        "Memory rows remapped after uncorrectable errors.",
        stored=WHOLE,
    ),
    gauge(
        "gpu_remapped_rows_pending",
        e.GPU,
        lambda s: s.remapped_rows_pending,
        "1 when a row remap waits for a GPU reset.",
        stored=WHOLE,
    ),
    gauge(
        "gpu_remapped_rows_failed",
        e.GPU,
        lambda s: s.remapped_rows_failed,
        "1 when a row remap failed: the GPU needs service.",
        stored=WHOLE,
    ),
    gauge(
        "gpu_encoder_utilization_ratio",
        e.GPU,
        lambda s: s.encoder_utilization_ratio,
        "Video encoder utilization.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_decoder_utilization_ratio",
        e.GPU,
        lambda s: s.decoder_utilization_ratio,
        "Video decoder utilization.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_pcie_tx_bytes_per_second",
        e.GPU,
        lambda s: s.pcie_tx_bytes_per_second,
        "PCIe transmit throughput.",
        unit="bytes per second",
        stored=WHOLE,
    ),
    gauge(
        "gpu_pcie_rx_bytes_per_second",
        e.GPU,
        lambda s: s.pcie_rx_bytes_per_second,
        "PCIe receive throughput.",
        unit="bytes per second",
        stored=WHOLE,
    ),
    counter(
        "gpu_pcie_replay_count",
        e.GPU,
        lambda s: s.pcie_replay_count,
        "PCIe replays (link errors retried).",
        stored=WHOLE,
    ),
    gauge(
        "gpu_nvlink_tx_bytes_per_second",
        e.GPU,
        lambda s: s.nvlink_tx_bytes_per_second,
        "NVLink transmit throughput, all links.",
        unit="bytes per second",
        stored=WHOLE,
    ),
    gauge(
        "gpu_nvlink_rx_bytes_per_second",
        e.GPU,
        lambda s: s.nvlink_rx_bytes_per_second,
        "NVLink receive throughput, all links.",
        unit="bytes per second",
        stored=WHOLE,
    ),
)

# GPM's own PCIe and NVLink rates are not declared: they are the sample's pcie_*/nvlink_* figures.
GPM = (
    gauge(
        "gpu_graphics_activity_ratio",
        e.GPU,
        _gpm(lambda g: g.graphics_activity_ratio),
        "GPM: graphics engine activity.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_sm_activity_ratio",
        e.GPU,
        _gpm(lambda g: g.sm_activity_ratio),
        "GPM: share of time SMs had work.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_sm_occupancy_ratio",
        e.GPU,
        _gpm(lambda g: g.sm_occupancy_ratio),
        "GPM: warps resident over the SMs' capacity.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_tensor_activity_ratio",
        e.GPU,
        _gpm(lambda g: g.tensor_activity_ratio),
        "GPM: tensor cores busy (any precision).",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_tensor_hmma_activity_ratio",
        e.GPU,
        _gpm(lambda g: g.tensor_hmma_activity_ratio),
        "GPM: tensor cores busy with half-precision MMA.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_tensor_imma_activity_ratio",
        e.GPU,
        _gpm(lambda g: g.tensor_imma_activity_ratio),
        "GPM: tensor cores busy with integer MMA.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_tensor_dfma_activity_ratio",
        e.GPU,
        _gpm(lambda g: g.tensor_dfma_activity_ratio),
        "GPM: tensor cores busy with FP64 MMA.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_dram_bandwidth_ratio",
        e.GPU,
        _gpm(lambda g: g.dram_bandwidth_ratio),
        "GPM: DRAM bandwidth used over its peak.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_fp16_activity_ratio",
        e.GPU,
        _gpm(lambda g: g.fp16_activity_ratio),
        "GPM: FP16 pipe activity.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_fp32_activity_ratio",
        e.GPU,
        _gpm(lambda g: g.fp32_activity_ratio),
        "GPM: FP32 pipe activity.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_fp64_activity_ratio",
        e.GPU,
        _gpm(lambda g: g.fp64_activity_ratio),
        "GPM: FP64 pipe activity.",
        stored=RATIO_STEPS,
    ),
    gauge(
        "gpu_integer_activity_ratio",
        e.GPU,
        _gpm(lambda g: g.integer_activity_ratio),
        "GPM: integer pipe activity.",
        stored=RATIO_STEPS,
    ),
)

CLOCK_EVENTS = tuple(
    gauge(
        f"gpu_clock_event_{reason.name}",
        e.GPU,
        _clock_event(reason.bit),
        f"1 while the clocks are held down by: {reason.words}.",
        stored=WHOLE,
    )
    for reason in nvml_codes.CLOCK_EVENT_REASONS
    if reason.slows_work
)
"""One 0/1 figure per reason that costs performance (idle and settings do not)."""

FIGURES: tuple[AnyFigure, ...] = STATE + PODS + FACTS + SAMPLE + GPM + CLOCK_EVENTS
