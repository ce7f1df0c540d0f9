"""The figure catalog: the store's scales pinned to what databases were written with, the label
checks, /metrics and the history agreeing on every figure they share, and what any one
declaration gets without more: docs, a family, columns, a series."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sqlite3
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpuwatch import model, series
from gpuwatch.catalog import entities, index
from gpuwatch.catalog.figures import (
    HUNDREDTHS,
    MILLIONTHS,
    RATIO_STEPS,
    TENTH_MICROSECONDS,
    THOUSANDTHS,
    WHOLE,
    Figure,
)
from gpuwatch.serve.api import Api
from gpuwatch.serve.metrics import MetricsExporter, MetricsState, client_name
from gpuwatch.store import figures, open_history
from gpuwatch.text import history_report
from tests.conftest import REPO, ManualClock
from tests.serve_support import full_snapshot, golden_snapshots, triton_servers
from tests.storekit import gpu, model_stats, open_test_store, rows, snapshot

STORED_SCALES_V1: dict[str, dict[str, int]] = {
    "gpu": {
        "gpu_up": 1,
        "gpu_utilization_ratio": 10_000,
        "gpu_memory_utilization_ratio": 10_000,
        "gpu_memory_total_bytes": 1,
        "gpu_memory_used_bytes": 1,
        "gpu_memory_free_bytes": 1,
        "gpu_memory_reserved_bytes": 1,
        "gpu_temperature_celsius": 100,
        "gpu_memory_temperature_celsius": 100,
        "gpu_fan_speed_ratio": 10_000,
        "gpu_power_watts": 1_000,
        "gpu_power_limit_watts": 1_000,
        "gpu_energy_joules": 1_000,
        "gpu_sm_clock_mhz": 1,
        "gpu_memory_clock_mhz": 1,
        "gpu_graphics_clock_mhz": 1,
        "gpu_performance_state": 1,
        "gpu_ecc_corrected_volatile_count": 1,
        "gpu_ecc_uncorrected_volatile_count": 1,
        "gpu_ecc_corrected_aggregate_count": 1,
        "gpu_ecc_uncorrected_aggregate_count": 1,
        "gpu_remapped_rows_correctable_count": 1,
        "gpu_remapped_rows_uncorrectable_count": 1,
        "gpu_remapped_rows_pending": 1,
        "gpu_remapped_rows_failed": 1,
        "gpu_encoder_utilization_ratio": 10_000,
        "gpu_decoder_utilization_ratio": 10_000,
        "gpu_pcie_tx_bytes_per_second": 1,
        "gpu_pcie_rx_bytes_per_second": 1,
        "gpu_pcie_replay_count": 1,
        "gpu_nvlink_tx_bytes_per_second": 1,
        "gpu_nvlink_rx_bytes_per_second": 1,
        "gpu_graphics_activity_ratio": 10_000,
        "gpu_sm_activity_ratio": 10_000,
        "gpu_sm_occupancy_ratio": 10_000,
        "gpu_tensor_activity_ratio": 10_000,
        "gpu_tensor_hmma_activity_ratio": 10_000,
        "gpu_tensor_imma_activity_ratio": 10_000,
        "gpu_tensor_dfma_activity_ratio": 10_000,
        "gpu_dram_bandwidth_ratio": 10_000,
        "gpu_fp16_activity_ratio": 10_000,
        "gpu_fp32_activity_ratio": 10_000,
        "gpu_fp64_activity_ratio": 10_000,
        "gpu_integer_activity_ratio": 10_000,
        "gpu_clock_event_sw_power_cap": 1,
        "gpu_clock_event_hw_slowdown": 1,
        "gpu_clock_event_hw_thermal_slowdown": 1,
        "gpu_clock_event_sw_thermal_slowdown": 1,
        "gpu_clock_event_hw_power_brake_slowdown": 1,
        "gpu_clock_event_sync_boost": 1,
    },
    "model": {
        "model_pending_requests": 1,
        "model_up": 1,
        "model_requests_per_second": 1_000,
        "model_inferences_per_second": 1_000,
        "model_executions_per_second": 1_000,
        "model_failures_per_second": 1_000,
        "model_average_batch_size": 1_000_000,
        "model_batch_fill_ratio": 10_000,
        "model_preferred_batch_ratio": 10_000,
        "model_average_request_seconds": 10_000_000,
        "model_average_queue_seconds": 10_000_000,
        "model_average_compute_input_seconds": 10_000_000,
        "model_average_compute_infer_seconds": 10_000_000,
        "model_average_compute_output_seconds": 10_000_000,
        "model_queue_share_ratio": 10_000,
        "model_queue_to_compute_ratio": 10_000,
        "model_queue_delay_ratio": 10_000,
        "model_mean_queue_depth": 1_000_000,
        "model_cache_hit_ratio": 10_000,
    },
    "server": {
        "triton_up": 1,
    },
}
"""Every column of schema version 1 and its scale (stored integer = round(value × scale)), as
`store.figures.scale_for` gave them before the catalog declared them. A database written then
must read the same: these may never change, and a column may never go."""


def test_every_column_keeps_the_scale_databases_were_written_with() -> None:
    declared = {kind: {f.series: f.scale for f in figures.FIGURES[kind]} for kind in figures.KINDS}
    for kind, columns in STORED_SCALES_V1.items():
        for name, scale in columns.items():
            assert declared[kind].get(name) == scale, (
                f"{kind}.{name}: stored at {scale}, now {declared[kind].get(name)}"
            )
    # A kind added later (mig) is new tables, made when a database is opened: nothing of v1 moves.
    assert figures.KINDS == ("gpu", "mig", "model", "server")


def test_the_stored_scale_is_the_one_the_writer_and_the_reader_use(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "gpuwatch.db"
    store = open_test_store(db, clock)
    store.submit(snapshot(clock.now, [gpu(0, power_watts=123.4567, temperature_celsius=41.25)]))
    assert store.flush(10)
    store.close()
    assert rows(db, "SELECT gpu_power_watts, gpu_temperature_celsius FROM gpu_raw") == [(123_457, 4125)]
    (power,) = open_history(db).query("gpu_power_watts", {}, 0, clock.now + 1, 10)
    assert power.points[0].mean == 123.457


def test_columns_are_written_and_read_by_name_whatever_their_order(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A database created before the catalog has model_pending_requests before model_up (a fresh
    one now has the catalog's order, as one upgraded by `add_missing_columns` has its own)."""
    db = tmp_path / "gpuwatch.db"
    store = open_test_store(db, clock)
    store.submit(snapshot(clock.now, models=[model_stats("m", pending_requests=1)]))
    assert store.flush(10)
    store.close()
    with sqlite3.connect(db) as conn:
        names = [r[1] for r in conn.execute("PRAGMA table_info(model_raw)")]
        i, j = names.index("model_up"), names.index("model_pending_requests")
        assert i < j  # the catalog's order
        names[i], names[j] = names[j], names[i]
        values = ", ".join(names[2:])
        conn.execute(f"CREATE TABLE swapped (key INTEGER PRIMARY KEY, entity_id INTEGER NOT NULL, {values})")
        conn.execute(f"INSERT INTO swapped SELECT key, entity_id, {values} FROM model_raw")
        conn.execute("DROP TABLE model_raw")
        conn.execute("ALTER TABLE swapped RENAME TO model_raw")
    conn.close()
    store = open_test_store(db, clock)
    store.submit(snapshot(clock.now + 1, models=[model_stats("m", pending_requests=7)]))
    assert store.flush(10)
    store.close()
    assert rows(db, "SELECT model_up, model_pending_requests FROM model_raw ORDER BY key") == [(1, 1), (1, 7)]
    (pending,) = open_history(db).query("model_pending_requests", {}, clock.now + 1, clock.now + 1, 1)
    assert [p.mean for p in pending.points] == [7.0]


