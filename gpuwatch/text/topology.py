"""The topology matrix and the NVLink links as text: what `gpuwatch topo` prints.

Reads only the data model (the snapshot's `topology` and each GPU's `nvlinks`). The matrix is
laid out as `nvidia-smi topo -m` lays it out — tab-separated, " X " on the diagonal, CPU and
NUMA affinity and the GPU's own NUMA node last, N/A for what NVML cannot tell — so that a
person (or a script) used to one reads the other; tests hold it equal to a capture of
nvidia-smi on two NVLinked H200s. Below it, one line per GPU sums its links up.
"""

from __future__ import annotations

from gpuwatch import model
from gpuwatch.text import fmt

LEGEND = (
    "Legend:",
    "",
    "  X    = the GPU itself",
    "  NV#  = # bonded NVLinks",
    "  PIX  = PCIe through one bridge at most",
    "  PXB  = PCIe through several bridges, not the host bridge",
    "  PHB  = PCIe through a host bridge (the CPU)",
    "  NODE = PCIe and the link between host bridges of one NUMA node",
    "  SYS  = PCIe and the link between NUMA nodes (QPI, UPI, Infinity Fabric)",
)


def _na(value: object) -> str:
    return "N/A" if value is None or value == "" else str(value)


def matrix(topology: model.Topology) -> list[str]:
    """The header and one row per GPU, as nvidia-smi topo -m writes them."""
    names = [f"GPU{i}" for i in topology.gpu_indexes]
    lines = ["\t" + "\t".join([*names, "CPU Affinity", "NUMA Affinity", "GPU NUMA ID"])]
    for row in topology.rows:
        cells = [" X " if path == "X" else _na(path) for path in row.paths]
        tail = [_na(row.cpu_affinity), _na(row.numa_affinity), "", _na(row.numa_node_id)]
        lines.append("\t".join([f"GPU{row.gpu_index}", *cells, *tail]))
    return lines


def links_line(sample: model.GpuSample) -> str:
    """One GPU's links in a line:
    "GPU0  NVLink 18/18 up, v4.0, 26.562 GB/s each, to GPU1 · ↑ 301 GB/s ↓ 301 GB/s · errors 0"."""
    links = sample.nvlinks
    if not links:
        return f"GPU{sample.index}  no NVLink links"
    up = [n for n in links if n.state is model.NvlinkState.UP]
    parts = [f"NVLink {len(up)}/{len(links)} up"]
    versions = sorted({n.version for n in links if n.version})
    if versions:
        parts[0] += ", v" + "/".join(versions)
    speeds = sorted({n.speed_bytes_per_second for n in links if n.speed_bytes_per_second})
    if len(speeds) == 1:
        parts[0] += f", {speeds[0] / 1e9:.3f} GB/s each"
    peers = sorted({n.remote_gpu_index for n in up if n.remote_gpu_index is not None})
    if peers:
        parts[0] += ", to " + ", ".join(f"GPU{p}" for p in peers)
    down = [str(n.link) for n in links if n.state is model.NvlinkState.DOWN]
    if down:
        parts.append("! down: link " + ", ".join(down))
    tx, rx = sample.nvlink_tx_bytes_per_second, sample.nvlink_rx_bytes_per_second
    parts.append(f"↑ {fmt.rate(tx)} ↓ {fmt.rate(rx)}")
    errors = [
        v
        for n in links
        for v in (n.crc_error_count, n.replay_error_count, n.recovery_error_count)
        if v is not None
    ]
    parts.append(f"errors {sum(errors)}" if errors else "errors —")
    return f"GPU{sample.index}  " + " · ".join(parts)


def render(snapshot: model.Snapshot) -> str:
    """The matrix, the legend and each GPU's links, as `gpuwatch topo` prints them."""
    lines: list[str] = []
    if snapshot.topology is None:
        lines.append("no topology: " + (snapshot.nvml_status or "NVML gave none"))
    else:
        lines.extend(matrix(snapshot.topology))
        lines.append("")
        lines.extend(LEGEND)
    if snapshot.gpus:
        lines.append("")
        lines.extend(links_line(g) for g in snapshot.gpus)
    return "\n".join(lines) + "\n"
