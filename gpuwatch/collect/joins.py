"""The joins across collectors, as one pure function: NVML's processes and GPUs with Triton's servers.

Place in the flow: the engine, building a snapshot, reads the GPU collector's view and the
Triton collector's view and calls `join` once; the joined processes and servers go into the
snapshot. Nothing is written back into a collector: the Triton collector never learns which
processes are its servers, and a join of the same two views always gives the same result.

What is joined (the rules themselves are in `triton/link.py`):

- process ↔ server: each `tritonserver` process is matched to the configured server on this
  host with its HTTP port (or to the only local server), and marked with its name
  (`ProcessSample.triton_server`);
- each server's PIDs: the processes linked to it, sorted (`TritonServerStatus.pids`);
- model → GPUs: each model's `gpu_uuids` (Triton's `gpu_uuid` labels) become NVML indexes of
  the GPUs with those UUIDs; a model with none that NVML knows keeps the `gpu_indexes` its
  collector took from the config's instance_group `gpus`;
- GPU → pods and process → pod (`kubernetes/attribute.py`), when the Kubernetes collector runs.
- model → MIG devices: a `gpu_uuid` that is a MIG device's UUID names that device (and its
  parent joins the model's GPUs); otherwise, on a model's GPUs in MIG mode, the MIG devices its
  server's processes run on (`ModelStats.mig_uuids`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from gpuwatch import model
from gpuwatch.collect.contract import KubernetesView
from gpuwatch.collect.kubernetes.attribute import attribute
from gpuwatch.collect.triton import link


class GpuPlacement(Protocol):
    """What a join reads of the GPU view (`contract.GpuView` has it)."""

    @property
    def devices(self) -> tuple[model.GpuInfo, ...]: ...
    @property
    def processes(self) -> tuple[model.ProcessSample, ...]: ...
    @property
    def gpus(self) -> tuple[model.GpuSample, ...]: ...
    @property
    def mig_devices(self) -> tuple[model.MigDevice, ...]: ...


@dataclass(frozen=True, slots=True)
class Joined:
    processes: tuple[model.ProcessSample, ...]
    """The GPU view's processes, each Triton server's marked with its name, each in a pod
    marked with it."""
    servers: tuple[model.TritonServerStatus, ...]
    """The Triton view's servers with their PIDs and their models' GPU indexes."""
    gpus: tuple[model.GpuSample, ...] = ()
    """The GPU view's samples, each marked with the pods holding it."""


def join(
    gpus: GpuPlacement,
    servers: tuple[model.TritonServerStatus, ...],
    *,
    local_names: frozenset[str] | None = None,
    kubernetes: KubernetesView | None = None,
) -> Joined:
    """Join one tick's GPU view with its Triton servers and (`kubernetes`) its pods.
    `local_names`: this host's names (default: the name the kernel knows), for telling a
    local server's URL from a remote one."""
    links = link.tritonserver_links(gpus.processes, [(s.name, s.url) for s in servers], local_names)
    processes = link.mark_processes(gpus.processes, links)
    samples = gpus.gpus
    if kubernetes is not None:
        parents = {m.uuid: m.gpu_uuid for m in gpus.mig_devices}
        samples, processes = attribute(samples, processes, kubernetes, parents)
    with_pids = tuple(_with_pids(s, links) for s in servers)
    placed = link.resolve_gpu_indexes(with_pids, gpus.devices)
    if gpus.mig_devices:
        placed = tuple(_on_mig(s, gpus.mig_devices, processes) for s in placed)
    return Joined(processes, placed, samples)


def _on_mig(
    server: model.TritonServerStatus,
    migs: tuple[model.MigDevice, ...],
    processes: tuple[model.ProcessSample, ...],
) -> model.TritonServerStatus:
    """Each model's MIG devices: named by its `gpu_uuid` labels, else where its server runs."""
    by_uuid = {link.normalize_uuid(m.uuid): m for m in migs}
    served = {p.mig_uuid for p in processes if p.pid in server.pids and p.mig_uuid}
    models = []
    for stats in server.models:
        named = [by_uuid[u] for u in map(link.normalize_uuid, stats.gpu_uuids) if u in by_uuid]
        if named:
            found = tuple(sorted({m.uuid for m in named}))
            indexes = tuple(sorted({*stats.gpu_indexes, *(m.gpu_index for m in named)}))
        else:
            found = tuple(
                sorted(m.uuid for m in migs if m.gpu_index in stats.gpu_indexes and m.uuid in served)
            )
            indexes = stats.gpu_indexes
        if found != stats.mig_uuids or indexes != stats.gpu_indexes:
            stats = replace(stats, mig_uuids=found, gpu_indexes=indexes)  # noqa: PLW2901 - the linked copy
        models.append(stats)
    return replace(server, models=tuple(models))


def _with_pids(server: model.TritonServerStatus, links: dict[int, str]) -> model.TritonServerStatus:
    pids = tuple(sorted(pid for pid, name in links.items() if name == server.name))
    return replace(server, pids=pids) if pids != server.pids else server
