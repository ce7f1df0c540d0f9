"""`ProcessPanel`: the processes holding a GPU, sortable by any column and filtered by text.

Place in the flow: the node screen sets `snapshot` each refresh; the panel sorts, filters and
draws. Read-only by design: it shows who is on a GPU and with what command, and offers no way
to signal a process. The compact form (the overview) is a plain list by GPU memory; the full
form adds the filter box and the whole command line of the row under the cursor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Input, Static

from gpuwatch import model
from gpuwatch.text import fmt
from gpuwatch.tui.cells import process_cells, process_command
from gpuwatch.tui.palette import Palette
from gpuwatch.tui.table import Column, SyncTable, show_text

PROCESS_COLUMNS: tuple[Column, ...] = (
    Column("pid", "PID", 7, right=True),
    Column("user", "User", 10, wide=20),
    Column("container", "Container", 12, priority=3),
    Column("gpu", "GPU", 3, right=True),
    Column("memory", "GPU mem", 8, right=True),
    Column("share", "Mem%", 4, priority=4, right=True),  # of its GPU's memory
    Column("sm", "SM", 4, right=True),
    Column("cpu", "CPU", 5, priority=5, right=True),  # host CPU, 100% = one core
    Column("rss", "RSS", 8, priority=5, right=True),  # host memory
    Column("time", "Time", 8, priority=2, right=True),  # running time, as ps prints it
    Column("command", "Command", 0, min_width=16),
)
POD_COLUMNS: tuple[Column, ...] = tuple(
    dataclasses.replace(c, width=24) if c.key == "container" else c for c in PROCESS_COLUMNS
)
"""The same, with room for `namespace/pod` when a process shown runs in a known pod."""


@dataclass(frozen=True, slots=True)
class SortKey:
    column: str
    label: str
    key: Callable[[model.ProcessSample], Any]
    descending_first: bool
    """Big numbers first on the first press (memory, SM); names and ids ascending."""


def _num(value: float | int | None) -> float:
    return -1.0 if value is None else float(value)  # unknown sorts below every real value


SORTS: tuple[SortKey, ...] = (
    SortKey("memory", "GPU mem", lambda p: (_num(p.used_memory_bytes), -p.pid), True),
    SortKey("sm", "SM", lambda p: (_num(p.sm_utilization_ratio), -p.pid), True),
    SortKey("cpu", "CPU", lambda p: (_num(p.cpu_ratio), -p.pid), True),
    SortKey("rss", "RSS", lambda p: (_num(p.host_memory_bytes), -p.pid), True),
    # Longest running first (earliest start); a process whose start is unknown last.
    SortKey("time", "Time", lambda p: (p.started_at is None, p.started_at or 0.0, p.pid), False),
    SortKey("gpu", "GPU", lambda p: (p.gpu_index, p.pid), False),
    SortKey("pid", "PID", lambda p: p.pid, False),
    SortKey("user", "User", lambda p: (p.user or "", p.pid), False),
    SortKey("container", "Container", lambda p: (fmt.container_of(p) or "", p.pid), False),
    SortKey("command", "Command", lambda p: (process_command(p), p.pid), False),
)
_SORT_BY_COLUMN = {s.column: s for s in SORTS}


def matches(p: model.ProcessSample, needle: str) -> bool:
    """Case-insensitive substring of the pid, user, container id, pod (`namespace/pod`), GPU or
    command line."""
    if not needle:
        return True
    pod = f"{p.pod.label()} {p.pod.container}" if p.pod else ""
    hay = " ".join(
        (str(p.pid), p.user or "", p.container_id or "", pod, f"gpu{p.gpu_index}", process_command(p))
    ).lower()
    return needle.lower() in hay


class ProcessPanel(Vertical):
    DEFAULT_CSS = """
    ProcessPanel {
        height: 1fr;
    }
    ProcessPanel > .panel-title {
        height: 1;
        background: $boost;
        text-style: bold;
    }
    ProcessPanel > #filter-row {
        height: 1;
    }
    ProcessPanel #filter-label {
        width: auto;
        padding: 0 1;
        color: $text-muted;
    }
    ProcessPanel #process-filter {
        width: 1fr;
    }
    ProcessPanel > #process-command {
        height: auto;
        max-height: 3;
        color: $text-muted;
    }
    ProcessPanel.-compact > #filter-row, ProcessPanel.-compact > #process-command {
        display: none;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("s", "next_sort", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("escape", "clear_filter", "Clear filter"),
    ]

    snapshot: reactive[model.Snapshot | None] = reactive(None, init=False)
    sort_column: reactive[str] = reactive("memory", init=False)
    sort_descending: reactive[bool] = reactive(True, init=False)
    filter_text: reactive[str] = reactive("", init=False)

    class SortChanged(Message):
        """The user chose a sort here: the screen gives it to the node's other process list."""

        def __init__(self, column: str, descending: bool) -> None:
            super().__init__()
            self.column = column
            self.descending = descending

    def __init__(self, palette: Palette, *, compact: bool = False, id: str | None = None) -> None:
        super().__init__(id=id, classes="-compact" if compact else None)
        self.palette = palette
        self.compact = compact
        self._to_top = False
        """The order changed by the user's hand: show its top (cursor on the first row)."""

    @property
    def sort(self) -> tuple[str, bool]:
        return self.sort_column, self.sort_descending

    def set_sort(self, column: str, descending: bool) -> None:
        """Take a sort chosen elsewhere (the other process list of the node), without telling."""
        if (column, descending) == self.sort:
            return
        self.set_reactive(ProcessPanel.sort_column, self.validate_sort_column(column))
        self.set_reactive(ProcessPanel.sort_descending, descending)
        self._to_top = True
        if self.is_mounted:
            self._draw()

    def compose(self) -> ComposeResult:
        yield Static(classes="panel-title")
        # compact: no border, so the one row is the text itself (a bordered Input in one row
        # shows only its borders while it has focus).
        with Horizontal(id="filter-row"):
            yield Static("Filter /", id="filter-label")
            yield Input(
                placeholder="pid, user, container, gpuN or command text · escape clears",
                id="process-filter",
                compact=True,
            )
        yield SyncTable(PROCESS_COLUMNS)
        yield Static(id="process-command")

    @property
    def table(self) -> SyncTable:
        return self.query_one(SyncTable)

    def validate_sort_column(self, value: str) -> str:
        return value if value in _SORT_BY_COLUMN else "memory"

    def watch_snapshot(self) -> None:
        self._draw()

    def watch_sort_column(self, column: str) -> None:
        self._to_top = True
        descending = _SORT_BY_COLUMN[column].descending_first
        if descending == self.sort_descending:
            self._sorted()
        self.sort_descending = descending

    def watch_sort_descending(self) -> None:
        self._to_top = True
        self._sorted()

    def _sorted(self) -> None:
        self._draw()
        self.post_message(self.SortChanged(self.sort_column, self.sort_descending))

    def watch_filter_text(self) -> None:
        self._draw()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The overview's compact list has no filter box: the Processes tab has.
        if action == "clear_filter":
            # Only while there is something to clear: else escape goes on up (back to the cluster).
            return not self.compact and bool(self.filter_text or self.query_one(Input).value)
        return not (self.compact and action == "filter")

    def action_filter(self) -> None:
        self.query_one(Input).focus()

    def action_next_sort(self) -> None:
        columns = [s.column for s in SORTS]
        self.sort_column = columns[(columns.index(self.sort_column) + 1) % len(columns)]

    def action_clear_filter(self) -> None:
        self.query_one(Input).value = ""
        self.filter_text = ""
        self.table.focus()

    def action_reverse(self) -> None:
        self.sort_descending = not self.sort_descending

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter_text = event.value.strip()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = str(event.column_key.value)
        if column == self.sort_column:
            self.action_reverse()
        elif column in _SORT_BY_COLUMN:
            self.sort_column = column

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._draw_command()

    def visible_processes(self) -> list[model.ProcessSample]:
        if self.snapshot is None:
            return []
        sort = _SORT_BY_COLUMN[self.sort_column]
        chosen = [p for p in self.snapshot.processes if matches(p, self.filter_text)]
        return sorted(chosen, key=sort.key, reverse=self.sort_descending)

    def _draw(self) -> None:
        title = self.query_one(".panel-title", Static)
        if self.snapshot is None:
            show_text(title, "Processes", fixed_height=True)
            return
        shown = self.visible_processes()
        total = len(self.snapshot.processes)
        arrow = "↓" if self.sort_descending else "↑"
        parts = [f"Processes · {len(shown)} of {total}" if self.filter_text else f"Processes · {total}"]
        parts.append(f"by {_SORT_BY_COLUMN[self.sort_column].label} {arrow}")
        if self.filter_text:
            parts.append(f"filter “{self.filter_text}”")
        show_text(title, " · ".join(parts), fixed_height=True)
        pal = self.palette
        table = self.table
        table.declare(POD_COLUMNS if any(p.pod for p in shown) else PROCESS_COLUMNS)
        memory = {g.index: g.memory_total_bytes for g in self.snapshot.gpus}
        now = self.snapshot.timestamp
        table.show_rows(
            [(f"{p.pid}@{p.gpu_index}", process_cells(p, pal, memory.get(p.gpu_index), now)) for p in shown]
        )
        if self._to_top:
            self._to_top = False
            if table.row_count:
                table.move_cursor(row=0, animate=False)
            table.scroll_home(animate=False, immediate=True)
        self._draw_command()

    def _draw_command(self) -> None:
        if self.compact:
            return
        line = self.query_one("#process-command", Static)
        key = self.table.cursor_key
        process = next((p for p in self.visible_processes() if f"{p.pid}@{p.gpu_index}" == key), None)
        if process is None:
            show_text(line, "")
            return
        pod = process.pod
        where = f" in pod {pod.label()} container {pod.container or fmt.MISSING}" if pod else ""
        show_text(
            line,
            Text.assemble(
                (f"PID {process.pid} on GPU {process.gpu_index}{where}: ", "bold"),
                process_command(process),
            ),
        )
