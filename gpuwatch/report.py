"""A snapshot as plain text that fits 80 columns: what `gpuwatch snapshot` prints.

Reads only the data model. No colour (it is piped, mailed and pasted into tickets): meaning is
carried by words, and anything that needs attention is marked with "!".
"""

from __future__ import annotations

from collections.abc import Iterable

from gpuwatch import decode, fmt, model

WIDTH = 80


def render(snapshot: model.Snapshot) -> str:
    lines = [_header(snapshot), ""]
    if snapshot.nvml_status:
        lines.append(f"! {snapshot.nvml_status}")
        lines.append("")
    if snapshot.gpus:
        lines.extend(_gpus(snapshot))
        lines.append("")
        lines.extend(_processes(snapshot.processes))
    # Collector health and NVML's own status are already said above; list what happened.
    quiet = {
        model.EventKind.COLLECTOR_FAILED,
        model.EventKind.COLLECTOR_RECOVERED,
        model.EventKind.NVML_UNAVAILABLE,
    }
    events = [e for e in snapshot.events if e.severity != model.Severity.INFO and e.kind not in quiet]
    if events:
        lines.append("")
        lines.append("Events")
        for e in events[-10:]:
            lines.append(
                fmt.clip(f"  {fmt.clock_time(e.timestamp)[11:]}  {e.severity.value:<8} {e.message}", WIDTH)
            )
    return "\n".join(line.rstrip() for line in lines).rstrip() + "\n"


def _header(s: model.Snapshot) -> str:
    parts = [s.node.hostname]
    if s.node.driver_version:
        parts.append(f"driver {s.node.driver_version}")
    if s.node.cuda_driver_version:
        parts.append(f"CUDA {s.node.cuda_driver_version}")
    parts.append(fmt.clock_time(s.timestamp))
    if s.node.source == "recorded":
        parts.append("demo: recorded H100")
    return fmt.clip(" · ".join(parts), WIDTH)


def short_name(name: str | None) -> str | None:
    return name.removeprefix("NVIDIA ") if name else None


def _gpus(s: model.Snapshot) -> list[str]:
    info = {d.uuid: d for d in s.devices}
    out = [
        f"{'GPU':>3}  {'Name':<18}{'Util':>5}{'Tensor':>7}{'DRAM':>6}  {'Memory GiB':>11}  "
        f"{'Temp':>5}  {'Power W':>9}  {'SM MHz':>6}"
    ]
    for g in s.gpus:
        d = info.get(g.uuid)
        name = fmt.clip(short_name(d.name if d else None), 18).ljust(18)
        if g.state != model.GpuState.OK:
            out.append(
                fmt.clip(f"{g.index:>3}  {name}! {g.state.value.upper()}: {g.state_reason or ''}", WIDTH)
            )
            continue
        gpm = g.gpm
        mem = f"{fmt.gib(g.memory_used_bytes)}/{fmt.gib(g.memory_total_bytes)}"
        temp = fmt.MISSING if g.temperature_celsius is None else f"{g.temperature_celsius:.0f}°C"
        power = f"{fmt.number(g.power_watts)}/{fmt.number(g.power_limit_watts)}"
        out.append(
            f"{g.index:>3}  {name}{fmt.percent(g.utilization_ratio):>5}"
            f"{fmt.percent(gpm.tensor_activity_ratio if gpm else None):>7}"
            f"{fmt.percent(gpm.dram_bandwidth_ratio if gpm else None):>6}  {mem:>11}  "
            f"{temp:>5}  {power:>9}  {fmt.number(g.sm_clock_mhz):>6}"
        )
        detail = _detail(g)
        if detail:
            out.append(fmt.clip("     " + detail, WIDTH))
    return out


def _detail(g: model.GpuSample) -> str:
    parts: list[str] = []
    slowing = decode.slowing_reasons(g.clock_event_reasons)
    if slowing:
        parts.append("! " + decode.clock_event_words(slowing))
    if g.ecc_uncorrected_volatile_count:
        parts.append(f"! ECC uncorrected {g.ecc_uncorrected_volatile_count}")
    if g.remapped_rows_failed:
        parts.append("! row remap failed")
    elif g.remapped_rows_pending:
        parts.append("! row remap pending")
    gpm = g.gpm
    if gpm is not None:
        parts.append(f"SM {fmt.percent(gpm.sm_activity_ratio)} occ {fmt.percent(gpm.sm_occupancy_ratio)}")
    if g.performance_state is not None:
        parts.append(f"P{g.performance_state}")
    if g.pcie_tx_bytes_per_second is not None or g.pcie_rx_bytes_per_second is not None:
        parts.append(f"PCIe ↑{fmt.rate(g.pcie_tx_bytes_per_second)} ↓{fmt.rate(g.pcie_rx_bytes_per_second)}")
    if g.nvlink_tx_bytes_per_second:
        parts.append(
            f"NVLink ↑{fmt.rate(g.nvlink_tx_bytes_per_second)} ↓{fmt.rate(g.nvlink_rx_bytes_per_second)}"
        )
    return " · ".join(parts)


def _processes(processes: Iterable[model.ProcessSample]) -> list[str]:
    rows = sorted(processes, key=lambda p: (p.gpu_index, -(p.used_memory_bytes or 0)))
    if not rows:
        return ["No processes on any GPU."]
    out = [f"{'PID':>7} {'GPU':>3}  {'User':<10} {'Container':<12} {'GPU mem':>8} {'SM':>4}  Command"]
    for p in rows:
        command = p.command or p.name
        line = (
            f"{p.pid:>7} {p.gpu_index:>3}  {fmt.clip(p.user, 10):<10} "
            f"{fmt.clip(fmt.short_container(p.container_id), 12):<12} {fmt.size(p.used_memory_bytes):>8} "
            f"{fmt.percent(p.sm_utilization_ratio):>4}  "
        )
        if p.triton_server:
            command = f"[triton {p.triton_server}] {command or ''}"
        out.append(line + fmt.clip(command, WIDTH - len(line)))
    return out
