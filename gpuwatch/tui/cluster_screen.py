"""`ClusterScreen`: several nodes, one row each; enter opens a node's own dashboard.

Place in the flow: one `Feed` per client → **ClusterScreen** → rows (`summary.py`,
`cells.node_cells`). A node whose feed fails reads DOWN with the reason, keeping the last
figures it gave; it comes back by itself when it answers. Nodes sort by what needs a look:
down first, then by critical findings, then by warnings (`summary.rank`), each row saying its
findings in words. While a node's dashboard is open on
top, this screen's feeds pause, so the opened node is not polled twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from gpuwatch.client.protocol import Client
from gpuwatch.tui.cells import node_cells
from gpuwatch.tui.feed import Feed
from gpuwatch.tui.node_screen import NodeScreen
from gpuwatch.tui.palette import Palette
from gpuwatch.tui.summary import NodeSummary, rank, summarize
from gpuwatch.tui.table import Cell, Column, SyncTable

NODE_NAME_MAX = 40
"""With room, the Node column grows to the longest name, up to this; a name cut loses its
middle, so the port that tells nodes of one host apart stays (`127.0.0…:53517`)."""

NODE_COLUMNS: tuple[Column, ...] = (
    Column("node", "Node", 14, keep_end=True),
    Column("state", "State", 4),
    Column("gpus", "GPUs", 4, right=True),
    Column("busiest", "Busiest", 8),
    Column("power", "Power W", 9, right=True),
    Column("hottest", "Hottest", 7),
    Column("models", "Models", 6, right=True),
    Column("failures", "Fail/s", 6, right=True),
    Column("lost", "Lost", 4, right=True),
    Column("note", "Reason", 0, priority=1, min_width=20),
)


class ClusterScreen(Screen[None]):
    DEFAULT_CSS = """
    ClusterScreen > #cluster-title {
        height: 1;
        background: $panel;
        text-style: bold;
    }
    ClusterScreen > #cluster-down {
        height: auto;
        max-height: 8;
        padding: 0 1;
    }
    """

    # priority: the table has focus and its own hidden enter binding would shadow this one in
    # the footer.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "open", "Open node", priority=True)]

    def __init__(self, clients: Sequence[Client], palette: Palette, *, refresh_seconds: float = 1.0) -> None:
        super().__init__()
        self.clients = list(clients)
        self.palette = palette
        self.refresh_seconds = refresh_seconds
        self.summaries: dict[int, NodeSummary] = {}
        self.problems: dict[int, str | None] = {}
        self.name_width = min(NODE_NAME_MAX, max(NODE_COLUMNS[0].width, *(len(c.name) for c in self.clients)))

    def compose(self) -> ComposeResult:
        yield Static(id="cluster-title")
        columns = (replace(NODE_COLUMNS[0], wide=self.name_width), *NODE_COLUMNS[1:])
        yield SyncTable(columns, id="cluster-table")
        yield Static(id="cluster-down")
        yield Footer()
        for i, client in enumerate(self.clients):
            yield Feed(client, self.refresh_seconds, id=f"feed-{i}")

    def on_mount(self) -> None:
        self._draw()

    def _index(self, feed: Feed) -> int:
        return int((feed.id or "feed-0").removeprefix("feed-"))

    def on_feed_updated(self, event: Feed.Updated) -> None:
        event.stop()
        i = self._index(event.feed)
        self.summaries[i] = summarize(event.snapshot)
        self.problems[i] = None
        self._draw()

    def on_feed_failed(self, event: Feed.Failed) -> None:
        event.stop()
        self.problems[self._index(event.feed)] = event.reason
        self._draw()

    def on_screen_suspend(self, event: events.ScreenSuspend) -> None:
        for feed in self.query(Feed):
            feed.paused = True

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        for feed in self.query(Feed):
            feed.paused = False

    def action_open(self) -> None:
        key = self.query_one(SyncTable).cursor_key
        if key is None:
            return
        client = self.clients[int(key)]
        self.app.push_screen(
            NodeScreen(client, self.palette, refresh_seconds=self.refresh_seconds, from_cluster=True)
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def node_state(self, i: int) -> str:
        """ "up", "down" or "waiting": what the State column says of node `i`, in words."""
        if self.problems.get(i):
            return "down"
        return "up" if i in self.summaries else "waiting"

    def _draw(self) -> None:
        pal = self.palette
        rows = []
        down: list[tuple[str, str]] = []
        order = sorted(
            range(len(self.clients)),
            key=lambda i: (*rank(self.summaries.get(i), bool(self.problems.get(i))), i),
        )
        for i in order:
            client = self.clients[i]
            problem = self.problems.get(i)
            summary = self.summaries.get(i)
            cells: list[Cell]
            name = client.name
            if summary is None and problem is None:
                cells = [
                    Text(name),
                    Text("…", style=pal.dim),
                    *(["—"] * 7),
                    Text("waiting for the first answer", style=pal.dim),
                ]
            else:
                cells = node_cells(name, summary, problem, pal)
            rows.append((str(i), cells))
            if problem:
                down.append((client.name, problem))
        self.query_one(SyncTable).show_rows(rows)
        up = sum(1 for i in range(len(self.clients)) if self.node_state(i) == "up")
        gpus = sum(s.gpus for s in self.summaries.values())
        lost = sum(s.lost_gpus for i, s in self.summaries.items() if not self.problems.get(i))
        title = f" gpuwatch · cluster · {len(self.clients)} nodes, {up} up, {len(down)} down · {gpus} GPUs"
        if lost:
            title += f" · ! {lost} GPU{'' if lost == 1 else 's'} not answering"
        self.query_one("#cluster-title", Static).update(title)
        text = Text()
        for name, reason in down:
            if text:
                text.append("\n")
            text.append(f"! {name} DOWN: ", style=pal.fault)
            text.append(reason)
        self.query_one("#cluster-down", Static).update(text)
