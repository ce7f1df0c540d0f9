"""A node for the dashboard's tests: the real engine over the recorded H100s, on a manual clock.

The collectors are driven by hand (`Scene.run`), one tick per clock second, so every snapshot,
every history point and every event is the same on every run: the SVG snapshots depend on it.
By the last tick of `build_scene(..., faults=True)`:
- GPU 1 is in the trace's matmul phase, held down by the software power cap;
- GPU 2 had XID 31 (a page fault) at tick 100;
- GPU 3 fell off the bus (GPU_IS_LOST injected at tick 130);
- the Triton server has four models, one failing (bert-large, 14–18 % of its requests, above
  the 10 % of its finding) and one that will not load.

Triton models are constructed here (`ScriptedTriton`): the recorded Triton source is being
built beside this work and will replace it for `--demo`.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytest

from gpuwatch import model
from gpuwatch.client.inprocess import InProcessClient
from gpuwatch.collect.contract import Job
from gpuwatch.collect.kubernetes.collector import KubernetesCollector
from gpuwatch.collect.nvml.collector import NvmlCollector
from gpuwatch.collect.triton.collector import TritonCollector
from gpuwatch.config import KubernetesSettings, NvmlSettings, Settings
from gpuwatch.demo.assemble import build_demo_sources
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.demo.nvml_mig import MigInstance
from gpuwatch.demo.processes import RecordedHost
from gpuwatch.engine import Engine
from gpuwatch.series import MemoryHistory
from tests.conftest import ManualClock, make_collector
from tests.kube_servers import Servers, gpu_pod, kubelet_container

HOSTNAME = "gpu-node-01"
TICKS = 144
"""Two loops of the 72 s trace: GPU 1 ends in the power-capped matmul."""

# Deadlines far beyond any real worker's time, so a busy CI machine never makes a GPU "hung".
SCENE_NVML = NvmlSettings(
    interval_seconds=60.0, slow_interval_seconds=60.0, call_timeout_seconds=30.0, retry_max_seconds=60.0
)


class ScriptedTriton:
    """A TritonSource of constructed models whose figures move with the clock (for history)."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self._t0 = clock()
        self.server_state = model.ServerState.UP

    def jobs(self) -> list[Job]:
        return []

    def drain_events(self) -> list[model.Event]:
        return []

    def close(self) -> None:
        pass

    def view(self) -> tuple[model.TritonServerStatus, ...]:
        now = self._clock()
        t = now - self._t0
        wave = math.sin(t / 12.0)
        return (
            model.TritonServerStatus(
                name="local",
                url="http://127.0.0.1:8000",
                state=self.server_state,
                version="2.51.0",
                polled_at=now,
                poll_seconds=0.004,
                models=(
                    model.ModelStats(
                        server="local",
                        name="resnet50",
                        version="1",
                        state="READY",
                        backend="onnxruntime",
                        max_batch_size=8,
                        preferred_batch_sizes=(4, 8),
                        dynamic_batching=True,
                        max_queue_delay_seconds=100e-6,
                        instance_count=2,
                        instance_kind="KIND_GPU",
                        gpu_indexes=(0, 1),
                        pending_requests=3,
                        interval=model.ModelInterval(
                            interval_seconds=1.0,
                            requests_per_second=round(412 + 60 * wave, 1),
                            inferences_per_second=round(412 + 60 * wave, 1),
                            executions_per_second=73.0,
                            failures_per_second=0.0,
                            average_batch_size=5.6,
                            batch_fill_ratio=0.7,
                            preferred_batch_ratio=0.84,
                            batch_size_histogram={1: 4, 2: 8, 4: 21, 8: 40},
                            average_request_seconds=0.0094,
                            average_queue_seconds=0.0012,
                            average_compute_input_seconds=0.0004,
                            average_compute_infer_seconds=0.0073,
                            average_compute_output_seconds=0.0005,
                            queue_share_ratio=0.13,
                            mean_queue_depth=0.5,
                        ),
                    ),
                    model.ModelStats(
                        server="local",
                        name="bert-large",
                        version="2",
                        state="READY",
                        backend="tensorrt",
                        max_batch_size=32,
                        preferred_batch_sizes=(16, 32),
                        dynamic_batching=True,
                        max_queue_delay_seconds=0.002,
                        instance_count=1,
                        instance_kind="KIND_GPU",
                        gpu_indexes=(2,),
                        pending_requests=41,
                        interval=model.ModelInterval(
                            interval_seconds=1.0,
                            requests_per_second=96.0,
                            failures_per_second=round(16.0 + 2 * wave, 2),
                            failures_per_second_by_reason={"REJECTED": 12.5, "OTHER": 3.5},
                            average_batch_size=11.3,
                            batch_fill_ratio=11.3 / 32,
                            batch_size_histogram={4: 6, 8: 11, 16: 5},
                            average_request_seconds=0.061,
                            average_queue_seconds=0.038,
                            average_compute_infer_seconds=0.021,
                            queue_share_ratio=0.62,
                            mean_queue_depth=3.6,
                        ),
                    ),
                    model.ModelStats(
                        server="local",
                        name="llama-8b",
                        version="1",
                        state="UNAVAILABLE",
                        state_reason="failed to load: CUDA out of memory",
                        backend="vllm",
                        max_batch_size=0,
                        instance_count=1,
                        instance_kind="KIND_MODEL",
                        gpu_indexes=(3,),
                    ),
                    model.ModelStats(
                        server="local",
                        name="tokenizer",
                        version="1",
                        state="READY",
                        backend="python",
                        max_batch_size=64,
                        instance_count=4,
                        instance_kind="KIND_CPU",
                        pending_requests=0,
                        interval=model.ModelInterval(
                            interval_seconds=1.0,
                            requests_per_second=508.0,
                            failures_per_second=0.0,
                            average_batch_size=1.0,
                            batch_fill_ratio=1 / 64,
                            batch_size_histogram={1: 508},
                            average_request_seconds=0.0003,
                            average_queue_seconds=0.00002,
                            average_compute_infer_seconds=0.00025,
                            queue_share_ratio=0.07,
                        ),
                    ),
                ),
            ),
        )


