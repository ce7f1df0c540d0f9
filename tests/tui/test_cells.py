"""The pure parts under the panels: what a cell says, which columns fit, where a point lands."""

from __future__ import annotations

import dataclasses

import pytest
from rich.text import Text
from textual.theme import BUILTIN_THEMES

from gpuwatch import model
from gpuwatch.assess import assess
from gpuwatch.series import Point
from gpuwatch.text import fmt
from gpuwatch.text.findings import of_gpu
from gpuwatch.tui.buckets import aligned_range, column_seconds, to_slots
from gpuwatch.tui.cells import gpu_cells, gpu_flags, model_cells, node_cells
from gpuwatch.tui.events_panel import collectors_line
from gpuwatch.tui.gpu_panel import GPU_COLUMNS
from gpuwatch.tui.model_detail import describe
from gpuwatch.tui.palette import Palette, palette_for
from gpuwatch.tui.summary import NodeSummary, rank, summarize
from gpuwatch.tui.table import Column, fit_columns

MONO = palette_for(BUILTIN_THEMES["textual-dark"], monochrome=True)
COLOUR = palette_for(BUILTIN_THEMES["textual-dark"], monochrome=False)


def snapshot_of(*models: model.ModelStats) -> model.Snapshot:
    server = model.TritonServerStatus("s", "http://h:8000", model.ServerState.UP, models=models)
    return model.Snapshot(timestamp=0.0, node=model.NodeInfo("n", "0", "nvml"), triton=(server,))


def gpu(**kw: object) -> model.GpuSample:
    return model.GpuSample(index=0, uuid="GPU-0", **kw)  # type: ignore[arg-type]


def gpu_snapshot(*gpus: model.GpuSample, events: tuple[model.Event, ...] = ()) -> model.Snapshot:
    return model.Snapshot(timestamp=0.0, node=model.NodeInfo("n", "0", "nvml"), gpus=gpus, events=events)


def flags(sample: model.GpuSample, xid: int | None = None, pal: Palette = MONO, **kw: object) -> Text:
    """The state cell as the panel draws it: from the assessment's findings of the GPU."""
    found = assess(gpu_snapshot(sample, **kw), None, 0.0, immediate=True).findings  # type: ignore[arg-type]
    return gpu_flags(sample, of_gpu(found, sample.index), xid, pal)


def test_flags_say_what_is_wrong_in_words() -> None:
    assert str(flags(gpu(clock_event_reasons=("sw_power_cap",)))) == "! power cap"
    assert str(flags(gpu(clock_event_reasons=("gpu_idle",)))) == "idle"
    assert str(flags(gpu(clock_event_reasons=("applications_clocks_setting",)))) == "ok"
    assert str(flags(gpu(state=model.GpuState.LOST, state_reason="GPU is lost"), 79)) == "! LOST"
    xid = model.Event(0.0, model.EventKind.XID, model.Severity.CRITICAL, "XID 48", gpu_index=0, code=48)
    hot = gpu(ecc_uncorrected_volatile_count=2, clock_event_reasons=("hw_thermal_slowdown",))
    assert str(flags(hot, 48, events=(xid,))) == "! XID 48 thermal"
    # An XID the assessment does not count critical is said, unmarked; and no finding, no `!`:
    # the figures alone (an ECC count, a clock reason the rules do not judge) mark nothing.
    assert str(flags(gpu(clock_event_reasons=("gpu_idle",)), 31)) == "XID 31"
    unjudged = gpu_flags(hot, (), None, MONO)
    assert str(unjudged) == "HW thermal" and not unjudged.style and not unjudged.spans


def test_a_gpu_row_is_marked_by_its_findings_alone() -> None:
    capped = gpu(clock_event_reasons=("sw_power_cap",), power_watts=690.0, power_limit_watts=700.0)
    [finding] = assess(gpu_snapshot(capped), None, 0.0, immediate=True).findings
    marked = gpu_cells(capped, None, "", None, COLOUR, found=[finding])
    plain = gpu_cells(capped, None, "", None, COLOUR)
    power = GPU_COLUMNS.index(next(c for c in GPU_COLUMNS if c.key == "power"))
    state = GPU_COLUMNS.index(next(c for c in GPU_COLUMNS if c.key == "flags"))
    assert str(marked[state]) == "! power cap" and str(plain[state]) == "power cap"
    assert marked[power].spans and not plain[power].spans  # type: ignore[union-attr]


