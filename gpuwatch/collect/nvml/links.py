"""One GPU's NVLink links: their facts once, their state, error counters and traffic each slow read.

Place in the flow: the GPU's slow worker calls `read_links` from `readers.read_slow` through the
gateway (the one choke point), with the GPU's live handle; it returns frozen `model.NvlinkLink`
records and the GPU's per-link read cursors. `link_events` compares two reads for the events a
link going down or its error counters rising raise. The far end of each link as a GPU index is
filled in later, by `topology`, which sees every GPU.

How many links a GPU has comes from field NVLINK_LINK_COUNT (read with the static facts). A GPU
where that field is not supported (a single H100 or H200 without NVLink: NVLink state is
NotSupported there too) has no links: it is said once in the log, and its NVLink figures are
None, never 0.

What is read, and how often:
- once per handle, per link: the version (`nvmlDeviceGetNvLinkVersion`), the far end's PCI bus
  id (`nvmlDeviceGetNvLinkRemotePciInfo_v2`; a VM answers the sentinel FFFFFFFF:FF:FF.0, kept
  as None) and the speed (field NVLINK_GET_SPEED, MB/s, scope the link);
- every slow read, per link: the state (`nvmlDeviceGetNvLinkState`), the replay, recovery and
  CRC (flit) error counters (`nvmlDeviceGetNvLinkErrorCounter`), and in one field-value request
  for all links the cumulative THROUGHPUT_DATA_TX/RX KiB counters, whose difference over the
  interval is the link's traffic. 18 links cost ~75 calls of a few µs each, every 5 s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml

from gpuwatch import model
from gpuwatch.catalog import nvml_codes
from gpuwatch.collect.nvml.gateway import NvmlGateway
from gpuwatch.collect.nvml.values import NvlinkCounters, field_value, nvlink_bytes_per_second, text_or_none

log = logging.getLogger("gpuwatch.nvml")

REMOTE_BUS_UNKNOWN = "FFFFFFFF:FF:FF.0"
"""What `nvmlDeviceGetNvLinkRemotePciInfo_v2` answers for the far end in a VM (the H200 pair's capture)."""
MB = 1_000_000
_FIELD_SPEED = pynvml.NVML_FI_DEV_NVLINK_GET_SPEED
_FIELD_TX = pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX
_FIELD_RX = pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX
_COUNTERS = (
    ("crc", pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT),
    ("replay", pynvml.NVML_NVLINK_ERROR_DL_REPLAY),
    ("recovery", pynvml.NVML_NVLINK_ERROR_DL_RECOVERY),
)


@dataclass(frozen=True, slots=True)
class LinkFacts:
    """What one link's read once per handle gave."""

    link: int
    version: str | None
    speed_bytes_per_second: float | None
    remote_pci_bus_id: str | None


@dataclass(slots=True)
class LinkCursors:
    """What a GPU's link reads carry from one read to the next. Renewed with the GPU's handle."""

    facts: tuple[LinkFacts, ...] | None = None
    """None until the first slow read of this handle has read them."""
    traffic: dict[int, NvlinkCounters] = field(default_factory=dict)
    """Each link's cumulative KiB counters at the previous read."""


def remote_bus(pci: Any) -> str | None:
    """The far end's bus id, normalised; None for the sentinel or nothing."""
    bus = text_or_none(getattr(pci, "busId", None))
    if bus is None or bus.upper() == REMOTE_BUS_UNKNOWN or bus.upper().startswith("FFFFFFFF"):
        return None
    return bus.upper()


def read_link_facts(
    gateway: NvmlGateway, uuid: str, index: int, h: Any, link_count: int | None
) -> tuple[LinkFacts, ...]:
    """Each link's version, far end and speed; () for a GPU without links, said once in the log."""
    if not link_count:
        log.info("GPU %s: no NVLink links (NVML gives no link count): NVLink figures are not shown", index)
        return ()
    speeds = _per_link_fields(
        gateway, uuid, h, "nvlink_speed", [(_FIELD_SPEED, link) for link in range(link_count)]
    )
    out = []
    for link in range(link_count):
        version = gateway.call(uuid, f"nvlink_version_{link}", "nvmlDeviceGetNvLinkVersion", h, link)
        pci = gateway.call(uuid, f"nvlink_remote_pci_{link}", "nvmlDeviceGetNvLinkRemotePciInfo", h, link)
        speed = speeds.get((_FIELD_SPEED, link))
        out.append(
            LinkFacts(
                link=link,
                version=nvml_codes.nvlink_version(version) if isinstance(version, int) else None,
                speed_bytes_per_second=float(speed) * MB if speed else None,
                remote_pci_bus_id=remote_bus(pci) if pci is not None else None,
            )
        )
    return tuple(out)


def read_links(
    gateway: NvmlGateway,
    uuid: str,
    index: int,
    h: Any,
    *,
    link_count: int | None,
    cursors: LinkCursors,
    now: float,
) -> tuple[model.NvlinkLink, ...]:
    """Every link of the GPU now; `now` is the collector's interval clock (only differences count)."""
    if cursors.facts is None:
        cursors.facts = read_link_facts(gateway, uuid, index, h, link_count)
    if not cursors.facts:
        return ()
    c = gateway.call
    states: dict[int, model.NvlinkState | None] = {}
    errors: dict[tuple[int, str], int | None] = {}
    for facts in cursors.facts:
        link = facts.link
        state = c(uuid, f"nvlink_state_{link}", "nvmlDeviceGetNvLinkState", h, link)
        states[link] = None if state is None else (model.NvlinkState.UP if state else model.NvlinkState.DOWN)
        for name, counter in _COUNTERS:
            value = c(uuid, f"nvlink_{name}_{link}", "nvmlDeviceGetNvLinkErrorCounter", h, link, counter)
            errors[(link, name)] = int(value) if isinstance(value, int) and value >= 0 else None
    up = [f.link for f in cursors.facts if states[f.link] is model.NvlinkState.UP]
    requests = [(fid, link) for link in up for fid in (_FIELD_TX, _FIELD_RX)]
    traffic = _per_link_fields(gateway, uuid, h, "nvlink_traffic", requests)
    rates: dict[int, tuple[float, float] | None] = {}
    for link in up:
        tx, rx = traffic.get((_FIELD_TX, link)), traffic.get((_FIELD_RX, link))
        if not isinstance(tx, int) or not isinstance(rx, int):
            cursors.traffic.pop(link, None)
            continue
        current = NvlinkCounters(now, float(tx), float(rx))
        previous = cursors.traffic.get(link)
        cursors.traffic[link] = current
        rates[link] = nvlink_bytes_per_second(previous, current)
    for link in set(cursors.traffic) - set(up):
        del cursors.traffic[link]  # a link down starts afresh when it comes back
    out = []
    for facts in cursors.facts:
        link = facts.link
        rate = rates.get(link)
        out.append(
            model.NvlinkLink(
                link=link,
                state=states[link],
                version=facts.version,
                speed_bytes_per_second=facts.speed_bytes_per_second,
                remote_pci_bus_id=facts.remote_pci_bus_id,
                crc_error_count=errors[(link, "crc")],
                replay_error_count=errors[(link, "replay")],
                recovery_error_count=errors[(link, "recovery")],
                tx_bytes_per_second=rate[0] if rate else None,
                rx_bytes_per_second=rate[1] if rate else None,
            )
        )
    return tuple(out)


def _per_link_fields(
    gateway: NvmlGateway, uuid: str, h: Any, what: str, requests: list[tuple[int, int]]
) -> dict[tuple[int, int], int | float]:
    """Field values with a link as scope, by (field id, link); a refused one is left out."""
    if not requests:
        return {}
    raw = gateway.call(uuid, what, "nvmlDeviceGetFieldValues", h, requests)
    out: dict[tuple[int, int], int | float] = {}
    for value in raw or ():
        if value.nvmlReturn == pynvml.NVML_SUCCESS:
            out[(int(value.fieldId), int(value.scopeId))] = field_value(value)
    return out


EventNote = tuple[model.EventKind, model.Severity, str]
"""An event a link read raises: kind, severity, message (the collector records it)."""


def link_events(
    index: int, previous: tuple[model.NvlinkLink, ...], current: tuple[model.NvlinkLink, ...]
) -> list[EventNote]:
    """A link that went down or came back, and error counters that rose, since the previous read."""
    before = {link.link: link for link in previous}
    notes: list[EventNote] = []
    for link in current:
        old = before.get(link.link)
        if old is None:
            continue
        if old.state is model.NvlinkState.UP and link.state is model.NvlinkState.DOWN:
            notes.append(
                (
                    model.EventKind.NVLINK_DOWN,
                    model.Severity.CRITICAL,
                    f"GPU {index}: NVLink link {link.link} went down",
                )
            )
        elif old.state is model.NvlinkState.DOWN and link.state is model.NvlinkState.UP:
            notes.append(
                (
                    model.EventKind.NVLINK_UP,
                    model.Severity.INFO,
                    f"GPU {index}: NVLink link {link.link} is up again",
                )
            )
        rose = [
            f"{name} +{new - was}"
            for name, read in _ERROR_READERS
            if (was := read(old)) is not None and (new := read(link)) is not None and new > was
        ]
        if rose:
            notes.append(
                (
                    model.EventKind.NVLINK_ERRORS,
                    model.Severity.WARNING,
                    f"GPU {index}: NVLink link {link.link} errors rose: {', '.join(rose)}",
                )
            )
    return notes


_ERROR_READERS: tuple[tuple[str, Callable[[model.NvlinkLink], int | None]], ...] = (
    ("CRC", lambda link: link.crc_error_count),
    ("replay", lambda link: link.replay_error_count),
    ("recovery", lambda link: link.recovery_error_count),
)
