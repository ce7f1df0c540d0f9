"""The Kubernetes join, as one pure function: GPUs and processes marked with their pods.

Place in the flow: `collect/joins.py` calls `attribute` once per snapshot with the GPU view's
samples and processes and the Kubernetes collector's view; nothing is written back.

- GPU → pods: each device id the kubelet returned is matched to a GPU by its UUID (a
  time-slicing replica `UUID::N` by the UUID before `::`), or by a MIG device's UUID to the GPU
  it is part of (`mig_parents`, MIG UUID → parent UUID); `GpuSample.pods` lists the holders.
- process → pod: by its cgroup container id in the runtime's containers, else by its cgroup
  pod UID (`PodRef.container` then ""); a process in no known pod keeps `pod` None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from gpuwatch import model
from gpuwatch.collect.contract import KubernetesView


def device_uuid(device_id: str) -> str:
    """The GPU or MIG UUID a device id names: a time-slicing replica's `::N` removed."""
    return device_id.split("::", 1)[0]


def attribute(
    gpus: tuple[model.GpuSample, ...],
    processes: tuple[model.ProcessSample, ...],
    view: KubernetesView,
    mig_parents: Mapping[str, str] | None = None,
) -> tuple[tuple[model.GpuSample, ...], tuple[model.ProcessSample, ...]]:
    parents = mig_parents or {}
    by_gpu: dict[str, list[model.PodRef]] = {}
    for device_id, holders in view.devices.items():
        uuid = device_uuid(device_id)
        by_gpu.setdefault(parents.get(uuid, uuid), []).extend(holders)
    marked_gpus = tuple(
        replace(g, pods=pods) if (pods := tuple(by_gpu.get(g.uuid, ()))) != g.pods else g for g in gpus
    )
    marked_processes = tuple(_mark(p, view) for p in processes)
    return marked_gpus, marked_processes


def _mark(process: model.ProcessSample, view: KubernetesView) -> model.ProcessSample:
    ref = view.containers.get(process.container_id) if process.container_id else None
    if ref is None and process.pod_uid:
        ref = view.pods.get(process.pod_uid)
    return replace(process, pod=ref) if ref != process.pod else process
