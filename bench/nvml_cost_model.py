"""A model of the NVIDIA driver's CPU cost, for benchmarks over the recorded NVML source.

The recorded source answers in microseconds of Python; a real driver call costs what
data/nvml_cpu_cost_load.json measured on an H100 under load. `cost_burner()` returns an
`on_call` hook for `RecordedNvml` that spends that much CPU (not wall time) per call, so a
benchmark sees gpuwatch's overhead beside a realistic driver. Benchmarks only: it never ships.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

_DATA = Path(__file__).resolve().parent / "data" / "nvml_cpu_cost_load.json"


def load_cpu_costs_us() -> dict[str, float]:
    """CPU cost per call measured on the H100 under load, by pynvml function name."""
    raw = json.loads(_DATA.read_text())
    by_key = {k: v["cpu_us"] for k, v in raw.items() if isinstance(v, dict)}
    return {
        "nvmlDeviceGetUtilizationRates": by_key["util"],
        "nvmlDeviceGetMemoryInfo": by_key["mem_v2"],
        "nvmlDeviceGetTemperature": by_key["temp"],
        "nvmlDeviceGetPowerUsage": by_key["power"],
        "nvmlDeviceGetClockInfo": by_key["clock_sm"],
        "nvmlDeviceGetPerformanceState": by_key["pstate"],
        "nvmlDeviceGetCurrentClocksEventReasons": by_key["clock_events"],
        "nvmlDeviceGetTotalEccErrors": by_key["ecc_volatile"],
        "nvmlDeviceGetComputeRunningProcesses": by_key["procs"],
        "nvmlDeviceGetTotalEnergyConsumption": by_key["energy"],
        "nvmlDeviceGetProcessesUtilizationInfo": by_key["proc_util"],
        "nvmlGpmMetricsGet": by_key["gpm_4_metrics"],
        "nvmlDeviceGetFieldValues": by_key["field_values_3"],
        "nvmlDeviceGetPcieThroughput": by_key["pcie_tx"],
    }


def cost_burner(costs_us: dict[str, float] | None = None) -> Callable[[str], None]:
    """An `on_call` hook for `RecordedNvml` that burns each call's measured CPU cost."""
    costs = load_cpu_costs_us() if costs_us is None else costs_us

    def burn(function_name: str) -> None:
        cost = costs.get(function_name)
        if cost:
            end = time.thread_time() + cost / 1e6
            while time.thread_time() < end:
                pass

    return burn
