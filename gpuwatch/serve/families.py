"""Every Prometheus metric family gpuwatch exports: name, type, labels, unit and meaning.

Place in the flow: `gpuwatch.serve.metrics` builds the families listed here from the latest
snapshot; docs/metrics.md is rendered from this table (`render_doc`) and a test keeps the two
identical, so the documentation cannot drift from the exporter.

Names are the history's series names (`gpuwatch.series.CATALOG`) with the `gpuwatch_` prefix,
except where Prometheus's conventions ask for something else, always mechanically: a
cumulative `_count` field becomes a `_total` counter (`gpu_ecc_uncorrected_volatile_count` →
`gpuwatch_gpu_ecc_uncorrected_volatile_total`), energy in joules becomes
`gpuwatch_gpu_energy_joules_total`, and clocks are exported in the base unit
(`gpu_sm_clock_mhz` → `gpuwatch_gpu_sm_clock_hertz`). `Family.series` names the history series
a family corresponds to, where one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gpuwatch.catalog import nvml_codes

PREFIX = "gpuwatch_"

Kind = Literal["gauge", "counter", "histogram"]

GPU = ("gpu", "uuid")
MODEL = ("server", "model", "version")
SERVER = ("server",)
PROCESS = ("gpu", "uuid", "pid", "process", "user", "container", "server")
COLLECTOR = ("collector",)


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    """The exposed name: counters end in `_total`; a histogram's samples add `_bucket`, …"""
    kind: Kind
    labels: tuple[str, ...]
    unit: str
    help: str
    series: str | None = None
    """The history series (`gpuwatch query NAME`) holding the same figure, if any."""

    @property
    def base_name(self) -> str:
        """The name prometheus_client wants: a counter's without `_total`."""
        return self.name.removesuffix("_total") if self.kind == "counter" else self.name


def _gauge(name: str, labels: tuple[str, ...], unit: str, text: str, series: bool = True) -> Family:
    return Family(PREFIX + name, "gauge", labels, unit, text, _series(name, series))


def _counter(name: str, labels: tuple[str, ...], unit: str, text: str, series: bool = False) -> Family:
    return Family(PREFIX + name, "counter", labels, unit, text, _series(name, series))


def _series(name: str, series: bool) -> str | None:
    return name if series else None


# --------------------------------------------------------------------------- the daemon itself

DAEMON: tuple[Family, ...] = (
    _gauge(
        "build_info",
        ("version", "source"),
        "",
        "Always 1; the gpuwatch version and the GPU data source (nvml, or recorded for --demo).",
        False,
    ),
    _gauge(
        "driver_info",
        ("driver_version", "cuda_driver_version", "nvml_version"),
        "",
        "Always 1; the NVIDIA driver, CUDA driver and NVML versions, once NVML has answered.",
        False,
    ),
    _gauge(
        "snapshot_timestamp_seconds",
        (),
        "seconds",
        "Unix time of the tick these figures come from; `time() - this` is how old they are.",
        False,
    ),
    _gauge(
        "nvml_up",
        (),
        "",
        "1 when NVML answers; 0 when it cannot be used (no driver, version mismatch): "
        "the reason is in /api/v1/health.",
        False,
    ),
    _gauge("gpus", (), "", "GPUs NVML reports, in any state.", False),
    _gauge(
        "collector_success",
        COLLECTOR,
        "",
        "1 when the collector's last run worked and is not stale (node_exporter's scrape_collector_success).",
        False,
    ),
    _gauge(
        "collector_stale",
        COLLECTOR,
        "",
        "1 when the collector has not completed a run within two cadences (a hung driver call).",
        False,
    ),
    _gauge("collector_duration_seconds", COLLECTOR, "seconds", "How long the last run took.", False),
    _gauge("collector_cadence_seconds", COLLECTOR, "seconds", "How often the collector runs.", False),
    _gauge(
        "collector_last_success_timestamp_seconds",
        COLLECTOR,
        "seconds",
        "Unix time of the collector's last successful run.",
        False,
    ),
    _counter("collector_runs_total", COLLECTOR, "", "Runs since the daemon started."),
    _counter("collector_errors_total", COLLECTOR, "", "Failed runs since the daemon started."),
    _gauge("store_up", (), "", "1 when the history database is being written; 0 on write errors.", False),
    _counter(
        "store_write_errors_total", (), "", "Failed writes to the history database since the daemon started."
    ),
    _gauge(
        "store_queue_length",
        (),
        "",
        "Snapshots waiting to be written (they pile up while the database cannot be written).",
        False,
    ),
    _gauge("store_size_bytes", (), "bytes", "Size of the history database on disk.", False),
    _counter(
        "events_total",
        ("kind",),
        "",
        "Events recorded since the daemon started, by kind (xid, gpu_lost, triton_down, …; "
        "see /api/v1/events).",
    ),
)

