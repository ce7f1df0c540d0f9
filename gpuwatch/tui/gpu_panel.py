"""`GpuPanel`: one row per GPU, a sparkline of the chosen figure, and the cursor row's details.

Place in the flow: the node screen sets `snapshot` (each refresh), `sparks` (history of the
chosen figure, fetched by the screen in a worker) and `xids`; the panel only draws. A row is
marked by the GPU's findings in the snapshot (gpuwatch/assess/), never by its own reading. It asks for
a different sparkline figure with `GpuPanel.FigureChanged` and for a GPU's history view with
`GpuPanel.Opened`. The row fits 80 columns; wider terminals get the name, SM occupancy and PCIe
columns and a longer sparkline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from gpuwatch import model
from gpuwatch.text import findings, fmt
from gpuwatch.tui.cells import gpu_cells, gpu_detail, gpu_facts, host_line, mig_cells, mig_detail
from gpuwatch.tui.palette import Palette
from gpuwatch.tui.table import Column, Row, SyncTable, show_text

TALL_ROWS = 30
"""From this many terminal rows the panel has a host line (CPU, memory, swap, load) over the GPU
rows and a second detail line under them (PCI, UUID, modes)."""
SPARK_SECONDS = 120.0
"""How far back the GPU rows' sparklines reach."""


@dataclass(frozen=True, slots=True)
class Figure:
    series: str
    label: str


SPARK_FIGURES: tuple[Figure, ...] = (
    Figure("gpu_utilization_ratio", "utilization"),
    Figure("gpu_tensor_activity_ratio", "tensor activity"),
    Figure("gpu_dram_bandwidth_ratio", "DRAM bandwidth"),
    Figure("gpu_power_watts", "power"),
    Figure("gpu_temperature_celsius", "temperature"),
    Figure("gpu_memory_used_bytes", "memory used"),
    Figure("gpu_sm_clock_mhz", "SM clock"),
    Figure("gpu_nvlink_tx_bytes_per_second", "NVLink transmit"),
)

GPU_COLUMNS: tuple[Column, ...] = (
    Column("gpu", "GPU", 3, right=True),
    Column("name", "Name", 16, priority=6),
    Column("util", "Util", 4, right=True),
    Column("util_bar", "", 10, priority=8),  # wide terminals: bars, as nvitop draws them
    Column("tensor", "Tens", 4, right=True),
    Column("dram", "DRAM", 4, right=True),
    Column("occ", "Occ", 4, priority=5, right=True),
    Column("mem", "Mem GiB", 11, right=True),  # 140.4/140.4 on an H200
    Column("mem_bar", "", 10, priority=8),
    Column("temp", "Temp", 4, right=True),
    Column("power", "Power W", 7, right=True),
    Column("clock", "MHz", 4, right=True),
    Column("pcie", "PCIe", 19, priority=7),
    Column("flags", "State", 12),
    Column("spark", "History", 0, min_width=6),
)


def spark_range(
    figure: Figure, sample: model.GpuSample, info: model.GpuInfo | None
) -> tuple[float, float | None]:
    """The scale of a GPU's sparkline: the figure's natural full scale where one is known
    (a ratio's 1, the power cap, the memory size), else None for "the largest value shown"."""
    name = figure.series
    if name.endswith("_ratio"):
        return 0.0, 1.0
    if name == "gpu_power_watts":
        return 0.0, sample.power_limit_watts or (info.power_limit_max_watts if info else None)
    if name == "gpu_memory_used_bytes":
        return 0.0, float(sample.memory_total_bytes) if sample.memory_total_bytes else None
    if name == "gpu_sm_clock_mhz":
        return 0.0, float(info.max_sm_clock_mhz) if info and info.max_sm_clock_mhz else None
    if name == "gpu_nvlink_tx_bytes_per_second":
        speeds = [n.speed_bytes_per_second for n in sample.nvlinks if n.state is model.NvlinkState.UP]
        return 0.0, sum(s for s in speeds if s) or None  # the links that are up, at their speed
    if name == "gpu_temperature_celsius":
        slowdown = info.temperature_slowdown_celsius if info else None
        return 0.0, float(slowdown) if slowdown else 100.0
    return 0.0, None


