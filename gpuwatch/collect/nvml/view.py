"""What the NVML collector shows the engine: its view, and the joins that build it.

Place in the flow: `NvmlCollector.view()` asks these, once per tick, for each GPU it tracks; the
engine puts the result in the snapshot. The joins are plain copies, field by field, from the
frozen readings into the data model, so mypy checks every name on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpuwatch import model
from gpuwatch.collect.host import ProcessInfoSource
from gpuwatch.collect.nvml.mig import device_of
from gpuwatch.collect.nvml.readings import IDLE_PROCESS
from gpuwatch.collect.nvml.tracked import TrackedGpu


@dataclass(frozen=True, slots=True)
class NvmlView:
    """What the collector knows now, as immutable data for the engine."""

    status: str | None
    node: model.NodeInfo
    devices: tuple[model.GpuInfo, ...]
    gpus: tuple[model.GpuSample, ...]
    processes: tuple[model.ProcessSample, ...]
    topology: model.Topology | None = None
    mig_devices: tuple[model.MigDevice, ...] = ()


def gpu_sample(gpu: TrackedGpu) -> model.GpuSample:
    """A GPU that answers: its latest fast and slow readings, and its latest GPM activity."""
    fast, slow = gpu.fast, gpu.slow
    return model.GpuSample(
        index=gpu.index,
        uuid=gpu.uuid,
        utilization_ratio=fast.utilization_ratio,
        memory_utilization_ratio=fast.memory_utilization_ratio,
        memory_total_bytes=fast.memory_total_bytes,
        memory_used_bytes=fast.memory_used_bytes,
        memory_free_bytes=fast.memory_free_bytes,
        memory_reserved_bytes=fast.memory_reserved_bytes,
        temperature_celsius=fast.temperature_celsius,
        memory_temperature_celsius=slow.memory_temperature_celsius,
        fan_speed_ratio=fast.fan_speed_ratio,
        power_watts=fast.power_watts,
        power_limit_watts=fast.power_limit_watts,
        energy_joules=slow.energy_joules,
        sm_clock_mhz=fast.sm_clock_mhz,
        memory_clock_mhz=fast.memory_clock_mhz,
        graphics_clock_mhz=fast.graphics_clock_mhz,
        performance_state=fast.performance_state,
        clock_event_reasons_mask=fast.clock_event_reasons_mask,
        clock_event_reasons=fast.clock_event_reasons,
        ecc_corrected_volatile_count=fast.ecc_corrected_volatile_count,
        ecc_uncorrected_volatile_count=fast.ecc_uncorrected_volatile_count,
        ecc_corrected_aggregate_count=slow.ecc_corrected_aggregate_count,
        ecc_uncorrected_aggregate_count=slow.ecc_uncorrected_aggregate_count,
        remapped_rows_correctable_count=slow.remapped_rows_correctable_count,
        remapped_rows_uncorrectable_count=slow.remapped_rows_uncorrectable_count,
        remapped_rows_pending=slow.remapped_rows_pending,
        remapped_rows_failed=slow.remapped_rows_failed,
        encoder_utilization_ratio=fast.encoder_utilization_ratio,
        decoder_utilization_ratio=fast.decoder_utilization_ratio,
        pcie_tx_bytes_per_second=slow.pcie_tx_bytes_per_second,
        pcie_rx_bytes_per_second=slow.pcie_rx_bytes_per_second,
        pcie_replay_count=slow.pcie_replay_count,
        nvlink_tx_bytes_per_second=slow.nvlink_tx_bytes_per_second,
        nvlink_rx_bytes_per_second=slow.nvlink_rx_bytes_per_second,
        gpm=gpu.gpm,
        nvlinks=slow.nvlinks,
    )


def process_samples(gpu: TrackedGpu, host: ProcessInfoSource) -> list[model.ProcessSample]:
    """The GPU's processes, with their utilization and what the host knows of each."""
    out = []
    listed = gpu.fast.processes
    if gpu.mig is not None:  # a MIG device lists its own processes without the parent's privileges
        known = {p.pid for p in listed}
        listed += tuple(p for d in gpu.mig.devices for p in d.processes if p.pid not in known)
    for process in listed:
        on = device_of(gpu.mig, process) if gpu.mig is not None else None
        util = gpu.process_utilization.get(process.pid)
        if util is None and gpu.process_utilization_known:
            util = IDLE_PROCESS  # NVML answered and this process ran nothing
        facts = host.describe(process.pid)
        usage = host.usage(process.pid)
        out.append(
            model.ProcessSample(
                pid=process.pid,
                gpu_index=gpu.index,
                gpu_uuid=gpu.uuid,
                kind=process.kind,
                used_memory_bytes=process.used_memory_bytes,
                sm_utilization_ratio=util.sm_ratio if util is not None else None,
                memory_utilization_ratio=util.memory_ratio if util is not None else None,
                encoder_utilization_ratio=util.encoder_ratio if util is not None else None,
                decoder_utilization_ratio=util.decoder_ratio if util is not None else None,
                user=facts.user if facts else None,
                name=facts.name if facts else None,
                command=facts.command if facts else None,
                container_id=facts.container_id if facts else None,
                pod_uid=facts.pod_uid if facts else None,
                started_at=facts.started_at if facts else None,
                parent_pid=facts.parent_pid if facts else None,
                gpu_instance_id=on.gpu_instance_id if on else process.gpu_instance_id,
                compute_instance_id=on.compute_instance_id if on else process.compute_instance_id,
                mig_index=on.mig_index if on else None,
                mig_uuid=on.uuid if on else None,
                cpu_ratio=usage.cpu_ratio if usage else None,
                host_memory_bytes=usage.rss_bytes if usage else None,
            )
        )
    return out
