"""The reads of one GPU: static facts once, fast fields every tick, slow fields on their cadence.

Place in the flow: a GPU's worker thread calls these through the gateway (the one choke point)
with the GPU's live handle; they return frozen records (`model.GpuInfo`, `FastReading`,
`SlowReading`) and change nothing but the GPU's read cursors and its list of field ids. A GPU
found lost or a library gone surfaces as the gateway's `GpuLostError` / `NvmlUnavailableError`:
the caller (the collector) decides what that means for the GPU.

Every raw value passes through `values` on its way in, so "not available" is None here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pynvml

from gpuwatch import model
from gpuwatch.catalog import nvml_codes
from gpuwatch.collect.nvml.gateway import NvmlGateway
from gpuwatch.collect.nvml.links import read_links
from gpuwatch.collect.nvml.readings import FastReading, GpuProcess, ProcessUtilization, SlowReading
from gpuwatch.collect.nvml.tracked import TrackedGpu
from gpuwatch.collect.nvml.values import (
    NvlinkCounters,
    bool_or_none,
    bytes_from_kib,
    clock_event_reason_names,
    field_value,
    float_or_none,
    from_milli,
    int_or_none,
    nvlink_bytes_per_second,
    pstate_or_none,
    ratio_from_percent,
    text_or_none,
    uint_or_none,
)
from gpuwatch.config import NvmlSettings

MIB = 1024 * 1024

_GPM_METRIC_IDS = (
    pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL,
    pynvml.NVML_GPM_METRIC_SM_UTIL,
    pynvml.NVML_GPM_METRIC_SM_OCCUPANCY,
    pynvml.NVML_GPM_METRIC_INTEGER_UTIL,
    pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL,
    pynvml.NVML_GPM_METRIC_DFMA_TENSOR_UTIL,
    pynvml.NVML_GPM_METRIC_HMMA_TENSOR_UTIL,
    pynvml.NVML_GPM_METRIC_IMMA_TENSOR_UTIL,
    pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL,
    pynvml.NVML_GPM_METRIC_FP64_UTIL,
    pynvml.NVML_GPM_METRIC_FP32_UTIL,
    pynvml.NVML_GPM_METRIC_FP16_UTIL,
    pynvml.NVML_GPM_METRIC_PCIE_TX_PER_SEC,
    pynvml.NVML_GPM_METRIC_PCIE_RX_PER_SEC,
    pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC,
    pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC,
)
"""The GPM metrics asked for, in one request; `_gpm_activity` names each."""

_FIELD_MEMORY_TEMP = pynvml.NVML_FI_DEV_MEMORY_TEMP
_FIELD_PCIE_REPLAY = pynvml.NVML_FI_DEV_PCIE_REPLAY_COUNTER
_FIELD_NVLINK_TX = pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX
_FIELD_NVLINK_RX = pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX
_FIELD_NVLINK_LINK_COUNT = pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT
_FIELD_WORDS = {
    _FIELD_MEMORY_TEMP: "the memory temperature",
    _FIELD_PCIE_REPLAY: "the PCIe replay counter",
    _FIELD_NVLINK_TX: "the NVLink transmit counter (NVLink rates are not shown)",
    _FIELD_NVLINK_RX: "the NVLink receive counter (NVLink rates are not shown)",
    _FIELD_NVLINK_LINK_COUNT: "the NVLink link count (NVLink rates are not shown)",
}
"""What a field id means to a reader of the log: "field_91 is not available" meant nothing."""
_NVLINK_ALL_LINKS = 0xFFFFFFFF
_NO_INSTANCE = 0xFFFFFFFF

_NO_NEW_SAMPLES = frozenset({pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVML_SUCCESS})


# --------------------------------------------------------------------------- static facts


def read_static(gateway: NvmlGateway, gpu: TrackedGpu, h: Any, *, gpm: bool) -> model.GpuInfo:
    """The facts read once per handle; `gpm` False skips asking whether GPM is supported."""
    k = gpu.uuid

    def call(field: str, fn: str, *args: Any) -> Any:
        return gateway.call(k, field, fn, h, *args)

    pci = call("pci", "nvmlDeviceGetPciInfo_v3")
    cc = call("compute_capability", "nvmlDeviceGetCudaComputeCapability")
    mem = call("memory_v1", "nvmlDeviceGetMemoryInfo")
    ecc = call("ecc_mode", "nvmlDeviceGetEccMode")
    mig = call("mig_mode", "nvmlDeviceGetMigMode")
    constraints = call("power_limit_constraints", "nvmlDeviceGetPowerManagementLimitConstraints")
    gpm_support = call("gpm_support", "nvmlGpmQueryDeviceSupport") if gpm else None
    arch = call("architecture", "nvmlDeviceGetArchitecture")
    links = _field_values(gateway, gpu, h, [_FIELD_NVLINK_LINK_COUNT], static=True)
    return model.GpuInfo(
        index=gpu.index,
        uuid=gpu.uuid,
        name=text_or_none(call("name", "nvmlDeviceGetName")),
        serial=text_or_none(call("serial", "nvmlDeviceGetSerial")),
        pci_bus_id=text_or_none(getattr(pci, "busId", None)),
        architecture=nvml_codes.architecture_name(arch) if isinstance(arch, int) else None,
        cuda_compute_capability=f"{cc[0]}.{cc[1]}" if cc else None,
        memory_total_bytes=uint_or_none(getattr(mem, "total", None)),
        power_limit_default_watts=from_milli(
            call("power_limit_default", "nvmlDeviceGetPowerManagementDefaultLimit")
        ),
        power_limit_min_watts=from_milli(constraints[0]) if constraints else None,
        power_limit_max_watts=from_milli(constraints[1]) if constraints else None,
        max_sm_clock_mhz=uint_or_none(
            call("max_clock_sm", "nvmlDeviceGetMaxClockInfo", pynvml.NVML_CLOCK_SM)
        ),
        max_memory_clock_mhz=uint_or_none(
            call("max_clock_mem", "nvmlDeviceGetMaxClockInfo", pynvml.NVML_CLOCK_MEM)
        ),
        max_graphics_clock_mhz=uint_or_none(
            call("max_clock_graphics", "nvmlDeviceGetMaxClockInfo", pynvml.NVML_CLOCK_GRAPHICS)
        ),
        temperature_slowdown_celsius=uint_or_none(
            call(
                "temp_slowdown",
                "nvmlDeviceGetTemperatureThreshold",
                pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
            )
        ),
        temperature_shutdown_celsius=uint_or_none(
            call(
                "temp_shutdown",
                "nvmlDeviceGetTemperatureThreshold",
                pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN,
            )
        ),
        ecc_enabled=bool(ecc[0]) if ecc else None,
        mig_enabled=bool(mig[0]) if mig else None,
        persistence_mode_enabled=bool_or_none(call("persistence", "nvmlDeviceGetPersistenceMode")),
        pcie_link_generation=uint_or_none(call("pcie_gen", "nvmlDeviceGetMaxPcieLinkGeneration")),
        pcie_link_width=uint_or_none(call("pcie_width", "nvmlDeviceGetMaxPcieLinkWidth")),
        nvlink_link_count=int_or_none(links.get(_FIELD_NVLINK_LINK_COUNT)),
        gpm_supported=bool(gpm_support.isSupportedDevice) if gpm_support is not None else None,
    )


# --------------------------------------------------------------------------- fast fields (every tick)


def read_fast(gateway: NvmlGateway, gpu: TrackedGpu) -> FastReading | None:
    """The tick's fields and processes; None when the GPU has no handle."""
    h = gpu.handle
    if h is None:
        return None
    c = gateway.call  # the hot path: ~20 calls per GPU per tick, no extra frames
    k = gpu.uuid
    util = c(k, "utilization", "nvmlDeviceGetUtilizationRates", h)
    mem = c(k, "memory_v2", "nvmlDeviceGetMemoryInfo", h, pynvml.nvmlMemory_v2)
    if mem is None:
        mem = c(k, "memory_v1", "nvmlDeviceGetMemoryInfo", h)
    reasons = uint_or_none(c(k, "clock_events", "nvmlDeviceGetCurrentClocksEventReasons", h))
    encoder = c(k, "encoder", "nvmlDeviceGetEncoderUtilization", h)
    decoder = c(k, "decoder", "nvmlDeviceGetDecoderUtilization", h)
    ecc = gpu.info.ecc_enabled
    # Keywords are evaluated in order: this is also the order of the calls.
    return FastReading(
        utilization_ratio=ratio_from_percent(util.gpu) if util is not None else None,
        memory_utilization_ratio=ratio_from_percent(util.memory) if util is not None else None,
        memory_total_bytes=uint_or_none(mem.total) if mem is not None else None,
        memory_used_bytes=uint_or_none(mem.used) if mem is not None else None,
        memory_free_bytes=uint_or_none(mem.free) if mem is not None else None,
        memory_reserved_bytes=uint_or_none(getattr(mem, "reserved", None)),
        temperature_celsius=float_or_none(
            uint_or_none(c(k, "temperature", "nvmlDeviceGetTemperature", h, pynvml.NVML_TEMPERATURE_GPU))
        ),
        fan_speed_ratio=ratio_from_percent(c(k, "fan", "nvmlDeviceGetFanSpeed", h)),
        power_watts=from_milli(c(k, "power", "nvmlDeviceGetPowerUsage", h)),
        power_limit_watts=from_milli(c(k, "power_limit", "nvmlDeviceGetEnforcedPowerLimit", h)),
        sm_clock_mhz=uint_or_none(c(k, "clock_sm", "nvmlDeviceGetClockInfo", h, pynvml.NVML_CLOCK_SM)),
        memory_clock_mhz=uint_or_none(c(k, "clock_mem", "nvmlDeviceGetClockInfo", h, pynvml.NVML_CLOCK_MEM)),
        graphics_clock_mhz=uint_or_none(
            c(k, "clock_graphics", "nvmlDeviceGetClockInfo", h, pynvml.NVML_CLOCK_GRAPHICS)
        ),
        performance_state=pstate_or_none(c(k, "pstate", "nvmlDeviceGetPerformanceState", h)),
        clock_event_reasons_mask=reasons,
        clock_event_reasons=() if reasons is None else clock_event_reason_names(reasons),
        ecc_corrected_volatile_count=uint_or_none(
            c(
                k,
                "ecc_corrected_volatile",
                "nvmlDeviceGetTotalEccErrors",
                h,
                pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                pynvml.NVML_VOLATILE_ECC,
            )
        )
        if ecc
        else None,
        ecc_uncorrected_volatile_count=uint_or_none(
            c(
                k,
                "ecc_uncorrected_volatile",
                "nvmlDeviceGetTotalEccErrors",
                h,
                pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                pynvml.NVML_VOLATILE_ECC,
            )
        )
        if ecc
        else None,
        encoder_utilization_ratio=ratio_from_percent(encoder[0]) if encoder else None,
        decoder_utilization_ratio=ratio_from_percent(decoder[0]) if decoder else None,
        processes=_each_pid_once(
            [
                GpuProcess(int(proc.pid), "compute", uint_or_none(proc.usedGpuMemory), *_instances(proc))
                for proc in c(k, "processes_compute", "nvmlDeviceGetComputeRunningProcesses", h) or ()
            ],
            [
                GpuProcess(int(proc.pid), "graphics", uint_or_none(proc.usedGpuMemory))
                for proc in c(k, "processes_graphics", "nvmlDeviceGetGraphicsRunningProcesses", h) or ()
            ],
        ),
    )


