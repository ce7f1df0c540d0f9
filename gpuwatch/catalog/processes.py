"""The figures of each process holding a GPU context.

Place in the flow: declarations read by every face through `catalog.index` (see
`catalog.figures` for what a declaration holds); /metrics only, labelled by `catalog.entities.PROCESS`.
"""

from __future__ import annotations

from gpuwatch.catalog import entities as e
from gpuwatch.catalog.figures import gauge

FIGURES = (
    gauge(
        "process_gpu_memory_bytes",
        e.PROCESS,
        lambda p: p.used_memory_bytes,
        "GPU memory a process holds (`process` is its name, never its command line; "
        "`container` the first 12 hex digits of its container id).",
        unit="bytes",
    ),
    gauge(
        "process_sm_utilization_ratio",
        e.PROCESS,
        lambda p: p.sm_utilization_ratio,
        "Share of SM time the process used.",
    ),
    gauge(
        "process_memory_utilization_ratio",
        e.PROCESS,
        lambda p: p.memory_utilization_ratio,
        "Share of memory-controller time it used.",
    ),
    gauge(
        "process_encoder_utilization_ratio",
        e.PROCESS,
        lambda p: p.encoder_utilization_ratio,
        "Share of the video encoder it used.",
    ),
    gauge(
        "process_decoder_utilization_ratio",
        e.PROCESS,
        lambda p: p.decoder_utilization_ratio,
        "Share of the video decoder it used.",
    ),
    gauge(
        "process_start_time_seconds",
        e.PROCESS,
        lambda p: p.started_at,
        "Unix time the process started.",
        unit="seconds",
    ),
)
