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


class TritonSource(Protocol):
    def jobs(self) -> list[Job]: ...
    def view(self) -> tuple[model.TritonServerStatus, ...]: ...
    def drain_events(self) -> list[model.Event]: ...
    def close(self) -> None: ...


class HostSource(Protocol):
    """The node's own CPU, memory, swap and load (`collect/host.HostUsage`)."""

    def jobs(self) -> list[Job]: ...
    def view(self) -> model.HostSample | None: ...
    def close(self) -> None: ...
