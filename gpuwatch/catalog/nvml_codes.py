"""Pure decoding of NVML's codes into names and words, shared by the collector and every face.

Nothing here calls NVML: these are tables and functions over integers, so the collector (which
decodes), the snapshot text, `/metrics`, the alert rules' docs and the TUI (which show) all read
the same table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClockEventReason:
    bit: int
    name: str
    """Stable identifier, used in JSON, the store and /metrics labels."""
    words: str
    """What an SRE reads on screen."""
    slows_work: bool
    """True when the GPU runs slower than it could because of this reason (idle does not)."""


# nvmlClocksEventReason* (nvml.h). Order is the order shown on screen.
CLOCK_EVENT_REASONS: tuple[ClockEventReason, ...] = (
    ClockEventReason(0x4, "sw_power_cap", "power cap", True),
    ClockEventReason(0x8, "hw_slowdown", "HW slowdown", True),
    ClockEventReason(0x40, "hw_thermal_slowdown", "HW thermal", True),
    ClockEventReason(0x20, "sw_thermal_slowdown", "thermal", True),
    ClockEventReason(0x80, "hw_power_brake_slowdown", "power brake", True),
    ClockEventReason(0x10, "sync_boost", "sync boost", True),
    ClockEventReason(0x2, "applications_clocks_setting", "app clocks", False),
    ClockEventReason(0x100, "display_clock_setting", "display clock", False),
    ClockEventReason(0x1, "gpu_idle", "idle", False),
)
_BY_NAME = {r.name: r for r in CLOCK_EVENT_REASONS}
_KNOWN_MASK = sum(r.bit for r in CLOCK_EVENT_REASONS)


def decode_clock_event_reasons(mask: int) -> tuple[str, ...]:
    """Bitmask → reason names; unknown bits become "unknown_0x…" rather than vanishing."""
    names = [r.name for r in CLOCK_EVENT_REASONS if mask & r.bit]
    unknown = mask & ~_KNOWN_MASK
    if unknown:
        names.append(f"unknown_{unknown:#x}")
    return tuple(names)


def clock_event_words(names: tuple[str, ...]) -> str:
    """Reason names → "power cap, thermal"; empty when none slows the GPU."""
    words = [_BY_NAME[n].words if n in _BY_NAME else n for n in names]
    return ", ".join(words)


def slowing_reasons(names: tuple[str, ...]) -> tuple[str, ...]:
    """The subset of reasons that cost performance (everything but idle and settings)."""
    return tuple(n for n in names if n not in _BY_NAME or _BY_NAME[n].slows_work)


# XID codes an SRE must know, after NVIDIA's "XID Errors" catalogue (r580). Those marked
# `application=True` are normally caused by the workload itself and should not page anyone.
@dataclass(frozen=True, slots=True)
class XidInfo:
    code: int
    words: str
    application: bool = False
    critical: bool = False


XIDS: dict[int, XidInfo] = {
    x.code: x
    for x in (
        XidInfo(13, "graphics engine exception (often an out-of-range access in a kernel)", application=True),
        XidInfo(31, "GPU memory page fault (usually an application bug)", application=True),
        XidInfo(32, "invalid or corrupted push buffer stream"),
        XidInfo(43, "GPU stopped processing (a user application faulted)", application=True),
        XidInfo(45, "preemptive cleanup, due to previous errors", application=True),
        XidInfo(48, "double-bit ECC error", critical=True),
        XidInfo(61, "internal micro-controller breakpoint/warning"),
        XidInfo(62, "internal micro-controller halt"),
        XidInfo(63, "ECC page retirement or row remapping recording event", critical=True),
        XidInfo(64, "ECC page retirement or row remapper recording failure", critical=True),
        XidInfo(68, "video processor exception"),
        XidInfo(69, "graphics engine class error"),
        XidInfo(74, "NVLink error", critical=True),
        XidInfo(79, "GPU has fallen off the bus", critical=True),
        XidInfo(92, "high single-bit ECC error rate", critical=True),
        XidInfo(94, "contained ECC error (application must restart)", critical=True),
        XidInfo(95, "uncontained ECC error (GPU reset required)", critical=True),
        XidInfo(109, "context switch timeout"),
        XidInfo(119, "GSP RPC timeout", critical=True),
        XidInfo(120, "GSP error", critical=True),
        XidInfo(121, "C2C link error"),
        XidInfo(140, "unrecovered ECC error"),
        XidInfo(154, "GPU recovery action changed"),
    )
}

CRITICAL_XIDS = tuple(sorted(code for code, x in XIDS.items() if x.critical))
APPLICATION_XIDS = tuple(sorted(code for code, x in XIDS.items() if x.application))


def xid_words(code: int) -> str:
    info = XIDS.get(code)
    return info.words if info else "see NVIDIA's XID catalogue"


# nvmlDeviceArchitecture_t
ARCHITECTURES: dict[int, str] = {
    2: "kepler",
    3: "maxwell",
    4: "pascal",
    5: "volta",
    6: "turing",
    7: "ampere",
    8: "ada",
    9: "hopper",
    10: "blackwell",
    13: "rubin",
}


def architecture_name(code: int) -> str | None:
    return ARCHITECTURES.get(code)


# nvmlNvlinkVersion_t: what nvmlDeviceGetNvLinkVersion answers → the NVLink generation
NVLINK_VERSIONS: dict[int, str] = {1: "1.0", 2: "2.0", 3: "2.2", 4: "3.0", 5: "3.1", 6: "4.0", 7: "5.0"}


def nvlink_version(code: int) -> str | None:
    return NVLINK_VERSIONS.get(code)


# nvmlGpuTopologyLevel_t → the words of `nvidia-smi topo -m`
TOPOLOGY_PATHS: dict[int, str] = {0: "PIX", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}
"""NVML_TOPOLOGY_INTERNAL (0: two GPUs of one board) has no word of its own in nvidia-smi's
legend; it is the nearest path there is, so it reads as PIX."""
