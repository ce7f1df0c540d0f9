"""Turning values into short text for people: the one place that decides how a number reads.

Used by every face that prints (`gpuwatch snapshot`, `query`, `events`, the TUI). A missing
value (None) always reads as the em dash `—`, never as 0.
"""

from __future__ import annotations

import time

MISSING = "—"
GIB = 1024**3
MIB = 1024**2


def percent(ratio: float | None, width: int = 0) -> str:
    text = MISSING if ratio is None else f"{ratio * 100:.0f}%"
    return text.rjust(width) if width else text


def gib(n_bytes: int | float | None, digits: int = 1) -> str:
    return MISSING if n_bytes is None else f"{n_bytes / GIB:.{digits}f}"


def size(n_bytes: int | float | None) -> str:
    """Bytes in the largest binary unit that keeps 3 significant figures: 9.1 GiB, 740 MiB."""
    if n_bytes is None:
        return MISSING
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1024
    return MISSING  # unreachable


def rate(bytes_per_second: float | None) -> str:
    """A byte rate: 1.2 GB/s, 45 MB/s (decimal, as link speeds are quoted)."""
    if bytes_per_second is None:
        return MISSING
    value = bytes_per_second
    for unit in ("B/s", "kB/s", "MB/s", "GB/s", "TB/s"):
        if value < 1000 or unit == "TB/s":
            return f"{value:.0f} {unit}" if value >= 10 or unit == "B/s" else f"{value:.1f} {unit}"
        value /= 1000
    return MISSING  # unreachable


def number(value: float | int | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return MISSING
    text = f"{value:.{digits}f}"
    return f"{text} {unit}" if unit else text


def seconds(value: float | None) -> str:
    """A duration: 850 µs, 12.3 ms, 1.20 s."""
    if value is None:
        return MISSING
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def bar(ratio: float | None, width: int, fill: str = "█", empty: str = "·") -> str:
    """A fixed-width bar for a 0–1 ratio; all dashes when unknown."""
    if ratio is None:
        return "-" * width
    filled = max(0, min(width, round(ratio * width)))
    return fill * filled + empty * (width - filled)


def clip(text: str | None, width: int) -> str:
    """Cut `text` to `width` columns with an ellipsis; `—` for None."""
    if text is None:
        return MISSING.ljust(width)
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def ago(timestamp: float | None, now: float | None = None) -> str:
    if timestamp is None:
        return MISSING
    delta = (time.time() if now is None else now) - timestamp
    if delta < 0:
        return "now"
    if delta < 90:
        return f"{delta:.0f} s ago"
    if delta < 5400:
        return f"{delta / 60:.0f} min ago"
    if delta < 172800:
        return f"{delta / 3600:.0f} h ago"
    return f"{delta / 86400:.0f} d ago"


def clock_time(timestamp: float, utc: bool = False) -> str:
    t = time.gmtime(timestamp) if utc else time.localtime(timestamp)
    return time.strftime("%Y-%m-%d %H:%M:%S", t) + (" UTC" if utc else "")


def short_container(container_id: str | None) -> str | None:
    return container_id[:12] if container_id else None
