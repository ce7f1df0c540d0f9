"""The assessment: each kind's condition, its onset and clear hold times on a fixed clock, and a
healthy model getting no finding."""

from __future__ import annotations

import dataclasses

import pytest

from gpuwatch import model
from gpuwatch.assess import RULES, AssessState, assess
from gpuwatch.model import FindingKind as K

T0 = 1_795_558_200.0


def snap(
    *,
    gpus: tuple[model.GpuSample, ...] = (),
    models: tuple[model.ModelStats, ...] = (),
    **kw: object,
) -> model.Snapshot:
    server = model.TritonServerStatus("local", "http://localhost:8000", model.ServerState.UP, models=models)
    return model.Snapshot(
        timestamp=T0,
        node=model.NodeInfo("n", "0", "recorded"),
        gpus=gpus,
        triton=(server,),
        **kw,  # type: ignore[arg-type]
    )


def gpu(index: int = 0, **kw: object) -> model.GpuSample:
    return model.GpuSample(index=index, uuid=f"GPU-{index}", **kw)  # type: ignore[arg-type]


def bert(**interval: object) -> model.ModelStats:
    """A batching model on GPU 0 with a dynamic batcher (delay 100 µs, max batch 32)."""
    base: dict[str, object] = {
        "interval_seconds": 1.0,
        "requests_per_second": 200.0,
        "failures_per_second": 0.0,
        "queue_share_ratio": 0.1,
        "batch_fill_ratio": 0.7,
        "queue_delay_ratio": 0.3,
    }
    base.update(interval)
    return model.ModelStats(
        "local",
        "bert",
        "1",
        state=model.ModelState.READY,
        max_batch_size=32,
        dynamic_batching=True,
        max_queue_delay_seconds=100e-6,
        instance_count=1,
        instance_kind="KIND_GPU",
        gpu_indexes=(0,),
        pending_requests=0,
        interval=model.ModelInterval(**base),  # type: ignore[arg-type]
    )


def run(snapshots: list[tuple[float, model.Snapshot]]) -> list[AssessState]:
    state: AssessState | None = None
    out = []
    for at, s in snapshots:
        state = assess(s, state, T0 + at)
        out.append(state)
    return out


def kinds(state: AssessState) -> set[K]:
    return {f.kind for f in state.findings}


def test_a_healthy_batching_model_on_a_busy_gpu_gets_no_finding_over_three_minutes() -> None:
    s = snap(gpus=(gpu(utilization_ratio=0.97),), models=(bert(),))
    states = run([(t, s) for t in range(0, 181)])
    assert all(not st.findings and not st.began for st in states)


def test_stalled_begins_after_its_onset_and_ends_after_its_clear_time() -> None:
    rule = RULES[K.MODEL_STALLED]
    stalled = dataclasses.replace(bert(requests_per_second=0.0, queue_share_ratio=None), pending_requests=5)
    bad, good = snap(models=(stalled,)), snap(models=(bert(),))
    onset, clear = int(rule.onset_seconds), int(rule.clear_seconds)
    states = run(
        [(t, bad) for t in range(0, onset + 1)] + [(onset + 1 + t, good) for t in range(0, clear + 1)]
    )
    assert all(not st.findings for st in states[:onset])
    assert kinds(states[onset]) == {K.MODEL_STALLED}
    [began] = states[onset].began
    assert began.since == T0 and began.words == "stalled" and began.evidence["pending_requests"] == 5
    assert began.severity is model.Severity.CRITICAL and began.subject.model == "bert"
    # clear: still shown until the condition has been clear for clear_seconds, then ended
    # (the last tick it held is t = onset; it ends at t = onset + clear)
    assert all(kinds(st) == {K.MODEL_STALLED} for st in states[onset + 1 : onset + clear])
    gone = states[onset + clear]
    assert not gone.findings and [f.kind for f in gone.ended] == [K.MODEL_STALLED]
    assert not states[-1].findings and not states[-1].ended


def test_a_condition_that_breaks_off_before_its_onset_never_begins() -> None:
    failing = snap(models=(bert(requests_per_second=70.0, failures_per_second=30.0),))
    ok = snap(models=(bert(),))
    onset = int(RULES[K.MODEL_FAILING].onset_seconds)
    flicker = [(t, failing if t % onset else ok) for t in range(0, 4 * onset)]
    assert all(not st.findings for st in run(flicker))


@pytest.mark.parametrize(
    ("gpu_activity", "kind", "advice"),
    [
        (0.35, K.MODEL_QUEUE_BOUND, "add an instance (instance_group count 1 → 2)"),
        (0.95, K.MODEL_QUEUE_BOUND, "this GPU is the limit: another GPU or a faster engine"),
    ],
)
def test_queue_bound_tells_gpu_room_from_a_saturated_gpu(gpu_activity: float, kind: K, advice: str) -> None:
    gpm = model.GpmActivity(1.0, sm_activity_ratio=gpu_activity)
    s = snap(gpus=(gpu(utilization_ratio=1.0, gpm=gpm),), models=(bert(queue_share_ratio=0.8),))
    state = assess(s, None, T0, immediate=True)
    [f] = state.findings
    assert f.kind is kind and f.advice == advice
    assert f.evidence == {"queue_share_ratio": 0.8, "gpu_activity_ratio": gpu_activity}


