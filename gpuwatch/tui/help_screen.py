"""`HelpScreen`: every key of the dashboard, shown by `?` and closed by escape or ? (q quits).

Place in the flow: pushed by the app over whatever screen is showing; reads nothing else.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, str], ...] = (
    ("1 … 5", "Overview, Processes, Models, History, Events"),
    ("↑ ↓ PgUp PgDn", "move the cursor in the focused table"),
    ("tab", "next panel"),
    ("enter", "history of the GPU's sparkline figure or the model; a node"),
    ("f", "GPU rows: change the sparkline's figure"),
    ("/", "processes: filter (pid, user, container, gpuN, command)"),
    ("s  r", "processes: next sort column; reverse (or click a header)"),
    ("t  g", "history: next range (15 min … 7 d); next GPU or model"),
    ("escape", "processes: clear the filter; else back to the cluster view"),
    ("?", "this help (escape or ? closes it)"),
    ("q", "quit"),
)

CLOSE = "escape or ? closes this help"

NOTES = (
    "Read-only: gpuwatch shows processes, it never signals them.\n"
    "! and words mark what needs a look (! stalled, ! queue-bound);\n"
    "! LOST, ! HUNG and DOWN mark what is broken. STALE on the top line:\n"
    "the source stopped answering; the data shown is from the time\n"
    "given, and gpuwatch keeps retrying."
)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 80;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        width = max(len(k) for k, _ in KEYS)
        lines = [f"{k:<{width}}  {v}" for k, v in KEYS]
        with VerticalScroll() as box:
            box.border_subtitle = CLOSE
            yield Static("gpuwatch top: keys · " + CLOSE + "\n\n" + "\n".join(lines) + "\n\n" + NOTES)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
