"""The pure parts under the panels: what a cell says, which columns fit, where a point lands."""

from __future__ import annotations

import dataclasses

import pytest
from textual.theme import BUILTIN_THEMES

from gpuwatch import model
from gpuwatch.assess import assess
from gpuwatch.series import Point
from gpuwatch.text import fmt
from gpuwatch.tui.buckets import aligned_range, column_seconds, to_slots
from gpuwatch.tui.cells import gpu_flags, model_cells, node_cells
from gpuwatch.tui.events_panel import collectors_line
from gpuwatch.tui.palette import palette_for
from gpuwatch.tui.summary import summarize
from gpuwatch.tui.table import Column, fit_columns

MONO = palette_for(BUILTIN_THEMES["textual-dark"], monochrome=True)
COLOUR = palette_for(BUILTIN_THEMES["textual-dark"], monochrome=False)


def snapshot_of(*models: model.ModelStats) -> model.Snapshot:
    server = model.TritonServerStatus("s", "http://h:8000", model.ServerState.UP, models=models)
    return model.Snapshot(timestamp=0.0, node=model.NodeInfo("n", "0", "nvml"), triton=(server,))


def gpu(**kw: object) -> model.GpuSample:
    return model.GpuSample(index=0, uuid="GPU-0", **kw)  # type: ignore[arg-type]


def test_flags_say_what_is_wrong_in_words() -> None:
    capped = gpu(clock_event_reasons=("sw_power_cap",))
    assert str(gpu_flags(capped, None, MONO)) == "! power cap"
    assert str(gpu_flags(gpu(clock_event_reasons=("gpu_idle",)), None, MONO)) == "idle"
    assert str(gpu_flags(gpu(clock_event_reasons=("applications_clocks_setting",)), None, MONO)) == "ok"
    lost = gpu(state=model.GpuState.LOST, state_reason="GPU is lost")
    assert str(gpu_flags(lost, 79, MONO)) == "LOST"
    worst = gpu(ecc_uncorrected_volatile_count=2, clock_event_reasons=("hw_thermal_slowdown",))
    assert str(gpu_flags(worst, 48, MONO)) == "ECC 2 XID 48 ! HW thermal"


def test_meaning_survives_monochrome() -> None:
    lost = gpu_flags(gpu(state=model.GpuState.LOST), None, MONO)
    capped = gpu_flags(gpu(clock_event_reasons=("sw_power_cap",)), None, MONO)
    assert lost.style.reverse and not lost.style.color  # type: ignore[union-attr]
    assert capped.spans[0].style.bold and not capped.spans[0].style.color  # type: ignore[union-attr]
    coloured = gpu_flags(gpu(clock_event_reasons=("sw_power_cap",)), None, COLOUR)
    assert coloured.spans[0].style.color is not None  # type: ignore[union-attr]


def test_failing_model_reads_failing_without_colour() -> None:
    stats = model.ModelStats(
        server="s",
        name="m",
        version="1",
        state="READY",
        max_batch_size=8,
        interval=model.ModelInterval(1.0, failures_per_second=3.25, queue_share_ratio=0.7),
    )
    [failing] = assess(snapshot_of(stats), None, 0.0, immediate=True).findings
    cells = [str(c) for c in model_cells(stats, MONO, found=[failing])]
    assert cells[1] == "! failing 100%" and cells[3] == "! 3.25"
    # the same figures without the assessment's finding are not marked: no face judges itself
    assert [str(c) for c in model_cells(stats, MONO)][1:4:2] == ["ready", "3.25"]
    unavailable = model.ModelStats("s", "m", "1", state="UNAVAILABLE")
    found = assess(snapshot_of(unavailable), None, 0.0, immediate=True).findings
    assert str(model_cells(unavailable, MONO, found=found)[1]) == "! unavailable"


def test_a_stalled_and_a_queueing_model_read_their_words_without_colour() -> None:
    stalled = model.ModelStats(
        "s",
        "stuck",
        "1",
        state="READY",
        pending_requests=4,
        interval=model.ModelInterval(1.0, requests_per_second=0.0, failures_per_second=0.0),
    )
    queued = model.ModelStats(
        "s",
        "busy",
        "1",
        state="READY",
        max_batch_size=8,
        max_queue_delay_seconds=1e-4,
        instance_count=1,
        interval=model.ModelInterval(1.0, requests_per_second=90.0, queue_share_ratio=0.8),
    )
    found = assess(snapshot_of(stalled, queued), None, 0.0, immediate=True).findings
    by = {f.subject.model: f for f in found}
    assert str(model_cells(stalled, MONO, found=[by["stuck"]])[1]) == "! stalled"
    cells = model_cells(queued, MONO, found=[by["busy"]])
    assert str(cells[1]) == "! queue-bound" and cells[7].style.bold  # type: ignore[union-attr]


def test_columns_drop_by_priority_and_stretch() -> None:
    columns = [
        Column("a", "A", 10),
        Column("b", "B", 10, priority=2),
        Column("c", "C", 10, priority=1),
        Column("rest", "Rest", 0, min_width=8),
    ]
    assert [c.key for c in fit_columns(columns, 80)] == ["a", "b", "c", "rest"]
    assert fit_columns(columns, 80)[-1].width == 80 - 36 - 2
    assert [c.key for c in fit_columns(columns, 40)] == ["a", "c", "rest"]
    assert [c.key for c in fit_columns(columns, 25)] == ["a", "rest"]


