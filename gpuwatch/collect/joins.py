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
        samples, processes = attribute(samples, processes, kubernetes)
    with_pids = tuple(_with_pids(s, links) for s in servers)
    return Joined(processes, link.resolve_gpu_indexes(with_pids, gpus.devices), samples)


def _with_pids(server: model.TritonServerStatus, links: dict[int, str]) -> model.TritonServerStatus:
    pids = tuple(sorted(pid for pid, name in links.items() if name == server.name))
    return replace(server, pids=pids) if pids != server.pids else server
