"""Faults put on the recorded NVML source: what a real driver does on a bad day.

Place in the flow: demo scenarios (`demo/scenarios.py`) and the tests call `RecordedNvml.inject`,
`override`, `inject_xid` and `inject_ecc`, which schedule here, by tick of the source's clock.
Every call `RecordedNvml` answers first asks `NvmlFaults.failing` whether a fault holds it (a
hang) or fails it (with which NVML return code); every trace line it reads takes the values of
the overrides active now; its event wait takes the events that are due. What a fault does to
the GPU's handles (a lost GPU's old handle stays dead) is the source's business, not this one's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pynvml

ERROR_CODES: dict[str, int] = {
    "GPU_IS_LOST": pynvml.NVML_ERROR_GPU_IS_LOST,
    "UNKNOWN": pynvml.NVML_ERROR_UNKNOWN,
    "NOT_SUPPORTED": pynvml.NVML_ERROR_NOT_SUPPORTED,
    "UNINITIALIZED": pynvml.NVML_ERROR_UNINITIALIZED,
    "DRIVER_NOT_LOADED": pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
    "LIB_RM_VERSION_MISMATCH": pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    "TIMEOUT": pynvml.NVML_ERROR_TIMEOUT,
    "NO_PERMISSION": pynvml.NVML_ERROR_NO_PERMISSION,
}
"""The faults that fail a call, and the NVML return code each raises."""
FAULT_KINDS = (*ERROR_CODES, "HANG")
LOSING_KINDS = frozenset({"GPU_IS_LOST", "UNKNOWN"})
"""Faults after which NVML gives the GPU a new handle: the old one stays lost."""


@dataclass
class Fault:
    """One injected fault. `gpu` None means every GPU (and the library); `calls` None, every call."""

    kind: str
    gpu: int | None = None
    calls: frozenset[str] | None = None
    from_tick: int = 0
    until_tick: int | None = None
    released: threading.Event = field(default_factory=threading.Event)

    def active(self, tick: int) -> bool:
        if self.released.is_set():
            return False
        return tick >= self.from_tick and (self.until_tick is None or tick < self.until_tick)

    def matches(self, gpu: int | None, fn: str) -> bool:
        if self.calls is not None and fn not in self.calls:
            return False
        return self.gpu is None or gpu == self.gpu

    def error_code(self, fn: str) -> int:
        """The return code of `fn` under this fault. An uninitialised library fails its own
        initialisation as a driver that is not loaded does."""
        if self.kind == "UNINITIALIZED" and fn == "nvmlInit":
            return ERROR_CODES["DRIVER_NOT_LOADED"]
        return ERROR_CODES[self.kind]


@dataclass
class Override:
    gpu: int
    values: dict[str, Any]
    from_tick: int
    until_tick: int | None

    def active(self, gpu: int, tick: int) -> bool:
        until = self.until_tick
        return self.gpu == gpu and self.from_tick <= tick and (until is None or tick < until)


@dataclass(frozen=True, slots=True)
class ScheduledEvent:
    """An NVML event (`eventType`, `eventData`) due on `gpu` from `tick`."""

    tick: int
    gpu: int
    kind: int
    data: int


class NvmlFaults:
    """The faults, value overrides and events scheduled on one recorded source. Thread-safe."""

    def __init__(self, tick: Callable[[], int]) -> None:
        self._tick = tick
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._overrides: list[Override] = []
        self._events: list[ScheduledEvent] = []

    def inject(
        self,
        kind: str,
        gpu: int | None = None,
        calls: Iterable[str] | None = None,
        from_tick: int | None = None,
        until_tick: int | None = None,
    ) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        fault = Fault(
            kind,
            gpu,
            frozenset(calls) if calls is not None else None,
            self._tick() if from_tick is None else from_tick,
            until_tick,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self, fault: Fault | None = None) -> None:
        with self._lock:
            targets = [fault] if fault is not None else list(self._faults)
            for f in targets:
                f.released.set()
                if f in self._faults:
                    self._faults.remove(f)

    def override(
        self, gpu: int, values: Mapping[str, Any], from_tick: int | None = None, until_tick: int | None = None
    ) -> Override:
        o = Override(gpu, dict(values), self._tick() if from_tick is None else from_tick, until_tick)
        with self._lock:
            self._overrides.append(o)
        return o

    def schedule_event(self, gpu: int, kind: int, data: int, at_tick: int | None) -> None:
        event = ScheduledEvent(self._tick() if at_tick is None else at_tick, gpu, kind, data)
        with self._lock:
            self._events.append(event)

    def failing(self, fn: str, gpu: int | None) -> Fault | None:
        """The fault that fails this call now, if any; a hang active on it holds the call here
        first, until it is cleared or its `until_tick` comes."""
        tick = self._tick()
        with self._lock:
            faults = [f for f in self._faults if f.active(tick) and f.matches(gpu, fn)]
        for fault in faults:
            if fault.kind != "HANG":
                return fault
            while not fault.released.wait(0.01):
                if fault.until_tick is not None and self._tick() >= fault.until_tick:
                    break
        return None

    def overridden(self, gpu: int) -> list[dict[str, Any]]:
        """The values of the overrides active on `gpu` now, oldest first."""
        tick = self._tick()
        with self._lock:
            return [o.values for o in self._overrides if o.active(gpu, tick)]

    def take_event(self, registered: Mapping[int, int]) -> ScheduledEvent | None:
        """The first due event of a type its GPU registered for (`registered`: GPU → mask);
        it is handed out once."""
        tick = self._tick()
        with self._lock:
            for event in self._events:
                if event.tick <= tick and registered.get(event.gpu, 0) & event.kind:
                    self._events.remove(event)
                    return event
        return None
