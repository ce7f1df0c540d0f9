"""`NodeHeader`: the top line of a node's dashboard: which node, where its data comes from (a
daemon's URL, or in-process), its driver, the data's time, and whether the data is live or
stale (and why).

Place in the flow: the node screen sets `snapshot` on each update and `problem` when its feed
fails. When the source stops answering, the last snapshot stays on screen and this line says
STALE with the reason and the time of the data shown; it goes back to LIVE by itself when the
feed answers again. Before the status it counts the snapshot's findings by severity
("! 1 critical · 2 warning", gpuwatch/assess/), and it never reads LIVE while there is no GPU
data (NVML unavailable: "! NO GPU DATA"). When the line is short, the driver and CUDA versions go first, then
"demo"; the node, the origin, the time and the status stay.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from gpuwatch import model
from gpuwatch.text import findings, fmt
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

    def __init__(self, node_name: str, palette: Palette, *, origin: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.node_name = node_name
        self.origin = origin
        self.palette = palette

    def status(self) -> Text:
        """The findings' counts and LIVE, STALE with the reason, or the reason nothing arrived yet."""
        if self.problem is None:
            if self.snapshot is None:
                return Text(f" {self.waiting or 'connecting'}… ", style=self.palette.dim)
            return Text.assemble(*self.counts(), self.live())
        word = "STALE" if self.snapshot is not None else "NO DATA"
        return Text(f" ! {word}: {self.problem} ", style=self.palette.fault)

    def counts(self) -> list[Text]:
        """ "! 1 critical · 2 warning · " from the snapshot's findings; nothing when none."""
        s = self.snapshot
        if s is None or not s.findings:
            return []
        styles = {model.Severity.CRITICAL: self.palette.fault, model.Severity.WARNING: self.palette.warn}
        out: list[Text] = []
        for severity, n in _by_severity(s.findings):
            if n:
                out.append(Text(f" ! {n} {severity.value} ", style=styles.get(severity, "")))
        return out

    def live(self) -> Text:
        s = self.snapshot
        if s is not None and any(f.kind is model.FindingKind.NVML_UNAVAILABLE for f in s.findings):
            return Text(" ! NO GPU DATA ", style=self.palette.fault)
        return Text(" LIVE ", style=self.palette.good)

    def parts(self) -> list[tuple[int, str]]:
        """(drop order, text) of the left side: 0 stays, higher numbers go first."""
        s = self.snapshot
        parts = [(0, s.node.hostname if s else self.node_name)]
        if self.origin:
            parts.append((0, self.origin))
        if s is not None:
            if s.node.driver_version:
                parts.append((2, f"driver {s.node.driver_version}"))
            if s.node.cuda_driver_version:
                parts.append((2, f"CUDA {s.node.cuda_driver_version}"))
            if s.node.source == "recorded":
                parts.append((1, "demo"))
            parts.append((0, ("data of " if self.problem else "") + fmt.clock_time(s.timestamp)))
        return parts

    def render(self) -> Text:
        right = self.status()
        room = self.size.width - right.cell_len
        parts = self.parts()
        while True:
            line = " " + " · ".join(text for _, text in parts)
            droppable = max((order for order, _ in parts), default=0)
            if len(line) + 1 <= room or droppable == 0:
                break
            parts = [p for p in parts if p[0] != droppable]
        left = Text(line, style="bold")
        if left.cell_len > room:
            left.truncate(max(0, room - 1), overflow="ellipsis")
        return Text.assemble(left, " " * max(1, room - left.cell_len), right)


def _by_severity(found: tuple[model.Finding, ...]) -> list[tuple[model.Severity, int]]:
    """Counts, most severe first."""
    counted = findings.counts(found)
    order = (model.Severity.CRITICAL, model.Severity.WARNING, model.Severity.INFO)
    return [(severity, counted[severity]) for severity in order]
