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
    pods: tuple[PodRef, ...] = ()
    """The Kubernetes containers the kubelet allotted this GPU (or one of its MIG devices) to,
    from its PodResources API; empty where there is no kubelet or nobody holds it. Several
    where the GPU is shared (time-slicing, MIG)."""

    nvlinks: tuple[NvlinkLink, ...] = ()
    """Each NVLink link of the GPU, by link number; empty where NVML gives no link (a GPU
    without NVLink, or one whose link count and states are not supported)."""


# --------------------------------------------------------------------------- kubernetes


@dataclass(frozen=True, slots=True)
class PodRef:
    """One container of a Kubernetes pod: who holds a GPU, or where a process runs."""

    namespace: str
    """The pod's namespace."""
    pod: str
    """The pod's name."""
    container: str
    """The container's name in the pod spec; "" where only the pod is known."""
    device_id: str | None = None
    """For a GPU's holder: the device id the kubelet allotted (a GPU or MIG UUID, with a
    time-slicing replica's `::N` suffix as the device plugin wrote it); None for a process."""

    def label(self) -> str:
        """`namespace/pod`, as the TUI shows it where it showed a container hash."""
        return f"{self.namespace}/{self.pod}"


# --------------------------------------------------------------------------- NVLink and topology


class NvlinkState(StrEnum):
    """An NVLink link's state (`nvmlDeviceGetNvLinkState`)."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class NvlinkLink:
    """One NVLink link of a GPU at one slow read (gpuwatch/collect/nvml/links.py)."""

    link: int
    """The link number, 0 to the GPU's link count − 1."""
    state: NvlinkState | None = None
    version: str | None = None
    """The NVLink version: "4.0" on an H100 or H200 (`nvmlDeviceGetNvLinkVersion` answers 6,
    NVML's number for 4.0; see catalog.nvml_codes.NVLINK_VERSIONS)."""
    speed_bytes_per_second: float | None = None
    """The link's data rate, one way (field NVLINK_GET_SPEED): 26.562 GB/s on an H200."""
    remote_pci_bus_id: str | None = None
    """The PCI bus id of the far end; None where NVML gives none or the sentinel FFFFFFFF:FF:FF.0."""
    remote_gpu_index: int | None = None
    """The GPU at the far end: by its bus id, else the one peer NVML reports NVLink P2P with."""
    crc_error_count: int | None = None
    """CRC errors on received flits (`nvmlDeviceGetNvLinkErrorCounter` DL_CRC_FLIT), cumulative."""
    replay_error_count: int | None = None
    """Transmissions replayed after an error (DL_REPLAY), cumulative."""
    recovery_error_count: int | None = None
    """Link recoveries, the link retrained after errors (DL_RECOVERY), cumulative."""
    tx_bytes_per_second: float | None = None
    """Data sent on this link, from field THROUGHPUT_DATA_TX (scope: the link) of two slow reads."""
    rx_bytes_per_second: float | None = None


@dataclass(frozen=True, slots=True)
class GpuTopology:
    """One GPU's row of the topology matrix, as `nvidia-smi topo -m` prints it."""

    gpu_index: int
    paths: tuple[str, ...]
    """The connection to each GPU of `Topology.gpu_indexes`, in its order: "X" (itself), "NV18"
    (18 bonded NVLinks), "PIX", "PXB", "PHB", "NODE", "SYS"; "" where NVML cannot tell."""
    cpu_affinity: str | None = None
    """The CPUs nearest the GPU (`nvmlDeviceGetCpuAffinity`) as a list of ranges: "0-31"."""
    numa_affinity: str | None = None
    """The NUMA nodes nearest the GPU (`nvmlDeviceGetMemoryAffinity`): "0"."""
    numa_node_id: int | None = None
    """The GPU's own NUMA node (`nvmlDeviceGetNumaNodeId`; a Grace Hopper's HBM); None elsewhere."""


@dataclass(frozen=True, slots=True)
class Topology:
    """How the GPUs reach each other and the CPUs: read once, and again when links change."""

    gpu_indexes: tuple[int, ...]
    rows: tuple[GpuTopology, ...]


# --------------------------------------------------------------------------- MIG devices


MIG_NOT_PER_DEVICE: dict[str, str] = {
    "utilization_ratio": "NVML gives no utilization rates per MIG device (nor for its GPU in MIG mode)",
    "encoder_utilization_ratio": "NVML gives encoder utilization for the whole GPU only",
    "decoder_utilization_ratio": "NVML gives decoder utilization for the whole GPU only",
    "sm_clock_mhz": "clocks belong to the whole GPU: see its sample",
    "power_watts": "power belongs to the whole GPU: see its sample",
    "temperature_celsius": "temperature belongs to the whole GPU: see its sample",
}
"""The figures NVML does not give per MIG device, and why: `MigDevice.unavailable` carries these."""


