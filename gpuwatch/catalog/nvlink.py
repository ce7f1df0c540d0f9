"""The NVLink and topology figures: each link's state, speed, errors and traffic; each GPU's sums; the matrix.

Place in the flow: declarations read by every face through `catalog.index` (see
`catalog.figures` for what a declaration holds). The per-GPU sums (links up and down, error
counters over the links) are kept in history (the `gpu` tables); the per-link figures and the
topology are /metrics only. A GPU without links has none of these: no series, never a 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gpuwatch import model
from gpuwatch.catalog import entities as e
from gpuwatch.catalog.figures import WHOLE, AnyFigure, Labels, counter, flag, gauge, labelled, one

UP = model.NvlinkState.UP
DOWN = model.NvlinkState.DOWN


def links_in_state(state: model.NvlinkState) -> Callable[[model.GpuSample], int | None]:
    """How many of a GPU's links are in `state`; None for a GPU without links or states."""

    def read(s: model.GpuSample) -> int | None:
        known = [n for n in s.nvlinks if n.state is not None]
        return sum(1 for n in known if n.state is state) if known else None

    return read


def error_sum(read: Callable[[model.NvlinkLink], int | None]) -> Callable[[model.GpuSample], int | None]:
    """An error counter summed over a GPU's links; None when no link gives it."""

    def total(s: model.GpuSample) -> int | None:
        values = [v for n in s.nvlinks if (v := read(n)) is not None]
        return sum(values) if values else None

    return total


def _crc(n: model.NvlinkLink) -> int | None:
    return n.crc_error_count


def _replay(n: model.NvlinkLink) -> int | None:
    return n.replay_error_count


def _recovery(n: model.NvlinkLink) -> int | None:
    return n.recovery_error_count


def _peer_rows(item: e.TopologyRow) -> Iterable[tuple[Labels, int]]:
    row, _uuid, columns = item
    for peer, path in zip(columns, row.paths, strict=True):
        if path and path != "X":
            yield (str(peer), path), 1


def _affinity_rows(item: e.TopologyRow) -> Iterable[tuple[Labels, int]]:
    row = item[0]
    if row.cpu_affinity is None and row.numa_affinity is None:
        return ()
    return one(row.cpu_affinity, row.numa_affinity)


GPU = (
    gauge(
        "gpu_nvlink_links_up",
        e.GPU,
        links_in_state(UP),
        "NVLink links of the GPU that are up.",
        stored=WHOLE,
    ),
    gauge(
        "gpu_nvlink_links_down",
        e.GPU,
        links_in_state(DOWN),
        "NVLink links of the GPU that are down (a link of an NVLinked GPU should never be).",
        stored=WHOLE,
    ),
    counter(
        "gpu_nvlink_crc_errors_count",
        e.GPU,
        error_sum(_crc),
        "NVLink CRC (flit) errors, all links, since the driver was loaded.",
        stored=WHOLE,
    ),
    counter(
        "gpu_nvlink_replay_errors_count",
        e.GPU,
        error_sum(_replay),
        "NVLink replays (transmissions resent after an error), all links.",
        stored=WHOLE,
    ),
    counter(
        "gpu_nvlink_recovery_errors_count",
        e.GPU,
        error_sum(_recovery),
        "NVLink recoveries (a link retrained after errors), all links.",
        stored=WHOLE,
    ),
)

LINK = (
    gauge(
        "gpu_nvlink_link_up",
        e.NVLINK,
        lambda item: None if item[1].state is None else flag(item[1].state is UP),
        "1 when the NVLink link is up, 0 when it is down.",
    ),
    labelled(
        "gpu_nvlink_link_info",
        e.NVLINK,
        ("version", "remote_gpu", "remote_pci_bus_id"),
        lambda item: one(
            item[1].version,
            None if item[1].remote_gpu_index is None else str(item[1].remote_gpu_index),
            item[1].remote_pci_bus_id,
        ),
        "Always 1; the link's NVLink version and the GPU (and bus id) at its far end, where NVML tells.",
    ),
    gauge(
        "gpu_nvlink_link_speed_bytes_per_second",
        e.NVLINK,
        lambda item: item[1].speed_bytes_per_second,
        "The link's data rate, one way.",
        unit="bytes per second",
    ),
    counter(
        "gpu_nvlink_link_crc_errors_count",
        e.NVLINK,
        lambda item: item[1].crc_error_count,
        "CRC (flit) errors on the link since the driver was loaded.",
    ),
    counter(
        "gpu_nvlink_link_replay_errors_count",
        e.NVLINK,
        lambda item: item[1].replay_error_count,
        "Replays on the link since the driver was loaded.",
    ),
    counter(
        "gpu_nvlink_link_recovery_errors_count",
        e.NVLINK,
        lambda item: item[1].recovery_error_count,
        "Recoveries of the link since the driver was loaded.",
    ),
    gauge(
        "gpu_nvlink_link_tx_bytes_per_second",
        e.NVLINK,
        lambda item: item[1].tx_bytes_per_second,
        "Data sent on the link over the slow read's interval.",
        unit="bytes per second",
    ),
    gauge(
        "gpu_nvlink_link_rx_bytes_per_second",
        e.NVLINK,
        lambda item: item[1].rx_bytes_per_second,
        "Data received on the link over the slow read's interval.",
        unit="bytes per second",
    ),
)

TOPOLOGY = (
    labelled(
        "gpu_topology_info",
        e.GPU_TOPOLOGY,
        ("peer_gpu", "path"),
        _peer_rows,
        "Always 1; how the GPU reaches each other GPU, in nvidia-smi topo -m's words (NV# for # "
        "bonded NVLinks, PIX, PXB, PHB, NODE, SYS).",
    ),
    labelled(
        "gpu_affinity_info",
        e.GPU_TOPOLOGY,
        ("cpus", "numa_nodes"),
        _affinity_rows,
        "Always 1; the CPUs and NUMA nodes nearest the GPU, as ranges (0-31).",
    ),
)

FIGURES: tuple[AnyFigure, ...] = GPU + LINK + TOPOLOGY
