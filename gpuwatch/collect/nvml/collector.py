"""NVML → GPU facts, samples, processes and events: the collector the engine sees.

Place in the flow: the engine runs three jobs of this collector on its own threads —
`poll_fast` every `nvml.interval_seconds`, `poll_slow` every `nvml.slow_interval_seconds` and
`poll_events` beside the fast tick — and reads `view()` and `drain_events()` when it builds a
snapshot. Nothing here formats, stores or serves.

This is the facade over the package's parts, each with one job:
- `gateway`: the one choke point every NVML call passes through ("not supported" learned once
  per GPU and field; a lost GPU or a vanished library surfaces as a typed exception);
- `lifecycle`: the library's start, failure and backoff; each GPU opened, lost, retried, added;
- `workers`: two threads per GPU, one for the fast fields and one for the slow ones, so a
  21 ms PCIe read never delays a tick and a call that hangs in the driver stalls only that
  GPU: after `call_timeout_seconds` it is reported `hung`, naming the call, while the other
  GPUs keep producing samples; it resumes when the call returns;
- `readers` (with `values` for clean-up): one GPU's reads, as frozen `readings`;
- `events`: XID/ECC events from NVML, and the log of every event recorded;
- `view`: the readings joined into the data model.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pynvml

from gpuwatch import __version__, model
from gpuwatch.collect.contract import Job
from gpuwatch.collect.host import ProcessInfoSource
from gpuwatch.collect.nvml.events import EventLog, gpu_for_handle, record_nvml_event, waiting_events
from gpuwatch.collect.nvml.gateway import GpuLostError, NvmlGateway, NvmlUnavailableError
from gpuwatch.collect.nvml.lifecycle import NvmlLifecycle
from gpuwatch.collect.nvml.links import link_events
from gpuwatch.collect.nvml.mig import (
    MigState,
    changes,
    mig_devices,
    read_mig,
    read_mig_gpm,
    read_profiles,
    release_mig,
)
from gpuwatch.collect.nvml.readers import read_fast, read_slow
from gpuwatch.collect.nvml.topology import TopologyGpu, TopologyReader, with_remotes
from gpuwatch.collect.nvml.tracked import TrackedGpu
from gpuwatch.collect.nvml.view import NvmlView, gpu_sample, process_samples
from gpuwatch.collect.nvml.workers import hung_reason, wait_for_all
from gpuwatch.config import NvmlSettings

__all__ = ["NvmlCollector", "NvmlView", "open_real_nvml"]


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
        interval_clock: Callable[[], float] | None = None,
    ) -> None:
        """`clock` stamps events; `interval_clock` times GPM, NVLink and energy intervals and
        due times: the monotonic clock by default, for a wall clock stepped back 1 h gave GPM a
        −3595 s interval and stopped the energy counter for an hour. A test or recorded source
        that hands its own `clock` times intervals on it too, unless it names another."""
        self._gateway = NvmlGateway(api)
        self._settings = settings
        self._host = processes
        self._clock = clock
        self._interval_clock = interval_clock or (time.monotonic if clock is time.time else clock)
        self._events = EventLog(clock)
        node = model.NodeInfo(hostname=socket.gethostname(), gpuwatch_version=__version__, source=source_name)
        self._topology = TopologyReader(self._gateway)
        self._life = NvmlLifecycle(self._gateway, settings, self._events, node, first_read=self._refresh_fast)

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
        return self._life.status

    def view(self) -> NvmlView:
        """Built on demand (the engine asks once per tick), from each GPU's latest reads.

        A GPU whose worker has been stuck past the call timeout is reported hung here, and a
        GPU_HUNG event is recorded the first time."""
        life = self._life
        now_m = time.monotonic()
        devices, gpus, processes = [], [], []
        migs: list[model.MigDevice] = []
        hung_events = []
        with life.lock:
            ready = life.ready
            for gpu in life.gpus:
                devices.append(gpu.info)
                if not ready:
                    gpus.append(model.GpuSample(gpu.index, gpu.uuid, model.GpuState.UNAVAILABLE, life.status))
                    continue
                hung = hung_reason(
                    (gpu.fast_worker, gpu.slow_worker),
                    now_m,
                    self._settings.call_timeout_seconds,
                    self._gateway.last_call,
                )
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
                gpus.append(with_remotes(gpu_sample(gpu), self._topology.remotes))
                processes.extend(process_samples(gpu, self._host))
                if gpu.mig is not None:
                    migs.extend(mig_devices(gpu.index, gpu.uuid, gpu.mig, gpu.info.gpm_supported))
            if not ready:
                devices, gpus = (devices, gpus) if life.ever_ready else ([], [])
            topology = self._topology.topology if ready else None
            view = NvmlView(
                life.status,
                life.node,
                tuple(devices),
                tuple(gpus),
                tuple(processes),
                topology,
                tuple(migs) if ready else (),
            )
        self._host.forget_except({p.pid for p in processes})
        for gpu, reason in hung_events:
            self._events.record(
                model.EventKind.GPU_HUNG,
                model.Severity.CRITICAL,
                f"GPU {gpu.index}: {reason}",
                gpu_index=gpu.index,
                gpu_uuid=gpu.uuid,
            )
        return view

    def drain_events(self) -> list[model.Event]:
        return self._events.drain()

    def poll_fast(self) -> None:
        """Each GPU's fast read (or, for a lost GPU, a retry) on its fast worker, up to a deadline."""
        if not self._life.ensure_ready():
            return
        deadline = time.monotonic() + min(
            self._settings.call_timeout_seconds, self._settings.interval_seconds * 0.8
        )
        started = []
        for gpu in list(self._life.gpus):
            worker = gpu.fast_worker
            if worker is None:
                continue
            if gpu.lost and gpu.lost_reason is None:
                continue  # its open job is still running
            job = self._life.retry_lost if gpu.lost else self._refresh_fast
            if worker.submit(lambda g=gpu, j=job: j(g)):  # type: ignore[misc]
                started.append(worker)
        wait_for_all(started, deadline)
        self._life.after_poll()
        # The host's side of each process (CPU, RSS), here on the job's thread, not the tick's.
        with self._life.lock:
            pids = {p.pid for gpu in self._life.gpus if not gpu.lost for p in gpu.fast.processes}
        self._host.sample_usage(pids)

    def poll_slow(self) -> None:
        """Look for new GPUs, then each GPU's slow read on its slow worker, up to a deadline."""
        if not self._life.ensure_ready():
            return
        self._life.look_for_new_gpus()
        deadline = time.monotonic() + min(
            self._settings.call_timeout_seconds, self._settings.slow_interval_seconds * 0.8
        )
        started = []
        for gpu in list(self._life.gpus):
            worker = gpu.slow_worker
            if worker is None or gpu.lost:
                continue
            if worker.submit(lambda g=gpu: self._refresh_slow(g)):  # type: ignore[misc]
                started.append(worker)
        wait_for_all(started, deadline)
        self._refresh_topology()
        self._life.after_poll()

    def _refresh_topology(self) -> None:
        """The GPUs' topology, read again only when the GPUs or their links changed."""
        with self._life.lock:
            open_gpus = [
                TopologyGpu(g.index, g.uuid, g.handle, g.info.pci_bus_id, g.slow.nvlinks)
                for g in self._life.gpus
                if not g.lost
            ]
        try:
            self._topology.refresh(open_gpus)
        except GpuLostError:
            self._topology.forget()  # the GPU's own worker finds it lost and isolates it
        except NvmlUnavailableError as exc:
            self._topology.forget()
            self._life.note_library_failure(str(exc))

    def poll_events(self) -> None:
        """Drain XID and ECC events without blocking."""
        if not self._life.ensure_ready() or self._life.event_set is None:
            return
        for data in waiting_events(self._gateway, self._life.event_set):
            record_nvml_event(self._events, data, gpu_for_handle(self._life.gpus, data.device))

    def close(self) -> None:
        self._life.close()

    # -- what a GPU's workers run -----------------------------------------------------------

    def _refresh_fast(self, gpu: TrackedGpu) -> None:
        try:
            reading = read_fast(self._gateway, gpu)
            mig, profiles = None, gpu.mig.profiles if gpu.mig is not None else None
            if gpu.info.mig_enabled and gpu.handle is not None:
                if profiles is None:  # once per GPU: its GPU instance profiles, to name a device by
                    profiles = read_profiles(self._gateway, gpu.uuid, gpu.handle)
                mig = read_mig(self._gateway, gpu.uuid, gpu.handle, profiles)
        except GpuLostError as exc:
            self._lose(gpu, str(exc))
            return
        except NvmlUnavailableError as exc:
            self._life.note_library_failure(str(exc))
            return
        if reading is None:
            return
        changed = None
        with self._life.lock:
            gpu.fast = reading
            gpu.hung_reported = False
            if mig is not None:
                state = gpu.mig if gpu.mig is not None else MigState()
                state.profiles = profiles
                changed = changes(state.devices, mig) if state.seen_once else None
                state.devices, state.seen_once = mig, True
                gpu.mig = state
            else:
                gpu.mig = None
        if changed is not None:  # instances created or destroyed while running
            self._events.record(
                model.EventKind.MIG_CHANGED,
                model.Severity.INFO,
                f"GPU {gpu.index}: MIG devices changed: {changed}",
                gpu_index=gpu.index,
                gpu_uuid=gpu.uuid,
            )

    def _lose(self, gpu: TrackedGpu, reason: str) -> None:
        """A lost GPU's MIG devices go with it (their GPM buffers freed); then it is isolated."""
        with self._life.lock:
            state, gpu.mig = gpu.mig, None
        if state is not None:
            release_mig(self._gateway, gpu.uuid, state)
        self._life.lose(gpu, reason)

    def _refresh_slow(self, gpu: TrackedGpu) -> None:
        try:
            now = self._interval_clock()
            reading = read_slow(self._gateway, self._settings, gpu, now)
            state = gpu.mig
            mig_gpm = None
            if state is not None and gpu.cursors.gpm_samples and gpu.handle is not None:
                mig_gpm = read_mig_gpm(self._gateway, gpu.uuid, gpu.handle, state, now)
        except GpuLostError as exc:
            self._lose(gpu, str(exc))
            return
        except NvmlUnavailableError as exc:
            self._life.note_library_failure(str(exc))
            return
        if reading is None:
            return
        failed_now = bool(reading.remapped_rows_failed)
        notes = link_events(gpu.index, gpu.slow.nvlinks, reading.nvlinks)
        with self._life.lock:
            gpu.slow = reading
            if reading.gpm is not None:
                gpu.gpm = reading.gpm
            if state is not None and mig_gpm is not None:
                state.gpm = {**{k: v for k, v in state.gpm.items() if k in state.cursors}, **mig_gpm}
            if reading.process_utilization is not None:
                gpu.process_utilization = reading.process_utilization
                gpu.process_utilization_known = True
            newly_failed = failed_now and not gpu.remap_failed
            gpu.remap_failed = failed_now
        for kind, severity, message in notes:
            self._events.record(kind, severity, message, gpu_index=gpu.index, gpu_uuid=gpu.uuid)
        if newly_failed:
            self._events.record(
                model.EventKind.ROW_REMAP_FAILURE,
                model.Severity.CRITICAL,
                f"GPU {gpu.index}: row remapping failed (the GPU needs service)",
                gpu_index=gpu.index,
                gpu_uuid=gpu.uuid,
            )


def open_real_nvml(settings: NvmlSettings, processes: ProcessInfoSource) -> NvmlCollector:
    """The collector over the real driver, through nvidia-ml-py's pynvml module."""
    return NvmlCollector(pynvml, settings, processes, source_name="nvml")