# --------------------------------------------------------------------------- the label checks


def test_a_query_may_filter_only_by_its_entity_kinds_labels() -> None:
    assert series.check_query("gpu_power_watts", ["gpu", "uuid"]) is index.BY_NAME["gpu_power_watts"]
    assert series.check_query("model_up", {"server": "local", "model": "m"}).entity is entities.MODEL
    with pytest.raises(series.LabelError) as caught:
        series.check_query("model_requests_per_second", ["server", "gpu"])
    assert (caught.value.label, caught.value.figure.name) == ("gpu", "model_requests_per_second")
    assert str(caught.value) == "gpu does not apply to model_requests_per_second, a model series"
    with pytest.raises(series.LabelError, match="model does not apply to triton_up, a server series"):
        series.check_query("triton_up", ["model"])
    with pytest.raises(series.UnknownSeriesError):
        series.check_query("gpu_build_info", [])  # exported, but not kept in history
    with pytest.raises(series.UnknownSeriesError):
        series.check_query("nope", ["gpu"])


# --------------------------------------------------------------------------- the faces agree


def _exported(snapshot: model.Snapshot) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    state = MetricsState()
    state.observe(snapshot)
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(MetricsExporter(state).render().decode()):
        figure = index.BY_METRIC.get(sample_family(family.name))
        context = set(figure.entity.context_labels) if figure is not None else set()
        for sample in family.samples:
            key = tuple(sorted((n, v) for n, v in sample.labels.items() if n not in context))
            out.setdefault(sample.name, {})[key] = sample.value
    return out


