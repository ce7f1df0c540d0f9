"""History as text for people, in 80 columns: what `gpuwatch query` and `gpuwatch events` print.

Place in the flow: a `series.History` (the database read-only, or one day a daemon's API) →
`SeriesData` / `Event` values → **these renderers** → stdout. They take values, never a
database, so every history source prints the same way. `--json` output goes through
`gpuwatch.jsonform` instead, like every other face.
"""

from __future__ import annotations

from collections.abc import Callable

from gpuwatch import model, series, timespec
from gpuwatch.text import fmt

WIDTH = 80
_VALUE_WIDTH = 12

_BY_UNIT: tuple[tuple[str, Callable[[float], str]], ...] = (  # first match wins
    ("_bytes_per_second", fmt.rate),
    ("_per_second", lambda v: fmt.number(v, 2, "/s")),
    ("_ratio", lambda v: f"{v * 100:.1f}%"),
    ("_bytes", fmt.size),
    ("_seconds", fmt.seconds),
    ("_watts", lambda v: fmt.number(v, 1, "W")),
    ("_joules", lambda v: fmt.number(v, 0, "J")),
    ("_celsius", lambda v: fmt.number(v, 1, "°C")),
    ("_mhz", lambda v: fmt.number(v, 0, "MHz")),
)


def value_text(name: str, value: float) -> str:
    """A value of series `name` in the unit its name says."""
    for suffix, render in _BY_UNIT:
        if name.endswith(suffix):
            return render(value)
    return f"{value:.4g}"


def labels_text(labels: tuple[tuple[str, str], ...]) -> str:
    return "  ".join(f"{k} {v}" for k, v in labels)


def render_series(
    name: str, data: list[series.SeriesData], start: float, end: float, *, utc: bool = False
) -> str:
    """Each series as a block: its labels, then one line per point (time, mean, min, max)."""
    info = series.info(name)
    lines = [fmt.clip(f"{name}: {info.help}", WIDTH)]
    widths = sorted({d.resolution_seconds for d in data})
    every = ", ".join(timespec.format_duration(w) for w in widths)
    lines.append(
        fmt.clip(
            f"{len(data)} series in buckets of {every}, "
            f"{fmt.clock_time(start, utc)} → {fmt.clock_time(end, utc)}",
            WIDTH,
        )
    )
    header = "time".ljust(19) + "".join(h.rjust(_VALUE_WIDTH) for h in ("mean", "min", "max"))
    for item in data:
        lines += ["", fmt.clip(labels_text(item.key.labels), WIDTH), header]
        for point in item.points:
            values = (point.mean, point.minimum, point.maximum)
            lines.append(
                fmt.clock_time(point.timestamp, utc)[:19]
                + "".join(fmt.clip(value_text(name, v), _VALUE_WIDTH - 1).rjust(_VALUE_WIDTH) for v in values)
            )
    return "\n".join(lines) + "\n"


def render_catalog() -> str:
    """Every series `gpuwatch query` knows, with its entity and what it is."""
    lines = []
    for figure in series.CATALOG:
        lines.append(fmt.clip(f"{figure.name:<40} {figure.entity.name:<7} {figure.help}", WIDTH))
    return "\n".join(lines) + "\n"


def _where(event: model.Event) -> str:
    if event.gpu_index is not None:
        return f"GPU {event.gpu_index}: "
    if event.model is not None:
        version = f" v{event.version}" if event.version else ""
        server = f"{event.server}/" if event.server else ""
        return f"{server}{event.model}{version}: "
    if event.server is not None:
        return f"{event.server}: "
    return ""


def render_events(events: list[model.Event], *, utc: bool = False, width: int | None = WIDTH) -> str:
    """Newest first, one line each: time, severity, kind, then where and what, cut to `width`
    columns (None: never cut, for a pipe)."""
    lines = [f"{'time':<19} {'severity':<8} {'kind':<19} message"]
    for event in events:
        head = (
            f"{fmt.clock_time(event.timestamp, utc)[:19]} {event.severity.value:<8} {event.kind.value:<19} "
        )
        what = _where(event) + event.message
        lines.append(head + (what if width is None else fmt.clip(what, max(20, width - len(head)))))
    return "\n".join(lines) + "\n"
