"""The kinds of entity a figure belongs to, each with its labels, spelled here once.

Place in the flow: a figure (`catalog.figures`) names its entity kind; every face asks the kind
for its objects in a reading (`each`) and for an object's label values (`key`): /metrics for its
label sets, the history for its series keys, the store for its tables (one per kind it keeps),
the API and the CLI for which labels a series can be filtered by.

The kinds the history keeps (`gpu`, `mig`, `model`, `server`) name the store's tables and the `entity`
of `/api/v1/series`; the others exist for /metrics only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from gpuwatch import model
from gpuwatch.catalog.reading import BatchCounts, ModelKey, Reading, Tally

T = TypeVar("T")

CONTAINER_ID_CHARS = 12
"""A process's `container` label: the first 12 hex digits of its container id, as docker shows."""


@dataclass(frozen=True, slots=True)
class EntityKind(Generic[T]):
    """GPUs, model versions, servers, …: what one label set of a figure stands for."""

    name: str
    labels: tuple[str, ...]
    each: Callable[[Reading], Iterable[T]]
    """The objects of this kind in a reading, in the order they are exported."""
    key: Callable[[T], tuple[str, ...]]
    """One object's label values, in the order of `labels`."""
    context_labels: tuple[str, ...] = ()
    """Labels /metrics adds to this kind's series where they are known: a value "" is left out
    of the sample, not written empty. Not part of the key, so the history keeps one series per
    object whatever its context (a GPU's history does not split when its pod changes)."""
    context: Callable[[T], tuple[str, ...]] | None = None
    """One object's context label values, in the order of `context_labels`."""

    def label_pairs(self, obj: T) -> tuple[tuple[str, str], ...]:
        return tuple(zip(self.labels, self.key(obj), strict=True))


def _none(obj: object) -> tuple[str, ...]:
    return ()


def _label(value: object) -> str:
    """A label value: "" (which Prometheus reads as no label) for what is not known."""
    return "" if value is None else str(value)


def _collectors(r: Reading) -> tuple[model.CollectorHealth, ...]:
    return r.snapshot.collectors if r.snapshot is not None else ()


def _store(r: Reading) -> tuple[model.StoreHealth, ...]:
    store = r.snapshot.store if r.snapshot is not None else None
    return () if store is None else (store,)


def _gpus(r: Reading) -> tuple[model.GpuSample, ...]:
    return r.snapshot.gpus if r.snapshot is not None else ()


def _devices(r: Reading) -> tuple[model.GpuInfo, ...]:
    return r.snapshot.devices if r.snapshot is not None else ()


def _xids(r: Reading) -> list[tuple[tuple[str, str], Mapping[int, int]]]:
    return sorted(r.tally.xids_by_gpu.items()) if r.snapshot is not None else []


def _processes(r: Reading) -> tuple[model.ProcessSample, ...]:
    return r.snapshot.processes if r.snapshot is not None else ()


POD_LABELS = ("namespace", "pod", "container")
"""The Kubernetes labels of a GPU's series, as dcgm-exporter names them."""
_NO_POD = ("", "", "")


def _gpu_pod(s: model.GpuSample) -> tuple[str, ...]:
    """The one container holding the GPU; none when nobody or several do (time-slicing, MIG):
    `gpu_pod_info` lists them all, so the series of a shared GPU do not multiply per holder."""
    holders = {(p.namespace, p.pod, p.container) for p in s.pods}
    return holders.pop() if len(holders) == 1 else _NO_POD


def _gpu_holders(r: Reading) -> Iterable[tuple[model.GpuSample, model.PodRef]]:
    for s in _gpus(r):
        for ref in s.pods:
            yield s, ref


def _holder_key(s: model.GpuSample, ref: model.PodRef) -> tuple[str, ...]:
    return (str(s.index), s.uuid, ref.namespace, ref.pod, ref.container, ref.device_id or "")


