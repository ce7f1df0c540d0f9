"""The daemon's own figures: build, driver, snapshot age, collectors, store and event counts.

Place in the flow: declarations read by every face through `catalog.index` (see
`catalog.figures` for what a declaration holds); /metrics exports them first.
"""

from __future__ import annotations

from gpuwatch import model
from gpuwatch.catalog import entities as e
from gpuwatch.catalog.figures import counter, gauge, labelled, one
from gpuwatch.catalog.reading import Reading


def _build(r: Reading) -> tuple[tuple[tuple[str, ...], int]]:
    return one(r.exporter_version, r.snapshot.node.source if r.snapshot is not None else "")


def _driver(s: model.Snapshot) -> tuple[tuple[tuple[str, ...], int], ...]:
    node = s.node
    if node.driver_version is None:
        return ()
    return one(node.driver_version, node.cuda_driver_version, node.nvml_version)


FIGURES = (
    labelled(
        "build_info",
        e.EXPORTER,
        ("version", "source"),
        _build,
        "Always 1; the gpuwatch version and the GPU data source (nvml, or recorded for --demo).",
    ),
    labelled(
        "driver_info",
        e.NODE,
        ("driver_version", "cuda_driver_version", "nvml_version"),
        _driver,
        "Always 1; the NVIDIA driver, CUDA driver and NVML versions, once NVML has answered.",
    ),
    gauge(
        "snapshot_timestamp_seconds",
        e.NODE,
        lambda s: s.timestamp,
        "Unix time of the tick these figures come from; `time() - this` is how old they are.",
        unit="seconds",
    ),
    gauge(
        "nvml_up",
        e.NODE,
        lambda s: s.nvml_status is None,
        "1 when NVML answers; 0 when it cannot be used (no driver, version mismatch): "
        "the reason is in /api/v1/health.",
    ),
    gauge("gpus", e.NODE, lambda s: len(s.gpus), "GPUs NVML reports, in any state."),
    gauge(
        "collector_success",
        e.COLLECTOR,
        lambda c: c.ok,
        "1 when the collector's last run worked and is not stale (node_exporter's scrape_collector_success).",
    ),
    gauge(
        "collector_stale",
        e.COLLECTOR,
        lambda c: c.stale,
        "1 when the collector has not completed a run within two cadences (a hung driver call).",
    ),
    gauge(
        "collector_duration_seconds",
        e.COLLECTOR,
        lambda c: c.last_duration_seconds,
        "How long the last run took.",
        unit="seconds",
    ),
    gauge(
        "collector_cadence_seconds",
        e.COLLECTOR,
        lambda c: c.cadence_seconds,
        "How often the collector runs.",
        unit="seconds",
    ),
    gauge(
        "collector_last_success_timestamp_seconds",
        e.COLLECTOR,
        lambda c: c.last_success_at,
        "Unix time of the collector's last successful run.",
        unit="seconds",
    ),
    counter("collector_runs_total", e.COLLECTOR, lambda c: c.runs_count, "Runs since the daemon started."),
    counter(
        "collector_errors_total",
        e.COLLECTOR,
        lambda c: c.errors_count,
        "Failed runs since the daemon started.",
    ),
    gauge(
        "store_up",
        e.STORE,
        lambda s: s.ok,
        "1 when the history database is being written; 0 on write errors.",
    ),
    counter(
        "store_write_errors_total",
        e.STORE,
        lambda s: s.write_errors_count,
        "Failed writes to the history database since the daemon started.",
    ),
    gauge(
        "store_queue_length",
        e.STORE,
        lambda s: s.queue_length,
        "Snapshots waiting to be written (they pile up while the database cannot be written).",
    ),
    gauge(
        "store_size_bytes",
        e.STORE,
        lambda s: s.size_bytes,
        "Size of the history database on disk.",
        unit="bytes",
    ),
    labelled(
        "events_total",
        e.TALLY,
        ("kind",),
        lambda t: (((kind,), count) for kind, count in t.events_by_kind.items()),
        "Events recorded since the daemon started, by kind (xid, gpu_lost, triton_down, …; "
        "see /api/v1/events).",
        metric_type="counter",
    ),
)
