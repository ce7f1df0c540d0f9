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

GPU: EntityKind[model.GpuSample] = EntityKind("gpu", ("gpu", "uuid"), _gpus, lambda s: (str(s.index), s.uuid))
"""This tick's sample of each GPU, lost and hung ones included."""
GPU_FACTS: EntityKind[model.GpuInfo] = EntityKind(
    "gpu_facts", GPU.labels, _devices, lambda d: (str(d.index), d.uuid)
)
"""The static facts of each GPU known."""
GPU_XIDS: EntityKind[tuple[tuple[str, str], Mapping[int, int]]] = EntityKind(
    "gpu_xids", GPU.labels, _xids, lambda item: item[0]
)
"""The XIDs counted on each GPU since the daemon started."""
PROCESS: EntityKind[model.ProcessSample] = EntityKind(
    "process", ("gpu", "uuid", "pid", "process", "user", "container", "server"), _processes, _process_key
)
"""A process holding a context on a GPU: `process` is its name, never its command line."""

SERVER: EntityKind[model.TritonServerStatus] = EntityKind(
    "server", ("server",), _servers, lambda s: (s.name,)
)
MODEL: EntityKind[model.ModelStats] = EntityKind("model", ("server", "model", "version"), _models, _model_key)
MODEL_BATCHES: EntityKind[tuple[ModelKey, BatchCounts]] = EntityKind(
    "model_batches", MODEL.labels, _model_batches, lambda item: item[0]
)
"""The executed batch sizes counted for each model version since the daemon started."""


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
