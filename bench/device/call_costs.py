"""Per-call CPU and wall cost of the NVML calls gpuwatch reads on its slow cadence, on a real GPU.

Answers: is energy cheaper through a field value (NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION) than
through nvmlDeviceGetTotalEnergyConsumption? What do GPM and per-process utilization cost?
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import pynvml


def cost(fn: Callable[[], Any], n: int = 40) -> dict[str, float]:
    cpu, wall = [], []
    for _ in range(n):
        c0, w0 = time.thread_time(), time.perf_counter()
        with contextlib.suppress(pynvml.NVMLError):
            fn()
        cpu.append((time.thread_time() - c0) * 1e6)
        wall.append((time.perf_counter() - w0) * 1e6)
    return {"cpu_us": round(statistics.median(cpu), 1), "wall_us": round(statistics.median(wall), 1)}


def main() -> None:
    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    fi = pynvml
    s1, s2 = pynvml.nvmlGpmSampleAlloc(), pynvml.nvmlGpmSampleAlloc()
    pynvml.nvmlGpmSampleGet(h, s1)
    time.sleep(0.2)

    def gpm16() -> None:
        pynvml.nvmlGpmSampleGet(h, s2)
        req = pynvml.c_nvmlGpmMetricsGet_t()
        req.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        req.numMetrics = 16
        req.sample1, req.sample2 = s1, s2
        for i, m in enumerate((1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 20, 21, 60, 61)):
            req.metrics[i].metricId = m
        pynvml.nvmlGpmMetricsGet(req)

    results = {
        "energy_call": cost(lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(h)),
        "energy_field": cost(
            lambda: pynvml.nvmlDeviceGetFieldValues(h, [fi.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION])
        ),
        "fields_temp_replay": cost(
            lambda: pynvml.nvmlDeviceGetFieldValues(
                h, [fi.NVML_FI_DEV_MEMORY_TEMP, fi.NVML_FI_DEV_PCIE_REPLAY_COUNTER]
            )
        ),
        "fields_temp_replay_energy": cost(
            lambda: pynvml.nvmlDeviceGetFieldValues(
                h,
                [
                    fi.NVML_FI_DEV_MEMORY_TEMP,
                    fi.NVML_FI_DEV_PCIE_REPLAY_COUNTER,
                    fi.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION,
                ],
            )
        ),
        "process_utilization": cost(lambda: pynvml.nvmlDeviceGetProcessesUtilizationInfo(h, 0), 20),
        "gpm_sample_plus_16_metrics": cost(gpm16, 20),
        "power_usage": cost(lambda: pynvml.nvmlDeviceGetPowerUsage(h)),
        "utilization": cost(lambda: pynvml.nvmlDeviceGetUtilizationRates(h)),
        "remapped_rows": cost(lambda: pynvml.nvmlDeviceGetRemappedRows(h)),
        "ecc_aggregate": cost(
            lambda: pynvml.nvmlDeviceGetTotalEccErrors(
                h, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_AGGREGATE_ECC
            )
        ),
        "event_wait_0": cost(lambda: pynvml.nvmlEventSetWait_v2(es, 0)) if (es := _events(h)) else None,
    }
    json.dump(results, sys.stdout, indent=1)
    print()


def _events(h: Any) -> Any:
    try:
        es = pynvml.nvmlEventSetCreate()
        pynvml.nvmlDeviceRegisterEvents(h, pynvml.nvmlEventTypeXidCriticalError, es)
        return es
    except pynvml.NVMLError as exc:
        print(f"events unavailable: {exc}", file=sys.stderr)
        return None


if __name__ == "__main__":
    main()
