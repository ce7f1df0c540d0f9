"""The demo's GPUs keep their roles long enough to read (issue 14 item 4).

Read through pynvml's own function names on the recorded GPUs, on a manual clock: what each
GPU does (its power and utilization) stays one role for the demo's hold, then moves on.
"""

from __future__ import annotations

from gpuwatch.demo.assemble import DEMO_HOLD_SECONDS
from gpuwatch.demo.nvml import PHASES, RecordedNvml
from tests.conftest import ManualClock


def role(nvml: RecordedNvml, gpu: int) -> str:
    handle = nvml.nvmlDeviceGetHandleByIndex(gpu)
    watts = nvml.nvmlDeviceGetPowerUsage(handle) / 1000
    util = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
    used = nvml.nvmlDeviceGetMemoryInfo(handle).used
    if util == 0:
        return "holding memory" if used > 8 * 1024**3 else "idle"
    if watts > 600:
        return "matmul"
    return "copy" if watts < 400 else "fp32"


def test_each_demo_gpu_keeps_one_role_for_the_hold_then_takes_the_next() -> None:
    clock = ManualClock()
    nvml = RecordedNvml(4, clock=clock, hold_seconds=DEMO_HOLD_SECONDS)
    nvml.nvmlInit()
    first = [role(nvml, g) for g in range(4)]
    assert first == ["matmul", "copy", "idle", "fp32"]  # four different roles side by side
    energy = [nvml.nvmlDeviceGetTotalEnergyConsumption(nvml.nvmlDeviceGetHandleByIndex(0))]
    for _ in range(int(DEMO_HOLD_SECONDS / 5) - 1):  # every 5 s of the hold
        clock.advance(5)
        assert [role(nvml, g) for g in range(4)] == first
        energy.append(nvml.nvmlDeviceGetTotalEnergyConsumption(nvml.nvmlDeviceGetHandleByIndex(0)))
    clock.advance(5)
    assert [role(nvml, g) for g in range(4)] == ["copy", "idle", "fp32", "holding memory"]
    assert energy == sorted(energy) and energy[-1] > energy[0]  # a counter keeps rising
    # A 700 W matmul for ~2 min: about 80 kJ.
    assert 70e6 < energy[-1] - energy[0] < 90e6


def test_without_a_hold_the_trace_plays_straight() -> None:
    clock = ManualClock()
    nvml = RecordedNvml(1, clock=clock)
    nvml.nvmlInit()
    seen = set()
    for _ in range(72):
        seen.add(role(nvml, 0))
        clock.advance(1)
    assert {"matmul", "copy", "idle"} <= seen  # the whole 72 s trace in 72 s
    assert len(PHASES) == 5
