"""dcgm-exporter's names for the GPU figures: a table from catalog figure to DCGM field.

Place in the flow: beside the declarations, read by `serve.metrics` only while `[metrics]
dcgm_exporter_names` is on, and by `catalog.doc_dcgm` for docs/dcgm.md. Nothing here reads a
GPU: each row names a figure already declared in `catalog.gpu` (its reader is the one
/metrics and the history use) and says how dcgm-exporter spells, scales and types it. The
families are exported under dcgm-exporter's labels (`entities.DCGM_GPU`) in its legacy units:
MiB, MHz, W, mJ, °C, percent for the `DEV` utilizations and a 0–1 ratio for `PROF`.

`DCGM_FI_DEV_XID_ERRORS` is dcgm-exporter's last-value gauge: the code of the GPU's latest XID
(0 before the first), from the same XID events `gpu_xid_errors_total` counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from gpuwatch import model
from gpuwatch.catalog import entities as e
from gpuwatch.catalog.figures import Figure, MetricType, Value, as_number
from gpuwatch.catalog.index import BY_NAME

MIB = 1 << 20

Closeness = Literal["same", "close", "stand-in"]
"""How close gpuwatch's figure is to the DCGM field: `same` (the same NVML reading DCGM itself
makes, so the values agree), `close` (the same quantity read another way: another averaging or
another API), `stand-in` (a GPM metric standing in for a DCGM profiling field)."""


@dataclass(frozen=True, slots=True)
class DcgmField:
    """One dcgm-exporter family: the DCGM field and the catalog figure it is served from."""

    field_id: int
    name: str
    figure: str
    """The catalog figure (`catalog.index.BY_NAME`) the value comes from."""
    convert: Callable[[float], float]
    """gpuwatch's value (catalog unit) → DCGM's (legacy unit)."""
    unit: str
    metric_type: MetricType
    help: str
    """The family's help, in dcgm-exporter's words."""
    closeness: Closeness
    note: str = ""
    """What differs, where something does."""


def _same(v: float) -> float:
    return v


def _percent(v: float) -> float:
    return round(v * 100, 6)


def _mib(v: float) -> float:
    return float(int(v) // MIB)


def _millijoules(v: float) -> float:
    return round(v * 1000, 3)


GPM_NOTE = "GPM (NVML, Hopper and later) over the slow cadence; DCGM reads its profiling module"

PCIE_NOTE = (
    "NVML's PCIe throughput (a 20 ms sample on the slow cadence); DCGM averages its profiling counters"
)

FIELDS = (
    DcgmField(
        100,
        "DCGM_FI_DEV_SM_CLOCK",
        "gpu_sm_clock_mhz",
        _same,
        "MHz",
        "gauge",
        "SM clock frequency (in MHz).",
        "same",
    ),
    DcgmField(
        101,
        "DCGM_FI_DEV_MEM_CLOCK",
        "gpu_memory_clock_mhz",
        _same,
        "MHz",
        "gauge",
        "Memory clock frequency (in MHz).",
        "same",
    ),
    DcgmField(
        112,
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        "gpu_clock_event_reasons_mask",
        _same,
        "",
        "gauge",
        "Current clock throttle reasons (bitmask).",
        "same",
        "NVML's clock-event reasons mask; DCGM renamed the field DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
    ),
    DcgmField(
        140,
        "DCGM_FI_DEV_MEMORY_TEMP",
        "gpu_memory_temperature_celsius",
        _same,
        "°C",
        "gauge",
        "Memory temperature (in C).",
        "same",
    ),
    DcgmField(
        150,
        "DCGM_FI_DEV_GPU_TEMP",
        "gpu_temperature_celsius",
        _same,
        "°C",
        "gauge",
        "GPU temperature (in C).",
        "same",
    ),
    DcgmField(
        155, "DCGM_FI_DEV_POWER_USAGE", "gpu_power_watts", _same, "W", "gauge", "Power draw (in W).", "same"
    ),
    DcgmField(
        156,
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "gpu_energy_joules",
        _millijoules,
        "mJ",
        "counter",
        "Total energy consumption since boot (in mJ).",
        "same",
        "read every energy_interval_seconds (30 s by default), DCGM reads it every scrape",
    ),
    DcgmField(
        160,
        "DCGM_FI_DEV_POWER_MGMT_LIMIT",
        "gpu_power_limit_watts",
        _same,
        "W",
        "gauge",
        "Power management limit (in W).",
        "same",
    ),
    DcgmField(
        190,
        "DCGM_FI_DEV_PSTATE",
        "gpu_performance_state",
        _same,
        "",
        "gauge",
        "Performance state (P-State) 0-15. 0=highest.",
        "same",
    ),
    DcgmField(
        191,
        "DCGM_FI_DEV_FAN_SPEED",
        "gpu_fan_speed_ratio",
        _percent,
        "%",
        "gauge",
        "Fan speed (in 0-100%).",
        "same",
    ),
    DcgmField(
        202,
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "gpu_pcie_replay_count",
        _same,
        "",
        "counter",
        "Total number of PCIe retries.",
        "same",
    ),
    DcgmField(
        203,
        "DCGM_FI_DEV_GPU_UTIL",
        "gpu_utilization_ratio",
        _percent,
        "%",
        "gauge",
        "GPU utilization (in %).",
        "same",
    ),
    DcgmField(
        204,
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "gpu_memory_utilization_ratio",
        _percent,
        "%",
        "gauge",
        "Memory utilization (in %).",
        "same",
    ),
    DcgmField(
        206,
        "DCGM_FI_DEV_ENC_UTIL",
        "gpu_encoder_utilization_ratio",
        _percent,
        "%",
        "gauge",
        "Encoder utilization (in %).",
        "same",
    ),
    DcgmField(
        207,
        "DCGM_FI_DEV_DEC_UTIL",
        "gpu_decoder_utilization_ratio",
        _percent,
        "%",
        "gauge",
        "Decoder utilization (in %).",
        "same",
    ),
    DcgmField(
        230,
        "DCGM_FI_DEV_XID_ERRORS",
        "gpu_xid_errors_total",
        _same,
        "",
        "gauge",
        "Value of the last XID error encountered.",
        "same",
        "the code of the latest XID since the daemon started (0 before the first); "
        "the counts by code are gpuwatch_gpu_xid_errors_total",
    ),
    DcgmField(
        250,
        "DCGM_FI_DEV_FB_TOTAL",
        "gpu_memory_total_bytes",
        _mib,
        "MiB",
        "gauge",
        "Total framebuffer memory (in MiB).",
        "same",
    ),
    DcgmField(
        251,
        "DCGM_FI_DEV_FB_FREE",
        "gpu_memory_free_bytes",
        _mib,
        "MiB",
        "gauge",
        "Framebuffer memory free (in MiB).",
        "same",
    ),
    DcgmField(
        252,
        "DCGM_FI_DEV_FB_USED",
        "gpu_memory_used_bytes",
        _mib,
        "MiB",
        "gauge",
        "Framebuffer memory used (in MiB).",
        "same",
    ),
    DcgmField(
        253,
        "DCGM_FI_DEV_FB_RESERVED",
        "gpu_memory_reserved_bytes",
        _mib,
        "MiB",
        "gauge",
        "Framebuffer memory reserved (in MiB).",
        "same",
    ),
    DcgmField(
        310,
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "gpu_ecc_corrected_volatile_count",
        _same,
        "",
        "counter",
        "Total number of single-bit volatile ECC errors.",
        "same",
        "NVML's corrected count, which DCGM calls single-bit",
    ),
    DcgmField(
        311,
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "gpu_ecc_uncorrected_volatile_count",
        _same,
        "",
        "counter",
        "Total number of double-bit volatile ECC errors.",
        "same",
        "NVML's uncorrected count, which DCGM calls double-bit",
    ),
    DcgmField(
        312,
        "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
        "gpu_ecc_corrected_aggregate_count",
        _same,
        "",
        "counter",
        "Total number of single-bit persistent ECC errors.",
        "same",
    ),
    DcgmField(
        313,
        "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
        "gpu_ecc_uncorrected_aggregate_count",
        _same,
        "",
        "counter",
        "Total number of double-bit persistent ECC errors.",
        "same",
    ),
    DcgmField(
        393,
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "gpu_remapped_rows_uncorrectable_count",
        _same,
        "",
        "counter",
        "Number of remapped rows for uncorrectable errors.",
        "same",
    ),
    DcgmField(
        394,
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "gpu_remapped_rows_correctable_count",
        _same,
        "",
        "counter",
        "Number of remapped rows for correctable errors.",
        "same",
    ),
    DcgmField(
        395,
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        "gpu_remapped_rows_failed",
        _same,
        "",
        "gauge",
        "Whether remapping of rows has failed.",
        "same",
    ),
    DcgmField(
        396,
        "DCGM_FI_DEV_ROW_REMAP_PENDING",
        "gpu_remapped_rows_pending",
        _same,
        "",
        "gauge",
        "Whether remapping of rows is pending.",
        "same",
    ),
    DcgmField(
        1001,
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "gpu_graphics_activity_ratio",
        _same,
        "ratio",
        "gauge",
        "Ratio of time the graphics engine is active.",
        "stand-in",
        GPM_NOTE,
    ),
    DcgmField(
        1002,
        "DCGM_FI_PROF_SM_ACTIVE",
        "gpu_sm_activity_ratio",
        _same,
        "ratio",
        "gauge",
        "The ratio of cycles an SM has at least 1 warp assigned.",
        "stand-in",
        GPM_NOTE,
    ),
    DcgmField(
        1003,
        "DCGM_FI_PROF_SM_OCCUPANCY",
        "gpu_sm_occupancy_ratio",
        _same,
        "ratio",
        "gauge",
        "The ratio of number of warps resident on an SM.",
        "stand-in",
        GPM_NOTE,
    ),
    DcgmField(
        1004,
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "gpu_tensor_activity_ratio",
        _same,
        "ratio",
        "gauge",
        "Ratio of cycles the tensor (HMMA) pipe is active.",
        "stand-in",
        GPM_NOTE + "; any precision, as DCGM's field",
    ),
    DcgmField(
        1005,
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "gpu_dram_bandwidth_ratio",
        _same,
        "ratio",
        "gauge",
        "Ratio of cycles the device memory interface is active sending or receiving data.",
        "stand-in",
        "GPM's DRAM bandwidth over its peak; DCGM counts the cycles the memory interface is busy, "
        "a related but not equal measure",
    ),
    DcgmField(
        1006,
        "DCGM_FI_PROF_PIPE_FP64_ACTIVE",
        "gpu_fp64_activity_ratio",
        _same,
        "ratio",
        "gauge",
        "Ratio of cycles the fp64 pipes are active.",
        "stand-in",
        GPM_NOTE,
    ),
    DcgmField(
        1007,
        "DCGM_FI_PROF_PIPE_FP32_ACTIVE",
        "gpu_fp32_activity_ratio",
        _same,
        "ratio",
        "gauge",
        "Ratio of cycles the fp32 pipes are active.",
        "stand-in",
        GPM_NOTE,
    ),
    DcgmField(
        1008,
        "DCGM_FI_PROF_PIPE_FP16_ACTIVE",
        "gpu_fp16_activity_ratio",
        _same,
        "ratio",
        "gauge",
        "Ratio of cycles the fp16 pipes are active.",
        "stand-in",
        GPM_NOTE,
    ),
    DcgmField(
        1009,
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "gpu_pcie_tx_bytes_per_second",
        _same,
        "B/s",
        "gauge",
        "The rate of data transmitted over the PCIe bus - including both protocol headers and data "
        "payloads - in bytes per second.",
        "close",
        PCIE_NOTE,
    ),
    DcgmField(
        1010,
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        "gpu_pcie_rx_bytes_per_second",
        _same,
        "B/s",
        "gauge",
        "The rate of data received over the PCIe bus - including both protocol headers and data "
        "payloads - in bytes per second.",
        "close",
        PCIE_NOTE,
    ),
    DcgmField(
        1011,
        "DCGM_FI_PROF_NVLINK_TX_BYTES",
        "gpu_nvlink_tx_bytes_per_second",
        _same,
        "B/s",
        "gauge",
        "The rate of data transmitted over NVLink, not including protocol headers, in bytes per second.",
        "close",
        "NVML's NVLink throughput counters over the slow cadence, all links",
    ),
    DcgmField(
        1012,
        "DCGM_FI_PROF_NVLINK_RX_BYTES",
        "gpu_nvlink_rx_bytes_per_second",
        _same,
        "B/s",
        "gauge",
        "The rate of data received over NVLink, not including protocol headers, in bytes per second.",
        "close",
        "NVML's NVLink throughput counters over the slow cadence, all links",
    ),
    DcgmField(
        1013,
        "DCGM_FI_PROF_PIPE_TENSOR_IMMA_ACTIVE",
        "gpu_tensor_imma_activity_ratio",
        _same,
        "ratio",
        "gauge",
        "Ratio of cycles the tensor (IMMA) pipe is active.",
        "stand-in",
        GPM_NOTE,
    ),
    DcgmField(
        1014,
        "DCGM_FI_PROF_PIPE_TENSOR_HMMA_ACTIVE",
        "gpu_tensor_hmma_activity_ratio",
        _same,
        "ratio",
        "gauge",
        "Ratio of cycles the tensor (HMMA) pipe is active.",
        "stand-in",
        GPM_NOTE,
    ),
    DcgmField(
        1015,
        "DCGM_FI_PROF_PIPE_TENSOR_DFMA_ACTIVE",
        "gpu_tensor_dfma_activity_ratio",
        _same,
        "ratio",
        "gauge",
        "Ratio of cycles the tensor (DFMA) pipe is active.",
        "stand-in",
        GPM_NOTE,
    ),
    DcgmField(
        1016,
        "DCGM_FI_PROF_PIPE_INT_ACTIVE",
        "gpu_integer_activity_ratio",
        _same,
        "ratio",
        "gauge",
        "Ratio of cycles the integer pipe is active.",
        "stand-in",
        GPM_NOTE,
    ),
)
"""In DCGM field order, the order they are exported in."""

LABELS = e.DCGM_GPU.labels
"""dcgm-exporter's labels, in its order. It adds `GPU_I_ID` and `GPU_I_PROFILE` on a MIG
instance's series and `pod`, `namespace`, `container` from the kubelet: gpuwatch reads neither
MIG instances nor pods yet, so those labels are absent, as they are from dcgm-exporter on a
host without MIG or Kubernetes."""


def _reader(row: DcgmField) -> Callable[[e.DcgmGpu], Value]:
    convert = row.convert
    if row.name == "DCGM_FI_DEV_XID_ERRORS":
        return lambda g: g.last_xid
    base = BY_NAME[row.figure]
    if not isinstance(base, Figure) or base.entity is not e.GPU:
        raise TypeError(f"{row.name}: {row.figure} is not a one-value figure of a GPU")
    read: Callable[[model.GpuSample], Value] = base.read

    def value(g: e.DcgmGpu) -> Value:
        number = as_number(read(g.sample))
        return None if number is None else convert(number)

    return value


FIGURES: tuple[Figure[Any], ...] = tuple(
    Figure(row.name, e.DCGM_GPU, _reader(row), row.help, row.name, row.unit, row.metric_type)
    for row in FIELDS
)
"""The families `[metrics] dcgm_exporter_names` adds to /metrics, after gpuwatch's own."""

LINT_EXPECTED: frozenset[tuple[str, str]] = frozenset(
    {(f.name, "label names should be written in 'snake_case' not 'camelCase'") for f in FIELDS}
    | {(f.name, 'counter metrics should have "_total" suffix') for f in FIELDS if f.metric_type == "counter"}
    | {("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "metric name should not include type 'counter'")}
)
"""What `promtool check metrics` says about dcgm-exporter's own spelling (its `modelName` label,
its counters without `_total`): kept, since dashboards and alerts match these names exactly."""
