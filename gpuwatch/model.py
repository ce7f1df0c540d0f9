"""The data model every layer shares.

Collectors produce these values, the engine assembles them into one immutable `Snapshot` per
tick, and the store, `/metrics`, the JSON API and the TUI only ever read them. Everything here
is a frozen dataclass of plain values so that a snapshot can cross threads and processes, be
encoded to JSON (`gpuwatch.jsonform`) and decoded back unchanged.

Rules that hold for every field:
- units live in names: `_bytes`, `_watts`, `_celsius`, `_mhz`, `_seconds`, `_per_second`,
  `_ratio` (0–1, never percent), `_count` (a cumulative counter);
- a value the source cannot give is `None`, never 0 or a sentinel such as 0xFFFFFFFF;
- timestamps are Unix seconds (float, UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

SCHEMA_VERSION = 1
"""Version of the JSON encoding of `Snapshot` (docs/snapshot.schema.json). Bump on any
incompatible change; adding an optional field is compatible."""


# --------------------------------------------------------------------------- node and GPUs


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Facts about the node and its driver stack, read once at start."""

    hostname: str
    gpuwatch_version: str
    source: str
    """Where GPU data comes from: "nvml" (the real driver) or "recorded" (the demo replay)."""
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    nvml_version: str | None = None


class GpuState(StrEnum):
    """How far a GPU can be trusted at this tick."""

    OK = "ok"
    LOST = "lost"
    """NVML said GPU_IS_LOST or Unknown: its handle is dropped and never used again."""
    HUNG = "hung"
    """A call to this GPU has not returned within the deadline; no new values this tick."""
    UNAVAILABLE = "unavailable"
    """NVML as a whole stopped answering (driver unloaded, version mismatch): no values."""


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """Static facts about one GPU, read when it is first seen (and when it comes back)."""

    index: int
    uuid: str
    name: str | None = None
    serial: str | None = None
    pci_bus_id: str | None = None
    architecture: str | None = None
    """Lower-case family name from NVML: "hopper", "ampere", …"""
    cuda_compute_capability: str | None = None
    """"9.0" for an H100."""
    memory_total_bytes: int | None = None
    power_limit_default_watts: float | None = None
    power_limit_min_watts: float | None = None
    """The lowest power limit that can be set (nvidia-smi's "Min Power Limit")."""
    power_limit_max_watts: float | None = None
    max_sm_clock_mhz: int | None = None
    max_memory_clock_mhz: int | None = None
    max_graphics_clock_mhz: int | None = None
    temperature_slowdown_celsius: int | None = None
    temperature_shutdown_celsius: int | None = None
    ecc_enabled: bool | None = None
    mig_enabled: bool | None = None
    persistence_mode_enabled: bool | None = None
    pcie_link_generation: int | None = None
    pcie_link_width: int | None = None
    nvlink_link_count: int | None = None
    gpm_supported: bool | None = None
    """GPU Performance Monitoring (Hopper and later): the honest activity signal."""


