"""A snapshot as plain text that fits 80 columns: what `gpuwatch snapshot` prints.

Reads only the data model. No colour (it is piped, mailed and pasted into tickets): meaning is
carried by words, and anything that needs attention is marked with "!". What needs a look is
the assessment's judgement (the snapshot's findings, gpuwatch/assess/), never decided here: a
"Needs a look" block first, then each finding's words under its GPU or model.
"""

from __future__ import annotations

from collections.abc import Iterable

from gpuwatch import model
from gpuwatch.text import ensembles, findings, fmt

WIDTH = 80


def render(snapshot: model.Snapshot) -> str:
    lines = [_header(snapshot), ""]
    look = findings.needs_a_look(snapshot.findings, WIDTH)
    if look:
        lines.extend([*look, ""])
    elif snapshot.nvml_status:
        lines.append(snapshot.nvml_status)
        lines.append("")
    if snapshot.gpus:
        lines.extend(_gpus(snapshot))
        lines.append("")
    triton = _triton(snapshot)
    if triton:
        lines.extend(triton)
        lines.append("")
    if snapshot.gpus:
        lines.extend(_processes(snapshot.processes))
    # Collector health and NVML's own status are already said above; list what happened.
    quiet = {
        model.EventKind.COLLECTOR_FAILED,
        model.EventKind.COLLECTOR_RECOVERED,
        model.EventKind.NVML_UNAVAILABLE,
        model.EventKind.FINDING_BEGAN,  # the "Needs a look" block says what holds now
        model.EventKind.FINDING_ENDED,
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
        names = sorted({d.name.removeprefix("NVIDIA ").split()[0] for d in s.devices if d.name})
        parts.append(f"demo: recorded {'/'.join(names) or 'GPUs'}")  # H100, or the H200 pair
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
        found = findings.of_gpu(s.findings, g.index)
        if g.state != model.GpuState.OK:
            mark = "! " if found else ""
            out.append(
                fmt.clip(f"{g.index:>3}  {name}{mark}{g.state.value.upper()}: {g.state_reason or ''}", WIDTH)
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
        detail = _detail(g, found)
        if detail:
            out.append(fmt.clip("     " + detail, WIDTH))
        out += _mig_rows([m for m in s.mig_devices if m.gpu_uuid == g.uuid])
    return out


def _mig_rows(devices: list[model.MigDevice]) -> list[str]:
    """A GPU's MIG devices, nested under it: utilization is the parent's (None per device)."""
    out = []
    for i, m in enumerate(devices):
        branch = "└" if i == len(devices) - 1 else "├"
        name = fmt.clip(f"{branch} {fmt.gpu_place(m.gpu_index, m.mig_index)} {m.profile or '?'}", 18).ljust(
            18
        )
        gpm = m.gpm
        mem = f"{fmt.gib(m.memory_used_bytes)}/{fmt.gib(m.memory_total_bytes)}"
        out.append(
            fmt.clip(
                f"{'':>3}  {name}{fmt.percent(m.utilization_ratio):>5}"
                f"{fmt.percent(gpm.tensor_activity_ratio if gpm else None):>7}"
                f"{fmt.percent(gpm.dram_bandwidth_ratio if gpm else None):>6}  {mem:>11}  "
                f"GI {fmt.number(m.gpu_instance_id)} CI {fmt.number(m.compute_instance_id)} · {m.uuid}",
                WIDTH,
            )
        )
    return out


def _detail(g: model.GpuSample, found: list[model.Finding]) -> str:
    parts = [f"! {f.words}" for f in found]
    if g.ecc_uncorrected_volatile_count:
        parts.append(f"ECC uncorrected {g.ecc_uncorrected_volatile_count}")
    gpm = g.gpm
    if gpm is not None:
        parts.append(f"SM {fmt.percent(gpm.sm_activity_ratio)} occ {fmt.percent(gpm.sm_occupancy_ratio)}")
    if g.performance_state is not None:
        parts.append(f"P{g.performance_state}")
    if g.pcie_tx_bytes_per_second is not None or g.pcie_rx_bytes_per_second is not None:
        parts.append(f"PCIe ↑{fmt.rate(g.pcie_tx_bytes_per_second)} ↓{fmt.rate(g.pcie_rx_bytes_per_second)}")
    if g.nvlinks or g.nvlink_tx_bytes_per_second is not None:  # a GPU without links shows none
        up = sum(1 for n in g.nvlinks if n.state is model.NvlinkState.UP)
        links = f" {up}/{len(g.nvlinks)}" if g.nvlinks else ""
        tx, rx = fmt.rate(g.nvlink_tx_bytes_per_second), fmt.rate(g.nvlink_rx_bytes_per_second)
        parts.append(f"NVLink{links} ↑{tx} ↓{rx}")
    return " · ".join(parts)


def _processes(processes: Iterable[model.ProcessSample]) -> list[str]:
    rows = sorted(processes, key=lambda p: (p.gpu_index, -(p.used_memory_bytes or 0)))
    if not rows:
        return ["No processes on any GPU."]
    out = [f"{'PID':>7} {'GPU':>3}  {'User':<10} {'Container':<12} {'GPU mem':>8} {'SM':>4}  Command"]
    for p in rows:
        command = p.command or p.name
        line = (
            f"{p.pid:>7} {fmt.gpu_place(p.gpu_index, p.mig_index):>3}  {fmt.clip(p.user, 10):<10} "
            f"{fmt.clip(fmt.container_of(p), 12):<12} {fmt.size(p.used_memory_bytes):>8} "
            f"{fmt.percent(p.sm_utilization_ratio):>4}  "
        )
        tag = fmt.triton_tag(p)
        if tag:
            command = f"{tag} {command or ''}"
        out.append(line + fmt.clip(command, WIDTH - len(line)))
    return out


# --------------------------------------------------------------------------- Triton

_STATE_WORDS: dict[str, str] = {model.ModelState.UNAVAILABLE: "UNAVAIL", model.ModelState.UNLOADING: "UNLOAD"}


def _triton(s: model.Snapshot) -> list[str]:
    """One block per Triton server that is not quietly absent: the server, then its models,
    an ensemble as a tree over its steps (the steps are not repeated, nor summed with it)."""
    out: list[str] = []
    for server in s.triton:
        if server.state == model.ServerState.ABSENT:
            continue
        if out:
            out.append("")
        out.append(fmt.clip(_server_line(server), WIDTH))
        if server.state != model.ServerState.UP:
            out.append(
                fmt.clip(f"  ! {server.state.value.upper()}: {server.reason or 'no reason given'}", WIDTH)
            )
            continue
        if server.reason:
            out.append(fmt.clip(f"  ! {server.reason}", WIDTH))
        if not server.models:
            out.append("  No models.")
            continue
        out.append(
            f"{'Model':<18} {'State':<7}{'OK/s':>7}{'Fail/s':>7}{'Batch':>8}{'Queue':>9}"
            f"{'Compute':>9}{'Q%':>5}{'Pend':>5} GPU"
        )
        for prefix, m in ensembles.model_tree(server.models):
            out.extend(_model_lines(prefix, m, s.timestamp, findings.of_model(s.findings, m)))
        if any(m.ensemble_steps for m in server.models):
            out.append("  An ensemble's Fail/s is not shown: Triton counts each failed step twice.")
    return out


def _server_line(server: model.TritonServerStatus) -> str:
    parts = [f"Triton {server.name}", server.state.value]
    if server.version:
        parts.append(f"v{server.version}")
    parts.append(server.url)
    if server.pids:
        parts.append("pid " + ",".join(str(p) for p in server.pids))
    if server.poll_seconds is not None:
        parts.append(f"poll {fmt.seconds(server.poll_seconds)}")
    return " · ".join(parts)


def _model_lines(prefix: str, m: model.ModelStats, now: float, found: list[model.Finding]) -> list[str]:
    label = fmt.clip(prefix + (f"{m.name}:{m.version}" if m.version else m.name), 18)
    state = _STATE_WORDS.get(m.state or "", m.state or fmt.MISSING)
    i = m.interval
    rates = i is not None and not i.reset
    req = fmt.number(i.requests_per_second, 1) if rates and i else fmt.MISSING
    # An ensemble's own failures are Triton's double count of its steps' (docs/triton.md): not shown.
    fail = fmt.number(i.failures_per_second, 1) if rates and i and not m.ensemble_steps else fmt.MISSING
    compute = _compute_seconds(i) if rates else None
    line = (
        f"{label:<18} {state:<7}{req:>7}{fail:>7}{_batch(m):>8}"
        f"{fmt.seconds(i.average_queue_seconds if rates and i else None):>9}{fmt.seconds(compute):>9}"
        f"{fmt.percent(i.queue_share_ratio if rates and i else None):>5}{fmt.number(m.pending_requests):>5} "
        f"{_gpus_text(m)}"
    )
    out = [fmt.clip(line, WIDTH)]
    indent = "   " if prefix else "  "
    not_ready = any(f.kind is model.FindingKind.MODEL_NOT_READY for f in found)
    if m.state_reason:
        # a reason about what gpuwatch could read (config, statistics) is marked as a gap in
        # the figures; a model's own state is marked when the assessment found it not ready
        gap = "config" in m.state_reason or "statistics" in m.state_reason
        mark = "! " if not_ready or gap else ""
        out.append(fmt.clip(f"{indent}{mark}{m.state_reason}", WIDTH))
    if i is not None and i.reset:
        out.append(fmt.clip(f"{indent}reset: {i.reset_reason or 'counters started again'}", WIDTH))
    for f in found:
        if f.kind is model.FindingKind.MODEL_NOT_READY and m.state_reason:
            continue  # said by the reason line above
        out.append(fmt.clip(f"{indent}! {f.message}", WIDTH))
    if (
        not found
        and i is not None
        and not i.reset
        and i.requests_per_second == 0
        and m.last_inference_at is not None
    ):
        out.append(fmt.clip(f"{indent}idle, last inference {fmt.ago(m.last_inference_at, now)}", WIDTH))
    return out


def _batch(m: model.ModelStats) -> str:
    """Average executed batch against max_batch_size: "5.2/32"."""
    if m.ensemble_steps:
        return fmt.MISSING  # an ensemble does not execute batches itself: see its steps
    i = m.interval
    average = i.average_batch_size if i is not None and not i.reset else None
    if m.max_batch_size == 0:
        return "off"  # max_batch_size 0: the model does not batch
    if m.max_batch_size is None:
        return fmt.number(average, 1)
    return f"{fmt.number(average, 1)}/{m.max_batch_size}"


def _compute_seconds(i: model.ModelInterval | None) -> float | None:
    """Input + infer + output: the time a request spends being computed."""
    if i is None or i.average_compute_infer_seconds is None:
        return None
    parts = (
        i.average_compute_input_seconds,
        i.average_compute_infer_seconds,
        i.average_compute_output_seconds,
    )
    return sum(p for p in parts if p is not None)


def _gpus_text(m: model.ModelStats) -> str:
    if m.gpu_indexes:
        return ",".join(str(g) for g in m.gpu_indexes)
    if m.instance_kind == "CPU":
        return "cpu"
    return ""
