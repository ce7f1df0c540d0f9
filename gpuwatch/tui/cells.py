"""The data model → table cells: what each panel's rows say, as pure functions.

Place in the flow: snapshot → **cells** → `SyncTable`. No widget, no client: a row is text
built from frozen data with the `Palette`'s styles, so what a row says can be read (and
tested) without a screen. Numbers are formatted by `gpuwatch.text.fmt`, like every other face.
Anything that needs attention says so in words ("! power cap", "LOST", "! stalled"), with
colour only on top (see `palette.py`); a model's marks are its findings (gpuwatch/assess/).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text

from gpuwatch import model
from gpuwatch.catalog import nvml_codes
from gpuwatch.text import fmt
from gpuwatch.tui.palette import Palette
from gpuwatch.tui.summary import NodeSummary
from gpuwatch.tui.table import Cell

STATE_WORDS = 12
"""The most of a finding's words the models table's state cell shows ("! queue-bound")."""
QUEUE_KINDS = frozenset(
    {
        model.FindingKind.MODEL_QUEUE_BOUND,
        model.FindingKind.MODEL_BATCHER_OFF,
    }
)
"""The findings that judge a model's queue share: its Q% cell is marked with them."""
"""Queue time over half of the request time: the model waits more than it computes."""


def state_words(state: model.GpuState) -> str:
    return {
        model.GpuState.LOST: "LOST",
        model.GpuState.HUNG: "HUNG",
        model.GpuState.UNAVAILABLE: "NO NVML",
    }.get(state, state.value)


# --------------------------------------------------------------------------- GPUs


SLOWDOWN_KINDS = frozenset(
    {
        model.FindingKind.GPU_THERMAL_SLOWDOWN,
        model.FindingKind.GPU_HARDWARE_SLOWDOWN,
        model.FindingKind.GPU_POWER_CAPPED,
    }
)
"""The findings that judge a GPU's clocks: its power and clock cells are marked with them."""


def gpu_flags(sample: model.GpuSample, found: Sequence[model.Finding], xid: int | None, pal: Palette) -> Text:
    """The GPU's state cell: its findings' words (the assessment's, most severe first) after
    one `!` ("! LOST", "! thermal HW slowdown"). With none, what NVML says, unmarked: a recent
    XID the assessment does not count critical, clocks held ("power cap" for the seconds before
    its finding's onset), else "idle" or "ok"."""
    if found:
        text = Text("! ", style=finding_style(found[0], pal))
        for n, f in enumerate(found):
            if n:
                text.append(" ")
            text.append(f.words, style=finding_style(f, pal))
        return text
    if sample.state != model.GpuState.OK:
        return Text(state_words(sample.state), style=pal.dim)
    said = []
    if xid is not None:
        said.append(f"XID {xid}")
    slowing = nvml_codes.slowing_reasons(sample.clock_event_reasons)
    if slowing:
        said.append(nvml_codes.clock_event_words(slowing))
    if said:
        return Text(" ".join(said))
    return Text("idle" if "gpu_idle" in sample.clock_event_reasons else "ok", style=pal.dim)