@dataclass(frozen=True, slots=True)
class GpmActivity:
    """GPU Performance Monitoring metrics over the interval between two GPM samples.

    "GPU utilization" reads 100 % both for a tensor-core matmul and for a memory copy; these
    tell them apart (tensor activity ~0.86 vs DRAM bandwidth ~0.85 on an H100)."""

    interval_seconds: float
    graphics_activity_ratio: float | None = None
    sm_activity_ratio: float | None = None
    sm_occupancy_ratio: float | None = None
    tensor_activity_ratio: float | None = None
    tensor_hmma_activity_ratio: float | None = None
    tensor_imma_activity_ratio: float | None = None
    tensor_dfma_activity_ratio: float | None = None
    dram_bandwidth_ratio: float | None = None
    fp16_activity_ratio: float | None = None
    fp32_activity_ratio: float | None = None
    fp64_activity_ratio: float | None = None
    integer_activity_ratio: float | None = None
    pcie_tx_bytes_per_second: float | None = None
    pcie_rx_bytes_per_second: float | None = None
    nvlink_tx_bytes_per_second: float | None = None
    nvlink_rx_bytes_per_second: float | None = None


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU at one tick. Fast fields are read every tick; slow fields (PCIe throughput,
    energy, GPM) carry the newest value of their own, slower cadence."""

    index: int
    uuid: str
    state: GpuState = GpuState.OK
    state_reason: str | None = None
    """Why the state is not ok, in words: "GPU is lost (nvmlDeviceGetPowerUsage)", …"""

    utilization_ratio: float | None = None
    memory_utilization_ratio: float | None = None
    """Share of time the memory controller was busy (NVML's "memory utilization")."""
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    memory_reserved_bytes: int | None = None
    temperature_celsius: float | None = None
    memory_temperature_celsius: float | None = None
    fan_speed_ratio: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    """The enforced limit now (it can be changed at run time with nvidia-smi -pl)."""
    energy_joules: float | None = None
    """Energy consumed since the driver was loaded (cumulative, slow cadence)."""
    sm_clock_mhz: int | None = None
    memory_clock_mhz: int | None = None
    graphics_clock_mhz: int | None = None
    performance_state: int | None = None
    """P-state number: 0 is P0 (maximum performance)."""
    clock_event_reasons_mask: int | None = None
    clock_event_reasons: tuple[str, ...] = ()
    """Decoded names of the active clock-event ("throttle") reasons, see catalog.nvml_codes."""
    ecc_corrected_volatile_count: int | None = None
    ecc_uncorrected_volatile_count: int | None = None
    ecc_corrected_aggregate_count: int | None = None
    ecc_uncorrected_aggregate_count: int | None = None
    remapped_rows_correctable_count: int | None = None
    remapped_rows_uncorrectable_count: int | None = None
    remapped_rows_pending: bool | None = None
    remapped_rows_failed: bool | None = None
    encoder_utilization_ratio: float | None = None
    decoder_utilization_ratio: float | None = None
    pcie_tx_bytes_per_second: float | None = None
    pcie_rx_bytes_per_second: float | None = None
    pcie_replay_count: int | None = None
    nvlink_tx_bytes_per_second: float | None = None
    nvlink_rx_bytes_per_second: float | None = None
    gpm: GpmActivity | None = None


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """A process holding a GPU context, joined with what the host knows about it."""

    pid: int
    gpu_index: int
    gpu_uuid: str
    kind: str = "compute"
    """"compute" or "graphics"."""
    used_memory_bytes: int | None = None
    sm_utilization_ratio: float | None = None
    memory_utilization_ratio: float | None = None
    encoder_utilization_ratio: float | None = None
    decoder_utilization_ratio: float | None = None
    user: str | None = None
    name: str | None = None
    command: str | None = None
    """The whole command line, arguments joined by spaces."""
    container_id: str | None = None
    """From /proc/PID/cgroup (docker, containerd, cri-o, podman); None for a host process."""
    started_at: float | None = None
    triton_server: str | None = None
    """Name of the configured Triton server this process is, when it is one."""
    cpu_ratio: float | None = None
    """Host CPU time over wall time since the previous fast tick: 1.0 is one core busy."""
    host_memory_bytes: int | None = None
    """Resident memory on the host (RSS), beside what it holds on the GPU."""


# --------------------------------------------------------------------------- the host


@dataclass(frozen=True, slots=True)
class HostSample:
    """The node's own CPU, memory, swap and load at one tick (psutil; the demo's recorded host)."""

    cpu_ratio: float | None = None
    """Busy CPU time over the last interval, over all cores (0–1)."""
    cpu_count: int | None = None
    memory_total_bytes: int | None = None
    memory_available_bytes: int | None = None
    """What new processes can have without swapping (Linux MemAvailable)."""
    swap_total_bytes: int | None = None
    swap_used_bytes: int | None = None
    load_1m: float | None = None
    load_5m: float | None = None
    load_15m: float | None = None


# --------------------------------------------------------------------------- events


class EventKind(StrEnum):
    XID = "xid"
    ECC_CORRECTED = "ecc_corrected"
    ECC_UNCORRECTED = "ecc_uncorrected"
    ROW_REMAP_FAILURE = "row_remap_failure"
    GPU_LOST = "gpu_lost"
    GPU_BACK = "gpu_back"
    GPU_HUNG = "gpu_hung"
    GPU_ADDED = "gpu_added"
    NVML_UNAVAILABLE = "nvml_unavailable"
    NVML_BACK = "nvml_back"
    TRITON_DOWN = "triton_down"
    TRITON_UP = "triton_up"
    TRITON_RESTART = "triton_restart"
    MODEL_STATE = "model_state"
    MODEL_RESET = "model_reset"
    COLLECTOR_FAILED = "collector_failed"
    COLLECTOR_RECOVERED = "collector_recovered"
    STORE_ERROR = "store_error"
    DAEMON_START = "daemon_start"
    DAEMON_STOP = "daemon_stop"
    FINDING_BEGAN = "finding_began"
    FINDING_ENDED = "finding_ended"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at a moment, kept in the events table and shown newest first."""

    timestamp: float
    kind: EventKind
    severity: Severity
    message: str
    gpu_index: int | None = None
    gpu_uuid: str | None = None
    server: str | None = None
    model: str | None = None
    version: str | None = None
    code: int | None = None
    """The XID number for an XID event; otherwise None."""


# --------------------------------------------------------------------------- Triton


class ServerState(StrEnum):
    UP = "up"
    DOWN = "down"
    """Configured explicitly and not answering (connection refused, timeout, HTTP 5xx)."""
    ABSENT = "absent"
    """The default local server, not configured by the user, with nothing listening: not an error."""
    ERROR = "error"
    """Answering, but with something gpuwatch cannot use (garbage, wrong shapes, too large)."""


class ModelState(StrEnum):
    """A model version's state, in Triton's words (`POST /v2/repository/index`).

    A state this gpuwatch does not know (a newer Triton's) is not forced into one of these, nor
    dropped: `ModelStats.state` then holds Triton's word as a plain string, which the JSON form
    carries as it is and every face shows as it is (never as ready)."""

    READY = "READY"
    UNAVAILABLE = "UNAVAILABLE"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"


@dataclass(frozen=True, slots=True)
class ModelTotals:
    """Cumulative counters since the model version was loaded (or the server started)."""

    request_success_count: int | None = None
    request_failure_count: int | None = None
    failure_count_by_reason: dict[str, int] = field(default_factory=dict)
    inference_count: int | None = None
    execution_count: int | None = None
    cache_hit_count: int | None = None
    cache_miss_count: int | None = None
    request_seconds: float | None = None
    """Cumulative latency of the successful requests (statistics `success.ns`)."""
    queue_seconds: float | None = None
    """Cumulative time successful requests waited in the queue (`queue.ns`)."""
    compute_input_seconds: float | None = None
    """Cumulative input-copy time, charged per request (`compute_input.ns`)."""
    compute_infer_seconds: float | None = None
    """Cumulative compute time, charged per request: a batch of n charges its time n times."""
    compute_output_seconds: float | None = None
    """Cumulative output-copy time, charged per request (`compute_output.ns`)."""


@dataclass(frozen=True, slots=True)
class ModelInterval:
    """Figures derived from two polls of one model version (see docs/triton.md for formulas).

    After a reset (server restart, unload/load, config reload) the first interval is marked
    `reset` and carries no rates: a rate across a reset would be negative or absurd."""

    interval_seconds: float
    reset: bool = False
    reset_reason: str | None = None
    requests_per_second: float | None = None
    inferences_per_second: float | None = None
    executions_per_second: float | None = None
    failures_per_second: float | None = None
    failures_per_second_by_reason: dict[str, float] = field(default_factory=dict)
    average_batch_size: float | None = None
    batch_fill_ratio: float | None = None
    """Average executed batch over max_batch_size."""
    preferred_batch_ratio: float | None = None
    """Share of executions that ran at one of the preferred batch sizes."""
    batch_size_histogram: dict[int, int] = field(default_factory=dict)
    """Executions per batch size in this interval (from /v2/models/stats batch_stats)."""
    average_request_seconds: float | None = None
    average_queue_seconds: float | None = None
    average_compute_input_seconds: float | None = None
    average_compute_infer_seconds: float | None = None
    average_compute_output_seconds: float | None = None
    queue_share_ratio: float | None = None
    """Queue time over request time: how much of the latency is waiting."""
    queue_to_compute_ratio: float | None = None
    queue_delay_ratio: float | None = None
    """Average queue time over max_queue_delay_microseconds."""
    mean_queue_depth: float | None = None
    """Little's law: Δqueue time / Δwall time."""
    cache_hit_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class ModelStats:
    """One version of one model on one Triton server."""

    server: str
    name: str
    version: str
    state: ModelState | str | None = None
    """READY, UNAVAILABLE, LOADING, UNLOADING (Triton's words)."""
    state_reason: str | None = None
    backend: str | None = None
    platform: str | None = None
    max_batch_size: int | None = None
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_seconds: float | None = None
    instance_count: int | None = None
    instance_kind: str | None = None
    gpu_indexes: tuple[int, ...] = ()
    """NVML indexes of the GPUs this model's instances run on: from `gpu_uuids` where NVML
    knows them, else instance_group `gpus` (CUDA device numbers as Triton sees them)."""
    gpu_uuids: tuple[str, ...] = ()
    """The `gpu_uuid` labels of this model's series in Triton's /metrics."""
    ensemble_steps: tuple[str, ...] = ()
    """For an ensemble: the composing models, in step order. Empty for a plain model."""
    pending_requests: int | None = None
    last_inference_at: float | None = None
    totals: ModelTotals = field(default_factory=ModelTotals)
    interval: ModelInterval | None = None
    llm_metrics: dict[str, float] = field(default_factory=dict)
    """The LLM backends' own families where present (nv_trt_llm_*, vllm:*), flattened."""


@dataclass(frozen=True, slots=True)
class TritonServerStatus:
    name: str
    url: str
    state: ServerState
    reason: str | None = None
    version: str | None = None
    polled_at: float | None = None
    poll_seconds: float | None = None
    models: tuple[ModelStats, ...] = ()
    pids: tuple[int, ...] = ()


# --------------------------------------------------------------------------- health and snapshot


@dataclass(frozen=True, slots=True)
class CollectorHealth:
    """One collector job as the engine sees it (node_exporter's scrape_collector_success)."""

    name: str
    ok: bool
    """The last run succeeded and the job is not stale."""
    stale: bool
    """No completed run within two cadences: the data it feeds is old."""
    cadence_seconds: float
    last_success_at: float | None = None
    last_duration_seconds: float | None = None
    last_error: str | None = None
    """One line: why the last run failed, or how long a stuck run has been running."""
    runs_count: int = 0
    errors_count: int = 0


@dataclass(frozen=True, slots=True)
class StoreHealth:
    ok: bool
    path: str | None = None
    last_error: str | None = None
    write_errors_count: int = 0
    queue_length: int = 0
    size_bytes: int | None = None


# --------------------------------------------------------------------------- findings


class FindingKind(StrEnum):
    """What needs a look, as the assessment (gpuwatch/assess/) judges it; docs/findings.md."""

    GPU_LOST = "gpu_lost"
    GPU_HUNG = "gpu_hung"
    GPU_XID_CRITICAL = "gpu_xid_critical"
    GPU_ECC_UNCORRECTED = "gpu_ecc_uncorrected"
    GPU_ROW_REMAP_PENDING = "gpu_row_remap_pending"
    GPU_ROW_REMAP_FAILED = "gpu_row_remap_failed"
    GPU_THERMAL_SLOWDOWN = "gpu_thermal_slowdown"
    GPU_HARDWARE_SLOWDOWN = "gpu_hardware_slowdown"
    GPU_POWER_CAPPED = "gpu_power_capped"
    GPU_MEMORY_NEARLY_FULL = "gpu_memory_nearly_full"
    NVML_UNAVAILABLE = "nvml_unavailable"
    SERVER_DOWN = "server_down"
    SERVER_ERROR = "server_error"
    COLLECTOR_FAILING = "collector_failing"
    COLLECTOR_STALE = "collector_stale"
    STORE_WRITE_ERRORS = "store_write_errors"
    MODEL_NOT_READY = "model_not_ready"
    MODEL_FAILING = "model_failing"
    MODEL_STALLED = "model_stalled"
    MODEL_QUEUE_BOUND = "model_queue_bound"
    """Most of the latency is queueing. Its words and advice tell the two verdicts apart: the
    model's GPUs have room ("queue-bound": add an instance) or are saturated ("GPU-bound")."""
    MODEL_DELAY_WASTED = "model_delay_wasted"
    MODEL_BATCHER_OFF = "model_batcher_off"
    MODEL_PREFERRED_UNUSED = "model_preferred_unused"


class SubjectKind(StrEnum):
    NODE = "node"
    GPU = "gpu"
    SERVER = "server"
    MODEL = "model"
    COLLECTOR = "collector"
    STORE = "store"


@dataclass(frozen=True, slots=True)
class Subject:
    """What a finding is about. Only the fields of its kind are set."""

    kind: SubjectKind
    gpu_index: int | None = None
    server: str | None = None
    model: str | None = None
    version: str | None = None
    collector: str | None = None

    def label(self) -> str:
        """ "GPU 1", "bert_base:1", "Triton local", "collector nvml_slow", "store", "node"."""
        if self.kind is SubjectKind.GPU:
            return f"GPU {self.gpu_index}"
        if self.kind is SubjectKind.MODEL:
            return f"{self.model}:{self.version}" if self.version else str(self.model)
        if self.kind is SubjectKind.SERVER:
            return f"Triton {self.server}"
        if self.kind is SubjectKind.COLLECTOR:
            return f"collector {self.collector}"
        return self.kind.value


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that needs a look, judged once by the assessment and shown by every face."""

    kind: FindingKind
    severity: Severity
    subject: Subject
    since: float
    """When the condition began to hold (Unix seconds), not when its onset hold elapsed."""
    words: str
    """A few words for a row's `!` mark: "stalled", "queue-bound", "failing 30 %"."""
    message: str
    """One line saying what holds, with the figures: "2 requests pending, none finished for 31 s"."""
    evidence: dict[str, float] = field(default_factory=dict)
    """The figures the judgement read and their values, by figure name (units in names)."""
    advice: str | None = None
    """One line: what to change, naming the setting where there is one."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything gpuwatch knows about the node at one tick. Built by the engine only."""

    timestamp: float
    """The tick this snapshot belongs to (Unix seconds, aligned to the tick interval)."""
    node: NodeInfo
    devices: tuple[GpuInfo, ...] = ()
    """Static facts of every GPU known, by index."""
    gpus: tuple[GpuSample, ...] = ()
    """This tick's sample of every GPU known, including lost and hung ones (with their state)."""
    processes: tuple[ProcessSample, ...] = ()
    """Processes holding a context on any GPU."""
    triton: tuple[TritonServerStatus, ...] = ()
    """Every Triton server polled, with its models."""
    events: tuple[Event, ...] = ()
    """Events that happened since the previous snapshot."""
    collectors: tuple[CollectorHealth, ...] = ()
    """Health of each collector job (nvml, nvml_slow, nvml_events, one per Triton server)."""
    store: StoreHealth | None = None
    """The history database's health; None where there is no store (snapshot, in-process top)."""
    nvml_status: str | None = None
    """One line saying why there is no GPU data (no driver, version mismatch), else None."""
    findings: tuple[Finding, ...] = ()
    """What needs a look at this tick (gpuwatch/assess/), most severe first."""
    host: HostSample | None = None
    """The node's CPU, memory, swap and load; None where no host source runs."""