def _instances(proc: Any) -> tuple[int | None, int | None]:
    """A process's GPU and compute instance ids; None for NVML's 0xFFFFFFFF (not on MIG)."""
    ids = (
        uint_or_none(getattr(proc, "gpuInstanceId", None)),
        uint_or_none(getattr(proc, "computeInstanceId", None)),
    )
    return (None if ids[0] == _NO_INSTANCE else ids[0], None if ids[1] == _NO_INSTANCE else ids[1])


def _each_pid_once(compute: list[GpuProcess], graphics: list[GpuProcess]) -> tuple[GpuProcess, ...]:
    """A process that is both compute and graphics is listed once, as compute."""
    seen: dict[int, GpuProcess] = {}
    for process in (*compute, *graphics):
        seen.setdefault(process.pid, process)
    return tuple(seen.values())


# --------------------------------------------------------------------------- slow fields (their own cadence)


def read_slow(
    gateway: NvmlGateway, settings: NvmlSettings, gpu: TrackedGpu, now: float
) -> SlowReading | None:
    """The slow cadence's fields, GPM and per-process utilization at `now` (the collector's
    interval clock, monotonic: only differences of it are used); None when the GPU has no handle."""
    h = gpu.handle
    if h is None:
        return None
    k = gpu.uuid
    cursors = gpu.cursors

    def call(field: str, fn: str, *args: Any) -> Any:
        return gateway.call(k, field, fn, h, *args)

    energy_joules = gpu.slow.energy_joules
    if now >= cursors.energy_due_at:  # a cumulative counter: its own, slower cadence
        energy_joules = from_milli(call("energy", "nvmlDeviceGetTotalEnergyConsumption"))
        cursors.energy_due_at = now + settings.energy_interval_seconds
    gpm = _read_gpm(gateway, gpu, h, now)
    if gpm is None or gpm.pcie_tx_bytes_per_second is None:  # the PCIe calls take ~21 ms each
        pcie_tx = bytes_from_kib(
            call("pcie_tx", "nvmlDeviceGetPcieThroughput", pynvml.NVML_PCIE_UTIL_TX_BYTES)
        )
        pcie_rx = bytes_from_kib(
            call("pcie_rx", "nvmlDeviceGetPcieThroughput", pynvml.NVML_PCIE_UTIL_RX_BYTES)
        )
    else:
        pcie_tx, pcie_rx = gpm.pcie_tx_bytes_per_second, gpm.pcie_rx_bytes_per_second
    fields = list(gpu.slow_field_ids)
    # A GPU without links has no NVLink rates: GPM answers 0.0 for them on a single H200.
    has_links = bool(gpu.info.nvlink_link_count)
    if gpm is not None and not has_links:
        gpm = dataclasses.replace(gpm, nvlink_tx_bytes_per_second=None, nvlink_rx_bytes_per_second=None)
    nvlink_from_gpm = has_links and gpm is not None and gpm.nvlink_tx_bytes_per_second is not None
    nvlink_from_counters = has_links and not nvlink_from_gpm
    if nvlink_from_counters:
        fields += [_FIELD_NVLINK_TX, _FIELD_NVLINK_RX]
    values = _field_values(gateway, gpu, h, fields)
    nvlink: tuple[float | None, float | None] = (None, None)
    if gpm is not None and nvlink_from_gpm:
        nvlink = (gpm.nvlink_tx_bytes_per_second, gpm.nvlink_rx_bytes_per_second)
    elif nvlink_from_counters:
        nvlink = _nvlink_from_counters(gpu, values, now) or nvlink
    ecc_aggregate: tuple[int | None, int | None] = (None, None)
    if gpu.info.ecc_enabled:
        ecc_aggregate = (
            uint_or_none(
                call(
                    "ecc_corrected_aggregate",
                    "nvmlDeviceGetTotalEccErrors",
                    pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                    pynvml.NVML_AGGREGATE_ECC,
                )
            ),
            uint_or_none(
                call(
                    "ecc_uncorrected_aggregate",
                    "nvmlDeviceGetTotalEccErrors",
                    pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                    pynvml.NVML_AGGREGATE_ECC,
                )
            ),
        )
    nvlinks = read_links(
        gateway, k, gpu.index, h, link_count=gpu.info.nvlink_link_count, cursors=cursors.links, now=now
    )
    remap = call("remapped_rows", "nvmlDeviceGetRemappedRows")
    utilization: dict[int, ProcessUtilization] | None = None
    if settings.process_utilization:
        # ~3 ms of CPU on an H100: pointless on a GPU with no processes.
        utilization = _read_process_utilization(gateway, gpu, h) if gpu.fast.processes else {}
    return SlowReading(
        energy_joules=energy_joules,
        pcie_tx_bytes_per_second=pcie_tx,
        pcie_rx_bytes_per_second=pcie_rx,
        memory_temperature_celsius=float_or_none(values.get(_FIELD_MEMORY_TEMP)),
        pcie_replay_count=int_or_none(values.get(_FIELD_PCIE_REPLAY)),
        nvlink_tx_bytes_per_second=nvlink[0],
        nvlink_rx_bytes_per_second=nvlink[1],
        ecc_corrected_aggregate_count=ecc_aggregate[0],
        ecc_uncorrected_aggregate_count=ecc_aggregate[1],
        remapped_rows_correctable_count=uint_or_none(remap[0]) if remap else None,
        remapped_rows_uncorrectable_count=uint_or_none(remap[1]) if remap else None,
        remapped_rows_pending=bool(remap[2]) if remap else None,
        remapped_rows_failed=bool(remap[3]) if remap else None,
        gpm=gpm,
        nvlinks=nvlinks,
        process_utilization=utilization,
    )