def gpu_cells(
    sample: model.GpuSample,
    info: model.GpuInfo | None,
    spark: str,
    xid: int | None,
    pal: Palette,
    *,
    found: Sequence[model.Finding] = (),
) -> list[Cell]:
    """Cells in GPU_COLUMNS order (gpu_panel.py); `found` are the GPU's findings, which alone
    mark its row (the state cell, and power and clock when a slowdown finding holds)."""
    ok = sample.state == model.GpuState.OK
    gpm = sample.gpm if ok else None
    name = fmt.clip((info.name or "").removeprefix("NVIDIA ") if info and info.name else None, 16)

    def value(text: str) -> Text:
        return Text(text if ok else fmt.MISSING, style=pal.dim if not ok else "")

    power = Text(fmt.of(sample.power_watts, sample.power_limit_watts) if ok else fmt.MISSING)
    memory_ratio = (
        sample.memory_used_bytes / sample.memory_total_bytes
        if ok and sample.memory_used_bytes is not None and sample.memory_total_bytes
        else None
    )
    if any(f.kind in SLOWDOWN_KINDS for f in found):
        power.stylize(pal.warn)
        clock = Text(fmt.number(sample.sm_clock_mhz), style=pal.warn)
    else:
        clock = value(fmt.number(sample.sm_clock_mhz))
    return [
        Text(str(sample.index), style=pal.fault if not ok else ""),
        Text(name, style=pal.dim),
        value(fmt.percent(sample.utilization_ratio)),
        Text(fmt.bar(sample.utilization_ratio if ok else None, 10, "█", "·"), style=pal.bar),
        value(fmt.percent(gpm.tensor_activity_ratio if gpm else None)),
        value(fmt.percent(gpm.dram_bandwidth_ratio if gpm else None)),
        value(fmt.percent(gpm.sm_occupancy_ratio if gpm else None)),
        value(fmt.gib_of(sample.memory_used_bytes, sample.memory_total_bytes)),
        Text(fmt.bar(memory_ratio, 10, "█", "·"), style=pal.bar),
        value(fmt.celsius(sample.temperature_celsius)),
        power,
        clock,
        value(f"↓{fmt.rate(sample.pcie_rx_bytes_per_second)} ↑{fmt.rate(sample.pcie_tx_bytes_per_second)}"),
        gpu_flags(sample, found, xid, pal),
        Text(spark, style=pal.bar),
    ]


def mig_cells(device: model.MigDevice, last: bool, pal: Palette) -> list[Cell]:
    """A MIG device's cells in GPU_COLUMNS order, nested under its GPU's row: what NVML does not
    give per MIG device (utilization, temperature, power, clocks, PCIe) is the parent's: —."""
    gpm = device.gpm
    branch = "└" if last else "├"
    dim = pal.dim
    memory_ratio = (
        device.memory_used_bytes / device.memory_total_bytes
        if device.memory_used_bytes is not None and device.memory_total_bytes
        else None
    )
    return [
        Text(fmt.gpu_place(device.gpu_index, device.mig_index), style=dim),
        Text(fmt.clip(f"{branch} MIG {device.profile or '?'}", 16), style=dim),
        fmt.percent(device.utilization_ratio),
        Text(""),  # no utilization of its own: no bar
        fmt.percent(gpm.tensor_activity_ratio if gpm else None),
        fmt.percent(gpm.dram_bandwidth_ratio if gpm else None),
        fmt.percent(gpm.sm_occupancy_ratio if gpm else None),
        fmt.gib_of(device.memory_used_bytes, device.memory_total_bytes),
        Text(fmt.bar(memory_ratio, 10, "█", "·"), style=pal.bar),
        Text(fmt.MISSING, style=dim),
        Text(fmt.MISSING, style=dim),
        Text(fmt.MISSING, style=dim),
        Text(
            f"GI {fmt.number(device.gpu_instance_id)} CI {fmt.number(device.compute_instance_id)}", style=dim
        ),
        Text(""),
        Text(""),
    ]


def mig_detail(device: model.MigDevice) -> str:
    """The line under the GPU table for a highlighted MIG device."""
    return (
        f"GPU {device.gpu_index} MIG device {device.mig_index} · {device.profile or '?'} · "
        f"GI {fmt.number(device.gpu_instance_id)} CI {fmt.number(device.compute_instance_id)} · "
        f"{device.uuid} · "
        "utilization, clocks, power and temperature are the whole GPU's"
    )


def _on_off(value: bool | None) -> str:
    return fmt.MISSING if value is None else ("on" if value else "off")


def gpu_facts(sample: model.GpuSample, info: model.GpuInfo | None) -> str:
    """The GPU's identity and modes, as `nvidia-smi -q` names them: what a row never shows."""
    parts = [f"PCI {info.pci_bus_id if info and info.pci_bus_id else fmt.MISSING}", sample.uuid]
    if info is not None:
        parts.append(f"persistence {_on_off(info.persistence_mode_enabled)}")
        parts.append(f"MIG {_on_off(info.mig_enabled)}")
        if info.pcie_link_generation is not None and info.pcie_link_width is not None:
            parts.append(f"PCIe gen{info.pcie_link_generation} x{info.pcie_link_width}")
        if info.ecc_enabled is not None:
            parts.append(f"ECC {_on_off(info.ecc_enabled)}")
    return " · ".join(parts)


