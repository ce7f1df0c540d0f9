"""/metrics: the golden output over the recorded source, promtool, the documentation, and the
state fed by the engine (event counters, batch-size histogram)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpuwatch import model, series
from gpuwatch.catalog import doc, index
from gpuwatch.serve.metrics import MetricsExporter, MetricsState, client_name
from tests.conftest import REPO, ManualClock
from tests.serve_support import full_snapshot, golden_snapshots, model_stats, triton_servers

GOLDEN = REPO / "tests" / "golden" / "metrics.txt"
DURATION = re.compile(r"^(gpuwatch_collector_duration_seconds\{[^}]*\}) \S+$", re.MULTILINE)


def normalise(text: str) -> str:
    """What legitimately varies between runs: how long a collector's run took."""
    return DURATION.sub(r"\1 <duration>", text)


def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


@pytest.fixture(scope="module")
def golden_exporter() -> MetricsExporter:
    state = MetricsState()
    for snapshot in golden_snapshots(ManualClock()):
        state.observe(snapshot)
    return MetricsExporter(state)


def test_output_matches_the_golden_file(golden_exporter: MetricsExporter) -> None:
    text = normalise(golden_exporter.render().decode())
    if os.environ.get("GPUWATCH_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "regenerate with GPUWATCH_UPDATE_GOLDEN=1 and review the diff"


@pytest.mark.prometheus
def test_promtool_finds_nothing_to_complain_about(golden_exporter: MetricsExporter, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (tests/run.sh installs it)")
    full = MetricsState()
    full.observe(full_snapshot())
    for body in (golden_exporter.render(), MetricsExporter(full).render()):
        result = subprocess.run(
            [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
        )
        assert result.returncode == 0 and not result.stdout and not result.stderr, (
            result.stdout + result.stderr
        )


def test_the_fast_text_is_what_prometheus_client_would_write(golden_exporter: MetricsExporter) -> None:
    ours = golden_exporter.render().decode()
    theirs = generate_latest(golden_exporter.registry).decode()
    assert samples(ours) == samples(theirs)
    assert len(samples(ours)) > 400
    # and the same HELP and TYPE for every family
    assert {(f.name, f.type, f.documentation) for f in text_string_to_metric_families(ours)} == {
        (f.name, f.type, f.documentation) for f in text_string_to_metric_families(theirs)
    }


def test_golden_output_says_what_happened(golden_exporter: MetricsExporter) -> None:
    text = golden_exporter.render().decode()
    got = {(name, dict(labels).get("gpu"), dict(labels).get("xid")): v for name, labels, v in samples(text)}
    assert got[("gpuwatch_gpu_up", "2", None)] == 0  # lost
    assert got[("gpuwatch_gpu_up", "1", None)] == 1
    assert ("gpuwatch_gpu_power_watts", "2", None) not in got  # lost: absent, never 0
    assert got[("gpuwatch_gpu_power_watts", "1", None)] > 0
    assert got[("gpuwatch_gpu_xid_errors_total", "1", "79")] == 1
    assert got[("gpuwatch_gpu_xid_errors_total", "1", "13")] == 1
    assert got[("gpuwatch_gpu_xid_errors_total", "0", "79")] == 0  # every catalogued code starts at 0
    assert got[("gpuwatch_gpu_xid_errors_total", "0", "13")] == 0  # (so alerts see the first one)
    assert ("gpuwatch_gpu_xid_errors_total", "0", "999") not in got
    assert got[("gpuwatch_gpu_clock_event_hw_thermal_slowdown", "3", None)] == 1
    assert got[("gpuwatch_gpu_temperature_celsius", "3", None)] == 92
    assert got[("gpuwatch_gpu_sm_clock_hertz", "0", None)] >= 1e8  # MHz → Hz
    assert "fan_speed" not in text  # NotSupported on an H100 SXM: absent


def test_no_command_line_and_no_secret_reaches_a_label(golden_exporter: MetricsExporter) -> None:
    text = golden_exporter.render().decode()
    assert "gpuwatch_process_gpu_memory_bytes" in text
    assert "serve.py" not in text and "--model" not in text and "embed_batch" not in text
    assert "secret" not in text and "10.0.0.9" not in text  # the edge server's URL carries a password


def test_triton_up_and_absent_servers() -> None:
    state = MetricsState()
    absent = model.TritonServerStatus("local", "http://127.0.0.1:8000", model.ServerState.ABSENT)
    down = model.TritonServerStatus("edge", "http://10.0.0.9:8000", model.ServerState.DOWN, "refused")
    state.observe(_snapshot(triton=(absent, down)))
    got = samples(MetricsExporter(state).render().decode())
    assert ("gpuwatch_triton_up", (("server", "edge"),), 0.0) in got
    assert not any(name == "gpuwatch_triton_up" and ("server", "local") in labels for name, labels, _ in got)
    assert ("gpuwatch_triton_state", (("server", "local"), ("state", "absent")), 1.0) in got


def test_nvml_down_is_said_and_gpus_go_absent() -> None:
    state = MetricsState()
    state.observe(_snapshot(nvml_status="NVML: driver not loaded"))
    got = {name: v for name, _, v in samples(MetricsExporter(state).render().decode())}
    assert got["gpuwatch_nvml_up"] == 0
    assert got["gpuwatch_gpus"] == 0
    assert "gpuwatch_gpu_power_watts" not in got


def test_before_the_first_tick_only_the_build_info_is_served() -> None:
    got = samples(MetricsExporter(MetricsState()).render().decode())
    assert {name for name, _, _ in got} == {"gpuwatch_build_info"}


# --------------------------------------------------------------------------- state over snapshots


def test_events_are_counted_once_each_since_the_daemon_started() -> None:
    state = MetricsState()
    xid = model.Event(
        1.0, model.EventKind.XID, model.Severity.CRITICAL, "x", gpu_index=0, gpu_uuid="GPU-a", code=48
    )
    state.observe(_snapshot(events=(xid, xid)))
    state.observe(_snapshot())  # a snapshot carries only the events since the previous one
    state.observe(_snapshot(events=(xid,)))
    got = samples(MetricsExporter(state).render().decode())
    assert ("gpuwatch_events_total", (("kind", "xid"),), 3.0) in got
    assert ("gpuwatch_gpu_xid_errors_total", (("gpu", "0"), ("uuid", "GPU-a"), ("xid", "48")), 3.0) in got


def test_batch_histogram_counts_each_poll_once_and_skips_resets() -> None:
    state = MetricsState()
    key = (("model", "m"), ("server", "local"), ("version", "1"))

    def observe(polled_at: float, **kw: Any) -> None:
        stats = model_stats("local", "m", polled_at=polled_at, histogram={1: 3, 4: 2, 6: 1}, **kw)
        server = model.TritonServerStatus(
            "local", "u", model.ServerState.UP, polled_at=polled_at, models=(stats,)
        )
        state.observe(_snapshot(triton=(server,)))

    observe(10.0)
    observe(10.0)  # the same poll seen by a second tick
    observe(11.0, reset=True)  # after a restart: no deltas
    observe(12.0)
    got = {(n, dict(lb).get("le")): v for n, lb, v in samples(MetricsExporter(state).render().decode())}
    assert got[("gpuwatch_model_batch_size_bucket", "1")] == 6
    assert got[("gpuwatch_model_batch_size_bucket", "4")] == 10
    assert got[("gpuwatch_model_batch_size_bucket", "8")] == 12
    assert got[("gpuwatch_model_batch_size_bucket", "+Inf")] == 12
    assert got[("gpuwatch_model_batch_size_count", None)] == 12
    assert got[("gpuwatch_model_batch_size_sum", None)] == 2 * (3 + 8 + 6)
    assert all(
        lb == key for n, lb, _ in samples(MetricsExporter(state).render().decode()) if n.endswith("_sum")
    )
    state.observe(_snapshot())  # the model is gone: so are its series
    assert "gpuwatch_model_batch_size" not in MetricsExporter(state).render().decode()


def test_label_values_are_escaped() -> None:
    state = MetricsState()
    odd = 'we"ird\\name\nline'
    stats = model_stats("local", odd, polled_at=1.0)
    server = model.TritonServerStatus("local", "u", model.ServerState.UP, polled_at=1.0, models=(stats,))
    state.observe(_snapshot(triton=(server,)))
    text = MetricsExporter(state).render().decode()
    models = {dict(lb).get("model") for _, lb, _ in samples(text)}
    assert odd in models
    assert samples(text) == samples(generate_latest(MetricsExporter(state).registry).decode())


def test_a_new_tick_renders_anew_and_the_same_tick_is_served_from_cache() -> None:
    state = MetricsState()
    exporter = MetricsExporter(state)
    state.observe(_snapshot(timestamp=100.0))
    first = exporter.render()
    assert exporter.render() is first
    state.observe(_snapshot(timestamp=101.0))
    assert b"gpuwatch_snapshot_timestamp_seconds 101\n" in exporter.render()


# --------------------------------------------------------------------------- the catalog and the docs


def test_every_family_is_exported_from_a_full_snapshot() -> None:
    state = MetricsState()
    state.observe(full_snapshot())
    exported = {f.name for f in text_string_to_metric_families(MetricsExporter(state).render().decode())}
    # the parser reports counters without `_total`
    declared = {client_name(f) for f in index.ALL}
    assert exported == declared


def test_every_history_series_has_its_family() -> None:
    mapped = {f.name for f in index.ALL if f.stored_scale is not None and index.BY_METRIC.get(f.metric) is f}
    missing = [s.name for s in series.CATALOG if s.name not in mapped]
    assert not missing, f"series without a /metrics family: {missing}"
    unknown = mapped - {s.name for s in series.CATALOG}
    assert not unknown, f"families naming a series the catalog lacks: {unknown}"


def test_family_names_follow_the_conventions() -> None:
    for f in index.ALL:
        assert f.metric.startswith("gpuwatch_"), f.metric
        assert (f.metric_type == "counter") == f.metric.endswith("_total"), f.metric
        assert not f.metric.endswith(("_count", "_mhz", "_percent")), f.metric
        if f.metric.endswith("_ratio"):
            assert f.unit == "", f.metric
        assert "command" not in f.labels and "url" not in f.labels


def test_docs_metrics_md_is_rendered_from_the_families() -> None:
    text = (REPO / "docs" / "metrics.md").read_text()
    assert text == doc.render_doc(), "regenerate: python -m gpuwatch.catalog.doc > docs/metrics.md"


# --------------------------------------------------------------------------- helpers


def _snapshot(**fields: Any) -> model.Snapshot:
    base = model.Snapshot(timestamp=fields.pop("timestamp", 1000.0), node=model.NodeInfo("h", "0", "nvml"))
    return dataclasses.replace(base, **fields)


def test_a_render_after_other_ticks_equals_a_fresh_render() -> None:
    """The exporter reuses sample-line prefixes from its last render; they must never go stale."""
    snapshots = list(golden_snapshots(ManualClock()))
    reused = MetricsState()
    reusing = MetricsExporter(reused)
    for snapshot in snapshots:
        reused.observe(snapshot)
        reusing.render()
    renamed = dataclasses.replace(snapshots[-1], triton=triton_servers(snapshots[-1].timestamp, models=3))
    reused.observe(renamed)
    fresh = MetricsState()
    for snapshot in [*snapshots, renamed]:
        fresh.observe(snapshot)
    assert reusing.render() == MetricsExporter(fresh).render()
    assert b'model="model-02"' in reusing.render()


# --------------------------------------------------------------------------- rendering ahead


def test_a_scrape_due_before_the_next_tick_is_rendered_ahead() -> None:
    now = [100.0]
    state = MetricsState()
    exporter = MetricsExporter(state, tick_seconds=1.0, clock=lambda: now[0])
    state.observe(_snapshot(timestamp=100.0))
    exporter.after_tick(_snapshot())  # nobody scrapes yet: nothing is rendered
    exporter.note_scrape("10.0.0.5")
    now[0] = 115.0
    exporter.note_scrape("10.0.0.5")  # every 15 s: the next one is due at 130
    rendered = exporter.renders
    for tick in range(116, 129):  # ticks long before the scrape are not rendered
        now[0] = float(tick)
        state.observe(_snapshot(timestamp=now[0]))
        exporter.after_tick(_snapshot())
        assert not exporter.scrape_due()
    assert exporter.renders == rendered
    now[0] = 129.3  # the last tick before 130
    state.observe(_snapshot(timestamp=129.0))
    assert exporter.scrape_due()
    exporter.after_tick(_snapshot())
    deadline = time.monotonic() + 10
    while exporter.renders == rendered and time.monotonic() < deadline:
        time.sleep(0.01)
    assert exporter.renders == rendered + 1  # rendered in the background ...
    assert b"gpuwatch_snapshot_timestamp_seconds 129\n" in exporter.render()
    assert exporter.renders == rendered + 1  # ... so the scrape only reads the cache
    now[0] = 150.0  # the scraper stopped coming: no more rendering ahead
    assert not exporter.scrape_due()


def test_without_a_tick_length_nothing_is_rendered_ahead() -> None:
    exporter = MetricsExporter(MetricsState())
    exporter.note_scrape("a")
    exporter.note_scrape("a")
    assert not exporter.scrape_due()