# --------------------------------------------------------------------------- GPUs

GPU_STATE: tuple[Family, ...] = (
    _gauge("gpu_up", GPU, "", "1 when the GPU answers; 0 when it is lost, hung or NVML is unavailable."),
    _gauge(
        "gpu_state",
        (*GPU, "state"),
        "",
        "1 for the GPU's current state (ok, lost, hung, unavailable); the other states are not exported.",
        False,
    ),
    _counter(
        "gpu_xid_errors_total",
        (*GPU, "xid"),
        "",
        "XID errors since the daemon started, by code. Every code of gpuwatch's XID catalogue "
        f"({', '.join(str(c) for c in sorted(nvml_codes.XIDS))}) is exported at 0 for every GPU so "
        "that the first one counts in increase(); another code appears when it first happens.",
    ),
)

GPU_INFO: tuple[Family, ...] = (
    _gauge(
        "gpu_info",
        (*GPU, "name", "serial", "pci_bus_id", "architecture", "cuda_compute_capability"),
        "",
        "Always 1; static facts about the GPU.",
        False,
    ),
    _gauge("gpu_power_limit_default_watts", GPU, "watts", "The power limit the board ships with.", False),
    _gauge("gpu_power_limit_max_watts", GPU, "watts", "The highest power limit that can be set.", False),
    _gauge("gpu_sm_clock_max_hertz", GPU, "hertz", "Highest SM clock.", False),
    _gauge("gpu_memory_clock_max_hertz", GPU, "hertz", "Highest memory clock.", False),
    _gauge("gpu_graphics_clock_max_hertz", GPU, "hertz", "Highest graphics clock.", False),
    _gauge(
        "gpu_temperature_slowdown_celsius",
        GPU,
        "celsius",
        "Temperature at which the GPU slows itself down.",
        False,
    ),
    _gauge(
        "gpu_temperature_shutdown_celsius", GPU, "celsius", "Temperature at which the GPU shuts down.", False
    ),
    _gauge("gpu_ecc_enabled", GPU, "", "1 when ECC is on.", False),
    _gauge("gpu_mig_enabled", GPU, "", "1 when MIG mode is on.", False),
    _gauge("gpu_persistence_mode_enabled", GPU, "", "1 when persistence mode is on.", False),
    _gauge("gpu_pcie_link_generation_max", GPU, "", "Highest PCIe generation of the link.", False),
    _gauge("gpu_pcie_link_width_max", GPU, "", "Widest PCIe link (lanes).", False),
    _gauge("gpu_nvlink_links", GPU, "", "NVLink links on the GPU.", False),
    _gauge(
        "gpu_gpm_supported", GPU, "", "1 when GPU Performance Monitoring (Hopper and later) works.", False
    ),
)


@dataclass(frozen=True, slots=True)
class SampleField:
    """A `GpuSample` (or `GpmActivity`, `gpm=True`) field exported as one family."""

    field: str
    family: Family
    scale: float = 1.0
    gpm: bool = False


def _sample(
    field: str,
    text: str,
    unit: str = "",
    *,
    kind: Kind = "gauge",
    name: str | None = None,
    scale: float = 1.0,
    gpm: bool = False,
    in_history: bool = True,
) -> SampleField:
    series = f"gpu_{field}"
    exposed = name or series
    family = Family(PREFIX + exposed, kind, GPU, unit, text, series if in_history else None)
    return SampleField(field, family, scale, gpm)