def test_delay_wasted_names_the_delay_and_batcher_off_and_preferred_unused() -> None:
    wasted = bert(queue_delay_ratio=0.95, batch_fill_ratio=0.06, queue_share_ratio=0.3)
    off = dataclasses.replace(
        bert(queue_share_ratio=0.7), name="resnet", dynamic_batching=False, max_queue_delay_seconds=None
    )
    pref = dataclasses.replace(
        bert(preferred_batch_ratio=0.05, average_batch_size=6.0), name="vit", preferred_batch_sizes=(4, 8)
    )
    state = assess(snap(models=(wasted, off, pref)), None, T0, immediate=True)
    by = {f.subject.model: f for f in state.findings}
    assert by["bert"].kind is K.MODEL_DELAY_WASTED
    assert by["bert"].advice == "lower max_queue_delay_microseconds (now 100 µs)"
    assert by["resnet"].kind is K.MODEL_BATCHER_OFF and "dynamic batching" in (by["resnet"].advice or "")
    assert by["vit"].kind is K.MODEL_PREFERRED_UNUSED and "preferred_batch_size" in (by["vit"].advice or "")


def test_an_ensemble_is_not_judged_on_its_steps_double_counted_failures() -> None:
    step = bert(requests_per_second=50.0, failures_per_second=50.0)
    ensemble = dataclasses.replace(
        bert(requests_per_second=50.0, failures_per_second=100.0), name="pipe", ensemble_steps=("bert",)
    )
    state = assess(snap(models=(step, ensemble)), None, T0, immediate=True)
    assert [(f.kind, f.subject.model) for f in state.findings] == [(K.MODEL_FAILING, "bert")]
    assert state.findings[0].words == "failing 50%"


def test_gpu_and_daemon_kinds_and_their_order() -> None:
    s = snap(
        gpus=(
            gpu(0, state=model.GpuState.LOST, state_reason="GPU is lost"),
            gpu(1, memory_used_bytes=97, memory_total_bytes=100, clock_event_reasons=("sw_power_cap",)),
            gpu(2, remapped_rows_pending=True),
        ),
        events=(
            model.Event(T0, model.EventKind.XID, model.Severity.CRITICAL, "XID 79", gpu_index=2, code=79),
        ),
        collectors=(model.CollectorHealth("nvml_slow", ok=False, stale=True, cadence_seconds=5.0),),
        store=model.StoreHealth(ok=False, last_error="disk full", write_errors_count=3),
        nvml_status=None,
    )
    state = assess(s, None, T0, immediate=True)
    got = [(f.severity.value, f.kind.value) for f in state.findings]
    assert got[0][0] == "critical" and got[-1][0] == "info"
    assert {k for _, k in got} == {
        "gpu_lost",
        "gpu_xid_critical",
        "gpu_memory_nearly_full",
        "gpu_power_capped",
        "gpu_row_remap_pending",
        "collector_stale",
        "store_write_errors",
    }
    # an XID's finding outlasts the tick of its event by the alert's 15 min window
    later = dataclasses.replace(s, events=())
    st = assess(later, state, T0 + 899)
    assert K.GPU_XID_CRITICAL in kinds(st)
    assert K.GPU_XID_CRITICAL not in kinds(assess(later, st, T0 + 901))


def test_nvml_unavailable_is_a_finding() -> None:
    state = assess(snap(nvml_status="NVML Shared Library Not Found"), None, T0, immediate=True)
    assert [f.kind for f in state.findings] == [K.NVML_UNAVAILABLE]


def test_docs_findings_md_lists_every_kind_as_declared() -> None:
    from pathlib import Path

    from gpuwatch.assess import doc

    text = (Path(__file__).resolve().parent.parent / "docs" / "findings.md").read_text()
    assert doc.render(text) == text, "docs/findings.md is stale: python -m gpuwatch.assess.doc"
    assert set(RULES) == set(K)


def test_a_stalled_ensemble_is_stalled() -> None:
    pipe = dataclasses.replace(
        bert(requests_per_second=0.0), name="pipe", ensemble_steps=("bert",), pending_requests=3685
    )
    state = assess(snap(models=(pipe, bert())), None, T0, immediate=True)
    assert [(f.kind, f.subject.model) for f in state.findings] == [(K.MODEL_STALLED, "pipe")]


def test_batcher_off_is_stated_by_the_config_never_guessed() -> None:
    """A model whose config has not been read (dynamic_batching unknown) and queues is
    queue-bound, not "batcher off"; only a config without dynamic_batching says that."""
    unknown = dataclasses.replace(
        bert(queue_share_ratio=0.7), dynamic_batching=None, max_queue_delay_seconds=None
    )
    off = dataclasses.replace(unknown, dynamic_batching=False)
    [guess] = assess(snap(models=(unknown,)), None, T0, immediate=True).findings
    [stated] = assess(snap(models=(off,)), None, T0, immediate=True).findings
    assert (guess.kind, stated.kind) == (K.MODEL_QUEUE_BOUND, K.MODEL_BATCHER_OFF)