def _process_context(p: model.ProcessSample) -> tuple[str, ...]:
    namespace, pod = ("", "") if p.pod is None else (p.pod.namespace, p.pod.pod)
    return namespace, pod, p.triton_model or ""


def _process_key(p: model.ProcessSample) -> tuple[str, ...]:
    container = p.container_id[:CONTAINER_ID_CHARS] if p.container_id else None
    return tuple(
        _label(v) for v in (p.gpu_index, p.gpu_uuid, p.pid, p.name, p.user, container, p.triton_server)
    )


def _servers(r: Reading) -> tuple[model.TritonServerStatus, ...]:
    return r.snapshot.triton if r.snapshot is not None else ()


def _models(r: Reading) -> Iterable[model.ModelStats]:
    for server in _servers(r):
        yield from server.models


def _model_key(m: model.ModelStats) -> ModelKey:
    return (m.server, m.name, m.version)


def _model_batches(r: Reading) -> Iterable[tuple[ModelKey, BatchCounts]]:
    counted = r.tally.batches_by_model
    for stats in _models(r):
        key = _model_key(stats)
        counts = counted.get(key)
        if counts is not None:
            yield key, counts


EXPORTER: EntityKind[Reading] = EntityKind("exporter", (), lambda r: (r,), _none)
"""The gpuwatch serving the figures: there is one even before the first snapshot."""

NODE: EntityKind[model.Snapshot] = EntityKind(
    "node", (), lambda r: () if r.snapshot is None else (r.snapshot,), _none
)
TALLY: EntityKind[Tally] = EntityKind("tally", (), lambda r: () if r.snapshot is None else (r.tally,), _none)
COLLECTOR: EntityKind[model.CollectorHealth] = EntityKind(
    "collector", ("collector",), _collectors, lambda c: (c.name,)
)
STORE: EntityKind[model.StoreHealth] = EntityKind("store", (), _store, _none)

GPU: EntityKind[model.GpuSample] = EntityKind(
    "gpu", ("gpu", "uuid"), _gpus, lambda s: (str(s.index), s.uuid), POD_LABELS, _gpu_pod
)
"""This tick's sample of each GPU, lost and hung ones included; on /metrics with the pod that
holds it, where one does (`[kubernetes]`)."""
GPU_HOLDERS: EntityKind[tuple[model.GpuSample, model.PodRef]] = EntityKind(
    "gpu_holders",
    GPU.labels + POD_LABELS + ("device",),
    _gpu_holders,
    lambda item: _holder_key(*item),
)
"""Each container the kubelet allotted a GPU (or one of its MIG devices) to."""
GPU_FACTS: EntityKind[model.GpuInfo] = EntityKind(
    "gpu_facts", GPU.labels, _devices, lambda d: (str(d.index), d.uuid)
)
"""The static facts of each GPU known."""
GPU_XIDS: EntityKind[tuple[tuple[str, str], Mapping[int, int]]] = EntityKind(
    "gpu_xids", GPU.labels, _xids, lambda item: item[0]
)
"""The XIDs counted on each GPU since the daemon started."""
PROCESS: EntityKind[model.ProcessSample] = EntityKind(
    "process",
    ("gpu", "uuid", "pid", "process", "user", "container", "server"),
    _processes,
    _process_key,
    ("namespace", "pod", "model"),
    _process_context,
)
"""A process holding a context on a GPU: `process` is its name, never its command line;
`container` its container id's first 12 hex digits; `namespace` and `pod` where known; `model`
the Triton model whose instance a backend stub (a child of the server) runs."""


@dataclass(frozen=True, slots=True)
class DcgmGpu:
    """One GPU as dcgm-exporter labels it: the sample, its static facts, the node, its last XID."""

    sample: model.GpuSample
    info: model.GpuInfo | None
    node: model.NodeInfo
    last_xid: int


