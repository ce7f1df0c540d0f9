"""The baseline for bench/tui_bench.py: the least a Textual app can do that looks like a dashboard.

One DataTable that fills the terminal, every cell rewritten on each refresh, nothing else: no
engine, no history, no workers. `gpuwatch top` is measured against it in the same run, so the
ratio says what gpuwatch costs beyond Textual itself redrawing a screenful of numbers.

    python bench/table_app.py --interval 1
"""

from __future__ import annotations

import argparse
import itertools

from textual.app import App, ComposeResult
from textual.widgets import DataTable

COLUMNS = 8


class TableApp(App[None]):
    BINDINGS = [("q", "quit", "Quit")]  # noqa: RUF012 - Textual's own idiom

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.interval = interval
        self.ticks = itertools.count()

    def compose(self) -> ComposeResult:
        yield DataTable[str](cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        width = max(6, self.size.width // COLUMNS - 2)
        table.add_column("baseline", width=width, key="c0")
        for c in range(1, COLUMNS):
            table.add_column(f"col{c}", width=width, key=f"c{c}")
        for r in range(max(1, self.size.height - 1)):
            table.add_row(*(str(r * COLUMNS + c) for c in range(COLUMNS)), key=str(r))
        self.set_interval(self.interval, self.redraw)

    def redraw(self) -> None:
        table = self.query_one(DataTable)
        tick = next(self.ticks)
        for r in range(table.row_count):
            for c in range(COLUMNS):
                table.update_cell(str(r), f"c{c}", f"{(tick * 7 + r * 13 + c) % 1000:>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=1.0)
    TableApp(parser.parse_args().interval).run()


if __name__ == "__main__":
    main()
