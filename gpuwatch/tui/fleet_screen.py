"""`FleetScreen`: a fleet read through Prometheus, one row per node; enter opens the node.

Place in the flow: `Fleet` (`client/protocol.py`, a Prometheus server's API) → **FleetScreen**
→ rows. One worker asks the fleet for its view every refresh (a fixed number of queries,
whatever the fleet's size); rows come sorted by what needs a look (targets Prometheus cannot
scrape, then critical findings, warnings, GPUs not answering, failures). A Prometheus that is
down, slow or answers an error reads as such in the title and the line below it, and the last
rows stay. Enter opens the node's own dashboard from its daemon's API (the target's address);
while it is open, this screen stops polling.
"""

from __future__ import annotations

import threading
import time
from typing import ClassVar

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from gpuwatch.client.protocol import ClientError, Fleet, FleetNode, FleetView
from gpuwatch.text import fmt
from gpuwatch.tui.node_screen import NodeScreen
from gpuwatch.tui.palette import Palette
from gpuwatch.tui.table import Cell, Column, SyncTable

FLEET_COLUMNS: tuple[Column, ...] = (
    Column("node", "Node", 18),
    Column("scrape", "Up?", 4),
    Column("gpus", "GPUs", 4, right=True),
    Column("busiest", "Busiest", 7, priority=2, right=True),
    Column("power", "Power W", 9, right=True),
    Column("hottest", "Hottest", 7, priority=3, right=True),
    Column("models", "Models", 6, right=True),
    Column("failures", "Fail/s", 6, right=True),
    Column("lost", "Lost", 4, priority=1, right=True),
    Column("findings", "Findings", 0, min_width=14),
)
"""At 80 columns the hottest and busiest GPU and the lost count give way to the findings."""


def fleet_cells(node: FleetNode, pal: Palette) -> list[Cell]:
    """Cells in FLEET_COLUMNS order."""
    if not node.scraped:
        return [
            Text(node.instance),
            Text("DOWN", style=pal.fault),
            *([fmt.MISSING] * 7),
            Text("! not scraped", style=pal.fault),
        ]
    looks = [f"! {n} {word}" for n, word in ((node.critical, "crit"), (node.warning, "warn")) if n]
    if node.info:
        looks.append(f"{node.info} info")
    lost = node.lost_gpus
    fails = fmt.per_second(node.failures_per_second)
    return [
        Text(node.instance),
        Text("up", style=pal.good),
        fmt.MISSING if node.gpus is None else str(node.gpus),
        fmt.percent(node.busiest_ratio),
        fmt.of(node.power_watts, node.power_limit_watts),
        fmt.celsius(node.hottest_celsius),
        fmt.MISSING if node.models_ready is None else str(node.models_ready),
        Text(fails, style=pal.warn if (node.failures_per_second or 0) > 0 else ""),
        Text(str(lost), style=pal.fault if lost else ""),
        Text("  ".join(looks), style=pal.fault if node.critical else pal.warn if looks else pal.dim),
    ]


class FleetScreen(Screen[None]):
    DEFAULT_CSS = """
    FleetScreen > #fleet-title {
        height: 1;
        background: $panel;
        text-style: bold;
    }
    FleetScreen > #fleet-problem {
        height: auto;
        max-height: 3;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "open", "Open node", priority=True)]

    class Answered(Message):
        def __init__(self, view: FleetView | None, problem: str | None) -> None:
            super().__init__()
            self.view = view
            self.problem = problem

    def __init__(self, fleet: Fleet, palette: Palette, *, refresh_seconds: float = 1.0) -> None:
        super().__init__()
        self.fleet = fleet
        self.palette = palette
        self.refresh_seconds = refresh_seconds
        self.view: FleetView | None = None
        self.problem: str | None = None
        self.paused = False
        self._in_flight = threading.Event()

    def compose(self) -> ComposeResult:
        yield Static(id="fleet-title")
        yield SyncTable(FLEET_COLUMNS, id="fleet-table")
        yield Static(id="fleet-problem")
        yield Footer()

    def on_mount(self) -> None:
        self._draw()
        self.poll()
        self.set_interval(self.refresh_seconds, self.poll)

    def poll(self) -> None:
        if self.paused or self._in_flight.is_set():
            return
        self._in_flight.set()
        self._fetch()

    @work(thread=True, group="fleet", exit_on_error=False)
    def _fetch(self) -> None:
        try:
            view = self.fleet.view()
        except ClientError as exc:
            self.post_message(self.Answered(None, str(exc)))
        except Exception as exc:  # a bug must show on screen, not stop the refreshes
            self.post_message(self.Answered(None, f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.Answered(view, None))
        finally:
            self._in_flight.clear()

    def on_fleet_screen_answered(self, event: Answered) -> None:
        event.stop()
        if event.view is not None:
            self.view = event.view
        self.problem = event.problem
        self._draw()

    def on_screen_suspend(self, event: events.ScreenSuspend) -> None:
        self.paused = True

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        self.paused = False

    def action_open(self) -> None:
        key = self.query_one(SyncTable).cursor_key
        if key is None:
            return
        client = self.fleet.open(key)
        self.app.push_screen(
            NodeScreen(client, self.palette, refresh_seconds=self.refresh_seconds, from_cluster=True)
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def _draw(self) -> None:
        pal = self.palette
        nodes = self.view.nodes if self.view is not None else ()
        self.query_one(SyncTable).show_rows([(n.instance, fleet_cells(n, pal)) for n in nodes])
        down = sum(1 for n in nodes if not n.scraped)
        gpus = sum(n.gpus or 0 for n in nodes)
        title = " gpuwatch · fleet · "
        if self.problem:
            title += "! PROMETHEUS NOT ANSWERING · "
        title += f"{len(nodes)} node" + ("" if len(nodes) == 1 else "s")
        if down:
            title += f", {down} not scraped"
        title += f" · {gpus} GPUs"
        critical = sum(n.critical for n in nodes)
        warning = sum(n.warning for n in nodes)
        if critical or warning:
            title += " · " + "  ".join(
                f"! {n} {word}" for n, word in ((critical, "critical"), (warning, "warning")) if n
            )
        self.query_one("#fleet-title", Static).update(title)
        text = Text()
        if self.problem:
            text.append("! ", style=pal.fault)
            text.append(self.problem)
            if self.view is not None:
                shown = time.strftime("%H:%M:%S", time.localtime(self.view.at))
                text.append(f" (rows as of {shown})", style=pal.dim)
        elif self.view is None:
            text.append(f"{self.fleet.origin}: waiting for the first answer", style=pal.dim)
        else:
            shown = time.strftime("%H:%M:%S", time.localtime(self.view.at))
            text.append(f"{self.fleet.origin} · {self.view.queries} queries at {shown}", style=pal.dim)
        self.query_one("#fleet-problem", Static).update(text)