def _nvlink_from_counters(
    gpu: TrackedGpu, values: dict[int, int | float], now: float
) -> tuple[float, float] | None:
    """Bytes/s from the cumulative NVLink KiB counters of this read and the previous one."""
    tx, rx = values.get(_FIELD_NVLINK_TX), values.get(_FIELD_NVLINK_RX)
    if not isinstance(tx, int) or not isinstance(rx, int):
        return None
    current = NvlinkCounters(now, float(tx), float(rx))
    previous, gpu.cursors.nvlink_previous = gpu.cursors.nvlink_previous, current
    return nvlink_bytes_per_second(previous, current)


def _read_gpm(gateway: NvmlGateway, gpu: TrackedGpu, h: Any, now: float) -> model.GpmActivity | None:
    """GPM metrics between the previous GPM sample and one taken now."""
    cursors = gpu.cursors
    samples = cursors.gpm_samples
    if len(samples) != 2:
        return None
    previous = cursors.gpm_previous
    sample = samples[0] if previous is None or previous[0] is samples[1] else samples[1]
    if gateway.call(gpu.uuid, "gpm_sample", "nvmlGpmSampleGet", h, sample) is None:
        return None
    cursors.gpm_previous = (sample, now)
    if previous is None:
        return None
    return gpm_between(gateway, gpu.uuid, "gpm_metrics", previous, (sample, now))