GPU_SAMPLE: tuple[SampleField, ...] = (
    _sample(
        "utilization_ratio", "Share of time a kernel ran (NVML's GPU utilization; see the GPM families)."
    ),
    _sample("memory_utilization_ratio", "Share of time the memory controller was busy."),
    _sample("memory_total_bytes", "Memory on the GPU.", "bytes"),
    _sample("memory_used_bytes", "Memory allocated by processes.", "bytes"),
    _sample("memory_free_bytes", "Memory free.", "bytes"),
    _sample("memory_reserved_bytes", "Memory reserved by the driver.", "bytes"),
    _sample("temperature_celsius", "GPU core temperature.", "celsius"),
    _sample("memory_temperature_celsius", "HBM temperature.", "celsius"),
    _sample("fan_speed_ratio", "Fan speed as a share of its maximum."),
    _sample("power_watts", "Power draw.", "watts"),
    _sample("power_limit_watts", "The enforced power limit now.", "watts"),
    _sample(
        "energy_joules",
        "Energy consumed since the driver was loaded.",
        "joules",
        kind="counter",
        name="gpu_energy_joules_total",
    ),
    _sample("sm_clock_mhz", "SM clock.", "hertz", name="gpu_sm_clock_hertz", scale=1e6),
    _sample("memory_clock_mhz", "Memory clock.", "hertz", name="gpu_memory_clock_hertz", scale=1e6),
    _sample("graphics_clock_mhz", "Graphics clock.", "hertz", name="gpu_graphics_clock_hertz", scale=1e6),
    _sample("performance_state", "P-state number; 0 is P0, maximum performance."),
    _sample(
        "clock_event_reasons_mask",
        "NVML's clock-event (throttle) reasons bitmask; see the gpu_clock_event_* families.",
        in_history=False,
    ),
    _sample(
        "ecc_corrected_volatile_count",
        "Corrected ECC errors since the driver was loaded.",
        kind="counter",
        name="gpu_ecc_corrected_volatile_total",
    ),
    _sample(
        "ecc_uncorrected_volatile_count",
        "Uncorrected ECC errors since the driver was loaded.",
        kind="counter",
        name="gpu_ecc_uncorrected_volatile_total",
    ),
    _sample(
        "ecc_corrected_aggregate_count",
        "Corrected ECC errors over the GPU's life.",
        kind="counter",
        name="gpu_ecc_corrected_aggregate_total",
    ),
    _sample(
        "ecc_uncorrected_aggregate_count",
        "Uncorrected ECC errors over the GPU's life.",
        kind="counter",
        name="gpu_ecc_uncorrected_aggregate_total",
    ),
    _sample(
        "remapped_rows_correctable_count",
        "Memory rows remapped after correctable errors.",
        kind="counter",
        name="gpu_remapped_rows_correctable_total",
    ),
    _sample(
        "remapped_rows_uncorrectable_count",
        "Memory rows remapped after uncorrectable errors.",
        kind="counter",
        name="gpu_remapped_rows_uncorrectable_total",
    ),
    _sample("remapped_rows_pending", "1 when a row remap waits for a GPU reset."),
    _sample("remapped_rows_failed", "1 when a row remap failed: the GPU needs service."),
    _sample("encoder_utilization_ratio", "Video encoder utilization."),
    _sample("decoder_utilization_ratio", "Video decoder utilization."),
    _sample("pcie_tx_bytes_per_second", "PCIe transmit throughput.", "bytes per second"),
    _sample("pcie_rx_bytes_per_second", "PCIe receive throughput.", "bytes per second"),
    _sample(
        "pcie_replay_count",
        "PCIe replays (link errors retried).",
        kind="counter",
        name="gpu_pcie_replay_total",
    ),
    _sample("nvlink_tx_bytes_per_second", "NVLink transmit throughput, all links.", "bytes per second"),
    _sample("nvlink_rx_bytes_per_second", "NVLink receive throughput, all links.", "bytes per second"),
    _sample("graphics_activity_ratio", "GPM: graphics engine activity.", gpm=True),
    _sample("sm_activity_ratio", "GPM: share of time SMs had work.", gpm=True),
    _sample("sm_occupancy_ratio", "GPM: warps resident over the SMs' capacity.", gpm=True),
    _sample("tensor_activity_ratio", "GPM: tensor cores busy (any precision).", gpm=True),
    _sample("tensor_hmma_activity_ratio", "GPM: tensor cores busy with half-precision MMA.", gpm=True),
    _sample("tensor_imma_activity_ratio", "GPM: tensor cores busy with integer MMA.", gpm=True),
    _sample("tensor_dfma_activity_ratio", "GPM: tensor cores busy with FP64 MMA.", gpm=True),
    _sample("dram_bandwidth_ratio", "GPM: DRAM bandwidth used over its peak.", gpm=True),
    _sample("fp16_activity_ratio", "GPM: FP16 pipe activity.", gpm=True),
    _sample("fp32_activity_ratio", "GPM: FP32 pipe activity.", gpm=True),
    _sample("fp64_activity_ratio", "GPM: FP64 pipe activity.", gpm=True),
    _sample("integer_activity_ratio", "GPM: integer pipe activity.", gpm=True),
)


