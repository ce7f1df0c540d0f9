"""The demo's half of the wiring: the real collectors over the recorded sources.

Place in the flow: `gpuwatch.assemble.build_engine(demo=True)` asks this module for the GPU and
Triton sources of `--demo`. The collectors are the production ones (`NvmlCollector`,
`TritonCollector`); only what they read is recorded, and `[demo] scenario`'s faults are
scheduled on those recordings before anything starts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from gpuwatch.collect.host import HostProcess
from gpuwatch.collect.nvml.collector import NvmlCollector
from gpuwatch.collect.triton.collector import TritonCollector
from gpuwatch.config import Settings, TritonServerSettings
from gpuwatch.demo import scenarios
from gpuwatch.demo.nvlink import NODE_NAME as NVLINK_NODE
from gpuwatch.demo.nvlink import RecordedNvlinkNode
from gpuwatch.demo.nvml import RecordedNvml, recorded_gpu_uuid
from gpuwatch.demo.nvml_mig import DEMO_LAYOUT, MigInstance
from gpuwatch.demo.processes import RecordedProcesses
from gpuwatch.demo.triton import DEMO_PLACEMENT, RecordedTriton

DEMO_TRITON = TritonServerSettings(
    name="local", url="http://127.0.0.1:8000", metrics_url="http://127.0.0.1:8002/metrics", headers={}
)
"""The demo's recorded server: where the default local server would be."""
DEMO_HOLD_SECONDS = 120.0
"""How long each demo GPU keeps one role (matmul, copy, idle, …) before the next."""
DEMO_TRITON_PID = 900
"""PID of the demo's tritonserver process (the recorded GPU processes are all 1000 and up)."""


def build_demo_sources(
    settings: Settings,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[NvmlCollector, TritonCollector | None]:
    """The GPU and Triton sources of `--demo`, with `[demo] scenario`'s faults scheduled
    (`monotonic`: what the Triton collector times its intervals by; a manual clock's, in tests)."""
    scenario = scenarios.get(settings.demo.scenario)
    recorded_triton = build_recorded_triton(settings, clock, monotonic) if settings.demo.triton else None
    if scenario is not None:  # before anything starts: a scenario that cannot run stops here
        scenarios.apply_to_triton(scenario, recorded_triton[1] if recorded_triton else None)
    gpus = build_recorded_gpus(settings, clock)
    return gpus, (recorded_triton[0] if recorded_triton else None)


def build_recorded_gpus(settings: Settings, clock: Callable[[], float] = time.time) -> NvmlCollector:
    """The recorded GPUs of --demo, with `[demo] scenario`'s faults scheduled on them."""
    tick = settings.nvml.interval_seconds
    extra = demo_triton_processes(settings, clock()) if settings.demo.triton else []
    recorded: RecordedNvml
    if settings.demo.node == NVLINK_NODE:
        recorded = RecordedNvlinkNode(clock=clock, tick_seconds=tick, extra_processes=extra)
    else:
        recorded = RecordedNvml(
            settings.demo.gpus,
            clock=clock,
            tick_seconds=tick,
            extra_processes=extra,
            mig=demo_mig(settings),
            hold_seconds=DEMO_HOLD_SECONDS,
        )
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


def demo_mig(settings: Settings) -> dict[int, tuple[MigInstance, ...]]:
    """The demo's GPUs in MIG mode: the last one, split as `DEMO_LAYOUT`, where there are two or
    more (so a demo of one GPU stays a whole GPU, and GPU 0 is always one)."""
    if not settings.demo.mig or settings.demo.gpus < 2:
        return {}
    return {settings.demo.gpus - 1: DEMO_LAYOUT}


def demo_triton_processes(settings: Settings, now: float) -> list[tuple[int, int, int, HostProcess]]:
    """The demo's tritonserver process, on each recorded GPU a demo model is placed on, and its
    python backend stubs, one per model instance on a GPU."""
    host = HostProcess(
        user="triton-server",
        name="tritonserver",
        command="tritonserver --model-repository=/models --http-port=8000 --metrics-port=8002",
        container_id=hashlib.sha256(b"demo-tritonserver").hexdigest(),
        started_at=now - 7200,
    )
    count = demo_gpu_count(settings)
    gpus = sorted({g % count for placed in DEMO_PLACEMENT.values() for g in placed})
    out = [(g, DEMO_TRITON_PID, 584 * 1024**2, host) for g in gpus]
    # The python models' instances run in backend stubs, the server's children: they hold most
    # of its GPU memory and do its GPU work (as on the H200: 88 % of the memory).
    pid = DEMO_TRITON_PID
    for name, placed in DEMO_PLACEMENT.items():
        for n, gpu in enumerate(sorted({g % count for g in placed})):
            pid += 1
            stub = HostProcess(
                user="triton-server",
                name="triton_python_backend_stub",
                command=(
                    f"/opt/tritonserver/backends/python/triton_python_backend_stub /models/{name}/1/model.py "
                    f"triton_python_backend_shm_region_{pid} 1048576 1048576 {DEMO_TRITON_PID} "
                    f"/opt/tritonserver/backends/python 336 {name}_0_{n} DEFAULT"
                ),
                container_id=host.container_id,
                started_at=now - 7190,
                parent_pid=DEMO_TRITON_PID,
            )
            out.append((gpu, pid, (3 + gpu % 2) * 1024**3, stub))
    return out


def build_recorded_triton(
    settings: Settings,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[TritonCollector, RecordedTriton]:
    """The demo's Triton: the real collector over the recorded server, and that server (demo
    scenarios put their model faults on it: `RecordedTriton.fail_requests`, `stall`, …)."""
    uuids = demo_gpu_uuids(settings)
    recorded = RecordedTriton(clock=clock, gpu_uuids=uuids)
    collector = TritonCollector(
        settings.triton, [DEMO_TRITON], transport=recorded, clock=clock, monotonic=monotonic
    )
    return collector, recorded


def demo_gpu_count(settings: Settings) -> int:
    """How many GPUs the configured recorded node has."""
    return len(demo_gpu_uuids(settings))


def demo_gpu_uuids(settings: Settings) -> list[str]:
    """The UUIDs of the configured recorded node's GPUs, by index (the demo's Triton labels with them)."""
    if settings.demo.node == NVLINK_NODE:
        from gpuwatch.demo.nvlink import load_node

        return [str(gpu["uuid"]) for gpu in load_node()["gpus"]]
    return [recorded_gpu_uuid(i) for i in range(settings.demo.gpus)]