def test_slots_leave_gaps_and_align_with_store_buckets() -> None:
    start, end, slots = aligned_range(1000.0, 900.0, 47)
    assert (end - start) / slots == column_seconds(900.0, 47) == 20.0
    assert end == 1000.0 and slots == 45
    # A 1-hour chart on 47 columns: 2-minute slots, each a whole number of 1-minute buckets.
    assert column_seconds(3600.0, 47) == 120.0
    assert aligned_range(3601.0, 3600.0, 47)[2] == 30
    points = [Point(t, t, t, t) for t in (0.0, 10.0, 40.0)]
    slotted = to_slots(points, 0.0, 60.0, 3)
    assert slotted[0] is not None and slotted[0].mean == 5.0
    assert slotted[1] is None  # nothing between 20 and 40 s: a gap, not a zero
    assert slotted[2] is not None and slotted[2].maximum == 40.0


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "—"), (0.0, "0"), (0.523, "0.523"), (12.34, "12.3"), (845.2, "845"), (1234.0, "1.23k")],
)
def test_per_second(value: float | None, text: str) -> None:
    assert fmt.per_second(value) == text


def test_spark_and_units() -> None:
    assert fmt.spark([0.0, None, 0.5, 1.0], 0.0, 1.0) == "▁ ▅█"
    assert fmt.series_value("gpu_utilization_ratio", 0.42) == "42%"
    assert fmt.series_value("gpu_power_watts", 693.4) == "693 W"
    assert fmt.series_value("model_average_queue_seconds", 0.0012) == "1.2 ms"
    assert fmt.series_value("gpu_memory_used_bytes", None) == "—"
    assert [fmt.duration(s) for s in (20, 120, 900, 5400, 604800)] == [
        "20 s",
        "2 min",
        "15 min",
        "1.5 h",
        "7 d",
    ]
    # An H200 reads like `snapshot` prints it, one decimal even past 100 GiB (issue 14).
    assert fmt.gib_of(int(4.6 * fmt.GIB), int(140.4 * fmt.GIB)) == "4.6/140.4"


def test_node_summary_and_row() -> None:
    snapshot = model.Snapshot(
        timestamp=0.0,
        node=model.NodeInfo("n1", "0", "recorded"),
        gpus=(
            gpu(utilization_ratio=0.2, temperature_celsius=40.0, power_watts=100.0, power_limit_watts=700.0),
            model.GpuSample(
                1,
                "GPU-1",
                utilization_ratio=0.9,
                temperature_celsius=71.0,
                power_watts=650.0,
                power_limit_watts=700.0,
            ),
            model.GpuSample(2, "GPU-2", state=model.GpuState.LOST),
        ),
    )
    s = summarize(snapshot)
    assert (s.gpus, s.busiest, s.hottest, s.lost_gpus) == (3, (1, 0.9), (1, 71.0), 1)
    assert (s.power_watts, s.power_limit_watts, s.models_total) == (750.0, 1400.0, 0)
    row = [str(c) for c in node_cells("n1", s, None, MONO)]
    assert row[:6] == ["n1", "up", "3", "1: 90%", "750/1400", "1: 71°C"]
    down = [str(c) for c in node_cells("n1", s, "connection refused", MONO)]
    assert down[1] == "DOWN" and down[-1] == "connection refused"


def test_collectors_line_names_the_failing_one() -> None:
    line = collectors_line(
        (
            model.CollectorHealth(
                "nvml", ok=True, stale=False, cadence_seconds=1, last_duration_seconds=0.002, runs_count=9
            ),
            model.CollectorHealth(
                "triton_local",
                ok=False,
                stale=False,
                cadence_seconds=1,
                last_error="connection refused",
                runs_count=3,
                errors_count=3,
            ),
            model.CollectorHealth("nvml_slow", ok=False, stale=True, cadence_seconds=5, runs_count=2),
        ),
        MONO,
    )
    assert (
        line.plain == "Collectors: nvml ok 2.0 ms · ! triton_local: connection refused · ! nvml_slow: stale"
    )


def test_a_node_counts_each_failed_request_once_and_its_findings() -> None:
    step = model.ModelStats(
        "s",
        "bert",
        "1",
        state="READY",
        interval=model.ModelInterval(1.0, requests_per_second=60.0, failures_per_second=60.0),
    )
    ensemble = model.ModelStats(
        "s",
        "pipe",
        "1",
        state="READY",
        ensemble_steps=("bert",),
        interval=model.ModelInterval(1.0, requests_per_second=60.0, failures_per_second=121.0),
    )
    snapshot = snapshot_of(step, ensemble)
    assessed = dataclasses.replace(snapshot, findings=assess(snapshot, None, 0.0, immediate=True).findings)
    s = summarize(assessed)
    assert s.failures_per_second == 60.0  # not 181: the ensemble's are its step's, twice
    assert (s.critical, s.warnings, s.failing) == (1, 0, True)
    row = [str(c) for c in node_cells("n1", s, None, MONO)]
    assert row[7] == "! 60" and row[-1] == "! 1 critical"
    # the same figures unassessed: nothing judged, nothing marked
    plain = [str(c) for c in node_cells("n1", summarize(snapshot), None, MONO)]
    assert plain[7] == "60" and plain[-1] == ""
    # the ensemble's row shows no failure figure of its own (121 is Triton's double count);
    # its step's row has the real one, marked by its finding
    pipe = [str(c) for c in model_cells(ensemble, MONO)]
    bert = [str(c) for c in model_cells(step, MONO, found=assessed.findings)]
    assert pipe[2:4] == ["60", fmt.MISSING] and bert[3] == "! 60"
