"""The demo's host: user, command, container and host use of the PIDs the recorded NVML source invents.

Place in the flow: a `ProcessInfoSource` (gpuwatch.collect.host) for the real NVML collector
when it runs over the recorded source; the real host is never asked about these PIDs.
"""

from __future__ import annotations

from gpuwatch import model
from gpuwatch.collect.contract import Job
from gpuwatch.collect.host import HostProcess, ProcessUsage

GIB = 1024**3
_USAGE = (  # (words of the command line, what such a process uses of its host), first match wins
    ("serve.py", ProcessUsage(cpu_ratio=1.02, rss_bytes=int(6.2 * GIB))),
    ("embed_batch.py", ProcessUsage(cpu_ratio=0.35, rss_bytes=int(2.1 * GIB))),
    ("tritonserver", ProcessUsage(cpu_ratio=0.81, rss_bytes=int(3.4 * GIB))),
)
"""Typical figures of an inference server, a batch job and Triton: the recording has no host."""


class RecordedProcesses:
    """Host facts for the PIDs of the recorded NVML source (the demo has no such processes)."""

    def __init__(self, table: dict[int, HostProcess]) -> None:
        self._table = dict(table)

    def describe(self, pid: int) -> HostProcess | None:
        return self._table.get(pid)

    def forget_except(self, pids: set[int]) -> None:
        return None

    def sample_usage(self, pids: set[int]) -> None:
        return None

    def usage(self, pid: int) -> ProcessUsage | None:
        command = (self._table[pid].command or "") if pid in self._table else ""
        return next((u for words, u in _USAGE if words in command), None)


RECORDED_HOST = model.HostSample(
    cpu_ratio=0.23,
    cpu_count=64,
    memory_total_bytes=2015 * GIB,
    memory_available_bytes=1762 * GIB,
    swap_total_bytes=0,
    swap_used_bytes=0,
    load_1m=14.6,
    load_5m=13.9,
    load_15m=12.2,
)
"""The demo's host: a typical 8-GPU-class node's figures (the recording has no host)."""


class RecordedHost:
    """The demo's `HostSource`: the recorded node's CPU, memory, swap and load."""

    def jobs(self) -> list[Job]:
        return []

    def view(self) -> model.HostSample | None:
        return RECORDED_HOST

    def close(self) -> None:
        return None
