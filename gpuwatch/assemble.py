"""Builds an engine from settings: the real sources on a GPU node, recorded ones for --demo.

The only module that knows every concrete collector. The CLI asks it for an engine; the
daemon, `snapshot` and the in-process TUI all run the engine it returns, so there is one copy of
the collection logic however gpuwatch is started.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gpuwatch.collect import scenarios
from gpuwatch.collect.host import HostProcesses, RecordedProcesses
from gpuwatch.collect.nvml import NvmlCollector, open_real_nvml
from gpuwatch.collect.nvml_recorded import RecordedNvml
from gpuwatch.config import Settings
from gpuwatch.engine import Engine, TritonSource


def build_engine(
    settings: Settings,
    *,
    demo: bool,
    triton_urls: list[str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Engine:
    scenario = scenarios.get(settings.demo.scenario) if demo else None
    if scenario is not None:
        # No recorded Triton source yet (it comes with the Triton collector): a scenario that
        # needs one stops here, before anything starts. Once build_triton(demo=True) makes the
        # RecordedTriton, it is handed to apply_to_triton instead of None.
        scenarios.apply_to_triton(scenario, None)
    gpus = build_recorded_gpus(settings, clock) if demo else open_real_nvml(settings.nvml, HostProcesses())
    triton = build_triton(settings, demo=demo, urls=triton_urls, clock=clock)
    return Engine(gpus, triton, tick_seconds=settings.nvml.interval_seconds, clock=clock)


def build_recorded_gpus(settings: Settings, clock: Callable[[], float] = time.time) -> NvmlCollector:
    """The recorded GPUs of --demo, with `[demo] scenario`'s faults scheduled on them."""
    tick = settings.nvml.interval_seconds
    recorded = RecordedNvml(settings.demo.gpus, clock=clock, tick_seconds=tick)
    scenario = scenarios.get(settings.demo.scenario)
    if scenario is not None:
        scenarios.apply_to_gpus(scenario, recorded, tick_seconds=tick)
    return NvmlCollector(
        recorded,
        settings.nvml,
        RecordedProcesses(recorded.host_processes()),
        source_name="recorded",
        clock=clock,
    )


def build_triton(
    settings: Settings,
    *,
    demo: bool,
    urls: list[str] | None,
    clock: Callable[[], float] = time.time,
) -> TritonSource | None:
    """The Triton collector (real servers, or the recorded demo server), or None if disabled."""
    return None