class GpuPanel(Vertical):
    DEFAULT_CSS = """
    GpuPanel {
        height: auto;
    }
    GpuPanel > .panel-title {
        height: 1;
        background: $boost;
        text-style: bold;
    }
    GpuPanel > #host-line {
        height: 1;
        display: none;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    GpuPanel.-tall > #host-line {
        display: block;
    }
    GpuPanel > SyncTable {
        height: auto;
        max-height: 18;
    }
    GpuPanel > #gpu-note {
        height: auto;
        max-height: 3;
        display: none;
    }
    GpuPanel.-no-gpus > #gpu-note {
        display: block;
    }
    GpuPanel > #gpu-detail {
        height: 1;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    GpuPanel.-tall > #gpu-detail {
        height: 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "next_figure", "Sparkline figure"),
    ]

    snapshot: reactive[model.Snapshot | None] = reactive(None, init=False)
    sparks: reactive[dict[int, list[float | None]]] = reactive(dict, init=False)
    """GPU index → sparkline values, oldest first, one per character (None: no data)."""
    xids: reactive[dict[int, model.Event]] = reactive(dict, init=False)
    """GPU index → its most recent XID event, when recent enough to flag."""
    figure_index: reactive[int] = reactive(0, init=False)

    class FigureChanged(Message):
        def __init__(self, figure: Figure) -> None:
            super().__init__()
            self.figure = figure

    class Opened(Message):
        """The user asked for the history of one GPU: of the figure its sparkline shows."""

        def __init__(self, gpu_index: int, series: str) -> None:
            super().__init__()
            self.gpu_index = gpu_index
            self.series = series

    def __init__(self, palette: Palette, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette

    def compose(self) -> ComposeResult:
        yield Static(classes="panel-title", id="gpu-title")
        yield Static(id="host-line")
        yield SyncTable(GPU_COLUMNS, id="gpu-table")
        yield Static(id="gpu-note")
        yield Static(id="gpu-detail")

    @property
    def figure(self) -> Figure:
        return SPARK_FIGURES[self.figure_index]

    @property
    def spark_points(self) -> int:
        """Characters in the sparkline column now: how many points to ask history for."""
        for c in self.query_one(SyncTable).shown_columns:
            if c.key == "spark":
                return c.width
        return 8

    def validate_figure_index(self, value: int) -> int:
        return value % len(SPARK_FIGURES)

    def watch_snapshot(self) -> None:
        self._draw()

    def watch_sparks(self) -> None:
        self._draw()

    def watch_xids(self) -> None:
        self._draw()

    def watch_figure_index(self) -> None:
        self.sparks = {}
        self.post_message(self.FigureChanged(self.figure))

    def action_next_figure(self) -> None:
        self.figure_index += 1

    def action_open(self) -> None:
        key = self.query_one(SyncTable).cursor_key
        if key is not None:
            self.post_message(
                self.Opened(int(key.split(":")[0]), self.figure.series)
            )  # a MIG row opens its GPU

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._draw_detail()

    def _draw(self) -> None:
        snapshot = self.snapshot
        title = self.query_one("#gpu-title", Static)
        table = self.query_one(SyncTable)
        if snapshot is None:
            show_text(title, "GPUs · waiting for the first snapshot…", fixed_height=True)
            return
        figure = self.figure
        no_gpus = not snapshot.gpus and snapshot.nvml_status is not None
        self.set_class(no_gpus, "-no-gpus")
        if no_gpus:
            show_text(
                title,
                Text.assemble(("GPUs · ", ""), ("! no GPU data (try --demo)", self.palette.warn)),
                fixed_height=True,
            )
            self.query_one("#gpu-note", Static).update(snapshot.nvml_status or "")
            table.show_rows([])
            return
        else:
            span = fmt.duration(SPARK_SECONDS)
            show_text(
                title,
                f"GPUs · {len(snapshot.gpus)} · History: {figure.label}, last {span} (f)",
                fixed_height=True,
            )
        show_text(self.query_one("#host-line", Static), host_line(snapshot.host), fixed_height=True)
        info = {d.uuid: d for d in snapshot.devices}
        rows: list[Row] = []
        for g in snapshot.gpus:
            d = info.get(g.uuid)
            low, high = spark_range(figure, g, d)
            values = self.sparks.get(g.index, [])
            known = [v for v in values if v is not None]
            top = high if high is not None else (max(known) if known else 1.0)
            xid = self.xids.get(g.index)
            found = findings.of_gpu(snapshot.findings, g.index)
            if g.state is model.GpuState.UNAVAILABLE:
                found += [f for f in snapshot.findings if f.kind is model.FindingKind.NVML_UNAVAILABLE]
            spark = fmt.spark(values, low, top)
            rows.append(
                (str(g.index), gpu_cells(g, d, spark, xid.code if xid else None, self.palette, found=found))
            )
            migs = [m for m in snapshot.mig_devices if m.gpu_uuid == g.uuid]
            rows += [
                (f"{g.index}:{m.mig_index}", mig_cells(m, i == len(migs) - 1, self.palette))
                for i, m in enumerate(migs)
            ]
        table.show_rows(rows)
        self._draw_detail()

    def _draw_detail(self) -> None:
        snapshot = self.snapshot
        detail = self.query_one("#gpu-detail", Static)
        key = self.query_one(SyncTable).cursor_key
        if snapshot is None or key is None:
            show_text(detail, "", fixed_height=True)
            return
        mig = next((m for m in snapshot.mig_devices if f"{m.gpu_index}:{m.mig_index}" == key), None)
        if mig is not None:
            detail.update(Text(mig_detail(mig), no_wrap=True, overflow="ellipsis"))
            return
        sample = next((g for g in snapshot.gpus if str(g.index) == key), None)
        if sample is None:
            show_text(detail, "", fixed_height=True)
            return
        info = next((d for d in snapshot.devices if d.uuid == sample.uuid), None)
        text = gpu_detail(sample, info, self.xids.get(sample.index))
        if self.has_class("-tall"):  # a second line: the GPU's PCI bus id, UUID and modes
            text += "\n" + gpu_facts(sample, info)
        show_text(detail, Text(text, no_wrap=True, overflow="ellipsis"), fixed_height=True)

    def on_resize(self) -> None:
        tall = self.app.size.height >= TALL_ROWS
        if tall != self.has_class("-tall"):
            self.set_class(tall, "-tall")
            self._draw_detail()
