"""Deterministic snapshots for the serving tests: the recorded NVML source driven tick by tick
on a manual clock, with Triton model statistics built directly as data-model values (the Triton
collector is another module's business; its output is plain data)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator
from typing import Any

from gpuwatch import model
from gpuwatch.assess.stage import AssessState, assess
from gpuwatch.config import NvmlSettings
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.engine import Engine, finding_event
from tests.conftest import ManualClock, make_collector


def model_stats(
    server: str,
    name: str,
    version: str = "1",
    *,
    polled_at: float,
    scale: int = 1,
    state: str = "READY",
    histogram: dict[int, int] | None = None,
    reset: bool = False,
) -> model.ModelStats:
    """One model version with every field set, its figures scaled by `scale`."""
    interval = model.ModelInterval(
        interval_seconds=1.0,
        reset=reset,
        reset_reason="server restarted" if reset else None,
        requests_per_second=None if reset else 40.0 * scale,
        inferences_per_second=None if reset else 160.0 * scale,
        executions_per_second=None if reset else 10.0 * scale,
        failures_per_second=None if reset else 0.5,
        failures_per_second_by_reason={} if reset else {"REJECTED": 0.5},
        average_batch_size=16.0,
        batch_fill_ratio=0.5,
        preferred_batch_ratio=0.75,
        batch_size_histogram={} if reset else (histogram if histogram is not None else {8: 2, 16: 6, 32: 2}),
        average_request_seconds=0.012,
        average_queue_seconds=0.003,
        average_compute_input_seconds=0.0005,
        average_compute_infer_seconds=0.008,
        average_compute_output_seconds=0.0005,
        queue_share_ratio=0.25,
        queue_to_compute_ratio=0.333,
        queue_delay_ratio=0.6,
        mean_queue_depth=0.12,
        cache_hit_ratio=0.1,
    )
    return model.ModelStats(
        server=server,
        name=name,
        version=version,
        state=state,
        backend="tensorrt",
        platform="tensorrt_plan",
        max_batch_size=32,
        preferred_batch_sizes=(16, 32),
        dynamic_batching=True,
        max_queue_delay_seconds=0.005,
        instance_count=2,
        instance_kind="KIND_GPU",
        gpu_indexes=(0, 1),
        pending_requests=3,
        last_inference_at=polled_at - 0.2,
        totals=model.ModelTotals(
            request_success_count=10_000 * scale,
            request_failure_count=12,
            failure_count_by_reason={"REJECTED": 10, "BACKEND": 2},
            inference_count=40_000 * scale,
            execution_count=2_500 * scale,
            cache_hit_count=100,
            cache_miss_count=900,
            request_seconds=40.5 * scale,
            queue_seconds=12.25 * scale,
            compute_input_seconds=0.5 * scale,
            compute_infer_seconds=25.0 * scale,
            compute_output_seconds=0.25 * scale,
        ),
        interval=interval,
        llm_metrics={"nv_trt_llm_kv_cache_block_metrics_used": 512.0} if name.startswith("llm") else {},
        latency_percentiles=model.LatencyPercentiles(
            request_p50_seconds=0.0035,
            request_p90_seconds=0.0061,
            request_p99_seconds=0.0125,
            queue_p50_seconds=0.0009,
            queue_p90_seconds=0.0021,
            queue_p99_seconds=0.0048,
            compute_infer_p50_seconds=0.0024,
            compute_infer_p90_seconds=0.0031,
            compute_infer_p99_seconds=0.0052,
        ),
    )


def triton_servers(polled_at: float, models: int = 2) -> tuple[model.TritonServerStatus, ...]:
    names = ["resnet50", "llm-7b", *[f"model-{i:02d}" for i in range(2, models)]][:models]
    return (
        model.TritonServerStatus(
            name="local",
            url="http://127.0.0.1:8000",
            state=model.ServerState.UP,
            version="2.51.0",
            polled_at=polled_at,
            poll_seconds=0.004,
            models=tuple(
                model_stats("local", n, polled_at=polled_at, scale=i + 1) for i, n in enumerate(names)
            ),
            pids=(4321,),
        ),
        model.TritonServerStatus(
            name="edge",
            url="http://user:secret@10.0.0.9:8000",
            state=model.ServerState.DOWN,
            reason="connection refused",
            polled_at=polled_at,
            poll_seconds=0.001,
        ),
    )


FIXED_COLLECTORS = (
    model.CollectorHealth("nvml", True, False, 1.0, 1_795_558_210.0, 0.0031, None, 10, 0),
    model.CollectorHealth("nvml_slow", True, False, 5.0, 1_795_558_210.0, 0.021, None, 3, 0),
    model.CollectorHealth(
        "triton:edge", False, False, 1.0, None, 0.001, "connection refused (http://10.0.0.9:8000)", 10, 10
    ),
)
FIXED_STORE = model.StoreHealth(
    ok=True, path="/var/lib/gpuwatch/gpuwatch.db", queue_length=0, size_bytes=1 << 20
)


class RecordedNode:
    """4 recorded H100s and an engine over them, advanced one tick at a time, by hand."""

    def __init__(self, clock: ManualClock, gpus: int = 4) -> None:
        self.clock = clock
        self.recorded = RecordedNvml(gpus, clock=clock)
        self.collector = make_collector(self.recorded, NvmlSettings(), clock)
        self.engine = Engine(self.collector, None, clock=clock, monotonic=clock)
        self.ticks = 0

    def tick(self) -> model.Snapshot:
        self.clock.advance(1.0)
        self.engine.run_job("nvml")  # through the engine's jobs: their health counts the runs
        self.engine.run_job("nvml_events")
        if self.ticks % 5 == 0:
            self.engine.run_job("nvml_slow")
        self.ticks += 1
        return self.engine.build_snapshot(self.clock())

    def close(self) -> None:
        self.recorded.close()
        self.collector.close()


def golden_snapshots(clock: ManualClock) -> Iterator[model.Snapshot]:
    """Six ticks of 4 recorded GPUs: an XID 79 and a lost GPU 2 on the fifth, a GPU 3 held
    down by HW thermal slowdown, two Triton servers (one down) with two models each."""
    node = RecordedNode(clock)
    state: AssessState | None = None
    finding_kinds = (model.EventKind.FINDING_BEGAN, model.EventKind.FINDING_ENDED)
    try:
        for i in range(6):
            if i == 4:
                node.recorded.inject_xid(1, 79)
                node.recorded.inject_xid(1, 13)
                node.recorded.inject("GPU_IS_LOST", gpu=2)
                node.recorded.override(3, {"temp_c": 92, "throttle": 0x40})
            snapshot = node.tick()
            snapshot = dataclasses.replace(
                snapshot,
                triton=triton_servers(snapshot.timestamp - 0.3),
                collectors=FIXED_COLLECTORS,
                store=FIXED_STORE,
                events=tuple(e for e in snapshot.events if e.kind not in finding_kinds),
            )
            # Judged again on what it shows (the engine judged its own collectors, no Triton),
            # as the engine would: the findings and their events are those of this snapshot.
            state = assess(snapshot, state, snapshot.timestamp)
            changes = [finding_event(f, snapshot.timestamp, began=True) for f in state.began]
            changes += [finding_event(f, snapshot.timestamp, began=False) for f in state.ended]
            events = snapshot.events + tuple(changes)
            yield dataclasses.replace(snapshot, findings=state.findings, events=events)
    finally:
        node.close()


def filled(cls: type[Any], **given: Any) -> Any:
    """An instance of a data-model dataclass with every optional scalar field set."""
    hints = typing.get_type_hints(cls, vars(model))
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in given:
            kwargs[f.name] = given[f.name]
            continue
        tp = hints[f.name]
        args = set(typing.get_args(tp)) if typing.get_origin(tp) in (typing.Union, types.UnionType) else {tp}
        if bool in args:
            kwargs[f.name] = True
        elif int in args:
            kwargs[f.name] = 3
        elif float in args:
            kwargs[f.name] = 0.5
        elif str in args:
            kwargs[f.name] = f.name
    return cls(**kwargs)


def full_snapshot() -> model.Snapshot:
    """Every field of every part set: every family must appear."""
    gpm = filled(model.GpmActivity)
    sample = filled(
        model.GpuSample,
        index=0,
        uuid="GPU-0",
        state=model.GpuState.OK,
        gpm=gpm,
        clock_event_reasons_mask=0x44,
        pods=(model.PodRef("ml", "llama-0", "server", "GPU-0"),),
        nvlinks=(filled(model.NvlinkLink, link=0, state=model.NvlinkState.UP),),
    )
    info = filled(model.GpuInfo, index=0, uuid="GPU-0")
    proc = filled(
        model.ProcessSample,
        pid=7,
        gpu_index=0,
        gpu_uuid="GPU-0",
        container_id="ab" * 32,
        pod=model.PodRef("ml", "llama-0", "server"),
    )
    mig = filled(model.MigDevice, gpu_index=0, gpu_uuid="GPU-0", uuid="MIG-0", gpm=gpm, unavailable={})
    event = model.Event(
        1.0, model.EventKind.XID, model.Severity.CRITICAL, "x", gpu_index=0, gpu_uuid="GPU-0", code=79
    )
    servers = triton_servers(999.0)
    llm = dataclasses.replace(servers[0].models[1], instance_count=1)
    servers = (dataclasses.replace(servers[0], models=(servers[0].models[0], llm)), servers[1])
    return dataclasses.replace(
        model.Snapshot(timestamp=1000.0, node=model.NodeInfo("h", "0", "nvml")),
        node=filled(model.NodeInfo),
        devices=(info,),
        gpus=(sample,),
        processes=(proc,),
        mig_devices=(mig,),
        triton=servers,
        events=(event,),
        collectors=(filled(model.CollectorHealth, ok=True, stale=False),),
        store=FIXED_STORE,
        topology=model.Topology((0, 1), (filled(model.GpuTopology, gpu_index=0, paths=("X", "NV18")),)),
        findings=(
            model.Finding(
                model.FindingKind.MODEL_STALLED,
                model.Severity.CRITICAL,
                model.Subject(model.SubjectKind.MODEL, server="local", model="bert", version="1"),
                990.0,
                "stalled",
                "3 requests pending, none finishing",
                {"pending_requests": 3.0},
            ),
        ),
    )


# --------------------------------------------------------------------------- a real server


class Served:
    """A real HttpServer on 127.0.0.1 (a free port picked by the kernel) over golden snapshots."""

    def __init__(self, clock: ManualClock, *, snapshots: bool = True, **server_kw: Any) -> None:
        from gpuwatch.series import MemoryHistory
        from gpuwatch.serve.api import Api
        from gpuwatch.serve.http import HttpServer, ListenAddress
        from gpuwatch.serve.metrics import MetricsExporter, MetricsState

        self.state = MetricsState()
        self.history = MemoryHistory(keep_seconds=1e9)
        self.latest: model.Snapshot | None = None
        if snapshots:
            for snapshot in golden_snapshots(clock):
                self.state.observe(snapshot)
                self.history.add(snapshot)
                self.latest = snapshot
        self.api = Api(lambda: self.latest, self.history, lambda: FIXED_COLLECTORS, clock=clock)
        self.server = HttpServer(
            ListenAddress("127.0.0.1", 0), MetricsExporter(self.state), self.api, **server_kw
        )
        self.server.start()
        self.port = self.server.address.port
        self.url = self.server.url

    def close(self) -> None:
        self.server.stop()
