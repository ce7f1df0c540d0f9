"""NVML's XID and ECC events, and the log of every event the collector records.

Place in the flow: when a GPU is opened its XID/ECC events are registered on the collector's
event set; the `nvml_events` job drains that set without blocking and turns each NVML event
into a `model.Event`. Everything else the collector notices (a GPU lost, back, hung, added;
NVML gone or back; a failed row remap) goes into the same `EventLog`, which the engine drains
once per snapshot.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pynvml

from gpuwatch import model
from gpuwatch.catalog import nvml_codes
from gpuwatch.collect.nvml.gateway import GpuLostError, NvmlGateway, NvmlUnavailableError, error_code
from gpuwatch.collect.nvml.tracked import TrackedGpu

log = logging.getLogger("gpuwatch.nvml")

EVENT_TYPES = (
    pynvml.nvmlEventTypeXidCriticalError
    | pynvml.nvmlEventTypeDoubleBitEccError
    | pynvml.nvmlEventTypeSingleBitEccError
)
"""The NVML event types the collector registers for, where a GPU supports them."""

_MAX_EVENTS_PER_POLL = 256


class EventLog:
    """The events recorded since the last drain, stamped with the collector's clock. Thread-safe."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._events: list[model.Event] = []

    def record(self, kind: model.EventKind, severity: model.Severity, message: str, **fields: Any) -> None:
        """`fields` are `model.Event`'s optional ones: gpu_index, gpu_uuid, code, …"""
        with self._lock:
            self._events.append(model.Event(self._clock(), kind, severity, message, **fields))

    def drain(self) -> list[model.Event]:
        with self._lock:
            events, self._events = self._events, []
        return events


def register_events(gateway: NvmlGateway, gpu: TrackedGpu, event_set: Any) -> None:
    """Ask for the XID and ECC events this GPU supports on `event_set`."""
    supported = gateway.call(gpu.uuid, "event_types", "nvmlDeviceGetSupportedEventTypes", gpu.handle)
    wanted = EVENT_TYPES & supported if isinstance(supported, int) else 0
    if wanted:
        gateway.call(gpu.uuid, "register_events", "nvmlDeviceRegisterEvents", gpu.handle, wanted, event_set)


def waiting_events(gateway: NvmlGateway, event_set: Any) -> Iterator[Any]:
    """The NVML events waiting on `event_set`, without blocking (a zero-timeout wait costs ~30 µs).

    Ends at the first timeout ("nothing more") or failure: a lost GPU or a vanished library is
    noticed, with its reason, by the next fast poll."""
    for _ in range(_MAX_EVENTS_PER_POLL):
        try:
            yield gateway.call_library("nvmlEventSetWait_v2", event_set, 0)
        except (NvmlUnavailableError, GpuLostError):
            return
        except pynvml.NVMLError as exc:
            if error_code(exc) != pynvml.NVML_ERROR_TIMEOUT:
                log.warning("NVML event wait failed: %s", exc)
            return


def record_nvml_event(events: EventLog, data: Any, gpu: TrackedGpu | None) -> None:
    """One NVML event (`c_nvmlEventData_t`) as a `model.Event`; `gpu` is its GPU if known."""
    index = gpu.index if gpu else None
    uuid = gpu.uuid if gpu else None
    where = f"GPU {index}" if index is not None else "a GPU"
    kind = int(data.eventType)
    if kind & pynvml.nvmlEventTypeXidCriticalError:
        xid = int(data.eventData)
        events.record(
            model.EventKind.XID,
            xid_severity(xid),
            f"{where}: XID {xid}: {nvml_codes.xid_words(xid)}",
            gpu_index=index,
            gpu_uuid=uuid,
            code=xid,
        )
    elif kind & pynvml.nvmlEventTypeDoubleBitEccError:
        events.record(
            model.EventKind.ECC_UNCORRECTED,
            model.Severity.CRITICAL,
            f"{where}: uncorrectable (double-bit) ECC error",
            gpu_index=index,
            gpu_uuid=uuid,
        )
    elif kind & pynvml.nvmlEventTypeSingleBitEccError:
        events.record(
            model.EventKind.ECC_CORRECTED,
            model.Severity.INFO,
            f"{where}: corrected (single-bit) ECC error",
            gpu_index=index,
            gpu_uuid=uuid,
        )


def xid_severity(xid: int) -> model.Severity:
    """Critical for an XID the GPU needs service after, info for one the application caused,
    a warning for the rest (and for an XID the catalog does not know)."""
    info = nvml_codes.XIDS.get(xid)
    if info and info.critical:
        return model.Severity.CRITICAL
    if info and info.application:
        return model.Severity.INFO
    return model.Severity.WARNING


def gpu_for_handle(gpus: Iterable[TrackedGpu], handle: Any) -> TrackedGpu | None:
    """The GPU an event's device handle belongs to (the event carries a handle, not an index)."""
    key = _handle_key(handle)
    for gpu in gpus:
        if gpu.handle is not None and _handle_key(gpu.handle) == key:
            return gpu
    return None


def _handle_key(handle: Any) -> Any:
    """Two ctypes pointers to one device are different objects: compare their addresses."""
    if isinstance(handle, ctypes._Pointer):
        return ctypes.cast(handle, ctypes.c_void_p).value
    return id(handle)