def sample_family(name: str) -> str:
    """The catalog's metric name of a parsed family (the parser drops a counter's `_total`)."""
    return name if name in index.BY_METRIC else name + "_total"


def _kept(snapshot: model.Snapshot) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for key, value in series.extract(snapshot):
        out.setdefault(key.name, {})[tuple(sorted(key.labels))] = value
    return out


def _absent_local_server() -> model.Snapshot:
    up, down = triton_servers(999.0)
    absent = model.TritonServerStatus("local", "http://127.0.0.1:8000", model.ServerState.ABSENT)
    return dataclasses.replace(full_snapshot(), triton=(absent, dataclasses.replace(up, name="main"), down))


@functools.cache
def _snapshots() -> list[model.Snapshot]:
    return [*golden_snapshots(ManualClock()), full_snapshot(), _absent_local_server()]


@pytest.mark.parametrize("which", range(8))
def test_metrics_and_history_give_the_same_value_for_every_kept_figure(which: int) -> None:
    snap = _snapshots()[which]
    exported, kept = _exported(snap), _kept(snap)
    for figure in series.CATALOG:
        history = {labels: value * figure.metric_scale for labels, value in kept.get(figure.name, {}).items()}
        assert history == exported.get(figure.metric, {}), figure.name
    wide = {
        (name, labels): value
        for kind, labels, values in series.entity_values(snap)
        for name, value in zip(
            series.entity_series(kind), values[: len(series.entity_series(kind))], strict=True
        )
        if value is not None
    }
    assert wide == {(key.name, key.labels): value for key, value in series.extract(snap)}


def test_an_absent_server_is_in_neither_face_and_stores_no_value(tmp_path: Path, clock: ManualClock) -> None:
    snap = dataclasses.replace(_absent_local_server(), timestamp=clock.now)
    exported, kept = _exported(snap), _kept(snap)
    assert exported["gpuwatch_triton_up"] == {(("server", "edge"),): 0.0, (("server", "main"),): 1.0}
    assert kept["triton_up"] == {(("server", "edge"),): 0.0, (("server", "main"),): 1.0}
    assert exported["gpuwatch_triton_state"][(("server", "local"), ("state", "absent"))] == 1.0
    assert ("server", (("server", "local"),), (None,)) in list(series.entity_values(snap))

    db = tmp_path / "gpuwatch.db"
    store = open_test_store(db, clock)
    store.submit(snap)
    assert store.flush(10)
    store.close()
    stored = rows(
        db, "SELECT e.labels, s.triton_up FROM server_raw s JOIN entity e ON e.id = s.entity_id ORDER BY 1"
    )
    assert stored == [
        ('[["server","edge"]]', 0),
        ('[["server","local"]]', None),
        ('[["server","main"]]', 1),
    ]
    found = open_history(db).query("triton_up", {}, 0, clock.now + 1, 10)
    assert {d.key.label("server"): d.points[0].mean for d in found} == {"edge": 0.0, "main": 1.0}


def test_a_value_that_is_not_a_number_is_in_neither_face() -> None:
    sample = dataclasses.replace(full_snapshot().gpus[0], power_watts=math.nan)
    snap = dataclasses.replace(full_snapshot(), gpus=(sample,))
    assert "gpuwatch_gpu_power_watts" not in _exported(snap)
    assert "gpu_power_watts" not in _kept(snap)


# --------------------------------------------------------------------------- one declaration is enough
# What every declaration gets without anything else written for it: these hold for any figure
# added to the catalog, and fail naming the figure when one does not.


def test_names_metrics_and_entity_kinds_are_unique() -> None:
    assert len(index.BY_NAME) == len(index.ALL)
    assert len(index.BY_METRIC) == len(index.ALL)
    kinds: dict[str, object] = {}
    for f in index.ALL:
        assert kinds.setdefault(f.entity.name, f.entity) is f.entity, (
            f"two entity kinds named {f.entity.name}"
        )
        assert len(set(f.labels)) == len(f.labels), f"{f.name}: a label twice"


