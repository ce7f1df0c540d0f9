"""`EventsPanel`: the node's events, newest first (XIDs, lost GPUs, model and Triton changes),
under one line on the health of each of the node's collectors.

Place in the flow: the node screen fetches events from the client in a worker and sets
`events`, and hands over each snapshot (for its collectors' health); the panel draws them.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from gpuwatch import model
from gpuwatch.text import fmt
from gpuwatch.tui.cells import event_cells
from gpuwatch.tui.palette import Palette
from gpuwatch.tui.table import Column, SyncTable, show_text

EVENT_COLUMNS: tuple[Column, ...] = (
    Column("time", "Time", 8),
    Column("severity", "Severity", 8),
    Column("kind", "Kind", 15, priority=2),
    Column("where", "Where", 12, priority=1),
    Column("message", "Message", 0, min_width=34),
)


def collectors_line(
    collectors: tuple[model.CollectorHealth, ...], pal: Palette, found: Sequence[model.Finding] = ()
) -> Text:
    """Each collector's health in a few words: what feeds which column, and whether it works.
    A collector is marked `!` only with a finding (`found`: the snapshot's), else said plainly."""
    judged = {f.subject.collector for f in found if f.subject.kind is model.SubjectKind.COLLECTOR}
    text = Text("Collectors: ", style=pal.dim)
    for i, c in enumerate(collectors):
        if i:
            text.append(" · ", style=pal.dim)
        if c.ok:
            took = f" {fmt.seconds(c.last_duration_seconds)}" if c.last_duration_seconds is not None else ""
            text.append(f"{c.name} ok{took}")
        elif c.runs_count == 0 and not c.last_error:
            text.append(f"{c.name} not run yet", style=pal.dim)
        else:
            why = c.last_error or ("stale" if c.stale else "failing")
            if c.name in judged:
                text.append(f"! {c.name}: {why}", style=pal.warn)
            else:
                text.append(f"{c.name}: {why}")
    if not collectors:
        text.append("none reported", style=pal.dim)
    return text


class EventsPanel(Vertical):
    DEFAULT_CSS = """
    EventsPanel > .panel-title {
        height: 1;
        background: $boost;
        text-style: bold;
    }
    EventsPanel > #collectors {
        height: auto;
        max-height: 3;
    }
    EventsPanel > #event-detail {
        height: auto;
        max-height: 3;
        color: $text-muted;
    }
    """

    events: reactive[tuple[model.Event, ...] | None] = reactive(None, init=False)
    """Newest first; None until the first fetch answers."""
    snapshot: reactive[model.Snapshot | None] = reactive(None, init=False)

    def __init__(self, palette: Palette, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette

    def compose(self) -> ComposeResult:
        yield Static("Events · loading…", classes="panel-title")
        yield Static(id="collectors")
        yield SyncTable(EVENT_COLUMNS)
        yield Static(id="event-detail")

    def watch_snapshot(self, snapshot: model.Snapshot | None) -> None:
        if snapshot is not None:
            show_text(
                self.query_one("#collectors", Static),
                collectors_line(snapshot.collectors, self.palette, snapshot.findings),
            )

    def watch_events(self, events: tuple[model.Event, ...] | None) -> None:
        if events is None:
            return
        title = self.query_one(".panel-title", Static)
        critical = sum(1 for e in events if e.severity == model.Severity.CRITICAL)
        parts = [f"Events · {len(events)}, newest first"]
        if critical:
            parts.append(f"! {critical} critical")
        if not events:
            parts.append("nothing has happened in the last 24 h")
        title.update(" · ".join(parts))
        rows = [(str(i), event_cells(e, self.palette)) for i, e in enumerate(events)]
        self.query_one(SyncTable).show_rows(rows)
        self._draw_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._draw_detail()

    def _draw_detail(self) -> None:
        """The whole message of the event under the cursor, with its time and date."""
        key = self.query_one(SyncTable).cursor_key
        events = self.events or ()
        detail = self.query_one("#event-detail", Static)
        if key is None or int(key) >= len(events):
            detail.update("")
            return
        e = events[int(key)]
        detail.update(Text.assemble((f"{fmt.clock_time(e.timestamp)} {e.kind.value}: ", "bold"), e.message))