@dataclass(frozen=True, slots=True)
class ReasonFamily:
    bit: int
    family: Family


CLOCK_EVENTS: tuple[ReasonFamily, ...] = tuple(
    ReasonFamily(
        r.bit,
        _gauge(
            f"gpu_clock_event_{r.name}",
            GPU,
            "",
            f"1 while the clocks are held down by: {r.words}.",
        ),
    )
    for r in nvml_codes.CLOCK_EVENT_REASONS
    if r.slows_work
)

PROCESS_FAMILIES: tuple[Family, ...] = (
    _gauge(
        "process_gpu_memory_bytes",
        PROCESS,
        "bytes",
        "GPU memory a process holds (`process` is its name, never its command line; "
        "`container` the first 12 hex digits of its container id).",
        False,
    ),
    _gauge("process_sm_utilization_ratio", PROCESS, "", "Share of SM time the process used.", False),
    _gauge(
        "process_memory_utilization_ratio", PROCESS, "", "Share of memory-controller time it used.", False
    ),
    _gauge("process_encoder_utilization_ratio", PROCESS, "", "Share of the video encoder it used.", False),
    _gauge("process_decoder_utilization_ratio", PROCESS, "", "Share of the video decoder it used.", False),
    _gauge("process_start_time_seconds", PROCESS, "seconds", "Unix time the process started.", False),
)

# --------------------------------------------------------------------------- Triton

TRITON: tuple[Family, ...] = (
    _gauge(
        "triton_up",
        SERVER,
        "",
        "1 when the Triton server answers, 0 when it is down or answers garbage. Not exported for "
        "the implicit local server while nothing listens there (state absent).",
    ),
    _gauge(
        "triton_state",
        (*SERVER, "state"),
        "",
        "1 for the server's current state (up, down, absent, error).",
        False,
    ),
    _gauge("triton_info", (*SERVER, "version"), "", "Always 1; the server's Triton version.", False),
    _gauge("triton_poll_duration_seconds", SERVER, "seconds", "How long the last poll took.", False),
    _gauge("triton_last_poll_timestamp_seconds", SERVER, "seconds", "Unix time of the last poll.", False),
    _gauge("model_up", MODEL, "", "1 when the model version is READY."),
    _gauge(
        "model_state",
        (*MODEL, "state"),
        "",
        "1 for the model version's current state (READY, UNAVAILABLE, LOADING, UNLOADING).",
        False,
    ),
    _gauge(
        "model_info",
        (*MODEL, "backend", "platform", "instance_kind"),
        "",
        "Always 1; the model version's backend, platform and instance kind.",
        False,
    ),
    _gauge(
        "model_gpu_info",
        (*MODEL, "gpu"),
        "",
        "1 for each GPU the model's instances run on (join with the gpu_* families on `gpu`).",
        False,
    ),
    _gauge("model_max_batch_size", MODEL, "", "max_batch_size from the model config.", False),
    _gauge("model_instances", MODEL, "", "Model instances (instance_group count).", False),
    _gauge(
        "model_max_queue_delay_seconds",
        MODEL,
        "seconds",
        "The dynamic batcher's max_queue_delay_microseconds.",
        False,
    ),
    _gauge("model_pending_requests", MODEL, "", "Requests waiting in the queue now."),
    _gauge(
        "model_last_inference_timestamp_seconds", MODEL, "seconds", "Unix time of the last inference.", False
    ),
    _counter(
        "model_request_success_total", MODEL, "", "Successful requests since the model version was loaded."
    ),
    _counter("model_request_failure_total", MODEL, "", "Failed requests since the model version was loaded."),
    _counter(
        "model_request_failure_by_reason_total",
        (*MODEL, "reason"),
        "",
        "Failed requests by Triton's reason (REJECTED, CANCELED, BACKEND, OTHER), where Triton gives them.",
    ),
    _counter("model_inference_total", MODEL, "", "Inferences (requests × batch) since the model was loaded."),
    _counter(
        "model_execution_total", MODEL, "", "Model executions (batches run) since the model was loaded."
    ),
    _counter("model_cache_hit_total", MODEL, "", "Response cache hits."),
    _counter("model_cache_miss_total", MODEL, "", "Response cache misses."),
    _gauge("model_requests_per_second", MODEL, "", "Requests per second over the last poll interval."),
    _gauge("model_inferences_per_second", MODEL, "", "Inferences per second over the last poll interval."),
    _gauge("model_executions_per_second", MODEL, "", "Executions per second over the last poll interval."),
    _gauge("model_failures_per_second", MODEL, "", "Failed requests per second over the last poll interval."),
    _gauge(
        "model_failures_per_second_by_reason",
        (*MODEL, "reason"),
        "",
        "Failed requests per second over the last poll interval, by reason.",
        False,
    ),
    _gauge("model_average_batch_size", MODEL, "", "Inferences per execution over the last interval."),
    _gauge("model_batch_fill_ratio", MODEL, "", "Average executed batch over max_batch_size."),
    _gauge(
        "model_preferred_batch_ratio", MODEL, "", "Share of executions at one of the preferred batch sizes."
    ),
    _gauge("model_average_request_seconds", MODEL, "seconds", "Mean request latency over the last interval."),
    _gauge("model_average_queue_seconds", MODEL, "seconds", "Mean time a request waited in the queue."),
    _gauge(
        "model_average_compute_input_seconds", MODEL, "seconds", "Mean time copying inputs per execution."
    ),
    _gauge("model_average_compute_infer_seconds", MODEL, "seconds", "Mean time computing per execution."),
    _gauge(
        "model_average_compute_output_seconds", MODEL, "seconds", "Mean time copying outputs per execution."
    ),
    _gauge(
        "model_queue_share_ratio", MODEL, "", "Queue time over request time: how much of latency is waiting."
    ),
    _gauge("model_queue_to_compute_ratio", MODEL, "", "Queue time over compute time."),
    _gauge("model_queue_delay_ratio", MODEL, "", "Mean queue time over max_queue_delay."),
    _gauge("model_mean_queue_depth", MODEL, "", "Mean requests in the queue (Little's law)."),
    _gauge("model_cache_hit_ratio", MODEL, "", "Response cache hits over lookups in the last interval."),
    Family(
        PREFIX + "model_batch_size",
        "histogram",
        MODEL,
        "",
        "Executions by executed batch size, accumulated from Triton's batch statistics since the daemon "
        "started (`_sum` is the inferences they carried).",
    ),
    _gauge(
        "model_llm_value",
        (*MODEL, "metric"),
        "",
        "The LLM backends' own figures (nv_trt_llm_*, vllm:*) as Triton reports them, by flattened name.",
        False,
    ),
)