def test_every_declared_figure_is_in_docs_metrics_md() -> None:
    rows = {
        line.split(" | ")[0].strip("| `"): line
        for line in (REPO / "docs" / "metrics.md").read_text().splitlines()
    }
    for f in index.ALL:
        assert f.metric in rows, f"{f.metric} is not in docs/metrics.md: python -m gpuwatch.catalog.doc"
        kept = f"| `{f.name}` |" if f.stored_scale is not None else "| — |"
        assert kept in rows[f.metric], f.metric


def test_every_figure_renders_from_a_full_snapshot_with_its_labels() -> None:
    state = MetricsState()
    state.observe(full_snapshot())
    rendered = {
        fam.name: fam for fam in text_string_to_metric_families(MetricsExporter(state).render().decode())
    }
    for f in index.ALL:
        family = rendered.get(client_name(f))
        assert family is not None, f"{f.metric} does not render from a snapshot with every field set"
        assert family.type == f.metric_type and family.documentation == f.help, f.metric
        for sample in family.samples:
            # a full snapshot knows every context label (the GPU's pod), so all are there
            assert set(sample.labels) - {"le"} == set(f.metric_labels), (f.metric, sample.labels)


def test_every_kept_figure_is_a_column_of_its_kinds_tables(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "gpuwatch.db"
    store = open_test_store(db, clock)
    store.submit(snapshot(clock.now, [gpu(0, power_watts=100.0)]))
    assert store.flush(10)
    store.close()
    for kind in index.HISTORY_KINDS:
        names = [f.name for f in index.HISTORY_BY_KIND[kind.name]]
        weights = [f"{f.name}_weight" for f in index.HISTORY_BY_KIND[kind.name] if f.weight is not None]
        raw = [r[1] for r in rows(db, f"PRAGMA table_info({kind.name}_raw)")]
        assert raw == ["key", "entity_id", *names, *series.entity_weights(kind.name)], kind.name
        for tier in ("60s", "3600s"):
            rolled = {r[1] for r in rows(db, f"PRAGMA table_info({kind.name}_{tier})")}
            assert {f"{n}_{part}" for n in names for part in ("min", "mean", "max")} <= rolled, kind.name
            assert set(weights) <= rolled, kind.name
    assert {f.series: f.scale for fs in figures.FIGURES.values() for f in fs} == {
        f.name: f.stored_scale for f in index.HISTORY
    }
    # A weight's scale is part of the file's format too (schema version 2).
    assert dict(figures.RAW_WEIGHTS["model"]) == {
        "weight_ms": 1000,
        "weight_executions": 1,
        "weight_requests": 1,
        "weight_computed_requests": 1,
        "weight_request_us": 1_000_000,
        "weight_compute_infer_us": 1_000_000,
    }


def test_every_kept_figure_is_a_series_everywhere_with_a_declared_precision() -> None:
    precisions = {WHOLE, HUNDREDTHS, THOUSANDTHS, RATIO_STEPS, TENTH_MICROSECONDS, MILLIONTHS}
    api = Api(lambda: None, series.MemoryHistory(), lambda: ())
    listed = [e["name"] for e in json.loads(api.handle("/api/v1/series", "").body)["series"]]
    printed = [line.split()[0] for line in history_report.render_catalog().splitlines()]
    extracted = {key.name for key, _ in series.extract(full_snapshot())}
    for f in index.HISTORY:
        assert isinstance(f, Figure) and f.stored_scale in precisions, f.name
        assert series.info(f.name) is f and f.name in listed and f.name in printed, f.name
        assert f.name in extracted, f"{f.name} has no value in a snapshot with every field set"
    assert listed == printed == [f.name for f in series.CATALOG]


def test_every_series_has_words_a_group_and_its_unit() -> None:
    from gpuwatch import series
    from gpuwatch.catalog.words import group_order, words

    for figure in series.CATALOG:
        w = words(figure)
        assert "_" not in w.title and w.title, figure.name
        assert w.group in group_order(figure.entity.name), (figure.name, w.group)
    by_name = {f.name: words(f) for f in series.CATALOG}
    assert by_name["gpu_tensor_imma_activity_ratio"].label == "tensor IMMA activity (%)"
    assert by_name["gpu_pcie_rx_bytes_per_second"].label == "PCIe rx (B/s)"
    assert by_name["gpu_power_watts"].group == "power and heat"
    assert by_name["gpu_clock_event_sw_power_cap"].group == "clocks held down by"
    assert by_name["model_average_queue_seconds"].label == "average queue (s)"
