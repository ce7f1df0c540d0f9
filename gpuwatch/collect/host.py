"""What the host knows about a process NVML reports: user, command line, container, start time.

The NVML collector asks a `ProcessInfoSource` about each PID it sees on a GPU. `HostProcesses`
reads the real host through psutil and /proc/PID/cgroup, caching each PID while it stays on a
GPU; the demo's stand-in (`gpuwatch.demo.processes`) answers for the PIDs the recorded NVML
source invents. Parsing a cgroup file (container id and pod UID) is a pure function with its
own tests (`collect/kubernetes/cgroup.py`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from gpuwatch.collect.kubernetes.cgroup import parse_cgroup


@dataclass(frozen=True, slots=True)
class HostProcess:
    user: str | None
    name: str | None
    command: str | None
    container_id: str | None
    started_at: float | None
    pod_uid: str | None = None
    """The Kubernetes pod's UID from the cgroup path; None outside a pod."""
    parent_pid: int | None = None
    """Its parent's PID (a Triton backend stub's is its tritonserver's)."""


class ProcessInfoSource(Protocol):
    def describe(self, pid: int) -> HostProcess | None: ...

    def forget_except(self, pids: set[int]) -> None:
        """Drop cached entries for PIDs no longer on any GPU."""


def parse_container_id(cgroup_text: str) -> str | None:
    """The 64-hex container id in a /proc/PID/cgroup file, or None for a host process."""
    return parse_cgroup(cgroup_text).container_id


class HostProcesses:
    """The real host, through psutil. A PID is looked up once while it stays on a GPU."""

    def __init__(self, proc_root: Path = Path("/proc")) -> None:
        self._proc_root = proc_root
        self._cache: dict[int, HostProcess | None] = {}
        self._lock = threading.Lock()

    def describe(self, pid: int) -> HostProcess | None:
        with self._lock:
            if pid in self._cache:
                return self._cache[pid]
        info = self._lookup(pid)
        with self._lock:
            self._cache[pid] = info
        return info

    def forget_except(self, pids: set[int]) -> None:
        with self._lock:
            for pid in [p for p in self._cache if p not in pids]:
                del self._cache[pid]

    def _lookup(self, pid: int) -> HostProcess | None:
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                name = proc.name()
                started = proc.create_time()
                parent = proc.ppid() or None
                try:
                    user: str | None = proc.username()
                except (KeyError, psutil.Error):  # a UID with no passwd entry (containers)
                    user = str(proc.uids().real)
                try:
                    command: str | None = " ".join(proc.cmdline()) or name
                except psutil.AccessDenied:
                    command = None
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None  # gone, or in another PID namespace (a daemon inside a container)
        except psutil.AccessDenied:
            return HostProcess(None, None, None, None, None)
        try:
            cgroup = (self._proc_root / str(pid) / "cgroup").read_text()
        except OSError:
            cgroup = ""
        place = parse_cgroup(cgroup)
        return HostProcess(user, name, command, place.container_id, started, place.pod_uid, parent)
