"""`EventsPanel`: the node's events, newest first (XIDs, lost GPUs, model and Triton changes).

Place in the flow: the node screen fetches events from the client in a worker and sets
`events`; the panel draws them.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from gpuwatch import model
from gpuwatch.tui.cells import event_cells
from gpuwatch.tui.palette import Palette
from gpuwatch.tui.table import Column, SyncTable

EVENT_COLUMNS: tuple[Column, ...] = (
    Column("time", "Time", 8),
    Column("severity", "Severity", 8),
    Column("kind", "Kind", 15, priority=2),
    Column("where", "Where", 12, priority=1),
    Column("message", "Message", 0, min_width=20),
)


class EventsPanel(Vertical):
    DEFAULT_CSS = """
    EventsPanel > .panel-title {
        height: 1;
        background: $boost;
        text-style: bold;
    }
    """

    events: reactive[tuple[model.Event, ...] | None] = reactive(None, init=False)
    """Newest first; None until the first fetch answers."""

    def __init__(self, palette: Palette, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette

    def compose(self) -> ComposeResult:
        yield Static("Events · loading…", classes="panel-title")
        yield SyncTable(EVENT_COLUMNS)

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
        rows = [(f"{e.timestamp!r}/{i}", event_cells(e, self.palette)) for i, e in enumerate(events)]
        self.query_one(SyncTable).show_rows(rows)
