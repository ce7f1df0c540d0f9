"""The demo's host: user, command and container of the PIDs the recorded NVML source invents.

Place in the flow: a `ProcessInfoSource` (gpuwatch.collect.host) for the real NVML collector
when it runs over the recorded source; the real host is never asked about these PIDs.
"""

from __future__ import annotations

from gpuwatch.collect.host import HostProcess


class RecordedProcesses:
    """Host facts for the PIDs of the recorded NVML source (the demo has no such processes)."""

    def __init__(self, table: dict[int, HostProcess]) -> None:
        self._table = dict(table)

    def describe(self, pid: int) -> HostProcess | None:
        return self._table.get(pid)

    def forget_except(self, pids: set[int]) -> None:
        return None
