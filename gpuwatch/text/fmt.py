"""Turning values into short text for people: the one place that decides how a number reads.

Used by every face that prints (`gpuwatch snapshot`, `query`, `events`, the TUI). A missing
value (None) always reads as the em dash `—`, never as 0.
"""

from __future__ import annotations

import time

from gpuwatch import model

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


def container_of(p: model.ProcessSample) -> str | None:
    """Where a process runs: `namespace/pod` where the container runtime named its pod
    (`[kubernetes]`), else its container id's first 12 hex digits, else None (the host)."""
    if p.pod is not None:
        return p.pod.label()
    return short_container(p.container_id)


def triton_tag(p: model.ProcessSample) -> str | None:
    """`[triton SERVER]` for a Triton server's process, `[triton SERVER: INSTANCE]` for a backend
    stub running a model instance (`[triton local: echo_0_1]`), else None."""
    if not p.triton_server:
        return None
    serves = p.triton_instance or p.triton_model
    return f"[triton {p.triton_server}: {serves}]" if serves else f"[triton {p.triton_server}]"


def celsius(value: float | None) -> str:
    return MISSING if value is None else f"{value:.0f}°C"


def of(used: float | None, total: float | None, digits: int = 0) -> str:
    """ "used/total", each side `—` when unknown: power 693/700, memory 1.8/79.6."""
    return f"{number(used, digits)}/{number(total, digits)}"


def gib_of(used_bytes: int | None, total_bytes: int | None) -> str:
    """Memory as "used/total" GiB with one decimal, as `snapshot` prints it: 4.6/140.4."""
    return f"{gib(used_bytes)}/{gib(total_bytes)}"


def per_second(value: float | None) -> str:
    """An event rate with three significant figures: 0.52, 12.3, 845, 1.23k."""
    if value is None:
        return MISSING
    if value == 0:
        return "0"
    if value >= 1000:
        return f"{value / 1000:.3g}k" if value < 999_500 else f"{value / 1e6:.3g}M"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def time_of_day(timestamp: float | None, utc: bool = False) -> str:
    if timestamp is None:
        return MISSING
    return clock_time(timestamp, utc)[11:19]


SPARK_LEVELS = "▁▂▃▄▅▆▇█"


def spark(values: list[float | None], low: float, high: float) -> str:
    """One character per value on an eight-level scale from `low` to `high`; a blank for a
    missing value (a gap in history is not a zero)."""
    span = high - low
    out = []
    for value in values:
        if value is None:
            out.append(" ")
            continue
        level = 0 if span <= 0 else round((value - low) / span * (len(SPARK_LEVELS) - 1))
        out.append(SPARK_LEVELS[max(0, min(len(SPARK_LEVELS) - 1, level))])
    return "".join(out)


def series_value(name: str, value: float | None) -> str:
    """A value of the series `name`, in the unit its name ends with (`_ratio` → 42%, …)."""
    if value is None:
        return MISSING
    if name.endswith("_ratio"):
        return percent(value)
    if name.endswith("_bytes_per_second"):
        return rate(value)
    if name.endswith("_per_second"):
        return per_second(value) + "/s"
    if name.endswith("_bytes"):
        return size(value)
    if name.endswith("_seconds"):
        return seconds(value)
    if name.endswith("_watts"):
        return number(value, 0, "W")
    if name.endswith("_celsius"):
        return celsius(value)
    if name.endswith("_mhz"):
        return number(value, 0, "MHz")
    if name.endswith("_joules"):
        return number(value / 1000, 1, "kJ")
    return f"{value:.3g}"


def elapsed(seconds_: float | None) -> str:
    """How long something has run, as `ps` prints it: 04:12, 3:04:12, 2d03h."""
    if seconds_ is None or seconds_ < 0:
        return MISSING
    s = int(seconds_)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}:{minutes:02d}:{s:02d}" if hours else f"{minutes:02d}:{s:02d}"


def duration(seconds_: float) -> str:
    """A span of time in its largest whole unit: 20 s, 15 min, 1.5 h, 7 d."""
    for unit, size_ in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds_ >= size_:
            value = seconds_ / size_
            return f"{value:.0f} {unit}" if value == round(value) or value >= 10 else f"{value:.1f} {unit}"
    return f"{seconds_:.0f} s"


def gpu_place(gpu_index: int, mig_index: int | None) -> str:
    """Where a process runs: "0" on a whole GPU, "0:1" on MIG device 1 of GPU 0 (nvitop's form)."""
    return str(gpu_index) if mig_index is None else f"{gpu_index}:{mig_index}"
