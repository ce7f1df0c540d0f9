"""How the GPUs reach each other and the CPUs: the matrix `nvidia-smi topo -m` prints.

Place in the flow: the NVML collector's slow job calls `TopologyReader.refresh` after each GPU's
slow read; it reads NVML only when the GPUs or their links' states changed since the last
time (so once, in the steady state), on the job's thread, through the gateway. `view()` puts the
latest `model.Topology` in the snapshot and fills in each link's far-end GPU (`with_remotes`).

Each pair of GPUs is joined by NVLink (`NV#`, # the links between them) or by a PCIe path
(`nvmlDeviceGetTopologyCommonAncestor`: PIX, PXB, PHB, NODE, SYS). A link's far end is the GPU
whose PCI bus id `nvmlDeviceGetNvLinkRemotePciInfo_v2` names. Where NVML hides it (a VM answers
FFFFFFFF:FF:FF.0; an NVSwitch answers the switch), the links that are up go to each peer NVML
reports NVLink P2P with (`nvmlDeviceGetP2PStatus`, NVLINK): all 18 for the VM's pair, as
nvidia-smi's NV18 says, and for every pair behind NVSwitches, as nvidia-smi prints it there.
CPU and NUMA affinity are `nvmlDeviceGetCpuAffinity` and `nvmlDeviceGetMemoryAffinity`; the
GPU's own NUMA node (`nvmlDeviceGetNumaNodeId`) exists on Grace systems only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pynvml

from gpuwatch import model
from gpuwatch.catalog import nvml_codes
from gpuwatch.collect.nvml.gateway import NvmlGateway

_BITS = 64


@dataclass(frozen=True, slots=True)
class TopologyGpu:
    """What the reader needs of one open GPU, copied under the collector's lock."""

    index: int
    uuid: str
    handle: Any
    pci_bus_id: str | None
    nvlinks: tuple[model.NvlinkLink, ...]


def ranges(numbers: Iterable[int]) -> str:
    """[0, 1, 2, 3, 8] → "0-3,8", as nvidia-smi writes CPU lists."""
    spans: list[list[int]] = []
    for n in sorted(set(numbers)):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def mask_bits(words: Any) -> list[int]:
    """The set bits of NVML's affinity masks (an array of 64-bit words, lowest first)."""
    bits = []
    for w, word in enumerate(words):
        value = int(word)
        for b in range(_BITS):
            if value >> b & 1:
                bits.append(w * _BITS + b)
    return bits


class TopologyReader:
    """The latest topology, read again only when the GPUs or their links' states change."""

    def __init__(self, gateway: NvmlGateway) -> None:
        self._gateway = gateway
        self._signature: object = None
        self.topology: model.Topology | None = None
        self.remotes: dict[int, dict[int, int]] = {}
        """GPU index → link → the GPU at its far end."""

    def refresh(self, gpus: Sequence[TopologyGpu]) -> None:
        signature = tuple(
            (g.index, g.uuid, id(g.handle), tuple((n.link, n.state) for n in g.nvlinks)) for g in gpus
        )
        if signature == self._signature:
            return
        topology, remotes = self._read(gpus)
        self.topology, self.remotes, self._signature = topology, remotes, signature

    def forget(self) -> None:
        """Read again next time (a GPU was lost while it was being read)."""
        self._signature = None

    def _read(self, gpus: Sequence[TopologyGpu]) -> tuple[model.Topology | None, dict[int, dict[int, int]]]:
        if not gpus:
            return None, {}
        c = self._gateway.call
        by_bus = {g.pci_bus_id.upper(): g.index for g in gpus if g.pci_bus_id}
        p2p: dict[tuple[int, int], bool] = {}
        ancestor: dict[tuple[int, int], int | None] = {}
        for a in gpus:
            for b in gpus:
                if a.index == b.index:
                    continue
                level = c(
                    a.uuid, f"topology_{b.uuid}", "nvmlDeviceGetTopologyCommonAncestor", a.handle, b.handle
                )
                ancestor[(a.index, b.index)] = level if isinstance(level, int) else None
                status = c(
                    a.uuid,
                    f"p2p_nvlink_{b.uuid}",
                    "nvmlDeviceGetP2PStatus",
                    a.handle,
                    b.handle,
                    pynvml.NVML_P2P_CAPS_INDEX_NVLINK,
                )
                p2p[(a.index, b.index)] = status == pynvml.NVML_P2P_STATUS_OK
        remotes: dict[int, dict[int, int]] = {}
        counts: dict[tuple[int, int], int] = {}
        for a in gpus:
            peers = [b.index for b in gpus if b.index != a.index and p2p[(a.index, b.index)]]
            up = [n for n in a.nvlinks if n.state is model.NvlinkState.UP]
            hidden = [n for n in up if n.remote_pci_bus_id is None or n.remote_pci_bus_id not in by_bus]
            mine = remotes.setdefault(a.index, {})
            for n in up:
                far = by_bus.get(n.remote_pci_bus_id or "")
                if far is None and len(peers) == 1:
                    far = peers[0]
                if far is not None:
                    mine[n.link] = far
            for b in gpus:
                if b.index == a.index:
                    continue
                direct = sum(1 for n in up if by_bus.get(n.remote_pci_bus_id or "") == b.index)
                counts[(a.index, b.index)] = direct or (len(hidden) if b.index in peers else 0)
        cpu_words = max(1, -(-(os.cpu_count() or 1) // _BITS))
        rows = []
        order = tuple(g.index for g in gpus)
        for a in gpus:
            paths = []
            for b in gpus:
                if a.index == b.index:
                    paths.append("X")
                elif counts[(a.index, b.index)]:
                    paths.append(f"NV{counts[(a.index, b.index)]}")
                else:
                    level = ancestor[(a.index, b.index)]
                    paths.append(nvml_codes.TOPOLOGY_PATHS.get(level, "") if level is not None else "")
            cpus = c(a.uuid, "cpu_affinity", "nvmlDeviceGetCpuAffinity", a.handle, cpu_words)
            nodes = c(
                a.uuid,
                "numa_affinity",
                "nvmlDeviceGetMemoryAffinity",
                a.handle,
                1,
                pynvml.NVML_AFFINITY_SCOPE_NODE,
            )
            numa_id = c(a.uuid, "numa_node_id", "nvmlDeviceGetNumaNodeId", a.handle)
            cpu_bits = mask_bits(cpus) if cpus is not None else []
            node_bits = mask_bits(nodes) if nodes is not None else []
            rows.append(
                model.GpuTopology(
                    gpu_index=a.index,
                    paths=tuple(paths),
                    cpu_affinity=ranges(cpu_bits) if cpu_bits else None,
                    numa_affinity=ranges(node_bits) if node_bits else None,
                    numa_node_id=numa_id if isinstance(numa_id, int) and numa_id >= 0 else None,
                )
            )
        return model.Topology(gpu_indexes=order, rows=tuple(rows)), remotes


def with_remotes(sample: model.GpuSample, remotes: dict[int, dict[int, int]]) -> model.GpuSample:
    """The sample with each link's far-end GPU filled in, where the topology knows it."""
    far = remotes.get(sample.index)
    if not far or not sample.nvlinks:
        return sample
    links = tuple(
        dataclasses.replace(n, remote_gpu_index=far[n.link]) if n.link in far else n for n in sample.nvlinks
    )
    return dataclasses.replace(sample, nvlinks=links)
