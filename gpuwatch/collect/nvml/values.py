"""Value clean-up: what pynvml returns → the data model's units, or None.

Place in the flow: `readers` pass every raw NVML value through one of these on its way into a
reading. They are pure: no NVML call, no state. NVML says "not available" in several ways (an
unsigned sentinel, P-state 32, an empty string, a percentage past 100); each of them becomes
`None` here, never 0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import pynvml

from gpuwatch.catalog import nvml_codes

_SENTINELS = frozenset({0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF})
"""What NVML returns for "not available" in an unsigned field."""

_PSTATE_MAX = 15
"""P15 is the lowest performance state; NVML_PSTATE_UNKNOWN is 32."""


def text_or_none(value: Any) -> str | None:
    """A non-empty string (bytes are decoded, as older nvidia-ml-py returns them)."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value if isinstance(value, str) and value else None


def uint_or_none(value: Any) -> int | None:
    """A non-negative int that is not NVML's "not available" sentinel (bool is not an int here)."""
    if type(value) is int and value >= 0 and value not in _SENTINELS:
        return value
    return None


def int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def bool_or_none(value: Any) -> bool | None:
    return bool(value) if isinstance(value, int) else None


def ratio_from_percent(value: Any) -> float | None:
    """0–100 % → 0–1; anything outside that range is not a percentage."""
    if type(value) is int and 0 <= value <= 100:
        return value / 100.0
    if type(value) is float and 0.0 <= value <= 100.0:
        return round(value / 100.0, 6)
    return None


def from_milli(value: Any) -> float | None:
    """mW → W, mJ → J."""
    v = uint_or_none(value)
    return v / 1000.0 if v is not None else None


def bytes_from_kib(value: Any) -> float | None:
    """KiB (PCIe throughput's KB/s) → bytes."""
    v = uint_or_none(value)
    return float(v) * 1024.0 if v is not None else None


def pstate_or_none(value: Any) -> int | None:
    v = uint_or_none(value)
    return v if v is not None and v <= _PSTATE_MAX else None


clock_event_reason_names = functools.lru_cache(maxsize=256)(nvml_codes.decode_clock_event_reasons)
"""Clock-event masks repeat tick after tick: decode each once."""


def field_value(value: Any) -> int | float:
    """The number in one `c_nvmlFieldValue_t`, read from the union member its type names."""
    kind = int(value.valueType)
    union = value.value
    if kind == pynvml.NVML_VALUE_TYPE_DOUBLE:
        return float(union.dVal)
    if kind == pynvml.NVML_VALUE_TYPE_UNSIGNED_INT:
        return int(union.uiVal)
    if kind == pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG:
        return int(union.ulVal)
    if kind == pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG:
        return int(union.sllVal)
    if kind == pynvml.NVML_VALUE_TYPE_SIGNED_INT:
        return int(union.siVal)
    return int(union.ullVal)


@dataclass(frozen=True, slots=True)
class NvlinkCounters:
    """The cumulative NVLink data counters of one read, summed over all links."""

    at_seconds: float
    tx_kib: float
    rx_kib: float


def nvlink_bytes_per_second(
    previous: NvlinkCounters | None, current: NvlinkCounters
) -> tuple[float, float] | None:
    """(tx, rx) bytes/s between two reads; None without an earlier read, or when time did not
    move forward or a counter went back (a reset: no rate can be told from it)."""
    if (
        previous is None
        or current.at_seconds <= previous.at_seconds
        or current.tx_kib < previous.tx_kib
        or current.rx_kib < previous.rx_kib
    ):
        return None
    dt = current.at_seconds - previous.at_seconds
    return (
        (current.tx_kib - previous.tx_kib) * 1024.0 / dt,
        (current.rx_kib - previous.rx_kib) * 1024.0 / dt,
    )
