"""`HistoryView`: any figure of one GPU or one model over 15 min, 1 h, 24 h or 7 d.

Place in the flow: the node screen sets `snapshot` (for the list of GPUs and models and for
"now", which is the snapshot's time, so a remote node's clock decides the range, not ours);
the view says what it wants drawn with `HistoryView.Requested`; the screen fetches the series
and the range's events in a worker and hands them back with `show`. Asks again whenever the
range has moved by one column, so a chart of 7 days is not refetched every second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option, OptionDoesNotExist

from gpuwatch import model, series
from gpuwatch.catalog import entities
from gpuwatch.catalog.words import FigureWords, group_order, words
from gpuwatch.text import fmt
from gpuwatch.tui.buckets import aligned_range
from gpuwatch.tui.chart import Chart, ChartData, event_mark
from gpuwatch.tui.palette import Palette
from gpuwatch.tui.table import show_text

FIGURE_LIST_WIDTH = 27
"""The figure list's width; a terminal of WIDE_COLUMNS or more gets FIGURE_LIST_WIDE."""
FIGURE_LIST_WIDE = 36
WIDE_COLUMNS = 150
RANGES: tuple[tuple[float, str], ...] = (
    (900.0, "15 min"),
    (3600.0, "1 h"),
    (86400.0, "24 h"),
    (604800.0, "7 d"),
)

FIRST_FIGURES: dict[str, tuple[str, ...]] = {
    entities.GPU.name: (
        "gpu_utilization_ratio",
        "gpu_tensor_activity_ratio",
        "gpu_dram_bandwidth_ratio",
        "gpu_sm_activity_ratio",
        "gpu_sm_occupancy_ratio",
        "gpu_memory_used_bytes",
        "gpu_power_watts",
        "gpu_temperature_celsius",
        "gpu_sm_clock_mhz",
        "gpu_clock_event_sw_power_cap",
        "gpu_pcie_rx_bytes_per_second",
        "gpu_pcie_tx_bytes_per_second",
        "gpu_up",
    ),
    entities.MODEL.name: (
        "model_requests_per_second",
        "model_failures_per_second",
        "model_average_batch_size",
        "model_batch_fill_ratio",
        "model_average_queue_seconds",
        "model_average_compute_infer_seconds",
        "model_queue_share_ratio",
        "model_pending_requests",
        "model_up",
    ),
}


def figures_for(kind: str) -> list[str]:
    """The series of one entity kind, grouped (activity, memory, power and heat, …); in each
    group the ones an SRE looks at first, then the catalog's rest."""
    figures = {f.name: f for f in series.CATALOG if f.entity.name == kind}
    first = [n for n in FIRST_FIGURES.get(kind, ()) if n in figures]
    ordered = first + sorted(n for n in figures if n not in first)
    groups = list(group_order(kind))
    return sorted(ordered, key=lambda n: _group_rank(groups, words(figures[n]).group))


def _group_rank(groups: list[str], group: str) -> int:
    return groups.index(group) if group in groups else len(groups)


def figure_words(name: str) -> FigureWords:
    try:
        return words(series.info(name))
    except series.UnknownSeriesError:
        return FigureWords("other", name, "")


def figure_options(kind: str, width: int) -> list[Option]:
    """The figure list: a heading per group (not selectable), then its figures' human names."""
    out: list[Option] = []
    group = None
    for name in figures_for(kind):
        w = figure_words(name)
        if w.group != group:
            group = w.group
            out.append(Option(Text(fmt.clip(group, width - 1), style="bold"), disabled=True))
        out.append(Option(Text(" " + fmt.clip(w.label, width - 2)), id=name))
    return out


@dataclass(frozen=True, slots=True)
class Subject:
    """What a chart is about: one GPU or one model version."""

    kind: str
    label: str
    match: tuple[tuple[str, str], ...]
    gpu_index: int | None = None
    model: str | None = None
    server: str | None = None


def subjects(snapshot: model.Snapshot) -> list[Subject]:
    out = [
        Subject(entities.GPU.name, f"GPU {g.index}", (("gpu", str(g.index)),), gpu_index=g.index)
        for g in snapshot.gpus
    ]
    for server in snapshot.triton:
        for m in server.models:
            out.append(
                Subject(
                    entities.MODEL.name,
                    f"model {m.name} v{m.version} ({server.name})",
                    entities.MODEL.label_pairs(m),
                    model=m.name,
                    server=m.server,
                )
            )
    return out


