"""Demo fault scenarios (gpuwatch/collect/scenarios.py): what each does to the recorded GPUs, and
when, driven tick by tick on a manual clock through the real collector; the hook model-failing
hands the recorded Triton source; and the one-line errors for a scenario that cannot run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpuwatch import config, model
from gpuwatch.collect.nvml.collector import NvmlCollector
from gpuwatch.collect.triton.collector import TritonCollector
from gpuwatch.config import TritonSettings
from gpuwatch.demo import scenarios
from gpuwatch.demo.assemble import DEMO_TRITON, build_demo_sources, build_recorded_gpus
from gpuwatch.demo.nvml import recorded_gpu_uuid
from gpuwatch.demo.triton import RecordedTriton
from gpuwatch.engine import Engine
from gpuwatch.model import FindingKind as K
from tests.conftest import ManualClock, run_gpuwatch

SLOWDOWN_CELSIUS = 89  # the recorded H100's slowdown temperature


class DemoNode:
    """`--demo` with a scenario, as assemble builds it, advanced by hand."""

    def __init__(self, clock: ManualClock, scenario: str, gpus: int = 4, tick_seconds: float = 1.0) -> None:
        settings = config.parse(
            {"demo": {"scenario": scenario, "gpus": gpus}, "nvml": {"interval_seconds": tick_seconds}}
        )
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.collector: NvmlCollector = build_recorded_gpus(settings, clock)
        self.engine = Engine(self.collector, None, clock=clock, tick_seconds=tick_seconds)
        self.elapsed = 0.0
        self.events: list[model.Event] = []

    def run_until(self, seconds: float) -> model.Snapshot:
        """Tick until `seconds` after the start; the snapshot of the last tick."""
        snapshot = None
        while self.elapsed < seconds - 1e-9 or snapshot is None:
            self.clock.advance(self.tick_seconds)
            self.elapsed += self.tick_seconds
            self.collector.poll_fast()
            self.collector.poll_events()
            self.collector.poll_slow()
            snapshot = self.engine.build_snapshot(self.clock())
            self.events.extend(snapshot.events)
        return snapshot

    def xids(self) -> list[tuple[int | None, int | None]]:
        return [(e.gpu_index, e.code) for e in self.events if e.kind == model.EventKind.XID]


NodeFactory = Callable[..., DemoNode]


@pytest.fixture
def demo_node(clock: ManualClock) -> Iterator[NodeFactory]:
    made: list[DemoNode] = []

    def make(scenario: str, **kw: float) -> DemoNode:
        made.append(DemoNode(clock, scenario, **kw))
        return made[-1]

    yield make
    for node in made:
        node.collector.close()


def _gpu(snapshot: model.Snapshot, index: int) -> model.GpuSample:
    return next(g for g in snapshot.gpus if g.index == index)


def test_the_config_names_every_scenario_defined() -> None:
    assert tuple(scenarios.SCENARIOS) == config.DEMO_SCENARIOS


def test_thermal_heats_gpu_0_from_30_s(demo_node: NodeFactory) -> None:
    node = demo_node("thermal")
    before = node.run_until(29)
    assert _gpu(before, 0).temperature_celsius < SLOWDOWN_CELSIUS  # type: ignore[operator]
    assert "hw_thermal_slowdown" not in _gpu(before, 0).clock_event_reasons
    hot = node.run_until(31)
    gpu = _gpu(hot, 0)
    assert gpu.temperature_celsius == 92
    assert {"hw_slowdown", "hw_thermal_slowdown", "sw_thermal_slowdown"} <= set(gpu.clock_event_reasons)
    assert gpu.sm_clock_mhz == 900
    assert all(g.temperature_celsius < SLOWDOWN_CELSIUS for g in hot.gpus[1:])  # type: ignore[operator]
    later = node.run_until(400)  # it lasts
    assert _gpu(later, 0).temperature_celsius == 92


def test_thermal_keeps_its_timing_in_seconds_at_another_tick(demo_node: NodeFactory) -> None:
    node = demo_node("thermal", tick_seconds=0.5)
    assert _gpu(node.run_until(29.5), 0).temperature_celsius != 92
    assert _gpu(node.run_until(30.5), 0).temperature_celsius == 92


def test_gpu_lost_reports_xid_79_then_loses_gpu_1_for_good(demo_node: NodeFactory) -> None:
    node = demo_node("gpu-lost")
    before = node.run_until(29)
    assert all(g.state == model.GpuState.OK for g in before.gpus)
    assert node.xids() == []
    after = node.run_until(34)
    assert [g.state for g in after.gpus] == [
        model.GpuState.OK,
        model.GpuState.LOST,
        model.GpuState.OK,
        model.GpuState.OK,
    ]
    assert node.xids() == [(1, 79)]
    kinds = [
        (e.kind, e.gpu_index)
        for e in node.events
        if e.kind in (model.EventKind.XID, model.EventKind.GPU_LOST)
    ]
    assert kinds == [(model.EventKind.XID, 1), (model.EventKind.GPU_LOST, 1)]  # the XID first
    assert _gpu(node.run_until(120), 1).state == model.GpuState.LOST


def test_xid_burst_hits_each_gpu_as_described(demo_node: NodeFactory) -> None:
    node = demo_node("xid-burst")
    before = node.run_until(29)
    assert node.xids() == []
    assert _gpu(before, 2).ecc_uncorrected_volatile_count == 0
    after = node.run_until(40)
    assert sorted(node.xids()) == [
        (0, 13),
        (0, 31),
        (0, 43),
        (0, 45),
        (1, 109),
        (2, 48),
        (2, 63),
        (2, 94),
        (3, 64),
    ]
    assert [e.gpu_index for e in node.events if e.kind == model.EventKind.ECC_UNCORRECTED] == [2]
    assert _gpu(after, 2).ecc_uncorrected_volatile_count == 2
    assert _gpu(after, 2).remapped_rows_pending is True
    assert _gpu(after, 2).remapped_rows_failed is False
    assert _gpu(after, 3).remapped_rows_failed is True
    assert all(g.state == model.GpuState.OK for g in after.gpus)


def test_model_failing_on_the_recorded_triton_source_through_the_real_collector(clock: ManualClock) -> None:
    """The scenario as the daemon plays it: every model first loses the recording's own
    failures, then, 30 s in, bert_base fails exactly 30 % of its requests, bert_pipeline
    stalls, embedder is taken out of service and resnet50 queues 80 % of its latency."""
    source = RecordedTriton(clock=clock, gpu_uuids=[recorded_gpu_uuid(i) for i in range(4)])
    scenarios.apply_to_triton(scenarios.SCENARIOS["model-failing"], source)
    collector = TritonCollector(
        TritonSettings(), [DEMO_TRITON], transport=source, clock=clock, monotonic=clock
    )
    failures: dict[str, float] = {}
    requests: dict[str, float] = {}
    for second in range(60):
        collector.pollers[0].poll()
        models = {m.name: m for m in collector.view()[0].models}
        if 2 <= second < 28:  # healed, before the faults: no model fails
            for name in ("bert_base", "bert_pipeline", "tokenizer", "resnet50"):
                interval = models[name].interval
                assert interval is not None and not interval.failures_per_second, (second, name)
        if second >= 33:
            base = models["bert_base"].interval
            assert base is not None
            failures["bert_base"] = failures.get("bert_base", 0) + (base.failures_per_second or 0)
            requests["bert_base"] = requests.get("bert_base", 0) + (base.requests_per_second or 0)
            stalled = models["bert_pipeline"].interval
            assert stalled is not None and stalled.requests_per_second == 0
            assert models["embedder"].state == "UNAVAILABLE"
            queued = models["resnet50"].interval
            assert queued is not None
            # The recording reloads resnet50 once a loop: that interval, and the idle second after
            # it, have no queue share (no rate across a reset; no requests, no share).
            if not queued.reset and queued.requests_per_second:
                assert queued.queue_share_ratio == pytest.approx(0.8, abs=0.01)
            tokenizer = models["tokenizer"].interval
            assert tokenizer is not None and not tokenizer.failures_per_second
        clock.advance(1.0)
    share = failures["bert_base"] / (failures["bert_base"] + requests["bert_base"])
    assert share == pytest.approx(0.3, abs=0.01)


def test_model_failing_needs_a_triton_source() -> None:
    with pytest.raises(config.ConfigError, match="needs the recorded Triton models"):
        scenarios.apply_to_triton(scenarios.SCENARIOS["model-failing"], None)


@pytest.mark.parametrize(
    ("args", "config_text", "says"),
    [
        (
            ["--demo", "--scenario", "meltdown"],
            "",
            "--scenario 'meltdown': expected one of gpu-lost, xid-burst",
        ),
        (
            ["--scenario", "thermal"],
            "",
            "--scenario thermal: fault scenarios play on recorded GPUs only; add --demo",
        ),
        (
            ["--demo"],
            '[demo]\nscenario = "hot"\n',
            "[demo] scenario = 'hot': expected one of \"\" (none), gpu-lost",
        ),
        (
            ["--demo"],
            '[demo]\nscenario = "xid-burst"\ngpus = 2\n',
            "'xid-burst' needs [demo] gpus = 4 or more (it is 2)",
        ),
        (
            ["--demo", "--scenario", "model-failing"],
            "[demo]\ntriton = false\n",
            "'model-failing' needs the recorded Triton models: set [demo] triton = true",
        ),
    ],
)
def test_a_scenario_that_cannot_run_is_one_line_and_exit_2(
    args: list[str], config_text: str, says: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text)
    db = tmp_path / "state" / "gpuwatch.db"
    result = run_gpuwatch("daemon", *args, "--config", str(path), "--listen", "127.0.0.1:0", "--db", str(db))
    assert result.returncode == 2
    assert not db.exists()  # refused before the database was touched
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


class AssessedDemo:
    """`--demo` with a scenario as the daemon runs it: the recorded GPUs (and Triton, for a
    model scenario), the real collectors, the engine's jobs and its assessment, one tick a
    second on a manual clock."""

    def __init__(self, clock: ManualClock, scenario: str) -> None:
        models = scenarios.SCENARIOS[scenario].triton is not None
        settings = config.parse({"demo": {"scenario": scenario, "triton": models}})
        gpus, triton = build_demo_sources(settings, clock, clock)
        self.engine = Engine(gpus, triton, clock=clock, monotonic=clock)
        self.jobs = [j.name for j in (*gpus.jobs(), *(triton.jobs() if triton else ()))]
        self.clock = clock
        self.began: dict[tuple[model.FindingKind, str], float] = {}
        """(kind, subject) → seconds after the start when the finding began."""

    def run(self, seconds: int) -> None:
        for second in range(1, seconds + 1):
            self.clock.advance(1.0)
            for name in self.jobs:
                self.engine.run_job(name)
            for f in self.engine.tick().findings:
                self.began.setdefault((f.kind, f.subject.label()), float(second))

    def close(self) -> None:
        self.engine.stop()


@pytest.mark.parametrize(
    ("scenario", "expected", "allowed"),
    [
        ("gpu-lost", {(K.GPU_XID_CRITICAL, "GPU 1"), (K.GPU_LOST, "GPU 1")}, set()),
        (
            "xid-burst",
            {
                (K.GPU_XID_CRITICAL, "GPU 2"),
                (K.GPU_XID_CRITICAL, "GPU 3"),
                (K.GPU_ECC_UNCORRECTED, "GPU 2"),
                (K.GPU_ROW_REMAP_PENDING, "GPU 2"),
                (K.GPU_ROW_REMAP_FAILED, "GPU 3"),
            },
            set(),
        ),
        ("thermal", {(K.GPU_THERMAL_SLOWDOWN, "GPU 0"), (K.GPU_HARDWARE_SLOWDOWN, "GPU 0")}, set()),
        (
            "model-failing",
            {
                (K.MODEL_FAILING, "bert_base:1"),
                (K.MODEL_STALLED, "bert_pipeline:1"),
                (K.MODEL_NOT_READY, "embedder:1"),
                (K.MODEL_QUEUE_BOUND, "resnet50:1"),
            },
            {(K.MODEL_DELAY_WASTED, "resnet50:1")},
        ),
        (
            "batching",
            {(K.MODEL_BATCHER_OFF, "bert_base:1"), (K.MODEL_DELAY_WASTED, "resnet50:1")},
            # Only while the recording's load forms batches of 2 or more for a whole minute.
            {(K.MODEL_PREFERRED_UNUSED, "resnet50:1")},
        ),
        ("healthy", set(), set()),
    ],
)
def test_each_scenario_yields_its_findings_in_the_daemons_engine(
    clock: ManualClock,
    scenario: str,
    expected: set[tuple[model.FindingKind, str]],
    allowed: set[tuple[model.FindingKind, str]],
) -> None:
    """What `gpuwatch top --demo --scenario NAME` shows within 4 minutes: each finding the
    scenario is meant to demonstrate, its faults' from the fault start (30 s), and nothing
    else (the healthy scenario: nothing but what the demo's GPU roles show, `DEMO_ROLES`)."""
    node = AssessedDemo(clock, scenario)
    try:
        node.run(240)
    finally:
        node.close()
    assert expected <= set(node.began) <= expected | allowed | DEMO_ROLES, node.began
    faulted = [at for key, at in node.began.items() if key[0] not in RECORDED and key not in DEMO_ROLES]
    assert all(at >= scenarios.FAULT_START_SECONDS for at in faulted), node.began


DEMO_ROLES = frozenset({(K.GPU_POWER_CAPPED, "GPU 0")})
"""What the demo's GPUs show of their roles in every scenario: GPU 0 holds its bf16 matmul at
the power cap for two minutes (`demo/assemble.DEMO_HOLD_SECONDS`), an info finding."""
RECORDED = frozenset({K.MODEL_DELAY_WASTED, K.MODEL_PREFERRED_UNUSED})
"""The kinds the recorded resnet50 shows of itself (it waits out its 2 ms delay for batches of
2-3 of 16 and rarely forms its preferred 8 and 16), not from a scenario's fault."""


def test_the_model_record_states_dynamic_batching_from_the_config_triton_serves(clock: ManualClock) -> None:
    """The collector puts the served config's `dynamic_batching` on each model: the batching
    scenario serves bert_base without it, so "batcher off" is stated, not inferred."""
    node = AssessedDemo(clock, "batching")
    try:
        node.run(3)
        snapshot = node.engine.latest()
        assert snapshot is not None
        served = {m.name: (m.max_batch_size, m.dynamic_batching) for m in snapshot.triton[0].models}
    finally:
        node.close()
    assert served["bert_base"] == (8, False)
    assert served["resnet50"][1] is True
    assert served["embedder"] == (0, False)
