"""Builds an engine from settings: the real sources on a GPU node, recorded ones for --demo.

The only module that knows every concrete collector. The CLI asks it for an engine; the
daemon, `snapshot` and the in-process TUI all run the engine it returns, so there is one copy of
the collection logic however gpuwatch is started.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from gpuwatch.collect import scenarios
from gpuwatch.collect.host import HostProcess, HostProcesses, RecordedProcesses
from gpuwatch.collect.nvml import NvmlCollector, open_real_nvml
from gpuwatch.collect.nvml_recorded import RecordedNvml, recorded_gpu_uuid
from gpuwatch.collect.triton import TritonCollector
from gpuwatch.collect.triton_recorded import DEMO_PLACEMENT, RecordedTriton
from gpuwatch.config import Settings, TritonServerSettings, triton_server_from_url
from gpuwatch.engine import Engine, TritonSource


def build_engine(
    settings: Settings,
    *,
    demo: bool,
    triton_urls: list[str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Engine:
    if not demo:
        gpus = open_real_nvml(settings.nvml, HostProcesses())
        triton = build_triton(settings, demo=False, urls=triton_urls, clock=clock)
        return Engine(gpus, triton, tick_seconds=settings.nvml.interval_seconds, clock=clock)
    scenario = scenarios.get(settings.demo.scenario)
    recorded_triton = build_recorded_triton(settings, clock) if settings.demo.triton else None
    if scenario is not None:  # before anything starts: a scenario that cannot run stops here
        scenarios.apply_to_triton(scenario, recorded_triton[1] if recorded_triton else None)
    gpus = build_recorded_gpus(settings, clock)
    triton = recorded_triton[0] if recorded_triton else None
    return Engine(gpus, triton, tick_seconds=settings.nvml.interval_seconds, clock=clock)


DEMO_TRITON = TritonServerSettings(
    name="local", url="http://127.0.0.1:8000", metrics_url="http://127.0.0.1:8002/metrics", headers={}
)
"""The demo's recorded server: where the default local server would be."""
DEMO_TRITON_PID = 900
"""PID of the demo's tritonserver process (the recorded GPU processes are all 1000 and up)."""


def build_recorded_gpus(settings: Settings, clock: Callable[[], float] = time.time) -> NvmlCollector:
    """The recorded GPUs of --demo, with `[demo] scenario`'s faults scheduled on them."""
    tick = settings.nvml.interval_seconds
    extra = demo_triton_processes(settings, clock()) if settings.demo.triton else []
    recorded = RecordedNvml(settings.demo.gpus, clock=clock, tick_seconds=tick, extra_processes=extra)
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


def demo_triton_processes(settings: Settings, now: float) -> list[tuple[int, int, int, HostProcess]]:
    """The demo's tritonserver process, on each recorded GPU a demo model is placed on."""
    host = HostProcess(
        user="triton-server",
        name="tritonserver",
        command="tritonserver --model-repository=/models --http-port=8000 --metrics-port=8002",
        container_id=hashlib.sha256(b"demo-tritonserver").hexdigest(),
        started_at=now - 7200,
    )
    gpus = sorted({g % settings.demo.gpus for placed in DEMO_PLACEMENT.values() for g in placed})
    return [(g, DEMO_TRITON_PID, (3 + g % 2) * 1024**3, host) for g in gpus]


def build_triton(
    settings: Settings,
    *,
    demo: bool,
    urls: list[str] | None,
    clock: Callable[[], float] = time.time,
) -> TritonSource | None:
    """The Triton collector (real servers, or the recorded demo server), or None if disabled.

    `urls` (`--triton URL[,METRICS_URL]`, repeatable) replace the configured servers and are
    polled even when `[triton] enabled = false`; each is explicit, so nothing listening there
    is "down", not "absent"."""
    if demo:
        return build_recorded_triton(settings, clock)[0] if settings.demo.triton else None
    servers: Sequence[TritonServerSettings]
    if urls:
        servers, implicit = [triton_server_from_url(u) for u in urls], False
    elif settings.triton.enabled:
        servers, implicit = settings.triton_servers()
    else:
        return None
    return TritonCollector(settings.triton, _unique_names(servers), implicit=implicit, clock=clock)


def build_recorded_triton(
    settings: Settings, clock: Callable[[], float] = time.time
) -> tuple[TritonCollector, RecordedTriton]:
    """The demo's Triton: the real collector over the recorded server, and that server (demo
    scenarios put their model faults on it: `RecordedTriton.fail_requests`, `stall`, …)."""
    uuids = [recorded_gpu_uuid(i) for i in range(settings.demo.gpus)]
    recorded = RecordedTriton(clock=clock, gpu_uuids=uuids)
    return TritonCollector(settings.triton, [DEMO_TRITON], transport=recorded, clock=clock), recorded


def _unique_names(servers: Sequence[TritonServerSettings]) -> list[TritonServerSettings]:
    """Server names label series and name jobs: two servers never share one."""
    seen: dict[str, int] = {}
    out = []
    for s in servers:
        n = seen.get(s.name, 0) + 1
        seen[s.name] = n
        out.append(s if n == 1 else replace(s, name=f"{s.name}-{n}"))
    return out