BATCH_SIZE_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

ALL: tuple[Family, ...] = (
    DAEMON
    + GPU_STATE
    + GPU_INFO
    + tuple(s.family for s in GPU_SAMPLE)
    + tuple(r.family for r in CLOCK_EVENTS)
    + PROCESS_FAMILIES
    + TRITON
)
BY_NAME: dict[str, Family] = {f.name: f for f in ALL}
METRIC_FOR_SERIES: dict[str, str] = {f.series: f.name for f in ALL if f.series}
"""History series name → the Prometheus family with the same figure."""


def render_doc() -> str:
    """docs/metrics.md: every family, its type, labels, unit and meaning."""
    lines = [
        "# gpuwatch metrics",
        "",
        "`gpuwatch daemon` serves these at `/metrics` (Prometheus text format 0.0.4) on",
        "`127.0.0.1:9477` by default. Every figure comes from the engine's latest snapshot: a scrape",
        "never calls NVML or Triton. A figure the source cannot give is absent, never 0.",
        "",
        "Labels: `gpu` (NVML index) and `uuid` on GPU families; `server`, `model`, `version` on",
        "Triton families; `collector` names an engine job (`nvml`, `nvml_slow`, `nvml_events`,",
        "`triton:NAME`, …). No label carries a command line, a URL or a secret.",
        "",
        "Names match the history's series (`gpuwatch query SERIES`, `/api/v1/history`) with the",
        "`gpuwatch_` prefix, except that cumulative `_count` fields are `_total` counters, energy is",
        "`_joules_total` and clocks are in hertz; the *series* column names the history series.",
        "Counters whose comment says *since the daemon started* restart at 0 with the daemon;",
        "Prometheus's `rate()` and `increase()` handle that.",
        "",
        "This file is generated from `gpuwatch/serve/families.py` (a test keeps them equal).",
        "",
        "| name | type | labels | unit | series | meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in ALL:
        labels = ", ".join(f"`{label}`" for label in f.labels) or "—"
        series = f"`{f.series}`" if f.series else "—"
        text = f.help.replace("|", "\\|")
        lines.append(f"| `{f.name}` | {f.kind} | {labels} | {f.unit or '—'} | {series} | {text} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m gpuwatch.serve.families > docs/metrics.md
    import sys

    sys.stdout.write(render_doc())
