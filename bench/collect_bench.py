"""Collection cost per GPU per tick: gpuwatch's NVML collector against the bare calls it makes.

Method (issue 3): the collector runs over the recorded NVML source for 1 and 8 GPUs. First the
exact pynvml calls it makes in one slow period (5 fast ticks, 1 slow read, 5 event polls) are
captured, arguments and all. Then, in the same run, the same number of periods is timed twice:
once through gpuwatch (gateway, worker threads, decoding, building immutable samples and the
view), once as a bare loop replaying the captured calls. The figure is process CPU time (all
threads), reported as µs per GPU per tick and as gpuwatch's overhead over the bare calls.

Two sources are measured: the recorded stand-in as it is (its calls cost microseconds of
Python, so this is the worst case for the ratio), and the same stand-in burning the CPU each
call cost on a real H100 under load (bench/data/nvml_cpu_cost_load.json, bench/nvml_cost_model.py), which models the driver.
The real driver is measured on the GPU with bench/device/run.sh.

Usage: python bench/collect_bench.py [--periods N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

import pynvml

from gpuwatch.collect.nvml.collector import NvmlCollector
from gpuwatch.config import NvmlSettings
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.demo.processes import RecordedProcesses

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nvml_capture import Capture
from nvml_cost_model import cost_burner, load_cpu_costs_us

FAST_PER_SLOW = 5


class Clock:
    def __init__(self) -> None:
        self.now = 1_795_558_200.0

    def __call__(self) -> float:
        return self.now


def period(collector: NvmlCollector, clock: Clock) -> None:
    for _ in range(FAST_PER_SLOW):
        clock.now += 1.0
        collector.poll_fast()
        collector.poll_events()
    collector.poll_slow()


def cpu(fn: Callable[[], None], repeat: int) -> float:
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return time.process_time() - start


def measure(gpus: int, periods: int, cost_us: dict[str, float] | None) -> dict[str, float]:
    clock = Clock()
    recorded = RecordedNvml(gpus, clock=clock, on_call=cost_burner(cost_us) if cost_us else None)
    capture = Capture(recorded)
    settings = NvmlSettings(interval_seconds=1.0, slow_interval_seconds=5.0, call_timeout_seconds=5.0)
    collector = NvmlCollector(capture, settings, RecordedProcesses(recorded.host_processes()), clock=clock)
    for _ in range(3):  # warm up: init, GPM baselines, process caches
        period(collector, clock)
    capture.recording = True
    period(collector, clock)
    capture.recording = False
    calls = [(getattr(recorded, name), args) for name, args in capture.calls]

    def bare() -> None:
        for _ in range(FAST_PER_SLOW):
            clock.now += 1.0
        for fn, args in calls:
            with contextlib.suppress(pynvml.NVMLError):
                fn(*args)

    bare_s = cpu(bare, periods)
    gpuwatch_s = cpu(lambda: period(collector, clock), periods)
    collector.close()
    ticks = periods * FAST_PER_SLOW * gpus
    return {
        "calls_per_gpu_tick": len(calls) / FAST_PER_SLOW / gpus,
        "bare_us": bare_s / ticks * 1e6,
        "gpuwatch_us": gpuwatch_s / ticks * 1e6,
        "overhead": (gpuwatch_s - bare_s) / bare_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, default=60, help="slow periods to time (5 ticks each)")
    args = parser.parse_args()
    costs = load_cpu_costs_us()
    print("CPU per GPU per tick (µs); overhead = (gpuwatch − bare calls) / bare calls, same run")
    print(f"{'source':<34}{'GPUs':>5}{'calls':>7}{'bare µs':>10}{'gpuwatch µs':>13}{'overhead':>10}")
    for label, cost in (("recorded (Python stand-in)", None), ("recorded + H100 call costs", costs)):
        for gpus in (1, 8):
            r = measure(gpus, args.periods, cost)
            print(
                f"{label:<34}{gpus:>5}{r['calls_per_gpu_tick']:>7.1f}{r['bare_us']:>10.1f}"
                f"{r['gpuwatch_us']:>13.1f}{r['overhead']:>9.2f}×"
            )
    print("goal: overhead ≤ 1× the calls' own cost, ≤ 500 µs CPU per GPU per tick")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
