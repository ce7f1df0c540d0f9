"""What the host knows about a process NVML reports: user, command line, container, start time,
and what it uses of the host now (CPU, resident memory).

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

from gpuwatch import model
from gpuwatch.collect.contract import Job
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


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """What a process used of the host over the last interval between two samples."""

    cpu_ratio: float | None
    """CPU time over wall time: 1.0 is one core busy (can pass 1 with threads); None before
    its second sample."""
    rss_bytes: int | None
    """Resident memory on the host (not the GPU's)."""


class ProcessInfoSource(Protocol):
    def describe(self, pid: int) -> HostProcess | None: ...

    def sample_usage(self, pids: set[int]) -> None:
        """Read the CPU and memory use of these PIDs now (the NVML job's thread, each fast tick)."""

    def usage(self, pid: int) -> ProcessUsage | None:
        """The last `sample_usage` of a PID; None when it has none."""

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
        self._procs: dict[int, psutil.Process] = {}
        """Kept between samples: psutil's cpu_percent is the CPU time since the previous call."""
        self._usage: dict[int, ProcessUsage] = {}
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
            for pid in [p for p in self._procs if p not in pids]:
                self._procs.pop(pid, None)
                self._usage.pop(pid, None)

    def sample_usage(self, pids: set[int]) -> None:
        for pid in pids:
            with self._lock:
                proc = self._procs.get(pid)
            first = proc is None
            try:
                if proc is None:
                    proc = psutil.Process(pid)
                with proc.oneshot():
                    percent = proc.cpu_percent(interval=None)
                    rss = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                with self._lock:
                    self._procs.pop(pid, None)
                    self._usage.pop(pid, None)
                continue
            usage = ProcessUsage(None if first else percent / 100.0, rss)
            with self._lock:
                self._procs[pid] = proc
                self._usage[pid] = usage

    def usage(self, pid: int) -> ProcessUsage | None:
        with self._lock:
            return self._usage.get(pid)

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


class HostUsage:
    """The node's CPU, memory, swap and load through psutil: the engine's `HostSource`. One
    job reads them each `interval_seconds`; the CPU share is over the time since the last read
    (None until the second)."""

    def __init__(self, interval_seconds: float = 1.0) -> None:
        self._interval = interval_seconds
        self._latest: model.HostSample | None = None
        self._primed = False
        self._lock = threading.Lock()

    def jobs(self) -> list[Job]:
        return [Job("host", self._interval, self.poll)]

    def poll(self) -> str | None:
        percent = psutil.cpu_percent(interval=None)
        cpu = percent / 100.0 if self._primed else None
        self._primed = True
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        try:
            load: tuple[float | None, ...] = psutil.getloadavg()
        except OSError:
            load = (None, None, None)
        sample = model.HostSample(
            cpu_ratio=cpu,
            cpu_count=psutil.cpu_count(),
            memory_total_bytes=memory.total,
            memory_available_bytes=memory.available,
            swap_total_bytes=swap.total,
            swap_used_bytes=swap.used,
            load_1m=load[0],
            load_5m=load[1],
            load_15m=load[2],
        )
        with self._lock:
            self._latest = sample
        return None

    def view(self) -> model.HostSample | None:
        with self._lock:
            return self._latest

    def close(self) -> None:
        return None