def gpm_between(
    gateway: NvmlGateway,
    gpu_key: str,
    field: str,
    first: tuple[Any, float],
    second: tuple[Any, float],
    *,
    none_on: frozenset[int] = frozenset(),
) -> model.GpmActivity | None:
    """The GPM metrics between two (sample, time) pairs, of a whole GPU or (`mig`) of one of
    its GPU instances: one `nvmlGpmMetricsGet` for every metric of `_GPM_METRIC_IDS`."""
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = len(_GPM_METRIC_IDS)
    request.sample1 = first[0]
    request.sample2 = second[0]
    for i, metric_id in enumerate(_GPM_METRIC_IDS):
        request.metrics[i].metricId = metric_id
    if gateway.call(gpu_key, field, "nvmlGpmMetricsGet", request, none_on=none_on) is None:
        return None
    got: dict[int, float | None] = {}
    for i, metric_id in enumerate(_GPM_METRIC_IDS):
        metric = request.metrics[i]
        value = float(metric.value)
        ok = metric.nvmlReturn == pynvml.NVML_SUCCESS and not math.isnan(value)
        got[metric_id] = value if ok else None
    return _gpm_activity(got, round(second[1] - first[1], 6))


def _gpm_activity(got: dict[int, float | None], interval_seconds: float) -> model.GpmActivity:
    """GPM's percentages as ratios and its MiB/s as bytes/s, by metric id."""

    def ratio(metric_id: int) -> float | None:
        value = got[metric_id]
        return value * 0.01 if value is not None else None

    def per_second(metric_id: int) -> float | None:
        value = got[metric_id]
        return value * MIB if value is not None else None

    return model.GpmActivity(
        interval_seconds=interval_seconds,
        graphics_activity_ratio=ratio(pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL),
        sm_activity_ratio=ratio(pynvml.NVML_GPM_METRIC_SM_UTIL),
        sm_occupancy_ratio=ratio(pynvml.NVML_GPM_METRIC_SM_OCCUPANCY),
        tensor_activity_ratio=ratio(pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL),
        tensor_hmma_activity_ratio=ratio(pynvml.NVML_GPM_METRIC_HMMA_TENSOR_UTIL),
        tensor_imma_activity_ratio=ratio(pynvml.NVML_GPM_METRIC_IMMA_TENSOR_UTIL),
        tensor_dfma_activity_ratio=ratio(pynvml.NVML_GPM_METRIC_DFMA_TENSOR_UTIL),
        dram_bandwidth_ratio=ratio(pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL),
        fp16_activity_ratio=ratio(pynvml.NVML_GPM_METRIC_FP16_UTIL),
        fp32_activity_ratio=ratio(pynvml.NVML_GPM_METRIC_FP32_UTIL),
        fp64_activity_ratio=ratio(pynvml.NVML_GPM_METRIC_FP64_UTIL),
        integer_activity_ratio=ratio(pynvml.NVML_GPM_METRIC_INTEGER_UTIL),
        pcie_tx_bytes_per_second=per_second(pynvml.NVML_GPM_METRIC_PCIE_TX_PER_SEC),
        pcie_rx_bytes_per_second=per_second(pynvml.NVML_GPM_METRIC_PCIE_RX_PER_SEC),
        nvlink_tx_bytes_per_second=per_second(pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC),
        nvlink_rx_bytes_per_second=per_second(pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC),
    )