@dataclass
class Scene:
    clock: ManualClock
    recorded: RecordedNvml
    collector: NvmlCollector
    triton: ScriptedTriton | None
    engine: Engine
    history: MemoryHistory
    ticks: int = 0
    kubernetes: KubernetesCollector | None = None

    def client(self, name: str = HOSTNAME) -> InProcessClient:
        return InProcessClient(
            self.engine, self.history, name=name, clock=self.clock, stale_after_seconds=5.0
        )

    def run(self, seconds: int) -> model.Snapshot:
        """Advance `seconds` ticks: read the GPUs as the engine's jobs would, publish each."""
        snapshot = self.engine.latest()
        for _ in range(seconds):
            self.clock.advance(1.0)
            self.ticks += 1
            # Through the engine's jobs, as its threads would run them: their health counts
            # each run (collectors polled behind its back would read stale in every scene).
            self.engine.run_job("nvml")
            self.engine.run_job("nvml_events")
            if self.ticks % 5 == 1:  # from the first tick, as the engine starts every job at once
                self.engine.run_job("nvml_slow")
            if self.kubernetes is not None:
                assert self.kubernetes.run_pod_resources() is None
                assert self.kubernetes.run_cri() is None
            snapshot = self.engine.tick()
        assert snapshot is not None
        return snapshot

    def close(self) -> None:
        self.recorded.close()
        self.collector.close()