def gpu_detail(sample: model.GpuSample, info: model.GpuInfo | None, xid: model.Event | None) -> str:
    """One line about the GPU under the cursor: what the row has no room for."""
    name = (info.name if info else None) or "GPU"
    head = f"GPU {sample.index} · {name}"
    if sample.state != model.GpuState.OK:
        return f"{head} · {state_words(sample.state)}: {sample.state_reason or 'no reason given'}"
    parts = [head]
    reasons = nvml_codes.clock_event_words(sample.clock_event_reasons)
    if reasons:
        parts.append(f"clocks held by: {reasons}")
    gpm = sample.gpm
    if gpm is not None:
        parts.append(
            f"SM active {fmt.percent(gpm.sm_activity_ratio)} occupancy {fmt.percent(gpm.sm_occupancy_ratio)}"
        )
    if sample.performance_state is not None:
        parts.append(f"P{sample.performance_state}")
    if sample.ecc_uncorrected_volatile_count is not None:
        parts.append(
            f"ECC {sample.ecc_corrected_volatile_count or 0} corrected, "
            f"{sample.ecc_uncorrected_volatile_count} uncorrected"
        )
    if sample.nvlinks:
        parts.append(nvlink_words(sample))
    if xid is not None and xid.code is not None:
        parts.append(f"XID {xid.code} at {fmt.time_of_day(xid.timestamp)}: {nvml_codes.xid_words(xid.code)}")
    return " · ".join(parts)


def nvlink_words(sample: model.GpuSample) -> str:
    """ "NVLink 18/18 up to GPU 1 ↑ 301 GB/s ↓ 301 GB/s", with the links down and errors when there are."""
    links = sample.nvlinks
    up = sum(1 for n in links if n.state is model.NvlinkState.UP)
    words = f"NVLink {up}/{len(links)} up"
    peers = sorted({n.remote_gpu_index for n in links if n.remote_gpu_index is not None})
    if peers:
        words += " to " + ", ".join(f"GPU {p}" for p in peers)
    down = [str(n.link) for n in links if n.state is model.NvlinkState.DOWN]
    if down:
        words += f" (! down: {', '.join(down)})"
    words += (
        f" ↑ {fmt.rate(sample.nvlink_tx_bytes_per_second)} ↓ {fmt.rate(sample.nvlink_rx_bytes_per_second)}"
    )
    errors = sum(
        v for n in links for v in (n.crc_error_count, n.replay_error_count, n.recovery_error_count) if v
    )
    return words + (f" · ! {errors} NVLink errors" if errors else "")


# --------------------------------------------------------------------------- the host


def host_line(host: model.HostSample | None) -> str:
    """The node itself in one line, as nvitop's host panel: CPU, memory, swap, load."""
    if host is None:
        return "Host · —"
    used = (
        host.memory_total_bytes - host.memory_available_bytes
        if host.memory_total_bytes is not None and host.memory_available_bytes is not None
        else None
    )
    cores = f" of {host.cpu_count} cores" if host.cpu_count else ""
    load = " ".join(fmt.number(v, 1) for v in (host.load_1m, host.load_5m, host.load_15m))
    return " · ".join(
        (
            "Host",
            f"CPU {fmt.percent(host.cpu_ratio)}{cores}",
            f"memory {fmt.gib_of(used, host.memory_total_bytes)} GiB",
            f"swap {fmt.gib_of(host.swap_used_bytes, host.swap_total_bytes)} GiB",
            f"load {load}",
        )
    )


# --------------------------------------------------------------------------- processes


def process_command(p: model.ProcessSample) -> str:
    command = p.command or p.name or fmt.MISSING
    tag = fmt.triton_tag(p)
    return f"{tag} {command}" if tag else command