def _read_process_utilization(
    gateway: NvmlGateway, gpu: TrackedGpu, h: Any
) -> dict[int, ProcessUtilization] | None:
    """Per-process utilization since the last read, by PID; None when neither call is supported.
    NotFound means no sample is newer than the last one seen: nothing ran, not an error."""
    cursors = gpu.cursors
    samples = gateway.call(
        gpu.uuid,
        "process_utilization",
        "nvmlDeviceGetProcessesUtilizationInfo",
        h,
        cursors.process_utilization_seen_us,
        none_on=_NO_NEW_SAMPLES,
    )
    if samples is None and gateway.is_unsupported(gpu.uuid, "process_utilization"):
        samples = gateway.call(
            gpu.uuid,
            "process_utilization_v1",
            "nvmlDeviceGetProcessUtilization",
            h,
            cursors.process_utilization_seen_us,
            none_on=_NO_NEW_SAMPLES,
        )
        if samples is None and gateway.is_unsupported(gpu.uuid, "process_utilization_v1"):
            return None
    sums: dict[int, list[float]] = {}  # pid → sm, memory, encoder, decoder, samples
    for s in samples or ():
        cursors.process_utilization_seen_us = max(cursors.process_utilization_seen_us, int(s.timeStamp))
        acc = sums.setdefault(int(s.pid), [0.0, 0.0, 0.0, 0.0, 0.0])
        acc[0] += s.smUtil
        acc[1] += s.memUtil
        acc[2] += s.encUtil
        acc[3] += s.decUtil
        acc[4] += 1
    return {
        pid: ProcessUtilization(
            ratio_from_percent(a[0] / a[4]),
            ratio_from_percent(a[1] / a[4]),
            ratio_from_percent(a[2] / a[4]),
            ratio_from_percent(a[3] / a[4]),
        )
        for pid, a in sums.items()
    }