def gpu_subject(index: int) -> Subject:
    return Subject(entities.GPU.name, f"GPU {index}", (("gpu", str(index)),), gpu_index=index)


def model_subject(m: model.ModelStats) -> Subject:
    return Subject(
        entities.MODEL.name,
        f"model {m.name} v{m.version} ({m.server})",
        entities.MODEL.label_pairs(m),
        model=m.name,
        server=m.server,
    )


_NODE_WIDE = {model.EventKind.NVML_UNAVAILABLE, model.EventKind.NVML_BACK, model.EventKind.DAEMON_START}
_SERVER_WIDE = {model.EventKind.TRITON_DOWN, model.EventKind.TRITON_UP, model.EventKind.TRITON_RESTART}


def events_for(subject: Subject, events: list[model.Event]) -> list[model.Event]:
    """The events that belong on this subject's chart: its own and the node's or server's."""
    if subject.kind == entities.GPU.name:
        return [
            e
            for e in events
            if e.gpu_index == subject.gpu_index or (e.gpu_index is None and e.kind in _NODE_WIDE)
        ]
    return [
        e
        for e in events
        if (e.model == subject.model and e.server in (None, subject.server))
        or (e.kind in _SERVER_WIDE and e.server == subject.server)
    ]


def full_scale(name: str, subject: Subject, snapshot: model.Snapshot | None) -> float | None:
    if name.endswith("_ratio") or name.startswith("gpu_clock_event_") or name.endswith("_up"):
        return 1.0
    if snapshot is None or subject.gpu_index is None:
        return None
    sample = next((g for g in snapshot.gpus if g.index == subject.gpu_index), None)
    if sample is None:
        return None
    if name == "gpu_power_watts":
        return sample.power_limit_watts
    if name == "gpu_memory_used_bytes" and sample.memory_total_bytes:
        return float(sample.memory_total_bytes)
    return None


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    subject: Subject
    series: str
    start: float
    end: float
    points: int