def memory_share(p: model.ProcessSample, gpu_memory_bytes: int | None) -> float | None:
    """The process's share of its GPU's memory (0–1), None when either side is unknown."""
    if p.used_memory_bytes is None or not gpu_memory_bytes:
        return None
    return p.used_memory_bytes / gpu_memory_bytes


def process_cells(
    p: model.ProcessSample, pal: Palette, gpu_memory_bytes: int | None = None, now: float | None = None
) -> list[Cell]:
    """Cells in PROCESS_COLUMNS order (process_panel.py); `gpu_memory_bytes`: its GPU's
    memory, for the share; `now`: the snapshot's time, for how long it has run."""
    running = now - p.started_at if now is not None and p.started_at is not None else None
    return [
        str(p.pid),
        Text(p.user or fmt.MISSING),  # the table cuts it to the column's width
        Text(fmt.container_of(p) or fmt.MISSING, style=pal.dim),  # the table clips it to its column
        fmt.gpu_place(p.gpu_index, p.mig_index),
        fmt.size(p.used_memory_bytes),
        fmt.percent(memory_share(p, gpu_memory_bytes)),
        fmt.percent(p.sm_utilization_ratio),
        fmt.percent(p.cpu_ratio),
        fmt.size(p.host_memory_bytes),
        fmt.elapsed(running),
        Text(process_command(p)),
    ]


# --------------------------------------------------------------------------- models


def model_key(stats: model.ModelStats) -> str:
    return f"{stats.server}/{stats.name}/{stats.version}"


def model_state(stats: model.ModelStats, pal: Palette) -> Text:
    state = stats.state
    if state == model.ModelState.READY:
        return Text("ready", style=pal.good)
    if state in (model.ModelState.LOADING, model.ModelState.UNLOADING):
        return Text(state.lower(), style=pal.warn)
    return Text(((state or "").lower() or "unknown")[:STATE_WORDS], style=pal.warn)


def batch_cell(stats: model.ModelStats, pal: Palette) -> Text:
    """Average executed batch against the max, and a 4-cell bar of the fill."""
    if stats.max_batch_size == 0:
        return Text("no batching", style=pal.dim)
    interval = stats.interval
    average = interval.average_batch_size if interval else None
    fill = interval.batch_fill_ratio if interval else None
    head = f"{fmt.number(average, 1)}/{fmt.number(stats.max_batch_size)}"
    text = Text(head.ljust(8))
    text.append(fmt.bar(fill, 4, "█", "·"), style=pal.bar)
    return text


def finding_style(finding: model.Finding, pal: Palette) -> Style | str:
    """Critical in the fault style, warning in the warn style, info plain: the `!` and the
    words carry the meaning without colour."""
    return {model.Severity.CRITICAL: pal.fault, model.Severity.WARNING: pal.warn}.get(finding.severity, "")


def model_cells(
    stats: model.ModelStats, pal: Palette, prefix: str = "", found: Sequence[model.Finding] = ()
) -> list[Cell]:
    """Cells in MODEL_COLUMNS order (model_panel.py); `prefix` draws an ensemble's tree; `found`
    are the model's findings (the assessment's, most severe first): the first one's words are
    the state cell, "! failing 30%", and the figures it read are marked."""
    i = stats.interval
    kinds = {f.kind for f in found}
    failures = i.failures_per_second if i else None
    # An ensemble's own failure figure is Triton's double count (each failed step counted in the
    # ensemble's statistics too, docs/triton.md): not shown, its failing step's row says it.
    fails = Text(fmt.MISSING if stats.ensemble_steps else fmt.per_second(failures))
    if model.FindingKind.MODEL_FAILING in kinds:
        fails = Text("! " + fmt.per_second(failures), style=pal.warn)
    share = i.queue_share_ratio if i else None
    queued = kinds & QUEUE_KINDS
    queue_share = Text(fmt.percent(share), style=pal.warn if queued else "")
    label = stats.name if stats.version in ("", "1") else f"{stats.name}:{stats.version}"
    state = model_state(stats, pal)
    if found:
        state = Text("! " + found[0].words[:STATE_WORDS], style=finding_style(found[0], pal))
    return [
        Text(prefix + label),
        state,
        fmt.per_second(i.requests_per_second if i else None),
        fails,
        batch_cell(stats, pal),
        fmt.seconds(i.average_queue_seconds if i else None),
        fmt.seconds(i.average_compute_infer_seconds if i else None),
        queue_share,
        fmt.number(stats.pending_requests),
        ",".join(str(g) for g in stats.gpu_indexes) or fmt.MISSING,
        Text(stats.server, style=pal.dim),
    ]


