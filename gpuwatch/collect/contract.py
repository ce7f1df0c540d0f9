"""The collector contract: what the engine asks of a source of GPU or Triton data.

Place in the flow: collectors implement this; the engine runs it. It sits below both, so a
collector never imports the engine. A collector offers jobs (each run on its own thread, on
its own cadence, by the engine), an immutable view of what it last read, and the events it saw
since the last drain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gpuwatch import model

RunResult = str | None
"""A job's run returns None when it worked, or one line saying what failed."""


@dataclass(frozen=True)
class Job:
    name: str
    cadence_seconds: float
    run: Callable[[], RunResult]
    offset_seconds: float = 0.0
    """Runs at k × cadence + offset on the wall clock; lets slow jobs stay off the tick."""


class GpuSource(Protocol):
    """What the engine needs of the NVML collector (or anything standing in for it)."""

    def jobs(self) -> list[Job]: ...
    def view(self) -> GpuView: ...
    def drain_events(self) -> list[model.Event]: ...
    def close(self) -> None: ...


class GpuView(Protocol):
    @property
    def status(self) -> str | None: ...
    @property
    def node(self) -> model.NodeInfo: ...
    @property
    def devices(self) -> tuple[model.GpuInfo, ...]: ...
    @property
    def gpus(self) -> tuple[model.GpuSample, ...]: ...
    @property
    def processes(self) -> tuple[model.ProcessSample, ...]: ...
    @property
    def topology(self) -> model.Topology | None: ...
    @property
    def mig_devices(self) -> tuple[model.MigDevice, ...]: ...


class TritonSource(Protocol):
    def jobs(self) -> list[Job]: ...
    def view(self) -> tuple[model.TritonServerStatus, ...]: ...
    def drain_events(self) -> list[model.Event]: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class KubernetesView:
    """What the kubelet and the container runtime last said, for the Kubernetes join."""

    devices: dict[str, tuple[model.PodRef, ...]]
    """Device id as the kubelet returned it (GPU or MIG UUID, maybe with a `::N` replica
    suffix) → the containers it is allotted to (`PodRef.device_id` set)."""
    containers: dict[str, model.PodRef]
    """CRI container id (64 hex) → its pod and container name."""
    pods: dict[str, model.PodRef]
    """Pod UID → its pod (container ""), for a process whose own container the runtime has
    not listed yet."""


EMPTY_KUBERNETES = KubernetesView({}, {}, {})


class KubernetesSource(Protocol):
    def jobs(self) -> list[Job]: ...
    def view(self) -> KubernetesView: ...
    def close(self) -> None: ...


class HostSource(Protocol):
    """The node's own CPU, memory, swap and load (`collect/host.HostUsage`)."""

    def jobs(self) -> list[Job]: ...
    def view(self) -> model.HostSample | None: ...
    def close(self) -> None: ...