@dataclass(frozen=True, slots=True)
class MigDevice:
    """One MIG device (a compute instance of a GPU instance) of a GPU in MIG mode, at one tick.

    NVML answers a MIG device handle for its UUID, instance ids, name (which carries the
    profile), memory and processes; GPM comes per GPU instance from the parent. Everything else
    (utilization, encoder/decoder, clocks, power, temperature) is the parent GPU's: `None` here,
    with the reason in `unavailable`."""

    gpu_index: int
    """The parent GPU's NVML index."""
    gpu_uuid: str
    """The parent GPU's UUID."""
    mig_index: int
    """Its index under the parent (`nvmlDeviceGetMigDeviceHandleByIndex`; nvidia-smi -L's "Device N")."""
    uuid: str
    """The MIG device's own UUID, "MIG-…": what CUDA_VISIBLE_DEVICES and the kubelet name it by."""
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None
    profile: str | None = None
    """The GPU instance profile, e.g. "1g.10gb" (slices and memory)."""
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    gpm: GpmActivity | None = None
    """GPM activity of its GPU instance (`nvmlGpmMigSampleGet`), where the parent has GPM."""
    utilization_ratio: float | None = None
    """Always None: NVML gives no utilization per MIG device (see `unavailable`)."""
    encoder_utilization_ratio: float | None = None
    """Always None: the whole GPU's figure."""
    decoder_utilization_ratio: float | None = None
    """Always None: the whole GPU's figure."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """Why each figure that is None is None, by field name."""


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
    """Name of the configured Triton server this process is, or serves as its child (a python
    backend stub), when it is one."""
    triton_model: str | None = None
    """For a Triton backend stub: the model whose instance it runs, from its command line."""
    triton_instance: str | None = None
    """For a Triton backend stub: the model instance it runs (`name_GROUP_INDEX`: `echo_0_1`)."""
    parent_pid: int | None = None
    """The parent process's PID, from the host."""
    pod_uid: str | None = None
    """The Kubernetes pod's UID, from the same cgroup path; None outside a pod."""
    pod: PodRef | None = None
    """Its pod's namespace and name and its container's name, from the container runtime's
    CRI labels (`[kubernetes] cri_socket`); None where no runtime answered for it."""
    gpu_instance_id: int | None = None
    """On a GPU in MIG mode: the GPU instance the process runs in (None off MIG)."""
    compute_instance_id: int | None = None
    """On a GPU in MIG mode: the compute instance the process runs in (None off MIG)."""
    mig_index: int | None = None
    """The MIG device (`MigDevice.mig_index`) the process runs on; None off MIG."""
    mig_uuid: str | None = None
    """The UUID of that MIG device; None off MIG."""
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
    NVLINK_DOWN = "nvlink_down"
    NVLINK_UP = "nvlink_up"
    NVLINK_ERRORS = "nvlink_errors"
    MIG_CHANGED = "mig_changed"
    """A GPU's MIG devices appeared or vanished (instances created or destroyed)."""
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
    CLOCK_STEP = "clock_step"


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
class LatencyPercentiles:
    """Triton's own latency quantiles for one model version, in seconds, where the server
    serves its summaries (`--metrics-config summary_latencies=true`): over Triton's sliding
    window (`summary_max_age`, 60 s by default), not over the poll interval. None for a
    quantile the window has no observation for."""

    request_p50_seconds: float | None = None
    request_p90_seconds: float | None = None
    request_p99_seconds: float | None = None
    queue_p50_seconds: float | None = None
    queue_p90_seconds: float | None = None
    queue_p99_seconds: float | None = None
    compute_infer_p50_seconds: float | None = None
    compute_infer_p90_seconds: float | None = None
    compute_infer_p99_seconds: float | None = None


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
    dynamic_batching: bool | None = None
    """Whether the config Triton serves has a `dynamic_batching` block; null until it is read."""
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
    mig_uuids: tuple[str, ...] = ()
    """The MIG devices this model's instances run on, where its GPUs are in MIG mode: from its
    `gpu_uuids` that are MIG UUIDs, else the MIG devices its server's processes run on there."""
    latency_percentiles: LatencyPercentiles | None = None
    """Triton's latency summaries where the server serves them; None where its /metrics has
    none (started without `--metrics-config summary_latencies=true`) or did not answer."""


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
    GPU_NVLINK_DOWN = "gpu_nvlink_down"
    GPU_NVLINK_ERRORS = "gpu_nvlink_errors"
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
    topology: Topology | None = None
    """How the GPUs connect (NVLink, PCIe) and their CPU and NUMA affinity; None before it is read."""
    mig_devices: tuple[MigDevice, ...] = ()
    """The MIG devices of every GPU in MIG mode, by parent index then MIG device index."""
    host: HostSample | None = None
    """The node's CPU, memory, swap and load; None where no host source runs."""
