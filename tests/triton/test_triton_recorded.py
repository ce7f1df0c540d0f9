"""The demo's recorded Triton server: the real collector over a replay of a real capture (a
varying load, a failing model, a config-override reload and an unload/load), on recorded GPUs."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pytest

from gpuwatch import jsonform, model, series
from gpuwatch.collect.triton.collector import TritonCollector
from gpuwatch.config import Settings, TritonSettings
from gpuwatch.demo.assemble import DEMO_TRITON, DEMO_TRITON_PID, build_demo_sources, build_recorded_gpus
from gpuwatch.demo.nvml import recorded_gpu_uuid
from gpuwatch.demo.triton import RecordedTriton, load_recording
from gpuwatch.engine import Engine
from tests.conftest import ManualClock, run_gpuwatch

UUIDS = [recorded_gpu_uuid(i) for i in range(4)]


def replay(clock: ManualClock) -> TritonCollector:
    transport = RecordedTriton(clock=clock, gpu_uuids=UUIDS, start_offset_seconds=0.0)
    return TritonCollector(TritonSettings(), [DEMO_TRITON], transport=transport, clock=clock, monotonic=clock)


def test_two_passes_of_the_loop_show_the_recorded_resets_and_never_a_negative_rate(
    clock: ManualClock,
) -> None:
    frames = len(load_recording().frames)
    c = replay(clock)
    resets: Counter[tuple[str, str]] = Counter()
    failing = 0
    seen_states: set[tuple[str, str | None]] = set()
    for _ in range(2 * frames + 5):
        assert c.pollers[0].poll() is None
        status = c.view()[0]
        assert status.state == model.ServerState.UP
        for m in status.models:
            seen_states.add((m.name, m.state))
            i = m.interval
            if i is None:
                continue
            if i.reset:
                resets[(m.name, i.reset_reason or "")] += 1
                continue
            for rate in (i.requests_per_second, i.inferences_per_second, i.executions_per_second):
                assert rate is None or rate >= 0, (m.name, i)
            assert i.failures_per_second is None or i.failures_per_second >= 0
            assert all(n > 0 for n in i.batch_size_histogram.values())
            if i.average_batch_size is not None:
                assert 1.0 <= i.average_batch_size <= (m.max_batch_size or 1)
            if m.name == "bert_base" and i.failures_per_second:
                failing += 1
        clock.advance(1.0)
    # Once per pass: the config-override reload of resnet50 and the unload/load of embedder;
    # the loop's seam is no reset and nothing looks like a server restart.
    assert resets == {
        ("resnet50", "reload: statistics started again, /metrics continued (config override?)"): 2,
        ("embedder", "unload/load: statistics and /metrics started again"): 2,
    }
    kinds = Counter(e.kind for e in c.drain_events())
    assert kinds[model.EventKind.TRITON_RESTART] == 0
    assert kinds[model.EventKind.MODEL_RESET] == 4
    assert kinds[model.EventKind.MODEL_STATE] >= 4  # embedder leaves READY and comes back, twice
    assert ("embedder", "UNAVAILABLE") in seen_states
    assert failing > frames  # bert_base fails all along, at a share that rises and falls


def test_two_polls_within_one_frame_still_see_traffic(clock: ManualClock) -> None:
    c = replay(clock)
    clock.advance(30.2)
    c.pollers[0].poll()
    clock.advance(0.5)
    c.pollers[0].poll()
    models = {m.name: m for m in c.view()[0].models}
    i = models["resnet50"].interval
    assert i is not None and i.interval_seconds == pytest.approx(0.5)
    assert i.requests_per_second is not None and i.requests_per_second > 0


def test_the_demo_places_models_on_recorded_gpus_and_links_tritonserver() -> None:
    settings = Settings()
    gpus = build_recorded_gpus(settings)
    triton = build_demo_sources(settings)[1]
    assert triton is not None
    engine = Engine(gpus, triton)
    try:
        snapshot = engine.collect_once(0.3)
    finally:
        engine.stop()
    (server,) = snapshot.triton
    assert server.state == model.ServerState.UP and server.pids == (DEMO_TRITON_PID,)
    models = {m.name: m for m in server.models}
    # Triton's gpu_uuid labels, resolved to NVML indexes by the engine
    assert models["resnet50"].gpu_uuids == tuple(sorted(UUIDS[:2]))
    assert models["resnet50"].gpu_indexes == (0, 1)
    assert models["bert_base"].gpu_indexes == (2,)
    assert models["tokenizer"].gpu_indexes == () and models["tokenizer"].instance_kind == "CPU"
    assert models["bert_pipeline"].ensemble_steps == ("tokenizer", "bert_base")
    # the snapshot crosses the codec unchanged, and the history catalog finds the model series
    assert jsonform.decode_snapshot(jsonform.encode_snapshot(snapshot)) == snapshot
    keys = {(k.name, k.label("model")) for k, _ in series.extract(snapshot)}
    assert ("model_requests_per_second", "resnet50") in keys and (
        "model_queue_share_ratio",
        "bert_base",
    ) in keys
    assert ("triton_up", None) in keys
    triton_rows = [p for p in snapshot.processes if p.pid == DEMO_TRITON_PID]
    assert {p.gpu_index for p in triton_rows} == {0, 1, 2, 3}
    assert all(p.triton_server == "local" for p in triton_rows)
    # the python models' backend stubs, children of the server, are linked with their model
    stubs = {p.triton_instance: (p.gpu_index, p.triton_model) for p in snapshot.processes if p.parent_pid}
    assert stubs == {
        "resnet50_0_0": (0, "resnet50"),
        "resnet50_0_1": (1, "resnet50"),
        "bert_base_0_0": (2, "bert_base"),
        "embedder_0_0": (3, "embedder"),
    }
    assert all(p.triton_server == "local" for p in snapshot.processes if p.parent_pid)
    others = [p for p in snapshot.processes if p.pid != DEMO_TRITON_PID and not p.parent_pid]
    assert others and all(p.triton_server is None for p in others)


def test_snapshot_demo_shows_the_models() -> None:
    result = run_gpuwatch("snapshot", "--demo")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    head = next(i for i, line in enumerate(lines) if line.startswith("Triton local · up · v2.51.0"))
    table = lines[head + 1 :]
    assert table[0].split() == [
        "Model",
        "State",
        "OK/s",
        "Fail/s",
        "Batch",
        "Queue",
        "Compute",
        "Q%",
        "Pend",
        "GPU",
    ]
    rows = {line.split()[0]: line.split() for line in table[1:8] if line and line[0] not in " "}
    assert rows["resnet50:1"][1] == "READY" and rows["resnet50:1"][-1] == "0,1"
    assert rows["├"][1] == "tokenizer:1" and rows["└"][1] == "bert_base:1"
    as_json = json.loads(run_gpuwatch("snapshot", "--demo", "--json").stdout)
    (server,) = as_json["triton"]
    resnet = next(m for m in server["models"] if m["name"] == "resnet50")
    assert resnet["interval"]["requests_per_second"] > 0
    assert resnet["gpu_indexes"] == [0, 1]


def test_demo_without_triton() -> None:
    settings = Settings()
    no_triton = replace(settings, demo=replace(settings.demo, triton=False))
    assert build_demo_sources(no_triton)[1] is None


def test_scenario_faults_show_through_the_real_collector(clock: ManualClock) -> None:
    """What `collect/scenarios.py`'s model-failing asks of the source: one model fails 30 % of
    its requests, one stalls, one is taken out of service, one queues 80 % of its latency."""
    faulted = RecordedTriton(clock=clock, gpu_uuids=UUIDS)
    plain = RecordedTriton(clock=clock, gpu_uuids=UUIDS)  # the same replay, untouched
    assert faulted.model_names() == ("bert_base", "bert_pipeline", "embedder", "resnet50", "tokenizer")
    faulted.fail_requests("bert_base", 0.3, from_seconds=5)
    faulted.stall("bert_pipeline", from_seconds=5)
    faulted.set_state("embedder", "UNAVAILABLE", from_seconds=5)
    faulted.queue_share("resnet50", 0.8, from_seconds=5)
    with pytest.raises(ValueError, match="no model 'nope'"):
        faulted.stall("nope", from_seconds=0)
    settings = TritonSettings()
    a = TritonCollector(settings, [DEMO_TRITON], transport=faulted, clock=clock, monotonic=clock)
    b = TritonCollector(settings, [DEMO_TRITON], transport=plain, clock=clock, monotonic=clock)
    sums: Counter[str] = Counter()
    pending = []
    for second in range(25):
        a.pollers[0].poll()
        b.pollers[0].poll()
        # taken each second, as the engine's snapshots take them (a poll no one took would be
        # measured again by the next one, from where its interval began)
        fa = {m.name: m for m in a.view()[0].models}
        fb = {m.name: m for m in b.view()[0].models}
        if second >= 7:  # the faults started at 5 s and the first interval after them is over
            ia, ib = fa["bert_base"].interval, fb["bert_base"].interval
            assert ia is not None and ib is not None
            sums["requests"] += ia.requests_per_second or 0
            sums["failures"] += ia.failures_per_second or 0
            sums["plain_requests"] += ib.requests_per_second or 0
            sums["plain_failures"] += ib.failures_per_second or 0
            assert ia.failures_per_second_by_reason.get("BACKEND", 0) == pytest.approx(ia.failures_per_second)
            stalled = fa["bert_pipeline"].interval
            assert stalled is not None and stalled.requests_per_second == 0
            pending.append(fa["bert_pipeline"].pending_requests)
            assert (fa["embedder"].state, fa["embedder"].interval) == ("UNAVAILABLE", None)
            assert fa["embedder"].state_reason == "demo scenario: the model was taken out of service"
            queued = fa["resnet50"].interval
            assert queued is not None and queued.queue_share_ratio == pytest.approx(0.8, abs=0.01)
        clock.advance(1.0)
    assert sums["plain_requests"] > 500 and sums["plain_failures"] > 0  # the recording is busy
    assert sums["requests"] == pytest.approx(0.7 * sums["plain_requests"], rel=0.02)
    assert sums["failures"] == pytest.approx(sums["plain_failures"] + 0.3 * sums["plain_requests"], rel=0.02)
    assert pending == sorted(pending) and pending[-1] > pending[0] > 0  # requests pile up
    states = [e for e in a.drain_events() if e.kind == model.EventKind.MODEL_STATE and e.model == "embedder"]
    assert [e.message.split(": ", 1)[1][:20] for e in states][:1] == ["READY → UNAVAILABLE "]
