"""A figure's name for people: its group, a short title and its unit, derived from its declaration.

Place in the flow: declarations (`catalog.gpu`, `catalog.triton`, …) → **words** → faces that
list figures for a reader (the dashboard's History list). Derived, never declared a second
time: the title is the series name without its entity prefix and unit suffix, with the
abbreviations people write (SM, DRAM, PCIe, ECC); the unit comes from the name's suffix, as the
naming convention puts it there; the group from the words the name holds (memory, clocks, …).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpuwatch.catalog.figures import Figure

_UNITS: tuple[tuple[str, str], ...] = (  # suffix → unit on screen; first match wins
    ("_bytes_per_second", "B/s"),
    ("_per_second", "/s"),
    ("_bytes", "bytes"),
    ("_ratio", "%"),
    ("_celsius", "°C"),
    ("_watts", "W"),
    ("_joules", "J"),
    ("_mhz", "MHz"),
    ("_seconds", "s"),
    ("_count", "count"),
)

_SPELLING = {
    "sm": "SM",
    "dram": "DRAM",
    "pcie": "PCIe",
    "nvlink": "NVLink",
    "ecc": "ECC",
    "fp16": "FP16",
    "fp32": "FP32",
    "fp64": "FP64",
    "hmma": "HMMA",
    "imma": "IMMA",
    "dfma": "DFMA",
    "sw": "SW",
    "hw": "HW",
    "tx": "tx",
    "rx": "rx",
    "up": "up (answers)",
}

# (words any of which put a figure in the group, the group's name), first match wins.
_GROUPS: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    "gpu": (
        (("clock_event",), "clocks held down by"),
        (("ecc", "remapped", "replay"), "errors"),
        (("up", "performance_state"), "state"),
        (("clock",), "clocks"),
        (("power", "energy", "temperature", "fan"), "power and heat"),
        (("memory",), "memory"),
        (("pcie", "nvlink"), "links"),
        (("",), "activity"),
    ),
    "model": (
        (("up", "pending", "mean_queue_depth"), "state and queue"),
        (("_per_second",), "throughput"),
        (("batch",), "batching"),
        (("queue",), "queueing"),
        (("seconds",), "latency"),
        (("",), "other"),
    ),
}
_ORDER: dict[str, tuple[str, ...]] = {  # the groups in the order a reader looks at them
    "gpu": (
        "activity",
        "memory",
        "power and heat",
        "clocks",
        "clocks held down by",
        "links",
        "errors",
        "state",
    ),
    "model": ("throughput", "latency", "queueing", "batching", "state and queue", "other"),
}


@dataclass(frozen=True, slots=True)
class FigureWords:
    group: str
    title: str
    """Short words: "tensor IMMA activity", "PCIe rx"."""
    unit: str
    """"%", "B/s", "W", …; "" for a count or flag without a unit in its name."""

    @property
    def label(self) -> str:
        return f"{self.title} ({self.unit})" if self.unit and self.unit != "count" else self.title


def unit_of(name: str) -> str:
    return next((unit for suffix, unit in _UNITS if name.endswith(suffix)), "")


def group_order(kind: str) -> tuple[str, ...]:
    return _ORDER.get(kind, ("other",))


def words(figure: Figure[Any]) -> FigureWords:
    kind = figure.entity.name
    stem = figure.name.removeprefix(kind + "_")
    unit = unit_of(figure.name)
    for suffix, u in _UNITS:
        if u == unit and stem.endswith(suffix):
            stem = stem.removesuffix(suffix)
            break
    stem = stem.removeprefix("clock_event_")
    title = " ".join(_SPELLING.get(w, w) for w in stem.split("_")) or kind
    full = figure.name.removeprefix(kind + "_")
    parts = full.split("_")

    def has(key: str) -> bool:
        return key == "" or key in parts or ("_" in key and key in full)

    group = next((g for keys, g in _GROUPS.get(kind, ()) if any(has(k) for k in keys)), "other")
    return FigureWords(group, title, unit)
