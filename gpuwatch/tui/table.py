"""`SyncTable`: a DataTable that is handed whole row sets and changes only what changed.

Place in the flow: every panel turns the latest snapshot into (key, cells) rows and hands them
here once per refresh. When the keys are the same as last time only the cells that differ are
updated (the common case: same GPUs, same processes, new numbers); when rows come or go or the
order changes the table is rebuilt and the cursor stays on the same row key. Columns are
declared with a priority, so a narrow terminal drops the least useful ones first and a wide one
gives the stretchy column (a command line, a message) the rest of the width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rich.text import Text
from textual import events
from textual.widgets import DataTable, Static

Cell = str | Text
Row = tuple[str, Sequence[Cell]]
"""A row key (unique in the table) and one cell per declared column."""


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int
    """Content width in cells; 0 for the one stretchy column, which takes what is left."""
    priority: int = 0
    """Columns with the highest priority number are dropped first when the width is short."""
    right: bool = False
    min_width: int = 8
    """For the stretchy column: narrower than this and it is dropped."""
    wide: int = 0
    """Wider than `width` when the terminal has room: the width it grows to while the
    stretchy column keeps twice its `min_width` (a user name, a model name)."""
    keep_end: bool = False
    """A text too long loses its middle, not its end (a node's port)."""


def cut(text: Text, width: int, keep_end: bool = False) -> Text:
    """`text` in at most `width` cells, with an ellipsis where it was cut."""
    if text.cell_len <= width:
        return text
    if not keep_end or width < 5:
        text = text.copy()
        text.truncate(width, overflow="ellipsis")
        return text
    tail = (width - 1) // 2
    plain = text.plain
    return Text.assemble(text[: width - 1 - tail], "…", text[len(plain) - tail :])


def fit_columns(columns: Sequence[Column], width: int, padding: int = 1) -> list[Column]:
    """The columns that fit in `width`, in declared order, the stretchy one widened."""
    chosen = list(columns)
    while chosen:
        fixed = sum(c.width + 2 * padding for c in chosen if c.width)
        stretchy = [c for c in chosen if not c.width]
        room = width - fixed - 2 * padding * len(stretchy)
        if room >= sum(c.min_width for c in stretchy):
            break
        drop = max(chosen, key=lambda c: c.priority)
        if drop.priority == 0:
            break  # nothing left that may go: let the table scroll
        chosen.remove(drop)
    fixed = sum(c.width + 2 * padding for c in chosen if c.width)
    stretchy = [c for c in chosen if not c.width]
    growth = sum(c.wide - c.width for c in chosen if c.width and c.wide > c.width)
    keep = 2 * sum(c.min_width for c in stretchy)  # the stretchy column first keeps twice its least
    if growth and width - fixed - growth - 2 * padding * len(stretchy) >= keep:
        chosen = [replace(c, width=c.wide) if c.width and c.wide > c.width else c for c in chosen]
        fixed += growth
    if stretchy:
        share = max(min(c.min_width for c in stretchy), (width - fixed) // len(stretchy) - 2 * padding)
        chosen = [replace(c, width=share) if not c.width else c for c in chosen]
    return chosen


def show_text(widget: Static, content: Cell, *, fixed_height: bool = False) -> None:
    """Give a Static new content only when it differs from what it shows: an update costs the
    screen a layout pass (the whole screen redrawn), and most lines (titles, the host line) say
    the same from one refresh to the next. `fixed_height`: the widget's height never follows
    its text (a one-row title), so even a change needs no layout pass, only a repaint."""
    if getattr(widget, "_gpuwatch_shown", None) == content:
        return
    widget._gpuwatch_shown = content  # type: ignore[attr-defined]
    widget.update(content, layout=not fixed_height)


class SyncTable(DataTable[Cell]):
    """A read-only row table fed with whole row sets (see the module docstring)."""

    DEFAULT_CSS = """
    SyncTable {
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(
        self, columns: Sequence[Column], *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self._declared = tuple(columns)
        self._shown: list[Column] = []
        self._keys: list[str] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._rows: list[Row] = []

    @property
    def shown_columns(self) -> list[Column]:
        return list(self._shown)

    @property
    def row_keys(self) -> list[str]:
        return list(self._keys)

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor, or None for an empty table."""
        if not self._keys or not 0 <= self.cursor_row < len(self._keys):
            return None
        return self._keys[self.cursor_row]

    def declare(self, columns: Sequence[Column]) -> None:
        """Change the declared columns (same keys, other widths); laid out anew on the next rows."""
        columns = tuple(columns)
        if columns != self._declared:
            self._declared = columns
            self._shown = []

    def show_rows(self, rows: Sequence[Row]) -> None:
        self._rows = list(rows)
        if not self._shown:
            self._relayout()
            return
        self._apply()

    def on_resize(self, event: events.Resize) -> None:
        self._relayout()

    def _relayout(self) -> None:
        width = self.scrollable_content_region.width or self.size.width
        if width <= 0:
            return
        columns = fit_columns(self._declared, width - 1, self.cell_padding)  # 1: the scrollbar
        if columns == self._shown:
            return
        self._shown = columns
        cursor = self.cursor_key
        self.clear(columns=True)
        self._keys, self._cells = [], {}
        for c in columns:
            label = Text(c.label, justify="right" if c.right else "left", no_wrap=True)
            self.add_column(label, width=c.width, key=c.key)
        self._apply(cursor)

    def _apply(self, cursor: str | None = None) -> None:
        index = {c.key: i for i, c in enumerate(self._declared)}
        picks = [index[c.key] for c in self._shown]
        rows = [
            (key, tuple(self._fit(cells[i], c) for i, c in zip(picks, self._shown, strict=True)))
            for key, cells in self._rows
        ]
        keys = [key for key, _ in rows]
        if keys == self._keys:
            for key, cells in rows:
                old = self._cells.get(key)
                if old == cells:
                    continue
                for col, (new, was) in enumerate(zip(cells, old or (), strict=False)):
                    if new != was:
                        self.update_cell(key, self._shown[col].key, new)
                self._cells[key] = cells
            return
        cursor = cursor if cursor is not None else self.cursor_key
        at = self.cursor_row
        self.clear()
        self._keys = keys
        self._cells = dict(rows)
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if not keys:
            return
        if cursor is not None and cursor in self._cells:
            self.move_cursor(row=keys.index(cursor), animate=False)
        else:
            self.move_cursor(row=min(max(at, 0), len(keys) - 1), animate=False)

    @staticmethod
    def _fit(cell: Cell, column: Column) -> Cell:
        text = cell if isinstance(cell, Text) else Text(cell)
        if column.right:
            text = text.copy()
            text.justify = "right"
        return cut(text, column.width, column.keep_end)
