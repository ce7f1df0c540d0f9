"""The lives of the NVML library and of each GPU: start, failure and backoff, loss, return, hot-plug.

Place in the flow: every job of the collector first asks `ensure_ready()`; the GPUs it holds are
what the jobs read and the view shows. It keeps the rules that let the daemon stay up:

- NVML that cannot start (no driver, driver/library mismatch) gives a one-line status and is
  retried with backoff, doubling from one tick to `retry_max_seconds`; when it goes away later,
  every GPU is retired and the same backoff starts;
- each GPU is opened on its own fast worker, so a GPU wedged at start stalls only itself;
- a GPU that says GPU_IS_LOST or Unknown is marked lost: its handle is dropped and never used
  again, and it is looked up afresh by UUID, on its own worker, with backoff until it answers;
- a GPU index NVML did not count before is opened when it appears (the slow job looks).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pynvml

from gpuwatch import model
from gpuwatch.collect.nvml.events import EventLog, register_events
from gpuwatch.collect.nvml.gateway import GpuLostError, NvmlGateway, NvmlUnavailableError
from gpuwatch.collect.nvml.readers import read_static
from gpuwatch.collect.nvml.readings import FastReading, SlowReading
from gpuwatch.collect.nvml.tracked import ReadCursors, TrackedGpu
from gpuwatch.collect.nvml.values import text_or_none
from gpuwatch.collect.nvml.workers import GpuWorker, wait_for_all
from gpuwatch.config import NvmlSettings

log = logging.getLogger("gpuwatch.nvml")


class NvmlLifecycle:
    """The NVML library's state and the GPUs it has, each with its workers. Thread-safe.

    `first_read(gpu)` runs on the GPU's worker right after the GPU is opened or comes back, so
    it shows this tick's values rather than an empty row."""

    def __init__(
        self,
        gateway: NvmlGateway,
        settings: NvmlSettings,
        events: EventLog,
        node: model.NodeInfo,
        first_read: Callable[[TrackedGpu], None],
    ) -> None:
        self._gateway = gateway
        self._settings = settings
        self._events = events
        self._first_read = first_read
        self.lock = threading.RLock()
        """Held while a GPU's state or the list of GPUs changes, and while a view reads them."""
        self._init_lock = threading.Lock()
        self.gpus: list[TrackedGpu] = []
        """Sorted by index. Replaced or appended to under the lock; iterate over a copy."""
        self.node = node
        self.ready = False
        self.ever_ready = False
        self.status: str | None = "NVML not initialised yet"
        """One line saying why NVML cannot be used; None when it can."""
        self.event_set: Any = None
        self._init_at = 0.0
        self._init_delay = settings.interval_seconds  # first retry next tick, then doubling
        self._library_failure: str | None = None

    # -- the library -----------------------------------------------------------------------

    def ensure_ready(self) -> bool:
        """Initialise NVML if it is not, at most once per backoff period, from any job."""
        if self.ready:
            return True
        with self._init_lock:  # another job may have finished init while this one waited
            return self.ready or self._try_init()

    def note_library_failure(self, reason: str) -> None:
        """From a worker: the library went away. Acted on by `after_poll`, off the worker."""
        self._library_failure = reason

    def after_poll(self) -> None:
        if self._library_failure is not None:
            reason, self._library_failure = self._library_failure, None
            self._fail_library(reason)

    def close(self) -> None:
        with self.lock:
            for gpu in self.gpus:
                _retire(gpu)
            self.gpus = []
            self.ready = False
        with contextlib.suppress(Exception):  # best effort on the way out
            if self.event_set is not None:
                self._gateway.call_library("nvmlEventSetFree", self.event_set)
            self._gateway.call_library("nvmlShutdown")

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
        self.node = replace(
            self.node,
            driver_version=driver,
            cuda_driver_version=f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None,
            nvml_version=nvml_version,
        )
        count = g.call_library("nvmlDeviceGetCount")
        try:
            self.event_set = g.call_library("nvmlEventSetCreate")
        except pynvml.NVMLError as exc:
            log.info("NVML events are not available (%s): XIDs will not be reported", exc)
            self.event_set = None
        gpus = [_new_gpu(index) for index in range(count)]
        with self.lock:
            self.gpus = gpus
        # Ready only once each GPU is open (or has timed out opening): a job that found NVML
        # ready earlier would skip the GPUs still opening and lose its first sample (GPM needs two).
        self._open_all(gpus)
        with self.lock:
            self.ready = True
            self.status = None
            self._init_delay = self._settings.interval_seconds
            if self.ever_ready:
                self._events.record(
                    model.EventKind.NVML_BACK, model.Severity.INFO, f"NVML is answering again ({count} GPUs)"
                )
            self.ever_ready = True
        log.info("NVML ready: driver %s, %d GPUs", driver, count)

    def _fail_library(self, reason: str) -> None:
        with self.lock:
            first = self.status != reason
            for gpu in self.gpus:
                _retire(gpu)
            self.ready = False
            self.status = reason
            self._init_at = time.monotonic() + self._init_delay
            self._init_delay = min(self._init_delay * 2, self._settings.retry_max_seconds)
        if first:
            log.warning("%s; retrying with backoff", reason)
            self._events.record(model.EventKind.NVML_UNAVAILABLE, model.Severity.CRITICAL, reason)
        with contextlib.suppress(Exception):  # the library may already be gone
            self._gateway.call_library("nvmlShutdown")
        self.event_set = None

    # -- each GPU --------------------------------------------------------------------------

    def lose(self, gpu: TrackedGpu, reason: str) -> None:
        """Isolate a GPU NVML calls lost: drop its handle for good and retry by UUID later."""
        with self.lock:
            if gpu.lost:
                return
            gpu.handle = None
            samples, gpu.cursors.gpm_samples = gpu.cursors.gpm_samples, []
            gpu.cursors.gpm_previous = None
            gpu.lost_reason = reason
            gpu.retry_delay = self._settings.interval_seconds
            gpu.retry_at = time.monotonic() + gpu.retry_delay
        for sample in samples:  # host memory; freeing needs no handle
            with contextlib.suppress(Exception):
                self._gateway.call_library("nvmlGpmSampleFree", sample)
        log.error("GPU %d (%s) lost: %s", gpu.index, gpu.uuid, reason)
        self._events.record(
            model.EventKind.GPU_LOST,
            model.Severity.CRITICAL,
            f"GPU {gpu.index} lost: {reason}",
            gpu_index=gpu.index,
            gpu_uuid=gpu.uuid,
        )

    def retry_lost(self, gpu: TrackedGpu) -> None:
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
            self.note_library_failure(str(exc))
            return
        except (GpuLostError, pynvml.NVMLError) as exc:
            gpu.handle = None
            gpu.retry_delay = min(gpu.retry_delay * 2, self._settings.retry_max_seconds)
            gpu.retry_at = time.monotonic() + gpu.retry_delay
            log.debug("GPU %d still lost: %s", gpu.index, exc)
            return
        with self.lock:
            gpu.lost_reason = None
        self._first_read(gpu)
        log.warning("GPU %d (%s) is back", gpu.index, gpu.uuid)
        self._events.record(
            model.EventKind.GPU_BACK,
            model.Severity.INFO,
            f"GPU {gpu.index} is answering again",
            gpu_index=gpu.index,
            gpu_uuid=gpu.uuid,
        )

    def look_for_new_gpus(self) -> None:
        """Open a GPU index NVML counts now and did not before (hot-plug)."""
        try:
            count = self._gateway.call_library("nvmlDeviceGetCount")
        except NvmlUnavailableError as exc:
            self.note_library_failure(str(exc))
            return
        except (GpuLostError, pynvml.NVMLError):
            return
        known = {gpu.index for gpu in self.gpus}
        for index in range(count):
            if index in known:
                continue
            gpu = _new_gpu(index)
            with self.lock:
                self.gpus.append(gpu)
                self.gpus.sort(key=lambda g: g.index)
            self._open_all([gpu])
            self._events.record(
                model.EventKind.GPU_ADDED,
                model.Severity.INFO,
                f"GPU {index} appeared",
                gpu_index=index,
                gpu_uuid=gpu.uuid,
            )

    def _open_all(self, gpus: list[TrackedGpu]) -> None:
        """Open each GPU on its own worker: a GPU wedged at start stalls only itself."""
        started = []
        for gpu in gpus:
            worker = gpu.fast_worker
            if worker is not None and worker.submit(lambda g=gpu: self._open(g)):  # type: ignore[misc]
                started.append(worker)
        wait_for_all(started, time.monotonic() + self._settings.call_timeout_seconds)

    def _open(self, gpu: TrackedGpu) -> None:
        """Runs on the GPU's worker: handle, UUID, static facts, first fast read."""
        g = self._gateway
        try:
            handle = g.call_library("nvmlDeviceGetHandleByIndex", gpu.index)
            gpu.uuid = text_or_none(g.call_library("nvmlDeviceGetUUID", handle)) or gpu.uuid
            self._attach(gpu, handle)
        except NvmlUnavailableError as exc:
            self.note_library_failure(str(exc))
            return
        except (GpuLostError, pynvml.NVMLError) as exc:
            with self.lock:
                gpu.handle = None
                gpu.lost_reason = f"GPU {gpu.index} did not answer at start: {exc}"
                gpu.retry_delay = self._settings.interval_seconds
                gpu.retry_at = time.monotonic() + gpu.retry_delay
            self._events.record(
                model.EventKind.GPU_LOST, model.Severity.CRITICAL, gpu.lost_reason, gpu_index=gpu.index
            )
            return
        self._first_read(gpu)

    def _attach(self, gpu: TrackedGpu, handle: Any) -> None:
        """Read static facts with a fresh handle, start over its readings and start its workers."""
        gpu.handle = handle
        gpu.info = read_static(self._gateway, gpu, handle, gpm=self._settings.gpm)
        gpu.fast, gpu.slow = FastReading(), SlowReading()
        gpu.gpm = None
        gpu.process_utilization, gpu.process_utilization_known = {}, False
        gpu.cursors = ReadCursors(gpm_samples=self._gpm_samples(gpu))
        if self.event_set is not None:
            register_events(self._gateway, gpu, self.event_set)
        if gpu.fast_worker is None:
            gpu.fast_worker = GpuWorker(f"nvml-gpu{gpu.index}-fast")
        if gpu.slow_worker is None:
            gpu.slow_worker = GpuWorker(f"nvml-gpu{gpu.index}-slow")

    def _gpm_samples(self, gpu: TrackedGpu) -> list[Any]:
        """Two GPM sample buffers, or none when GPM is off, unsupported or cannot allocate."""
        if not (gpu.info.gpm_supported and self._settings.gpm):
            return []
        try:
            return [self._gateway.call_library("nvmlGpmSampleAlloc") for _ in range(2)]
        except (pynvml.NVMLError, NvmlUnavailableError, GpuLostError) as exc:
            log.info("GPU %d: GPM samples could not be allocated: %s", gpu.index, exc)
            return []


def _new_gpu(index: int) -> TrackedGpu:
    gpu = TrackedGpu(index, f"index-{index}", None)
    gpu.fast_worker = GpuWorker(f"nvml-gpu{index}-fast")
    gpu.slow_worker = GpuWorker(f"nvml-gpu{index}-slow")
    return gpu


def _retire(gpu: TrackedGpu) -> None:
    """End the GPU's workers and drop its handle (its GPM buffers go with the library)."""
    for worker in (gpu.fast_worker, gpu.slow_worker):
        if worker is not None:
            worker.retire()
    gpu.fast_worker = gpu.slow_worker = None
    gpu.handle = None
    gpu.cursors.gpm_samples = []