def _field_values(
    gateway: NvmlGateway, gpu: TrackedGpu, h: Any, field_ids: list[int], *, static: bool = False
) -> dict[int, int | float]:
    """Field values by id. A field NVML refuses is learned unsupported; a slow one is also
    dropped from the GPU's list for good (`static` reads leave that list alone)."""
    if not field_ids:
        return {}
    request = [(f, _NVLINK_ALL_LINKS) if f in (_FIELD_NVLINK_TX, _FIELD_NVLINK_RX) else f for f in field_ids]
    raw = gateway.call(gpu.uuid, "field_values", "nvmlDeviceGetFieldValues", h, request)
    out: dict[int, int | float] = {}
    for value in raw or ():
        field_id = int(value.fieldId)
        if value.nvmlReturn == pynvml.NVML_SUCCESS:
            out[field_id] = field_value(value)
        elif value.nvmlReturn in (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_INVALID_ARGUMENT):
            if not static and field_id in gpu.slow_field_ids:
                gpu.slow_field_ids.remove(field_id)
            words = _FIELD_WORDS.get(field_id, "a field value")
            what = f"{words}, NVML field {field_id}"
            gateway.mark_unsupported(gpu.uuid, what, "not supported", fn_name="nvmlDeviceGetFieldValues")
    return out
