"""NVML → GPU facts, samples, processes and events.

Place in the flow: the engine runs three jobs of this collector on its own threads —
`poll_fast` every `nvml.interval_seconds`, `poll_slow` every `nvml.slow_interval_seconds` and
`poll_events` beside the fast tick — and reads `view()` and `drain_events()` when it builds a
snapshot. Nothing here formats, stores or serves.

How it stays up when the driver misbehaves:
- every call goes through `NvmlGateway` (the one choke point), so "not supported" is learned
  once per GPU and field and a lost GPU or a vanished library surfaces as a typed exception;
- each GPU has two worker threads, one for the fast fields and one for the slow ones, so a
  21 ms PCIe read never delays a tick and a call that hangs in the driver stalls only that
  GPU: after `call_timeout_seconds` it is reported `hung`, naming the call, while the other
  GPUs keep producing samples; it resumes when the call returns;
- a GPU that says GPU_IS_LOST or Unknown is marked lost, its handle is dropped and never used
  again, and it is looked up afresh by UUID with backoff until it answers;
- NVML that cannot start (no driver, driver/library mismatch) gives a one-line status and is
  retried with backoff.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pynvml

from gpuwatch import __version__, model
from gpuwatch.catalog import nvml_codes
from gpuwatch.collect.contract import Job
from gpuwatch.collect.host import ProcessInfoSource
from gpuwatch.collect.nvml.gateway import (
    GpuLostError,
    NvmlGateway,
    NvmlUnavailableError,
    error_code,
)
from gpuwatch.collect.nvml.values import (
    NvlinkCounters,
    bool_or_none,
    bytes_from_kib,
    clock_event_reason_names,
    field_value,
    float_or_none,
    from_milli,
    int_or_none,
    nvlink_bytes_per_second,
    pstate_or_none,
    ratio_from_percent,
    text_or_none,
    uint_or_none,
)
from gpuwatch.config import NvmlSettings

log = logging.getLogger("gpuwatch.nvml")

MIB = 1024 * 1024

# GPM metric id → GpmActivity field and scale to base units.
_GPM_METRICS: tuple[tuple[int, str, float], ...] = (
    (pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL, "graphics_activity_ratio", 0.01),
    (pynvml.NVML_GPM_METRIC_SM_UTIL, "sm_activity_ratio", 0.01),
    (pynvml.NVML_GPM_METRIC_SM_OCCUPANCY, "sm_occupancy_ratio", 0.01),
    (pynvml.NVML_GPM_METRIC_INTEGER_UTIL, "integer_activity_ratio", 0.01),
    (pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL, "tensor_activity_ratio", 0.01),
    (pynvml.NVML_GPM_METRIC_DFMA_TENSOR_UTIL, "tensor_dfma_activity_ratio", 0.01),
    (pynvml.NVML_GPM_METRIC_HMMA_TENSOR_UTIL, "tensor_hmma_activity_ratio", 0.01),
    (pynvml.NVML_GPM_METRIC_IMMA_TENSOR_UTIL, "tensor_imma_activity_ratio", 0.01),
    (pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL, "dram_bandwidth_ratio", 0.01),
    (pynvml.NVML_GPM_METRIC_FP64_UTIL, "fp64_activity_ratio", 0.01),
    (pynvml.NVML_GPM_METRIC_FP32_UTIL, "fp32_activity_ratio", 0.01),
    (pynvml.NVML_GPM_METRIC_FP16_UTIL, "fp16_activity_ratio", 0.01),
    (pynvml.NVML_GPM_METRIC_PCIE_TX_PER_SEC, "pcie_tx_bytes_per_second", MIB),
    (pynvml.NVML_GPM_METRIC_PCIE_RX_PER_SEC, "pcie_rx_bytes_per_second", MIB),
    (pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC, "nvlink_tx_bytes_per_second", MIB),
    (pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC, "nvlink_rx_bytes_per_second", MIB),
)

_FIELD_MEMORY_TEMP = pynvml.NVML_FI_DEV_MEMORY_TEMP
_FIELD_PCIE_REPLAY = pynvml.NVML_FI_DEV_PCIE_REPLAY_COUNTER
_FIELD_NVLINK_TX = pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX
_FIELD_NVLINK_RX = pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX
_NVLINK_ALL_LINKS = 0xFFFFFFFF

_EVENT_TYPES = (
    pynvml.nvmlEventTypeXidCriticalError
    | pynvml.nvmlEventTypeDoubleBitEccError
    | pynvml.nvmlEventTypeSingleBitEccError
)
_NO_NEW_SAMPLES = frozenset({pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVML_SUCCESS})


@dataclass(frozen=True, slots=True)
class NvmlView:
    """What the collector knows now, as immutable data for the engine."""

    status: str | None
    node: model.NodeInfo
    devices: tuple[model.GpuInfo, ...]
    gpus: tuple[model.GpuSample, ...]
    processes: tuple[model.ProcessSample, ...]


# --------------------------------------------------------------------------- worker threads


class _Worker:
    """A thread that runs one job at a time for one GPU.

    A call stuck in the driver cannot be cancelled (a thread in C cannot be interrupted), so
    each GPU gets its own thread: the stuck one stays stuck, the others go on."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self.busy_since: float | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def thread_id(self) -> int | None:
        return self._thread.ident

    def submit(self, job: Callable[[], None]) -> bool:
        """Start `job` unless the previous one is still running."""
        if not self._idle.is_set():
            return False
        self._idle.clear()
        self.busy_since = time.monotonic()
        self._jobs.put(job)
        return True

    def wait(self, timeout: float) -> bool:
        return self._idle.wait(max(0.0, timeout))

    def retire(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # a bug in a job must not kill the GPU's thread
                log.exception("NVML worker %s failed", self._thread.name)
            finally:
                self.busy_since = None
                self._idle.set()


# --------------------------------------------------------------------------- per-GPU state

_ProcessUtil = tuple[float | None, float | None, float | None, float | None]
"""SM, memory, encoder and decoder utilization of one process, as ratios."""


class _Gpu:
    """Mutable state of one GPU, owned by the collector. Workers replace whole values."""

    def __init__(self, index: int, uuid: str, handle: Any) -> None:
        self.index = index
        self.uuid = uuid
        self.handle: Any = handle
        self.info = model.GpuInfo(index=index, uuid=uuid)
        self.lost_reason: str | None = None
        self.retry_at = 0.0
        self.retry_delay = 1.0
        self.hung_reported = False
        self.fast: dict[str, Any] = {}
        self.slow: dict[str, Any] = {}
        self.gpm: model.GpmActivity | None = None
        self.gpm_samples: list[Any] = []
        self.gpm_previous: tuple[Any, float] | None = None
        self.processes: tuple[tuple[int, str, int | None], ...] = ()
        self.process_util: dict[int, _ProcessUtil] = {}
        self.process_util_seen_us = 0
        self.process_util_known = False
        self.nvlink_previous: NvlinkCounters | None = None
        self.remap_failed = False
        self.energy_due_at = 0.0
        self.slow_fields: list[int] = [_FIELD_MEMORY_TEMP, _FIELD_PCIE_REPLAY]
        self.fast_worker: _Worker | None = None
        self.slow_worker: _Worker | None = None

    @property
    def lost(self) -> bool:
        return self.handle is None


# --------------------------------------------------------------------------- the collector


class NvmlCollector:
    """Reads every GPU through an NVML API object: `pynvml` itself, or a recorded stand-in."""

    def __init__(
        self,
        api: Any,
        settings: NvmlSettings,
        processes: ProcessInfoSource,
        *,
        source_name: str = "nvml",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._gateway = NvmlGateway(api)
        self._settings = settings
        self._host = processes
        self._clock = clock
        self._lock = threading.RLock()
        self._init_lock = threading.Lock()
        self._gpus: list[_Gpu] = []
        self._events: list[model.Event] = []
        self._ready = False
        self._ever_ready = False
        self._status: str | None = "NVML not initialised yet"
        self._init_at = 0.0
        self._init_delay = settings.interval_seconds  # first retry next tick, then doubling
        self._library_failure: str | None = None
        self._event_set: Any = None
        self._node = model.NodeInfo(
            hostname=socket.gethostname(), gpuwatch_version=__version__, source=source_name
        )

    @property
    def gateway(self) -> NvmlGateway:
        return self._gateway

    # -- the engine's interface -----------------------------------------------------------

    def jobs(self) -> list[Job]:
        s = self._settings
        return [
            Job("nvml", s.interval_seconds, lambda: self._status_after(self.poll_fast)),
            # Half a tick off the fast job: NVML serialises calls, and the slow ones take ~20 ms.
            Job(
                "nvml_slow",
                s.slow_interval_seconds,
                lambda: self._status_after(self.poll_slow),
                offset_seconds=s.interval_seconds / 2,
            ),
            Job("nvml_events", s.interval_seconds, lambda: self._status_after(self.poll_events)),
        ]

    def _status_after(self, poll: Callable[[], None]) -> str | None:
        poll()
        return self._status

    def view(self) -> NvmlView:
        """Built on demand (the engine asks once per tick), from each GPU's latest reads.

        A GPU whose worker has been stuck past the call timeout is reported hung here, and a
        GPU_HUNG event is recorded the first time."""
        return self._build_view()

    def drain_events(self) -> list[model.Event]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def poll_fast(self) -> None:
        if not self._ensure_ready():
            return
        deadline = time.monotonic() + min(
            self._settings.call_timeout_seconds, self._settings.interval_seconds * 0.8
        )
        started = []
        for gpu in list(self._gpus):
            worker = gpu.fast_worker
            if worker is None:
                continue
            if gpu.lost and gpu.lost_reason is None:
                continue  # its open job is still running
            job = self._retry_lost if gpu.lost else self._read_fast
            if worker.submit(lambda g=gpu, j=job: j(g)):  # type: ignore[misc]
                started.append(worker)
        for worker in started:
            worker.wait(deadline - time.monotonic())
        self._after_poll()

    def poll_slow(self) -> None:
        if not self._ensure_ready():
            return
        self._look_for_new_gpus()
        deadline = time.monotonic() + min(
            self._settings.call_timeout_seconds, self._settings.slow_interval_seconds * 0.8
        )
        started = []
        for gpu in list(self._gpus):
            worker = gpu.slow_worker
            if worker is None or gpu.lost:
                continue
            if worker.submit(lambda g=gpu: self._read_slow(g)):  # type: ignore[misc]
                started.append(worker)
        for worker in started:
            worker.wait(deadline - time.monotonic())
        self._after_poll()

    def poll_events(self) -> None:
        """Drain XID and ECC events without blocking (a zero-timeout wait costs ~30 µs)."""
        if not self._ensure_ready() or self._event_set is None:
            return
        for _ in range(256):
            try:
                data = self._gateway.call_library("nvmlEventSetWait_v2", self._event_set, 0)
            except (NvmlUnavailableError, GpuLostError):
                return  # noticed, with its reason, by the next fast poll
            except pynvml.NVMLError as exc:
                code = error_code(exc)
                if code == pynvml.NVML_ERROR_TIMEOUT:
                    return
                log.warning("NVML event wait failed: %s", exc)
                return
            self._record_nvml_event(data)

    def close(self) -> None:
        with self._lock:
            for gpu in self._gpus:
                self._retire(gpu)
            self._gpus = []
            self._ready = False
        with contextlib.suppress(Exception):  # best effort on the way out
            if self._event_set is not None:
                self._gateway.call_library("nvmlEventSetFree", self._event_set)
            self._gateway.call_library("nvmlShutdown")

    # -- init, backoff and teardown ---------------------------------------------------------

    def _ensure_ready(self) -> bool:
        """Initialise NVML if it is not, at most once per backoff period, from any job."""
        if self._ready:
            return True
        with self._init_lock:  # another job may have finished init while this one waited
            return self._ready or self._try_init()

    def _try_init(self) -> bool:
        if time.monotonic() < self._init_at:
            return False
        try:
            self._init()
        except NvmlUnavailableError as exc:
            self._fail_library(str(exc))
            return False
        except pynvml.NVMLError as exc:
            self._fail_library(f"NVML unavailable: {exc}")
            return False
        return True

    def _init(self) -> None:
        g = self._gateway
        g.call_library("nvmlInit")
        driver = text_or_none(g.call("", "driver_version", "nvmlSystemGetDriverVersion"))
        cuda = g.call("", "cuda_driver_version", "nvmlSystemGetCudaDriverVersion_v2")
        nvml_version = text_or_none(g.call("", "nvml_version", "nvmlSystemGetNVMLVersion"))
        self._node = replace(
            self._node,
            driver_version=driver,
            cuda_driver_version=f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None,
            nvml_version=nvml_version,
        )
        count = g.call_library("nvmlDeviceGetCount")
        try:
            self._event_set = g.call_library("nvmlEventSetCreate")
        except pynvml.NVMLError as exc:
            log.info("NVML events are not available (%s): XIDs will not be reported", exc)
            self._event_set = None
        gpus = [self._new_gpu(index) for index in range(count)]
        with self._lock:
            self._gpus = gpus
            self._ready = True
            self._status = None
            self._init_delay = self._settings.interval_seconds
            if self._ever_ready:
                self._event(
                    model.EventKind.NVML_BACK, model.Severity.INFO, f"NVML is answering again ({count} GPUs)"
                )
            self._ever_ready = True
        log.info("NVML ready: driver %s, %d GPUs", driver, count)
        self._open_all(gpus)

    def _fail_library(self, reason: str) -> None:
        with self._lock:
            first = self._status != reason
            for gpu in self._gpus:
                self._retire(gpu)
            self._ready = False
            self._status = reason
            self._init_at = time.monotonic() + self._init_delay
            self._init_delay = min(self._init_delay * 2, self._settings.retry_max_seconds)
        if first:
            log.warning("%s; retrying with backoff", reason)
            self._event(model.EventKind.NVML_UNAVAILABLE, model.Severity.CRITICAL, reason)
        with contextlib.suppress(Exception):  # the library may already be gone
            self._gateway.call_library("nvmlShutdown")
        self._event_set = None

    def _new_gpu(self, index: int) -> _Gpu:
        gpu = _Gpu(index, f"index-{index}", None)
        gpu.fast_worker = _Worker(f"nvml-gpu{index}-fast")
        gpu.slow_worker = _Worker(f"nvml-gpu{index}-slow")
        return gpu

    def _open_all(self, gpus: list[_Gpu]) -> None:
        """Open each GPU on its own worker: a GPU wedged at start stalls only itself."""
        started = []
        for gpu in gpus:
            worker = gpu.fast_worker
            if worker is not None and worker.submit(lambda g=gpu: self._open(g)):  # type: ignore[misc]
                started.append(worker)
        deadline = time.monotonic() + self._settings.call_timeout_seconds
        for worker in started:
            worker.wait(deadline - time.monotonic())

    def _open(self, gpu: _Gpu) -> None:
        """Runs on the GPU's worker: handle, UUID, static facts, first fast read."""
        g = self._gateway
        try:
            handle = g.call_library("nvmlDeviceGetHandleByIndex", gpu.index)
            gpu.uuid = text_or_none(g.call_library("nvmlDeviceGetUUID", handle)) or gpu.uuid
            self._attach(gpu, handle)
        except NvmlUnavailableError as exc:
            self._library_failure = str(exc)
            return
        except (GpuLostError, pynvml.NVMLError) as exc:
            with self._lock:
                gpu.handle = None
                gpu.lost_reason = f"GPU {gpu.index} did not answer at start: {exc}"
                gpu.retry_delay = self._settings.interval_seconds
                gpu.retry_at = time.monotonic() + gpu.retry_delay
            self._event(
                model.EventKind.GPU_LOST, model.Severity.CRITICAL, gpu.lost_reason, gpu_index=gpu.index
            )
            return
        self._read_fast(gpu)

    def _attach(self, gpu: _Gpu, handle: Any) -> None:
        """Read static facts with a fresh handle and start the GPU's workers."""
        gpu.handle = handle
        gpu.info = self._read_static(gpu, handle)
        gpu.fast, gpu.slow, gpu.gpm, gpu.gpm_previous = {}, {}, None, None
        gpu.process_util, gpu.process_util_known, gpu.process_util_seen_us = {}, False, 0
        gpu.nvlink_previous = None
        gpu.energy_due_at = 0.0
        if gpu.info.gpm_supported and self._settings.gpm:
            try:
                gpu.gpm_samples = [self._gateway.call_library("nvmlGpmSampleAlloc") for _ in range(2)]
            except (pynvml.NVMLError, NvmlUnavailableError, GpuLostError) as exc:
                log.info("GPU %d: GPM samples could not be allocated: %s", gpu.index, exc)
                gpu.gpm_samples = []
        if self._event_set is not None:
            self._register_events(gpu)
        if gpu.fast_worker is None:
            gpu.fast_worker = _Worker(f"nvml-gpu{gpu.index}-fast")
        if gpu.slow_worker is None:
            gpu.slow_worker = _Worker(f"nvml-gpu{gpu.index}-slow")

    def _retire(self, gpu: _Gpu) -> None:
        for worker in (gpu.fast_worker, gpu.slow_worker):
            if worker is not None:
                worker.retire()
        gpu.fast_worker = gpu.slow_worker = None
        gpu.handle = None
        gpu.gpm_samples = []

    def _lose(self, gpu: _Gpu, reason: str) -> None:
        """Isolate a GPU NVML calls lost: drop its handle for good and retry by UUID later."""
        with self._lock:
            if gpu.lost:
                return
            gpu.handle = None
            samples, gpu.gpm_samples = gpu.gpm_samples, []
            gpu.gpm_previous = None
            gpu.lost_reason = reason
            gpu.retry_delay = self._settings.interval_seconds
            gpu.retry_at = time.monotonic() + gpu.retry_delay
        for sample in samples:  # host memory; freeing needs no handle
            with contextlib.suppress(Exception):
                self._gateway.call_library("nvmlGpmSampleFree", sample)
        log.error("GPU %d (%s) lost: %s", gpu.index, gpu.uuid, reason)
        self._event(
            model.EventKind.GPU_LOST,
            model.Severity.CRITICAL,
            f"GPU {gpu.index} lost: {reason}",
            gpu_index=gpu.index,
            gpu_uuid=gpu.uuid,
        )

    def _retry_lost(self, gpu: _Gpu) -> None:
        """Runs on the GPU's fast worker, so a lookup that hangs stalls only this GPU."""
        if time.monotonic() < gpu.retry_at:
            return
        g = self._gateway
        try:
            if gpu.uuid.startswith("index-"):
                handle = g.call_library("nvmlDeviceGetHandleByIndex", gpu.index)
                uuid = text_or_none(g.call_library("nvmlDeviceGetUUID", handle))
                if uuid:
                    gpu.uuid = uuid
            else:
                handle = g.call_library("nvmlDeviceGetHandleByUUID", gpu.uuid)
            g.call_library("nvmlDeviceGetUUID", handle)
            self._attach(gpu, handle)
        except NvmlUnavailableError as exc:
            self._library_failure = str(exc)
            return
        except (GpuLostError, pynvml.NVMLError) as exc:
            gpu.handle = None
            gpu.retry_delay = min(gpu.retry_delay * 2, self._settings.retry_max_seconds)
            gpu.retry_at = time.monotonic() + gpu.retry_delay
            log.debug("GPU %d still lost: %s", gpu.index, exc)
            return
        with self._lock:
            gpu.lost_reason = None
        self._read_fast(gpu)  # come back with this tick's values, not an empty row
        log.warning("GPU %d (%s) is back", gpu.index, gpu.uuid)
        self._event(
            model.EventKind.GPU_BACK,
            model.Severity.INFO,
            f"GPU {gpu.index} is answering again",
            gpu_index=gpu.index,
            gpu_uuid=gpu.uuid,
        )

    def _look_for_new_gpus(self) -> None:
        try:
            count = self._gateway.call_library("nvmlDeviceGetCount")
        except NvmlUnavailableError as exc:
            self._library_failure = str(exc)
            return
        except (GpuLostError, pynvml.NVMLError):
            return
        known = {gpu.index for gpu in self._gpus}
        for index in range(count):
            if index in known:
                continue
            gpu = self._new_gpu(index)
            with self._lock:
                self._gpus.append(gpu)
                self._gpus.sort(key=lambda g: g.index)
            self._open_all([gpu])
            self._event(
                model.EventKind.GPU_ADDED,
                model.Severity.INFO,
                f"GPU {index} appeared",
                gpu_index=index,
                gpu_uuid=gpu.uuid,
            )

    def _after_poll(self) -> None:
        if self._library_failure is not None:
            reason, self._library_failure = self._library_failure, None
            self._fail_library(reason)

    # -- static facts ----------------------------------------------------------------------

    def _read_static(self, gpu: _Gpu, h: Any) -> model.GpuInfo:
        g = self._gateway
        k = gpu.uuid

        def call(field: str, fn: str, *args: Any) -> Any:
            return g.call(k, field, fn, h, *args)

        pci = call("pci", "nvmlDeviceGetPciInfo_v3")
        cc = call("compute_capability", "nvmlDeviceGetCudaComputeCapability")
        mem = call("memory_v1", "nvmlDeviceGetMemoryInfo")
        ecc = call("ecc_mode", "nvmlDeviceGetEccMode")
        mig = call("mig_mode", "nvmlDeviceGetMigMode")
        constraints = call("power_limit_constraints", "nvmlDeviceGetPowerManagementLimitConstraints")
        gpm = call("gpm_support", "nvmlGpmQueryDeviceSupport") if self._settings.gpm else None
        arch = call("architecture", "nvmlDeviceGetArchitecture")
        links = self._field_values(gpu, h, [pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT], static=True)
        return model.GpuInfo(
            index=gpu.index,
            uuid=gpu.uuid,
            name=text_or_none(call("name", "nvmlDeviceGetName")),
            serial=text_or_none(call("serial", "nvmlDeviceGetSerial")),
            pci_bus_id=text_or_none(getattr(pci, "busId", None)),
            architecture=nvml_codes.architecture_name(arch) if isinstance(arch, int) else None,
            cuda_compute_capability=f"{cc[0]}.{cc[1]}" if cc else None,
            memory_total_bytes=uint_or_none(getattr(mem, "total", None)),
            power_limit_default_watts=from_milli(
                call("power_limit_default", "nvmlDeviceGetPowerManagementDefaultLimit")
            ),
            power_limit_max_watts=from_milli(constraints[1]) if constraints else None,
            max_sm_clock_mhz=uint_or_none(
                call("max_clock_sm", "nvmlDeviceGetMaxClockInfo", pynvml.NVML_CLOCK_SM)
            ),
            max_memory_clock_mhz=uint_or_none(
                call("max_clock_mem", "nvmlDeviceGetMaxClockInfo", pynvml.NVML_CLOCK_MEM)
            ),
            max_graphics_clock_mhz=uint_or_none(
                call("max_clock_graphics", "nvmlDeviceGetMaxClockInfo", pynvml.NVML_CLOCK_GRAPHICS)
            ),
            temperature_slowdown_celsius=uint_or_none(
                call(
                    "temp_slowdown",
                    "nvmlDeviceGetTemperatureThreshold",
                    pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
                )
            ),
            temperature_shutdown_celsius=uint_or_none(
                call(
                    "temp_shutdown",
                    "nvmlDeviceGetTemperatureThreshold",
                    pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN,
                )
            ),
            ecc_enabled=bool(ecc[0]) if ecc else None,
            mig_enabled=bool(mig[0]) if mig else None,
            persistence_mode_enabled=bool_or_none(call("persistence", "nvmlDeviceGetPersistenceMode")),
            pcie_link_generation=uint_or_none(call("pcie_gen", "nvmlDeviceGetMaxPcieLinkGeneration")),
            pcie_link_width=uint_or_none(call("pcie_width", "nvmlDeviceGetMaxPcieLinkWidth")),
            nvlink_link_count=int_or_none(links.get(pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT)),
            gpm_supported=bool(gpm.isSupportedDevice) if gpm is not None else None,
        )

    # -- fast fields (every tick) ----------------------------------------------------------

    def _read_fast(self, gpu: _Gpu) -> None:
        h = gpu.handle
        if h is None:
            return
        c = self._gateway.call  # the hot path: ~20 calls per GPU per tick, no extra frames
        k = gpu.uuid
        try:
            util = c(k, "utilization", "nvmlDeviceGetUtilizationRates", h)
            mem = c(k, "memory_v2", "nvmlDeviceGetMemoryInfo", h, pynvml.nvmlMemory_v2)
            if mem is None:
                mem = c(k, "memory_v1", "nvmlDeviceGetMemoryInfo", h)
            reasons = uint_or_none(c(k, "clock_events", "nvmlDeviceGetCurrentClocksEventReasons", h))
            encoder = c(k, "encoder", "nvmlDeviceGetEncoderUtilization", h)
            decoder = c(k, "decoder", "nvmlDeviceGetDecoderUtilization", h)
            ecc = gpu.info.ecc_enabled
            fast = {
                "utilization_ratio": ratio_from_percent(util.gpu) if util is not None else None,
                "memory_utilization_ratio": ratio_from_percent(util.memory) if util is not None else None,
                "memory_total_bytes": uint_or_none(mem.total) if mem is not None else None,
                "memory_used_bytes": uint_or_none(mem.used) if mem is not None else None,
                "memory_free_bytes": uint_or_none(mem.free) if mem is not None else None,
                "memory_reserved_bytes": uint_or_none(getattr(mem, "reserved", None)),
                "temperature_celsius": float_or_none(
                    uint_or_none(
                        c(k, "temperature", "nvmlDeviceGetTemperature", h, pynvml.NVML_TEMPERATURE_GPU)
                    )
                ),
                "fan_speed_ratio": ratio_from_percent(c(k, "fan", "nvmlDeviceGetFanSpeed", h)),
                "power_watts": from_milli(c(k, "power", "nvmlDeviceGetPowerUsage", h)),
                "power_limit_watts": from_milli(c(k, "power_limit", "nvmlDeviceGetEnforcedPowerLimit", h)),
                "sm_clock_mhz": uint_or_none(
                    c(k, "clock_sm", "nvmlDeviceGetClockInfo", h, pynvml.NVML_CLOCK_SM)
                ),
                "memory_clock_mhz": uint_or_none(
                    c(k, "clock_mem", "nvmlDeviceGetClockInfo", h, pynvml.NVML_CLOCK_MEM)
                ),
                "graphics_clock_mhz": uint_or_none(
                    c(k, "clock_graphics", "nvmlDeviceGetClockInfo", h, pynvml.NVML_CLOCK_GRAPHICS)
                ),
                "performance_state": pstate_or_none(c(k, "pstate", "nvmlDeviceGetPerformanceState", h)),
                "clock_event_reasons_mask": reasons,
                "clock_event_reasons": () if reasons is None else clock_event_reason_names(reasons),
                "ecc_corrected_volatile_count": uint_or_none(
                    c(
                        k,
                        "ecc_corrected_volatile",
                        "nvmlDeviceGetTotalEccErrors",
                        h,
                        pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                        pynvml.NVML_VOLATILE_ECC,
                    )
                )
                if ecc
                else None,
                "ecc_uncorrected_volatile_count": uint_or_none(
                    c(
                        k,
                        "ecc_uncorrected_volatile",
                        "nvmlDeviceGetTotalEccErrors",
                        h,
                        pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                        pynvml.NVML_VOLATILE_ECC,
                    )
                )
                if ecc
                else None,
                "encoder_utilization_ratio": ratio_from_percent(encoder[0]) if encoder else None,
                "decoder_utilization_ratio": ratio_from_percent(decoder[0]) if decoder else None,
            }
            processes = [
                (int(proc.pid), "compute", uint_or_none(proc.usedGpuMemory))
                for proc in c(k, "processes_compute", "nvmlDeviceGetComputeRunningProcesses", h) or ()
            ]
            processes += [
                (int(proc.pid), "graphics", uint_or_none(proc.usedGpuMemory))
                for proc in c(k, "processes_graphics", "nvmlDeviceGetGraphicsRunningProcesses", h) or ()
            ]
        except GpuLostError as exc:
            self._lose(gpu, str(exc))
            return
        except NvmlUnavailableError as exc:
            self._library_failure = str(exc)
            return
        with self._lock:
            gpu.fast = fast
            gpu.processes = _merge_processes(processes)
            gpu.hung_reported = False

    # -- slow fields (their own cadence) -------------------------------------------------------

    def _read_slow(self, gpu: _Gpu) -> None:
        h = gpu.handle
        if h is None:
            return
        g = self._gateway
        k = gpu.uuid
        now = self._clock()

        def call(field: str, fn: str, *args: Any, none_on: frozenset[int] = frozenset()) -> Any:
            return g.call(k, field, fn, h, *args, none_on=none_on)

        try:
            slow: dict[str, Any] = {"energy_joules": gpu.slow.get("energy_joules")}
            if now >= gpu.energy_due_at:  # a cumulative counter: its own, slower cadence
                slow["energy_joules"] = from_milli(call("energy", "nvmlDeviceGetTotalEnergyConsumption"))
                gpu.energy_due_at = now + self._settings.energy_interval_seconds
            gpm = self._read_gpm(gpu, h, now)
            if gpm is None or gpm.pcie_tx_bytes_per_second is None:
                tx = call("pcie_tx", "nvmlDeviceGetPcieThroughput", pynvml.NVML_PCIE_UTIL_TX_BYTES)
                rx = call("pcie_rx", "nvmlDeviceGetPcieThroughput", pynvml.NVML_PCIE_UTIL_RX_BYTES)
                slow["pcie_tx_bytes_per_second"] = bytes_from_kib(tx)
                slow["pcie_rx_bytes_per_second"] = bytes_from_kib(rx)
            else:
                slow["pcie_tx_bytes_per_second"] = gpm.pcie_tx_bytes_per_second
                slow["pcie_rx_bytes_per_second"] = gpm.pcie_rx_bytes_per_second
            fields = list(gpu.slow_fields)
            use_nvlink_counters = bool(gpu.info.nvlink_link_count) and (
                gpm is None or gpm.nvlink_tx_bytes_per_second is None
            )
            if use_nvlink_counters:
                fields += [_FIELD_NVLINK_TX, _FIELD_NVLINK_RX]
            values = self._field_values(gpu, h, fields)
            slow["memory_temperature_celsius"] = float_or_none(values.get(_FIELD_MEMORY_TEMP))
            slow["pcie_replay_count"] = int_or_none(values.get(_FIELD_PCIE_REPLAY))
            if gpm is not None and gpm.nvlink_tx_bytes_per_second is not None:
                slow["nvlink_tx_bytes_per_second"] = gpm.nvlink_tx_bytes_per_second
                slow["nvlink_rx_bytes_per_second"] = gpm.nvlink_rx_bytes_per_second
            elif use_nvlink_counters:
                slow.update(_nvlink_rates(gpu, values, now))
            if gpu.info.ecc_enabled:
                slow["ecc_corrected_aggregate_count"] = uint_or_none(
                    call(
                        "ecc_corrected_aggregate",
                        "nvmlDeviceGetTotalEccErrors",
                        pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                        pynvml.NVML_AGGREGATE_ECC,
                    )
                )
                slow["ecc_uncorrected_aggregate_count"] = uint_or_none(
                    call(
                        "ecc_uncorrected_aggregate",
                        "nvmlDeviceGetTotalEccErrors",
                        pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                        pynvml.NVML_AGGREGATE_ECC,
                    )
                )
            remap = call("remapped_rows", "nvmlDeviceGetRemappedRows")
            if remap:
                slow["remapped_rows_correctable_count"] = uint_or_none(remap[0])
                slow["remapped_rows_uncorrectable_count"] = uint_or_none(remap[1])
                slow["remapped_rows_pending"] = bool(remap[2])
                slow["remapped_rows_failed"] = bool(remap[3])
            util = None
            if self._settings.process_utilization:
                # ~3 ms of CPU on an H100: pointless on a GPU with no processes.
                util = self._read_process_util(gpu, h) if gpu.processes else {}
        except GpuLostError as exc:
            self._lose(gpu, str(exc))
            return
        except NvmlUnavailableError as exc:
            self._library_failure = str(exc)
            return
        failed_now = bool(slow.get("remapped_rows_failed"))
        with self._lock:
            gpu.slow = slow
            if gpm is not None:
                gpu.gpm = gpm
            if util is not None:
                gpu.process_util = util
                gpu.process_util_known = True
            newly_failed = failed_now and not gpu.remap_failed
            gpu.remap_failed = failed_now
        if newly_failed:
            self._event(
                model.EventKind.ROW_REMAP_FAILURE,
                model.Severity.CRITICAL,
                f"GPU {gpu.index}: row remapping failed (the GPU needs service)",
                gpu_index=gpu.index,
                gpu_uuid=gpu.uuid,
            )

    def _read_gpm(self, gpu: _Gpu, h: Any, now: float) -> model.GpmActivity | None:
        """GPM metrics between the previous GPM sample and one taken now."""
        if len(gpu.gpm_samples) != 2:
            return None
        previous = gpu.gpm_previous
        sample = (
            gpu.gpm_samples[0]
            if previous is None or previous[0] is gpu.gpm_samples[1]
            else gpu.gpm_samples[1]
        )
        if self._gateway.call(gpu.uuid, "gpm_sample", "nvmlGpmSampleGet", h, sample) is None:
            return None
        gpu.gpm_previous = (sample, now)
        if previous is None:
            return None
        request = pynvml.c_nvmlGpmMetricsGet_t()
        request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(_GPM_METRICS)
        request.sample1 = previous[0]
        request.sample2 = sample
        for i, (metric_id, _, _) in enumerate(_GPM_METRICS):
            request.metrics[i].metricId = metric_id
        if self._gateway.call(gpu.uuid, "gpm_metrics", "nvmlGpmMetricsGet", request) is None:
            return None
        values: dict[str, float | None] = {}
        for i, (_, name, scale) in enumerate(_GPM_METRICS):
            metric = request.metrics[i]
            value = float(metric.value)
            ok = metric.nvmlReturn == pynvml.NVML_SUCCESS and not math.isnan(value)
            values[name] = value * scale if ok else None
        return model.GpmActivity(interval_seconds=round(now - previous[1], 6), **values)

    def _read_process_util(self, gpu: _Gpu, h: Any) -> dict[int, _ProcessUtil] | None:
        """Per-process utilization since the last read. NotFound means nothing ran: 0 %."""
        g = self._gateway
        samples = g.call(
            gpu.uuid,
            "process_utilization",
            "nvmlDeviceGetProcessesUtilizationInfo",
            h,
            gpu.process_util_seen_us,
            none_on=_NO_NEW_SAMPLES,
        )
        if samples is None and g.is_unsupported(gpu.uuid, "process_utilization"):
            samples = g.call(
                gpu.uuid,
                "process_utilization_v1",
                "nvmlDeviceGetProcessUtilization",
                h,
                gpu.process_util_seen_us,
                none_on=_NO_NEW_SAMPLES,
            )
            if samples is None and g.is_unsupported(gpu.uuid, "process_utilization_v1"):
                return None
        sums: dict[int, list[float]] = {}
        for s in samples or ():
            ts = int(s.timeStamp)
            gpu.process_util_seen_us = max(gpu.process_util_seen_us, ts)
            acc = sums.setdefault(int(s.pid), [0.0, 0.0, 0.0, 0.0, 0.0])
            acc[0] += s.smUtil
            acc[1] += s.memUtil
            acc[2] += s.encUtil
            acc[3] += s.decUtil
            acc[4] += 1
        return {
            pid: (
                ratio_from_percent(a[0] / a[4]),
                ratio_from_percent(a[1] / a[4]),
                ratio_from_percent(a[2] / a[4]),
                ratio_from_percent(a[3] / a[4]),
            )
            for pid, a in sums.items()
        }

    def _field_values(self, gpu: _Gpu, h: Any, field_ids: list[int], static: bool = False) -> dict[int, Any]:
        """Field values by id; a field NVML refuses is dropped from this GPU's list for good."""
        if not field_ids:
            return {}
        request = [
            (f, _NVLINK_ALL_LINKS) if f in (_FIELD_NVLINK_TX, _FIELD_NVLINK_RX) else f for f in field_ids
        ]
        raw = self._gateway.call(gpu.uuid, "field_values", "nvmlDeviceGetFieldValues", h, request)
        out: dict[int, Any] = {}
        for value in raw or ():
            field_id = int(value.fieldId)
            if value.nvmlReturn == pynvml.NVML_SUCCESS:
                out[field_id] = field_value(value)
            elif value.nvmlReturn in (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_INVALID_ARGUMENT):
                if not static and field_id in gpu.slow_fields:
                    gpu.slow_fields.remove(field_id)
                self._gateway.mark_unsupported(gpu.uuid, f"field_{field_id}", "not supported")
        return out

    # -- events --------------------------------------------------------------------------

    def _register_events(self, gpu: _Gpu) -> None:
        g = self._gateway
        supported = g.call(gpu.uuid, "event_types", "nvmlDeviceGetSupportedEventTypes", gpu.handle)
        wanted = _EVENT_TYPES & supported if isinstance(supported, int) else 0
        if wanted:
            g.call(
                gpu.uuid, "register_events", "nvmlDeviceRegisterEvents", gpu.handle, wanted, self._event_set
            )

    def _record_nvml_event(self, data: Any) -> None:
        gpu = self._gpu_for_handle(data.device)
        index = gpu.index if gpu else None
        uuid = gpu.uuid if gpu else None
        where = f"GPU {index}" if index is not None else "a GPU"
        kind = int(data.eventType)
        if kind & pynvml.nvmlEventTypeXidCriticalError:
            xid = int(data.eventData)
            info = nvml_codes.XIDS.get(xid)
            severity = (
                model.Severity.CRITICAL
                if info and info.critical
                else model.Severity.WARNING
                if not (info and info.application)
                else model.Severity.INFO
            )
            self._event(
                model.EventKind.XID,
                severity,
                f"{where}: XID {xid}: {nvml_codes.xid_words(xid)}",
                gpu_index=index,
                gpu_uuid=uuid,
                code=xid,
            )
        elif kind & pynvml.nvmlEventTypeDoubleBitEccError:
            self._event(
                model.EventKind.ECC_UNCORRECTED,
                model.Severity.CRITICAL,
                f"{where}: uncorrectable (double-bit) ECC error",
                gpu_index=index,
                gpu_uuid=uuid,
            )
        elif kind & pynvml.nvmlEventTypeSingleBitEccError:
            self._event(
                model.EventKind.ECC_CORRECTED,
                model.Severity.INFO,
                f"{where}: corrected (single-bit) ECC error",
                gpu_index=index,
                gpu_uuid=uuid,
            )

    def _gpu_for_handle(self, handle: Any) -> _Gpu | None:
        key = _handle_key(handle)
        for gpu in self._gpus:
            if gpu.handle is not None and _handle_key(gpu.handle) == key:
                return gpu
        return None

    def _event(self, kind: model.EventKind, severity: model.Severity, message: str, **fields: Any) -> None:
        with self._lock:
            self._events.append(model.Event(self._clock(), kind, severity, message, **fields))

    # -- the view --------------------------------------------------------------------------

    def _build_view(self) -> NvmlView:
        now_m = time.monotonic()
        devices, gpus, processes = [], [], []
        hung_events = []
        with self._lock:
            ready = self._ready
            for gpu in self._gpus:
                devices.append(gpu.info)
                if not ready:
                    gpus.append(
                        model.GpuSample(gpu.index, gpu.uuid, model.GpuState.UNAVAILABLE, self._status)
                    )
                    continue
                hung = self._hung_reason(gpu, now_m)
                if hung is not None:
                    gpus.append(model.GpuSample(gpu.index, gpu.uuid, model.GpuState.HUNG, hung))
                    if not gpu.hung_reported:
                        gpu.hung_reported = True
                        hung_events.append((gpu, hung))
                    continue
                if gpu.lost and gpu.lost_reason is None:  # still being opened: not shown yet
                    devices.pop()
                    continue
                if gpu.lost:
                    gpus.append(model.GpuSample(gpu.index, gpu.uuid, model.GpuState.LOST, gpu.lost_reason))
                    continue
                gpus.append(model.GpuSample(gpu.index, gpu.uuid, gpm=gpu.gpm, **gpu.fast, **gpu.slow))
                processes.extend(self._processes(gpu))
            if not ready:
                devices, gpus = (devices, gpus) if self._ever_ready else ([], [])
            view = NvmlView(self._status, self._node, tuple(devices), tuple(gpus), tuple(processes))
        self._host.forget_except({p.pid for p in processes})
        for gpu, reason in hung_events:
            self._event(
                model.EventKind.GPU_HUNG,
                model.Severity.CRITICAL,
                f"GPU {gpu.index}: {reason}",
                gpu_index=gpu.index,
                gpu_uuid=gpu.uuid,
            )
        return view

    def _hung_reason(self, gpu: _Gpu, now_m: float) -> str | None:
        for worker in (gpu.fast_worker, gpu.slow_worker):
            since = worker.busy_since if worker else None
            if worker is None or since is None:
                continue
            waited = now_m - since
            if waited < self._settings.call_timeout_seconds:
                continue
            what = self._gateway.last_call(worker.thread_id or 0) or "an NVML call"
            return f"{what} has not returned for {waited:.1f} s"
        return None

    def _processes(self, gpu: _Gpu) -> list[model.ProcessSample]:
        out = []
        for pid, kind, used in gpu.processes:
            util = gpu.process_util.get(pid)
            if util is None and gpu.process_util_known:
                util = (0.0, 0.0, 0.0, 0.0)  # NVML answered and this process ran nothing
            host = self._host.describe(pid)
            out.append(
                model.ProcessSample(
                    pid=pid,
                    gpu_index=gpu.index,
                    gpu_uuid=gpu.uuid,
                    kind=kind,
                    used_memory_bytes=used,
                    sm_utilization_ratio=util[0] if util else None,
                    memory_utilization_ratio=util[1] if util else None,
                    encoder_utilization_ratio=util[2] if util else None,
                    decoder_utilization_ratio=util[3] if util else None,
                    user=host.user if host else None,
                    name=host.name if host else None,
                    command=host.command if host else None,
                    container_id=host.container_id if host else None,
                    started_at=host.started_at if host else None,
                )
            )
        return out


# --------------------------------------------------------------------------- helpers


def _nvlink_rates(gpu: _Gpu, values: dict[int, Any], now: float) -> dict[str, float | None]:
    """Bytes/s from the cumulative NVLink KiB counters of two slow reads."""
    tx, rx = values.get(_FIELD_NVLINK_TX), values.get(_FIELD_NVLINK_RX)
    if not isinstance(tx, int) or not isinstance(rx, int):
        return {}
    current = NvlinkCounters(now, float(tx), float(rx))
    previous, gpu.nvlink_previous = gpu.nvlink_previous, current
    rates = nvlink_bytes_per_second(previous, current)
    if rates is None:
        return {}
    return {"nvlink_tx_bytes_per_second": rates[0], "nvlink_rx_bytes_per_second": rates[1]}


def _merge_processes(rows: list[tuple[int, str, int | None]]) -> tuple[tuple[int, str, int | None], ...]:
    """A process that is both compute and graphics is listed once, as compute."""
    seen: dict[int, tuple[int, str, int | None]] = {}
    for row in rows:
        seen.setdefault(row[0], row)
    return tuple(seen.values())


def _handle_key(handle: Any) -> Any:
    if isinstance(handle, ctypes._Pointer):
        return ctypes.cast(handle, ctypes.c_void_p).value
    return id(handle)


def open_real_nvml(settings: NvmlSettings, processes: ProcessInfoSource) -> NvmlCollector:
    """The collector over the real driver, through nvidia-ml-py's pynvml module."""
    return NvmlCollector(pynvml, settings, processes, source_name="nvml")
