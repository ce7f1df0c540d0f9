"""`Chart`: one series over time as bars of eighth-blocks, with events marked under it.

Place in the flow: the history view fetches a series and the events of its range (in a worker)
and sets `data`; the chart only draws. Each column is one slot of the range (`buckets.py`): its
bar is the slot's mean, an empty column is a gap in the history (not a zero). Events sit on the
row under the bars as letters (X xid, L lost, B back, H hung, E ECC, M model, T Triton), so they
read the same without colour; the history view lists them with their time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from gpuwatch import model
from gpuwatch.series import Point
from gpuwatch.text import fmt
from gpuwatch.tui.buckets import slot_of, to_slots

EIGHTHS = " ▁▂▃▄▅▆▇█"
AXIS_WIDTH = 9

EVENT_MARKS: dict[model.EventKind, str] = {
    model.EventKind.XID: "X",
    model.EventKind.GPU_LOST: "L",
    model.EventKind.GPU_BACK: "B",
    model.EventKind.GPU_HUNG: "H",
    model.EventKind.GPU_ADDED: "B",
    model.EventKind.ECC_CORRECTED: "E",
    model.EventKind.ECC_UNCORRECTED: "E",
    model.EventKind.ROW_REMAP_FAILURE: "E",
    model.EventKind.MODEL_STATE: "M",
    model.EventKind.MODEL_RESET: "M",
    model.EventKind.TRITON_RESTART: "T",
    model.EventKind.TRITON_DOWN: "T",
    model.EventKind.TRITON_UP: "T",
    model.EventKind.FINDING_BEGAN: "F",
    model.EventKind.FINDING_ENDED: "f",
    model.EventKind.CLOCK_STEP: "C",
}
FINDING_EVENTS = frozenset({model.EventKind.FINDING_BEGAN, model.EventKind.FINDING_ENDED})
"""Drawn only where no other event is: a finding's beginning often shares its slot with the
event that caused it (a GPU lost), whose mark says more."""


def event_mark(kind: model.EventKind) -> str:
    return EVENT_MARKS.get(kind, "!")


@dataclass(frozen=True, slots=True)
class ChartData:
    series: str
    start: float
    end: float
    slots: int
    """Columns of data: each is (end - start) / slots wide in time."""
    points: tuple[Point, ...]
    events: tuple[model.Event, ...] = ()
    full_scale: float | None = None
    """The top of the y axis when the figure has a natural one (1 for a ratio); else the
    largest value shown."""
    now: float | None = None
    """The time the range is drawn up to (the snapshot's); None: its end. No label past it."""
    note: str | None = None
    """Said in place of the chart when there is nothing to draw (no data, an error)."""
    marks_style: Style = field(default_factory=Style)


TICK_SECONDS: tuple[float, ...] = (
    60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 345600,
)  # fmt: skip
"""Steps between the time axis' labels: on round local times, never closer than a label."""
TICK_GAP = 2
"""Blank cells at least between two time labels."""


def time_label(timestamp: float, step_seconds: float) -> str:
    """ "14:30" for steps under a day; "12-03" (month-day) for whole days."""
    text = fmt.clock_time(timestamp)
    return text[5:10] if step_seconds >= 86400 else text[11:16]


def time_axis(start: float, end: float, now: float, width: int) -> str:
    """The time axis under `width` columns of [start, end]: labels on round local times (each
    starting at its column), none past `now` (the range's end is the end of its last slot, a
    little after now), as many as fit with TICK_GAP between them."""
    axis = [" "] * width
    if width <= 0 or end <= start:
        return ""
    span = end - start
    offset = time.localtime(start).tm_gmtoff
    # Over more than a day every label is a date (a bare 12:00 would not say which day).
    for step in (s for s in TICK_SECONDS if span <= 86400 or s >= 86400):
        label_width = len(time_label(start, step))
        if span / step * (label_width + TICK_GAP) <= width:
            break
    else:
        return "".join(axis)
    tick = math.ceil((start + offset) / step) * step - offset
    free = 0
    while tick <= min(now, end):
        column = int((tick - start) / span * width + 1e-6)
        label = time_label(tick, step)
        if column >= free and column + len(label) <= width:
            axis[column : column + len(label)] = label
            free = column + len(label) + TICK_GAP
        tick += step
    return "".join(axis)


def draw_chart(data: ChartData, width: int, height: int, bar_style: Style) -> Text:
    """The chart as `height` lines of `width` cells: bars, the event row, the time axis."""
    room = max(1, width - AXIS_WIDTH)
    # Each slot is drawn `wide` cells wide; the plot keeps to the right, where "now" is.
    wide = max(1, room // max(1, data.slots))
    plot_width = min(room, wide * data.slots)
    pad = " " * (room - plot_width)
    rows = max(1, height - 2)
    slots = [p for p in to_slots(data.points, data.start, data.end, data.slots) for _ in range(wide)][
        :plot_width
    ]
    known = [p.mean for p in slots if p is not None]
    if data.note or not known:
        blank = ["" for _ in range(height)]
        blank[height // 2] = " " * AXIS_WIDTH + (data.note or "no data in this range")
        return Text("\n".join(blank), style="dim", no_wrap=True)
    top = data.full_scale if data.full_scale is not None else max(known)
    top = top or 1.0
    levels = [None if p is None else max(0.0, min(1.0, p.mean / top)) * rows * 8 for p in slots]
    out = Text(no_wrap=True)
    for r in range(rows):
        row_from_bottom = rows - 1 - r
        label = ""
        if r == 0:
            label = fmt.series_value(data.series, top)
        elif r == rows - 1:
            label = fmt.series_value(data.series, 0.0)
        out.append(label.rjust(AXIS_WIDTH - 2)[: AXIS_WIDTH - 2] + " │" + pad, style="dim")
        cells = []
        for level in levels:
            if level is None:
                cells.append(" ")  # no data: a gap
            elif row_from_bottom == 0:
                cells.append(EIGHTHS[max(1, min(8, round(level)))])  # a known zero is a floor line
            else:
                cells.append(EIGHTHS[max(0, min(8, round(level - row_from_bottom * 8)))])
        out.append("".join(cells), style=bar_style)
        out.append("\n")
    marks = [" "] * plot_width
    for event in sorted(data.events, key=lambda e: e.kind in FINDING_EVENTS):
        i = slot_of(event.timestamp, data.start, data.end, plot_width)
        if i is None:
            continue
        if event.kind in FINDING_EVENTS:
            if marks[i] == " ":
                marks[i] = event_mark(event.kind)
        else:
            marks[i] = event_mark(event.kind) if marks[i] == " " else "*"
    out.append(" " * (AXIS_WIDTH - 2) + " └" + pad, style="dim")
    out.append("".join(marks), style=data.marks_style)
    out.append("\n")
    now = data.end if data.now is None else data.now
    axis = time_axis(data.start, data.end, now, plot_width)
    out.append(" " * AXIS_WIDTH + pad + axis, style="dim")
    return out


class Chart(Widget):
    DEFAULT_CSS = """
    Chart {
        height: 1fr;
        min-height: 5;
    }
    """

    data: reactive[ChartData | None] = reactive(None)

    def __init__(self, bar_style: Style, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.bar_style = bar_style

    @property
    def plot_width(self) -> int:
        """The most columns of data the chart can show at its size."""
        return max(1, self.size.width - AXIS_WIDTH)

    def render(self) -> Text:
        if self.data is None:
            return Text("loading history…", style="dim")
        return draw_chart(self.data, self.size.width, self.size.height, self.bar_style)