def _dcgm_gpus(r: Reading) -> list[DcgmGpu]:
    if r.snapshot is None:
        return []
    facts = {d.index: d for d in r.snapshot.devices}
    last = r.tally.last_xid_by_gpu
    return [
        DcgmGpu(s, facts.get(s.index), r.snapshot.node, last.get((str(s.index), s.uuid), 0))
        for s in r.snapshot.gpus
    ]


def _dcgm_key(g: DcgmGpu) -> tuple[str, ...]:
    info, node = g.info, g.node
    return (
        str(g.sample.index),
        g.sample.uuid,
        _label(info.pci_bus_id if info else None),
        f"nvidia{g.sample.index}",
        _label(info.name if info else None),
        node.hostname,
        _label(node.driver_version),
    )


DCGM_GPU: EntityKind[DcgmGpu] = EntityKind(
    "dcgm_gpu",
    ("gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"),
    _dcgm_gpus,
    _dcgm_key,
)
"""A GPU under dcgm-exporter's labels (`[metrics] dcgm_exporter_names`, catalog.dcgm). `device`
is `nvidia` and the NVML index, which is the device node's minor number on every common setup."""

SERVER: EntityKind[model.TritonServerStatus] = EntityKind(
    "server", ("server",), _servers, lambda s: (s.name,)
)
MODEL: EntityKind[model.ModelStats] = EntityKind("model", ("server", "model", "version"), _models, _model_key)
MODEL_BATCHES: EntityKind[tuple[ModelKey, BatchCounts]] = EntityKind(
    "model_batches", MODEL.labels, _model_batches, lambda item: item[0]
)
"""The executed batch sizes counted for each model version since the daemon started."""


NvlinkOfGpu = tuple[model.GpuSample, model.NvlinkLink]
TopologyRow = tuple[model.GpuTopology, str, tuple[int, ...]]
"""A row of the topology matrix, the UUID of its GPU, and the GPU indexes of its columns."""


def _nvlinks(r: Reading) -> Iterable[NvlinkOfGpu]:
    for sample in _gpus(r):
        for link in sample.nvlinks:
            yield sample, link


def _topology_rows(r: Reading) -> Iterable[TopologyRow]:
    topology = r.snapshot.topology if r.snapshot is not None else None
    if topology is None or r.snapshot is None:
        return
    uuids = {d.index: d.uuid for d in r.snapshot.devices}
    for row in topology.rows:
        yield row, uuids.get(row.gpu_index, ""), topology.gpu_indexes


NVLINK: EntityKind[NvlinkOfGpu] = EntityKind(
    "nvlink",
    ("gpu", "uuid", "link"),
    _nvlinks,
    lambda item: (str(item[0].index), item[0].uuid, str(item[1].link)),
)
"""One NVLink link of a GPU (gpuwatch/collect/nvml/links.py)."""
GPU_TOPOLOGY: EntityKind[TopologyRow] = EntityKind(
    "gpu_topology", GPU.labels, _topology_rows, lambda item: (str(item[0].gpu_index), item[1])
)
"""A GPU's row of the topology matrix."""


def _mig_devices(r: Reading) -> tuple[model.MigDevice, ...]:
    return r.snapshot.mig_devices if r.snapshot is not None else ()


def _mig_key(d: model.MigDevice) -> tuple[str, ...]:
    return tuple(
        _label(v)
        for v in (d.gpu_index, d.gpu_uuid, d.gpu_instance_id, d.compute_instance_id, d.profile, d.uuid)
    )


MIG: EntityKind[model.MigDevice] = EntityKind(
    "mig",
    ("gpu", "uuid", "gpu_instance", "compute_instance", "mig_profile", "mig_uuid"),
    _mig_devices,
    _mig_key,
)
"""A MIG device of a GPU in MIG mode: its parent's `gpu`/`uuid`, then its own instance ids,
profile and MIG UUID (dcgm-exporter's GPU_I_ID / GPU_I_PROFILE, in Prometheus's spelling)."""