def test_meaning_survives_monochrome() -> None:
    lost = flags(gpu(state=model.GpuState.LOST))
    capped = flags(gpu(clock_event_reasons=("hw_slowdown",)))
    assert lost.spans[0].style.reverse and not lost.spans[0].style.color  # type: ignore[union-attr]
    assert capped.spans[0].style.bold and not capped.spans[0].style.color  # type: ignore[union-attr]
    coloured = flags(gpu(clock_event_reasons=("hw_slowdown",)), pal=COLOUR)
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
        dynamic_batching=True,
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
    collectors = (
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
    )
    snapshot = model.Snapshot(timestamp=0.0, node=model.NodeInfo("n", "0", "nvml"), collectors=collectors)
    found = assess(snapshot, None, 0.0, immediate=True).findings
    line = collectors_line(collectors, MONO, found)
    assert (
        line.plain == "Collectors: nvml ok 2.0 ms · ! triton_local: connection refused · ! nvml_slow: stale"
    )
    # the same health before the findings begin (or unjudged): said, not marked
    assert collectors_line(collectors, MONO).plain == (
        "Collectors: nvml ok 2.0 ms · triton_local: connection refused · nvml_slow: stale"
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
    assert row[7] == "! 60" and row[-1] == "! 1 critical: bert:1 failing 50%"
    # the same figures unassessed: nothing judged, nothing marked
    plain = [str(c) for c in node_cells("n1", summarize(snapshot), None, MONO)]
    assert plain[7] == "60" and plain[-1] == ""
    # the ensemble's row shows no failure figure of its own (121 is Triton's double count);
    # its step's row has the real one, marked by its finding
    pipe = [str(c) for c in model_cells(ensemble, MONO)]
    bert = [str(c) for c in model_cells(step, MONO, found=assessed.findings)]
    assert pipe[2:4] == ["60", fmt.MISSING] and bert[3] == "! 60"


def test_the_cluster_sorts_nodes_down_then_by_critical_then_by_warning_findings() -> None:
    def summary(critical: int, warnings: int) -> NodeSummary:
        return NodeSummary("n", 1, None, None, None, None, 0, 0, None, 0, None, critical, warnings)

    nodes = {
        "quiet": (summary(0, 0), False),
        "warned": (summary(0, 3), False),
        "one critical": (summary(1, 0), False),
        "two critical": (summary(2, 1), False),
        "waiting": (None, False),
        "down": (summary(0, 0), True),
        "warned less": (summary(0, 1), False),
    }
    order = sorted(nodes, key=lambda n: (*rank(*nodes[n]), list(nodes).index(n)))
    assert order == ["down", "two critical", "one critical", "warned", "warned less", "quiet", "waiting"]


def test_the_model_detail_shows_no_ensemble_failure_figure_of_its_own() -> None:
    """Triton counts each failed step in the ensemble's statistics too: its 121/s is not shown
    (as in the table, `gpuwatch snapshot` and the node's totals); its step's 60/s is."""
    step = model.ModelStats(
        "s",
        "bert",
        "1",
        state="READY",
        interval=model.ModelInterval(1.0, requests_per_second=60.0, failures_per_second=60.0),
    )
    ensemble = dataclasses.replace(
        step,
        name="pipe",
        ensemble_steps=("bert",),
        interval=model.ModelInterval(1.0, requests_per_second=60.0, failures_per_second=121.0),
    )
    pipe = describe(ensemble, MONO).plain
    assert "121" not in pipe and "failed step twice" in pipe
    assert "failures 60/s" in describe(step, MONO).plain


def test_the_model_detail_sums_the_processes_running_its_instances() -> None:
    m = model.ModelStats("s", "llama", "1", state="READY")

    def stub(pid: int, gpu: int, gib: int, model_name: str | None) -> model.ProcessSample:
        return model.ProcessSample(
            pid=pid,
            gpu_index=gpu,
            gpu_uuid=f"GPU-{gpu}",
            used_memory_bytes=gib * 2**30,
            triton_server="s",
            triton_model=model_name,
            parent_pid=1,
        )

    processes = (stub(11, 0, 30, "llama"), stub(12, 1, 30, "llama"), stub(13, 1, 5, "other"))
    text = describe(m, MONO, (), processes).plain
    assert "processes 11, 12 · GPU memory 60.0 GiB on GPU 0, 1" in text
    assert "processes" not in describe(m, MONO).plain


def test_a_mig_row_has_a_cell_for_every_gpu_column() -> None:
    from gpuwatch.tui.cells import mig_cells

    device = model.MigDevice(gpu_index=1, gpu_uuid="GPU-1", mig_index=0, uuid="MIG-1")
    assert len(mig_cells(device, True, MONO)) == len(GPU_COLUMNS)