def all_models(snapshot: model.Snapshot) -> list[model.ModelStats]:
    return [m for server in snapshot.triton for m in server.models]


def triton_note(snapshot: model.Snapshot) -> str | None:
    """Why the models table is empty or partial, in one line; None when all servers are up."""
    if not snapshot.triton:
        return "no Triton server polled (none configured, or Triton polling is off)"
    bad = [s for s in snapshot.triton if s.state not in (model.ServerState.UP, model.ServerState.ABSENT)]
    if bad:
        return " · ".join(f"! Triton {s.name} {s.state.value.upper()}: {s.reason or s.url}" for s in bad)
    if all(s.state == model.ServerState.ABSENT for s in snapshot.triton):
        return "no Triton server is listening on this node"
    return None


# --------------------------------------------------------------------------- events


def event_cells(event: model.Event, pal: Palette) -> list[Cell]:
    """Cells in EVENT_COLUMNS order (events_panel.py)."""
    style = {
        model.Severity.CRITICAL: pal.fault,
        model.Severity.WARNING: pal.warn,
    }.get(event.severity, pal.dim)
    where = ""
    if event.gpu_index is not None:
        where = f"GPU {event.gpu_index}"
    elif event.model:
        where = event.model if not event.version else f"{event.model}:{event.version}"
    elif event.server:
        where = event.server
    return [
        fmt.time_of_day(event.timestamp),
        Text(event.severity.value, style=style),
        event.kind.value,
        where or fmt.MISSING,
        Text(event.message),
    ]


# --------------------------------------------------------------------------- nodes


def node_cells(name: str, summary: NodeSummary | None, problem: str | None, pal: Palette) -> list[Cell]:
    """Cells in NODE_COLUMNS order (cluster_screen.py). A node with a `problem` is DOWN with
    the reason; its figures are the last it gave (`summary` None: it never answered). The
    Reason says the node's findings: "! 1 critical 2 warning: GPU 3 LOST, …"."""
    if summary is None:
        return [Text(name), Text("DOWN", style=pal.fault), *([fmt.MISSING] * 7), Text(problem or "")]
    state = Text("DOWN", style=pal.fault) if problem else Text("up", style=pal.good)
    busiest = fmt.MISSING
    if summary.busiest is not None:
        busiest = f"{summary.busiest[0]}: {fmt.percent(summary.busiest[1])}"
    hottest = fmt.MISSING
    if summary.hottest is not None:
        hottest = f"{summary.hottest[0]}: {fmt.celsius(summary.hottest[1])}"
    power = fmt.of(summary.power_watts, summary.power_limit_watts)
    lost = Text(str(summary.lost_gpus), style=pal.fault if summary.lost_gpus else "")
    fails = Text(fmt.per_second(summary.failures_per_second))
    if summary.failing:
        fails = Text("! " + fmt.per_second(summary.failures_per_second), style=pal.warn)
    models = f"{summary.models_ready}/{summary.models_total}" if summary.models_total else fmt.MISSING
    counted = " ".join(
        f"{n} {word}" for n, word in ((summary.critical, "critical"), (summary.warnings, "warning")) if n
    )
    looks = f"! {counted}: {', '.join(summary.looks)}" if counted else ""
    note = problem or " · ".join(x for x in (looks, summary.note) if x)
    return [
        Text(name),
        state,
        str(summary.gpus),
        busiest,
        power,
        hottest,
        models,
        fails,
        lost,
        Text(note, style=pal.warn if problem or looks else pal.dim),
    ]