class HistoryView(Vertical):
    DEFAULT_CSS = """
    HistoryView > Horizontal {
        height: 1fr;
    }
    HistoryView OptionList, HistoryView OptionList:focus {
        width: 27;
        height: 1fr;
        border: none;
        padding: 0;
    }
    HistoryView #history-title {
        height: 1;
        background: $boost;
        text-style: bold;
    }
    HistoryView #history-plot {
        /* A rule between the list and the chart: the y axis' values are the chart's, not
           those of the list entries on their rows. */
        border-left: solid $panel-lighten-2;
    }
    HistoryView #history-ranges {
        height: 1;
    }
    HistoryView #history-events {
        height: auto;
        max-height: 4;
        color: $text-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "next_range", "Range"),
        Binding("g", "next_subject", "GPU/model"),
    ]

    snapshot: reactive[model.Snapshot | None] = reactive(None, init=False)
    subject: reactive[Subject | None] = reactive(None, init=False)
    figure: reactive[str] = reactive("gpu_utilization_ratio", init=False)
    range_index: reactive[int] = reactive(0, init=False)

    class Requested(Message):
        def __init__(self, request: HistoryRequest) -> None:
            super().__init__()
            self.request = request

    def __init__(self, palette: Palette, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette
        self.request: HistoryRequest | None = None
        self._figures_kind: tuple[str, int] | None = None
        self._holding = False
        """Set while `open` changes the subject and the figure: ask for the chart once, after."""
        """The kind and width the figure list was built for."""

    def compose(self) -> ComposeResult:
        yield Static(id="history-title")
        with Horizontal():
            yield OptionList(id="history-figures")
            with Vertical(id="history-plot"):
                yield Static(id="history-ranges")
                yield Chart(self.palette.bar, id="history-chart")
                yield Static(id="history-events")

    @property
    def range_seconds(self) -> float:
        return RANGES[self.range_index][0]

    def validate_range_index(self, value: int) -> int:
        return value % len(RANGES)

    def action_next_range(self) -> None:
        self.range_index += 1

    def action_next_subject(self) -> None:
        if self.snapshot is None:
            return
        options = subjects(self.snapshot)
        if not options:
            return
        labels = [s.label for s in options]
        current = labels.index(self.subject.label) if self.subject and self.subject.label in labels else -1
        self.subject = options[(current + 1) % len(options)]

    def watch_snapshot(self, snapshot: model.Snapshot | None) -> None:
        if snapshot is not None and self.subject is None:
            options = subjects(snapshot)
            if options:
                self.subject = options[0]
                return
        self._maybe_request()

    def open(self, subject: Subject, figure: str | None = None) -> None:
        """Show `subject`, and `figure` of it when given (a GPU row's sparkline figure): one
        request for the two."""
        self._holding = True
        try:
            self.subject = subject
            if figure is not None and figure in figures_for(subject.kind):
                self.figure = figure
        finally:
            self._holding = False
        self._maybe_request(force=True)

    def _list_width(self) -> int:
        return FIGURE_LIST_WIDE if self.app.size.width >= WIDE_COLUMNS else FIGURE_LIST_WIDTH

    def _build_list(self, kind: str) -> None:
        width = self._list_width()
        if self._figures_kind == (kind, width):
            return
        same_kind = self._figures_kind is not None and self._figures_kind[0] == kind
        self._figures_kind = (kind, width)
        figures = self.query_one(OptionList)
        figures.styles.width = width
        figures.clear_options()
        figures.add_options(figure_options(kind, width))
        if not same_kind:
            self.figure = figures_for(kind)[0]
        self._highlight_figure()

    def _highlight_figure(self) -> None:
        figures = self.query_one(OptionList)
        try:
            at = figures.get_option_index(self.figure)
        except OptionDoesNotExist:  # the list is of another kind
            return
        if figures.highlighted != at:
            figures.highlighted = at

    def watch_subject(self, subject: Subject | None) -> None:
        if subject is not None:
            self._build_list(subject.kind)
        self._maybe_request(force=True)

    def watch_figure(self) -> None:
        self._highlight_figure()
        self._maybe_request(force=True)

    def watch_range_index(self) -> None:
        self._maybe_request(force=True)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option_index != event.option_list.highlighted:
            return  # an older move, overtaken (`open` chose another figure since)
        if event.option.id is not None:
            self.figure = event.option.id

    def on_resize(self) -> None:
        if self.subject is not None:
            self._build_list(self.subject.kind)
        self._maybe_request(force=True)

    def _maybe_request(self, force: bool = False) -> None:
        """Ask for data when what is charted changed, or time moved on by one column."""
        if self._holding:
            return
        self._draw_labels()
        if self.snapshot is None or self.subject is None:
            return
        start, end, points = aligned_range(
            self.snapshot.timestamp, self.range_seconds, self.query_one(Chart).plot_width
        )
        old = self.request
        if not force and old is not None and old.end == end and old.points == points:
            return
        request = HistoryRequest(self.subject, self.figure, start, end, points)
        if request == old:
            return
        self.request = request
        self.post_message(self.Requested(request))

    def show(
        self,
        request: HistoryRequest,
        points: list[series.SeriesData],
        events: list[model.Event],
        error: str | None,
    ) -> None:
        """The screen's answer to a request; an answer to an older request is dropped."""
        if request != self.request:
            return
        mine = events_for(request.subject, events)
        data = ChartData(
            series=request.series,
            start=request.start,
            end=request.end,
            slots=request.points,
            points=tuple(p for s in points for p in s.points),
            events=tuple(mine),
            full_scale=full_scale(request.series, request.subject, self.snapshot),
            now=self.snapshot.timestamp if self.snapshot is not None else None,
            note=error,
            marks_style=self.palette.warn,
        )
        self.query_one(Chart).data = data
        lines = Text(no_wrap=True, overflow="ellipsis")
        for e in mine[:4]:  # newest first
            if lines:
                lines.append("\n")
            lines.append(f"{event_mark(e.kind)} {fmt.clock_time(e.timestamp)[5:19]} {e.message}")
        if not mine:
            lines.append("no events in this range", style=self.palette.dim)
        self.query_one("#history-events", Static).update(lines)
        resolution = points[0].resolution_seconds if points else None
        self._draw_labels(resolution)

    def _draw_labels(self, resolution: float | None = None) -> None:
        title = self.query_one("#history-title", Static)
        if self.subject is None:
            show_text(title, "History · waiting for the first snapshot…", fixed_height=True)
        else:
            name = figure_words(self.figure).label
            step = f" · {fmt.duration(resolution)} per column" if resolution else ""
            show_text(title, f"History · {self.subject.label} · {name}{step}", fixed_height=True)
        ranges = Text()
        for i, (_, label) in enumerate(RANGES):
            if i == self.range_index:
                ranges.append(f"[{label}]", style="bold reverse")
            else:
                ranges.append(f" {label} ")
            ranges.append(" ")
        ranges.append("  t range · g GPU/model · ↑↓ figure", style=self.palette.dim)
        show_text(self.query_one("#history-ranges", Static), ranges, fixed_height=True)
