"""`TooSmallScreen`: what a terminal smaller than the dashboard's minimum shows instead.

Place in the flow: the app pushes it when the terminal shrinks below `MIN_SIZE` and pops it
when it grows back; the dashboard underneath keeps its data and keeps refreshing.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Center
from textual.geometry import Size
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Static

MIN_SIZE = Size(80, 24)


class TooSmallScreen(Screen[None]):
    DEFAULT_CSS = """
    TooSmallScreen {
        align: center middle;
    }
    TooSmallScreen Static {
        width: auto;
        text-align: center;
    }
    """

    terminal_size: reactive[Size] = reactive(Size(0, 0), init=False)

    def __init__(self, size: Size) -> None:
        super().__init__()
        self.set_reactive(TooSmallScreen.terminal_size, size)

    def compose(self) -> ComposeResult:
        with Center():
            yield Static(self._message(), id="too-small")

    def watch_terminal_size(self) -> None:
        self.query_one("#too-small", Static).update(self._message())

    def _message(self) -> str:
        size = self.terminal_size
        return (
            f"gpuwatch top needs a terminal of at least {MIN_SIZE.width}×{MIN_SIZE.height};\n"
            f"this one is {size.width}×{size.height}. Enlarge it, or press q to quit."
        )
