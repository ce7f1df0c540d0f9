"""The one choke point every NVML call passes through.

Place in the flow: between pynvml and every module of the collector. None of them calls
pynvml directly: they call `NvmlGateway.call(gpu_key, field, fn_name, *args)`. The gateway holds
the NVML API object — the real `pynvml` module, or the recorded, fault-injecting stand-in from
`gpuwatch.demo.nvml` — and turns what NVML answers into one of four outcomes:

- a value;
- `None` for a field this GPU does not support (`NotSupported`, `FunctionNotFound`, a missing
  binding in an older nvidia-ml-py, …). That is learned once per GPU and field, logged once,
  and the call is never made again;
- `GpuLostError` when NVML says the GPU is lost or gives `Unknown`: the caller isolates that GPU;
- `NvmlUnavailableError` when the library itself is gone (uninitialised, driver not loaded,
  driver/library mismatch): the caller tears down and retries init with backoff.

Anything else (a timeout, `NoData`, `InUse`, …) is transient: `None` for this call, counted and
logged at most once per GPU, field and error. The gateway also records which call each thread
is in, so a call that hangs can be named in the GPU's status.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import pynvml

log = logging.getLogger("gpuwatch.nvml")
_get_ident = threading.get_ident

_UNSUPPORTED_CODES = frozenset(
    {
        pynvml.NVML_ERROR_NOT_SUPPORTED,
        pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        pynvml.NVML_ERROR_NO_PERMISSION,
        pynvml.NVML_ERROR_INVALID_ARGUMENT,
        pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
        pynvml.NVML_ERROR_DEPRECATED,
    }
)
_LOST_CODES = frozenset({pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_UNKNOWN})
_UNAVAILABLE_CODES = frozenset(
    {
        pynvml.NVML_ERROR_UNINITIALIZED,
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
        pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    }
)

# What to tell a person when NVML cannot start, by error code.
_UNAVAILABLE_HINTS = {
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "the NVIDIA driver is not loaded (is this a GPU node?)",
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: "libnvidia-ml.so was not found (install the NVIDIA driver)",
    pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        "driver/library version mismatch (the driver was upgraded without a reboot or reload)"
    ),
    pynvml.NVML_ERROR_NO_PERMISSION: "no permission to open the NVIDIA device nodes",
    pynvml.NVML_ERROR_UNINITIALIZED: "NVML is not initialised (the driver went away)",
}


class GpuLostError(Exception):
    """NVML says this GPU is gone; its handle must never be used again."""

    def __init__(self, gpu_key: str, fn_name: str, detail: str) -> None:
        super().__init__(f"{detail} ({fn_name})")
        self.gpu_key = gpu_key
        self.fn_name = fn_name


class NvmlUnavailableError(Exception):
    """The NVML library as a whole cannot be used right now."""


def error_code(exc: BaseException) -> int | None:
    return getattr(exc, "value", None) if isinstance(exc, pynvml.NVMLError) else None


def describe_unavailable(exc: BaseException) -> str:
    """One line for a person: what is wrong and what to do."""
    code = error_code(exc)
    hint = _UNAVAILABLE_HINTS.get(code) if code is not None else None
    if hint:
        return f"NVML unavailable: {hint}"
    return f"NVML unavailable: {exc}"


@dataclass(frozen=True, slots=True)
class GatewayStats:
    calls_count: int
    unsupported: tuple[tuple[str, str], ...]
    transient_errors_count: int
    last_transient_error: str | None


class NvmlGateway:
    """Wraps an NVML API object (pynvml or a stand-in). Thread-safe.

    This sits on the hot path (~20 calls per GPU per tick), so it does the least it can: a set
    lookup before the call and, for hang reports, the name of the call each thread is in."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self._unsupported: set[tuple[str, str]] = set()
        self._families_logged: set[tuple[str, str]] = set()
        self._logged: set[tuple[str, str, int | None]] = set()
        self._lock = threading.Lock()
        self._in_flight: dict[int, str] = {}
        self._calls = 0
        self._transient = 0
        self._last_transient: str | None = None

    # -- the choke point ---------------------------------------------------------------

    def call(
        self,
        gpu_key: str,
        field: str,
        fn_name: str,
        *args: Any,
        none_on: frozenset[int] = frozenset(),
    ) -> Any:
        """Call `api.<fn_name>(*args)` for one field of one GPU (gpu_key "" for the library).

        Returns the value, or None when the field is unsupported, the error is transient, or
        the error code is in `none_on` (e.g. NotFound meaning "no new samples")."""
        if (gpu_key, field) in self._unsupported:
            return None
        # The last call a thread started: when the thread is stuck, it is the one stuck.
        self._in_flight[_get_ident()] = fn_name
        self._calls += 1
        try:
            return getattr(self.api, fn_name)(*args)
        except pynvml.NVMLError as exc:
            code = error_code(exc)
            if code in none_on:
                return None
            if code in _LOST_CODES:
                raise GpuLostError(gpu_key, fn_name, str(exc)) from exc
            if code in _UNAVAILABLE_CODES:
                raise NvmlUnavailableError(describe_unavailable(exc)) from exc
            if code in _UNSUPPORTED_CODES:
                self._mark_unsupported(gpu_key, field, fn_name, str(exc))
                return None
            self._note_transient(gpu_key, field, fn_name, code, str(exc))
            return None
        except (AttributeError, TypeError, NotImplementedError) as exc:
            # An older nvidia-ml-py without this binding, or a struct it cannot fill.
            self._mark_unsupported(gpu_key, field, fn_name, f"{type(exc).__name__}: {exc}")
            return None

    def call_library(self, fn_name: str, *args: Any) -> Any:
        """A call that must succeed for NVML to be usable at all (init, count, handles).

        Raises NvmlUnavailableError for library-level failures, GpuLostError for a lost GPU,
        and lets other NVMLErrors through to the caller."""
        self._in_flight[_get_ident()] = fn_name
        self._calls += 1
        try:
            return getattr(self.api, fn_name)(*args)
        except pynvml.NVMLError as exc:
            code = error_code(exc)
            if code in _UNAVAILABLE_CODES:
                raise NvmlUnavailableError(describe_unavailable(exc)) from exc
            if code in _LOST_CODES:
                raise GpuLostError("", fn_name, str(exc)) from exc
            raise
        except OSError as exc:  # dlopen failures surface as OSError on some systems
            raise NvmlUnavailableError(f"NVML unavailable: {exc}") from exc

    # -- what the collector asks about ---------------------------------------------------

    def is_unsupported(self, gpu_key: str, field: str) -> bool:
        return (gpu_key, field) in self._unsupported

    def mark_unsupported(self, gpu_key: str, field: str, why: str, *, fn_name: str | None = None) -> None:
        """For fields whose support is learned from a value rather than an error (GPM, field values)."""
        self._mark_unsupported(gpu_key, field, fn_name or field, why)

    def last_call(self, thread_id: int) -> str | None:
        """The NVML function `thread_id` called last (the one it is in, if it is stuck)."""
        return self._in_flight.get(thread_id)

    def stats(self) -> GatewayStats:
        with self._lock:
            return GatewayStats(
                calls_count=self._calls,
                unsupported=tuple(sorted(self._unsupported)),
                transient_errors_count=self._transient,
                last_transient_error=self._last_transient,
            )

    # -- bookkeeping -----------------------------------------------------------------------

    def _mark_unsupported(self, gpu_key: str, field: str, fn_name: str, why: str) -> None:
        family = _field_family(field)
        with self._lock:
            if (gpu_key, field) in self._unsupported:
                return
            self._unsupported.add((gpu_key, field))
            # One line per GPU and kind of field: a GPU's MIG profiles or its peers in the
            # topology are one question asked many times (a 4-GPU node logged 40 lines).
            said = (gpu_key, family) in self._families_logged
            self._families_logged.add((gpu_key, family))
        if said:
            return
        log.info(
            "GPU %s: %s is not available on this GPU (%s: %s); shown as — and not asked again",
            gpu_key or "-",
            field if family == field else f"{family} (for each of them)",
            fn_name,
            why,
        )

    def _note_transient(self, gpu_key: str, field: str, fn_name: str, code: int | None, why: str) -> None:
        message = f"GPU {gpu_key or '-'}: {fn_name} for {field} failed: {why}"
        with self._lock:
            self._transient += 1
            self._last_transient = message
            first = (gpu_key, field, code) not in self._logged
            self._logged.add((gpu_key, field, code))
        if first:
            log.warning("%s (further errors like this are counted, not logged)", message)


def _field_family(field: str) -> str:
    """The kind of a field asked once per something: `mig_profile_5` → `mig_profile`,
    `topology_GPU-…` → `topology`; a plain field is its own kind."""
    for marker in ("_GPU-", "_MIG-"):
        if marker in field:
            return field.split(marker, 1)[0]
    head, _, tail = field.rpartition("_")
    return head if head and tail.isdigit() else field