def build_scene(
    monkeypatch: pytest.MonkeyPatch,
    *,
    gpus: int = 4,
    ticks: int = TICKS,
    faults: bool = True,
    triton: bool = True,
    start: float = 1_795_558_200.0,
    hostname: str = HOSTNAME,
    pods: Servers | None = None,
    mig: Mapping[int, Sequence[MigInstance]] | None = None,
) -> Scene:
    """`pods`: running PodResources and CRI servers, told here that the recorded containers are
    pods' (one pod per GPU) and that the pods hold GPUs 0 and 1."""
    monkeypatch.setattr(socket, "gethostname", lambda: hostname)
    clock = ManualClock(start)
    recorded = RecordedNvml(gpus, clock=clock, mig=mig)
    collector = make_collector(recorded, SCENE_NVML, clock)
    scripted = ScriptedTriton(clock) if triton else None
    kubernetes = None
    if pods is not None:
        kubernetes = _pods_of(recorded, collector, pods)
    engine = Engine(
        collector, scripted, clock=clock, kubernetes=kubernetes, monotonic=clock, host=RecordedHost()
    )
    history = MemoryHistory(keep_seconds=900)
    engine.subscribe(history.add)
    if faults:
        recorded.inject_xid(2, 31, at_tick=100)
        recorded.inject("GPU_IS_LOST", gpu=min(3, gpus - 1), from_tick=130)
    scene = Scene(clock, recorded, collector, scripted, engine, history, kubernetes=kubernetes)
    scene.run(ticks)
    return scene


def _pods_of(recorded: RecordedNvml, collector: NvmlCollector, servers: Servers) -> KubernetesCollector:
    containers = sorted(h.container_id for h in recorded.host_processes().values() if h.container_id)
    servers.runtime.containers = [
        kubelet_container(cid, "inference", f"llm-serve-{i}", "server", f"uid-{i}")
        for i, cid in enumerate(containers)
    ]
    servers.kubelet.pods = [
        gpu_pod("inference", f"llm-serve-{i}", "server", uuid)
        for i, uuid in enumerate(d.uuid for d in collector.view().devices[:2])
    ]
    return KubernetesCollector(
        KubernetesSettings(),
        pod_resources_socket=servers.kubelet_socket,
        cri_socket=servers.cri_socket,
        processes=lambda: collector.view().processes,
    )


@dataclass
class DemoScene:
    """What `gpuwatch top --demo` shows, on a manual clock: the demo's own sources
    (`demo/assemble.build_demo_sources`: recorded GPUs holding their roles, the recorded Triton
    and its processes), driven by hand as `Scene` drives its own."""

    clock: ManualClock
    gpus: NvmlCollector
    triton: TritonCollector | None
    engine: Engine
    history: MemoryHistory
    ticks: int = 0

    def client(self, name: str = HOSTNAME) -> InProcessClient:
        return InProcessClient(
            self.engine, self.history, name=name, clock=self.clock, stale_after_seconds=5.0
        )

    def run(self, seconds: int) -> None:
        for _ in range(seconds):
            self.clock.advance(1.0)
            self.ticks += 1
            # Through the engine's jobs, as `Scene.run` does: their health counts each run.
            self.engine.run_job("nvml")
            self.engine.run_job("nvml_events")
            if self.ticks % 5 == 1:
                self.engine.run_job("nvml_slow")
            for job in self.triton.jobs() if self.triton else []:
                self.engine.run_job(job.name)
            self.engine.tick()

    def close(self) -> None:
        self.gpus.close()
        if self.triton is not None:
            self.triton.close()


DEMO_TICKS = 60
"""A minute into the demo: every figure and the models' rates have come."""


def build_demo_scene(monkeypatch: pytest.MonkeyPatch, ticks: int = DEMO_TICKS) -> DemoScene:
    monkeypatch.setattr(socket, "gethostname", lambda: HOSTNAME)
    clock = ManualClock(1_795_558_200.0)
    settings = Settings(nvml=SCENE_NVML)
    gpus, triton = build_demo_sources(settings, clock, monotonic=clock)
    engine = Engine(gpus, triton, clock=clock, host=RecordedHost(), monotonic=clock)
    history = MemoryHistory(keep_seconds=900)
    engine.subscribe(history.add)
    scene = DemoScene(clock, gpus, triton, engine, history)
    scene.run(ticks)
    return scene
