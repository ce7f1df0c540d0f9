"""`NodeHeader`: the top line of a node's dashboard: which node, its driver, the data's time,
and whether the data is live or stale (and why).

Place in the flow: the node screen sets `snapshot` on each update and `problem` when its feed
fails. When the source stops answering, the last snapshot stays on screen and this line says
STALE with the reason and the time of the data shown; it goes back to LIVE by itself when the
feed answers again.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from gpuwatch import fmt, model
from gpuwatch.tui.palette import Palette


class NodeHeader(Widget):
    DEFAULT_CSS = """
    NodeHeader {
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """

    snapshot: reactive[model.Snapshot | None] = reactive(None)
    problem: reactive[str | None] = reactive(None)
    waiting: reactive[str | None] = reactive(None)
    """Why there is nothing yet when the source has just started (not a fault)."""

    def __init__(self, node_name: str, palette: Palette, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.node_name = node_name
        self.palette = palette

    def status(self) -> Text:
        """LIVE, STALE with the reason, or the reason nothing arrived yet."""
        if self.problem is None:
            if self.snapshot is None:
                return Text(f" {self.waiting or 'connecting'}… ", style=self.palette.dim)
            return Text(" LIVE ", style=self.palette.good)
        word = "STALE" if self.snapshot is not None else "NO DATA"
        return Text(f" ! {word}: {self.problem} ", style=self.palette.fault)

    def render(self) -> Text:
        s = self.snapshot
        parts = [s.node.hostname if s else self.node_name]
        if s is not None:
            if s.node.driver_version:
                parts.append(f"driver {s.node.driver_version}")
            if s.node.cuda_driver_version:
                parts.append(f"CUDA {s.node.cuda_driver_version}")
            if s.node.source == "recorded":
                parts.append("demo")
            parts.append(("data of " if self.problem else "") + fmt.clock_time(s.timestamp))
        left = Text(" " + " · ".join(parts), style="bold")
        right = self.status()
        width = self.size.width
        room = width - right.cell_len
        if left.cell_len > room:
            left.truncate(max(0, room - 1), overflow="ellipsis")
        return Text.assemble(left, " " * max(1, room - left.cell_len), right)
