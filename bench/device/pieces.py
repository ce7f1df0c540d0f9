"""Where gpuwatch's collection CPU goes on a real GPU: each piece timed alone (process CPU).

Pieces: the bare fast calls, a GPU's fast refresh (the same calls through the gateway, decoded
into a frozen reading and stored), the hand-off to a GPU's worker thread and back, building the
view, building a snapshot, a zero-timeout event poll, and the slow refresh against its bare
calls. Run under a load.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import contextlib

import pynvml

from gpuwatch.collect.host import HostProcesses
from gpuwatch.collect.nvml.collector import NvmlCollector
from gpuwatch.config import NvmlSettings
from gpuwatch.engine import Engine


def cpu_us(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    t = time.process_time()
    for _ in range(n):
        fn()
    return round((time.process_time() - t) / n * 1e6, 1)


def main() -> None:
    c = NvmlCollector(pynvml, NvmlSettings(), HostProcesses())
    e = Engine(c, None)
    for _ in range(3):
        c.poll_fast()
        c.poll_slow()
        time.sleep(0.3)
    gpu = c._life.gpus[0]
    h = gpu.handle
    w = gpu.fast_worker
    assert w is not None
    fast_calls = [
        (pynvml.nvmlDeviceGetUtilizationRates, (h,)),
        (pynvml.nvmlDeviceGetMemoryInfo, (h, pynvml.nvmlMemory_v2)),
        (pynvml.nvmlDeviceGetCurrentClocksEventReasons, (h,)),
        (pynvml.nvmlDeviceGetEncoderUtilization, (h,)),
        (pynvml.nvmlDeviceGetDecoderUtilization, (h,)),
        (pynvml.nvmlDeviceGetTemperature, (h, 0)),
        (pynvml.nvmlDeviceGetPowerUsage, (h,)),
        (pynvml.nvmlDeviceGetEnforcedPowerLimit, (h,)),
        (pynvml.nvmlDeviceGetClockInfo, (h, 1)),
        (pynvml.nvmlDeviceGetClockInfo, (h, 2)),
        (pynvml.nvmlDeviceGetClockInfo, (h, 0)),
        (pynvml.nvmlDeviceGetPerformanceState, (h,)),
        (pynvml.nvmlDeviceGetTotalEccErrors, (h, 0, 0)),
        (pynvml.nvmlDeviceGetTotalEccErrors, (h, 1, 0)),
        (pynvml.nvmlDeviceGetComputeRunningProcesses, (h,)),
        (pynvml.nvmlDeviceGetGraphicsRunningProcesses, (h,)),
    ]

    def bare_fast() -> None:
        for fn, args in fast_calls:
            with contextlib.suppress(pynvml.NVMLError):
                fn(*args)

    ev = threading.Event()

    def ping() -> None:
        ev.set()

    out = {
        "bare_fast_calls": cpu_us(bare_fast, 2000),
        "read_fast": cpu_us(lambda: c._refresh_fast(gpu), 2000),
        "handoff_to_worker": cpu_us(lambda: (w.submit(lambda: None), w.wait(1)), 2000),
        "view": cpu_us(c.view, 2000),
        "build_snapshot": cpu_us(lambda: e.build_snapshot(time.time()), 2000),
        "poll_events": cpu_us(c.poll_events, 2000),
        "poll_fast": cpu_us(c.poll_fast, 2000),
        "thread_event_roundtrip": cpu_us(lambda: (ping(), ev.wait(), ev.clear()), 2000),
    }
    t = time.process_time()
    for _ in range(20):
        c._refresh_slow(gpu)
        time.sleep(0.05)
    out["read_slow"] = round((time.process_time() - t) / 20 * 1e6, 1)
    print(json.dumps(out))
    c.close()


if __name__ == "__main__":
    main()
