"""CPU time of a whole process, every thread, from /proc/PID/task/*/schedstat (ns resolution).

psutil's cpu_times() ticks in 10 ms, too coarse for a monitor that costs tens of milliseconds a
minute; schedstat counts nanoseconds. Shared by the device benchmarks.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import psutil


def cpu_seconds(pid: int) -> float:
    total_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total_ns += int((task / "schedstat").read_text().split()[0])
    if total_ns:
        return total_ns / 1e9
    t = psutil.Process(pid).cpu_times()  # a kernel without schedstat
    return float(t.user + t.system)
