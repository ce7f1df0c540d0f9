"""`ModelPanel`: one row per Triton model version: state, rates, batching, queueing, GPUs.

Place in the flow: the node screen sets `snapshot`; the panel draws the models of every
server in it. It tells the screen which model is under the cursor (`ModelPanel.Highlighted`,
for the detail pane) and which one the user opened (`ModelPanel.Opened`, for its history).
A model with a finding (gpuwatch/assess/) reads "!" and its words in the state column
("! stalled", "! queue-bound", "! failing 30%"); the title counts the models' findings.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from gpuwatch import model
from gpuwatch.text import ensembles, findings
from gpuwatch.tui.cells import all_models, model_cells, model_key, triton_note
from gpuwatch.tui.palette import Palette
from gpuwatch.tui.table import Column, SyncTable, show_text

MODEL_COLUMNS: tuple[Column, ...] = (
    Column("model", "Model", 14, wide=32),
    Column("state", "State", 14),
    Column("requests", "OK/s", 6, right=True),  # successes only: Triton's request_success
    Column("failures", "Fail/s", 7, right=True),
    Column("batch", "Batch/max", 12),
    Column("queue", "Queue", 8, priority=3, right=True),
    Column("compute", "Compute", 8, priority=4, right=True),
    Column("queue_share", "Q%", 4, right=True),
    Column("pending", "Pend", 4, right=True),
    Column("gpus", "GPUs", 7, wide=15),
    # The stretchy column: a wide terminal's room goes to the server's name, not to "0,1".
    Column("server", "Server", 0, priority=5, min_width=10),
)


class ModelPanel(Vertical):
    DEFAULT_CSS = """
    ModelPanel {
        height: 1fr;
    }
    ModelPanel > .panel-title {
        height: 1;
        background: $boost;
        text-style: bold;
    }
    """

    snapshot: reactive[model.Snapshot | None] = reactive(None, init=False)

    class Highlighted(Message):
        def __init__(self, panel: ModelPanel, stats: model.ModelStats | None) -> None:
            super().__init__()
            self.panel = panel
            self.stats = stats

    class Opened(Message):
        def __init__(self, stats: model.ModelStats) -> None:
            super().__init__()
            self.stats = stats

    def __init__(self, palette: Palette, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette

    def compose(self) -> ComposeResult:
        yield Static(classes="panel-title")
        yield SyncTable(MODEL_COLUMNS)

    @property
    def table(self) -> SyncTable:
        return self.query_one(SyncTable)

    def selected(self) -> model.ModelStats | None:
        key = self.table.cursor_key
        if self.snapshot is None or key is None:
            return None
        return next((m for m in all_models(self.snapshot) if model_key(m) == key), None)

    def watch_snapshot(self) -> None:
        title = self.query_one(".panel-title", Static)
        snapshot = self.snapshot
        if snapshot is None:
            show_text(title, "Models", fixed_height=True)
            return
        rows = [
            (prefix, m)
            for server in sorted(snapshot.triton, key=lambda s: s.name)
            for prefix, m in ensembles.model_tree(server.models)
        ]
        models = [m for _, m in rows]
        note = triton_note(snapshot)
        found = {model_key(m): findings.of_model(snapshot.findings, m) for m in models}
        needing = sum(1 for f in found.values() if f)
        parts = [f"Models · {len(models)}"]
        if needing:
            parts.append(f"! {needing} {'needs' if needing == 1 else 'need'} a look")
        if note:
            parts.append(note)
        show_text(title, " · ".join(parts), fixed_height=True)
        self.table.show_rows(
            [(model_key(m), model_cells(m, self.palette, prefix, found[model_key(m)])) for prefix, m in rows]
        )
        self.post_message(self.Highlighted(self, self.selected()))

    def action_open(self) -> None:
        stats = self.selected()
        if stats is not None:
            self.post_message(self.Opened(stats))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.Highlighted(self, self.selected()))
