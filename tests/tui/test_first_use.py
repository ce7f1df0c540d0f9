"""What a new user hit on first use of `gpuwatch top` (issue 14), each driven through Pilot.

Each test reads what the screen shows (the composed screen's text, a table's cells, a widget's
state) after the keys a user presses, over the recorded node of tests/tui/scene.py.
"""

from __future__ import annotations

import itertools
import re
import time

import pytest
from textual.app import App
from textual.widgets import Input, OptionList, Static, TabbedContent

from gpuwatch.series import Point
from gpuwatch.tui.app import TopApp
from gpuwatch.tui.chart import ChartData, draw_chart, time_axis
from gpuwatch.tui.cluster_screen import ClusterScreen
from gpuwatch.tui.gpu_panel import SPARK_FIGURES, GpuPanel
from gpuwatch.tui.help_screen import HelpScreen
from gpuwatch.tui.history_view import HistoryView
from gpuwatch.tui.model_panel import ModelPanel
from gpuwatch.tui.node_screen import NodeScreen
from gpuwatch.tui.process_panel import ProcessPanel
from gpuwatch.tui.table import SyncTable
from gpuwatch.tui.too_small import TooSmallScreen
from tests.tui.conftest import settle
from tests.tui.scene import Scene, build_scene

pytestmark = pytest.mark.anyio


def make_app(scene: Scene) -> TopApp:
    return TopApp([scene.client()], refresh_seconds=0.1)


def screen_lines(app: App[None]) -> list[str]:
    """The screen as a user reads it: the composed lines of the top screen."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_the_filter_shows_what_is_typed_and_escape_clears_it(
    scene: Scene, size: tuple[int, int]
) -> None:
    async with make_app(scene).run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("2", "slash", *"svc")
        await settle(pilot)
        panel = pilot.app.screen.query_one("#processes-panel", ProcessPanel)
        box = panel.query_one(Input)
        assert box.has_focus and box.size.height == 1
        assert any("Filter / svc" in line for line in screen_lines(pilot.app)), screen_lines(pilot.app)
        total = len(scene.engine.latest().processes)  # type: ignore[union-attr]
        assert 0 < len(panel.table.row_keys) < total
        await pilot.press("escape")  # while typing
        await settle(pilot)
        assert (panel.filter_text, box.value, len(panel.table.row_keys)) == ("", "", total)
        await pilot.press("slash", *"alice", "enter")  # applied: the table has the focus
        await settle(pilot)
        assert panel.filter_text == "alice" and panel.table.has_focus
        await pilot.press("escape")
        await settle(pilot)
        assert (panel.filter_text, box.value, len(panel.table.row_keys)) == ("", "", total)
        assert isinstance(pilot.app.screen, NodeScreen)  # escape cleared, it did not leave


async def test_too_small_says_the_size_the_terminal_has_now(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        for width, height in ((60, 15), (70, 20), (79, 40)):
            await pilot.resize_terminal(width, height)
            await settle(pilot)
            assert isinstance(pilot.app.screen, TooSmallScreen)
            message = str(pilot.app.screen.query_one("#too-small", Static).render())
            assert f"this one is {width}×{height}" in message
        await pilot.resize_terminal(100, 30)
        await settle(pilot)
        assert isinstance(pilot.app.screen, NodeScreen)


def _labels(axis: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group()) for m in re.finditer(r"\S+", axis)]


@pytest.mark.parametrize(
    ("span", "width", "pattern"),
    [
        (604800.0, 28, r"\d\d-\d\d"),  # 7 d at 80 columns: 6 h a column
        (604800.0, 160, r"\d\d-\d\d"),
        (86400.0, 36, r"\d\d:\d\d"),
        (86400.0, 180, r"\d\d:\d\d"),
        (3600.0, 60, r"\d\d:\d\d"),
        (900.0, 45, r"\d\d:\d\d"),
    ],
)
def test_time_axis_labels_are_apart_round_and_never_past_now(
    utc: None, span: float, width: int, pattern: str
) -> None:
    now = 1764850000.0 + 37.0  # not on a round minute
    column = span / width
    end = (now // column + 1) * column  # the range ends at the end of the slot now is in
    start = end - span
    axis = time_axis(start, end, now, width)
    labels = _labels(axis)
    assert len(axis) <= width and len(labels) >= 2, axis
    for (at, text), (next_at, _) in itertools.pairwise(labels):
        assert at + len(text) < next_at, axis  # never touching, so never read as one
    for at, text in labels:
        assert re.fullmatch(pattern, text), axis
        moment = start + at / width * span
        if pattern.startswith(r"\d\d:"):
            # The label names the time of its column, and that time is not in the future.
            shown = time.strftime("%H:%M", time.gmtime(moment + column))
            assert text <= shown or text.startswith("23") or shown.startswith("00"), (text, shown, axis)
    last_at = labels[-1][0]
    assert start + last_at / width * span <= now
    # The labels spread over the range: the first in its first third.
    assert labels[0][0] < width / 3, axis


def test_the_chart_axis_in_full(utc: None) -> None:
    now = 1764850000.0
    start, end = now - 3600 + 30, now + 30
    points = tuple(Point(start + 60 * i, 0.5, 0.5, 0.5) for i in range(60))
    data = ChartData("gpu_utilization_ratio", start, end, 60, points, full_scale=1.0, now=now)
    axis = draw_chart(data, 69, 10, None).plain.splitlines()[-1]  # type: ignore[arg-type]
    assert time.strftime("%H:%M", time.gmtime(now + 60)) not in axis  # nothing after now


async def test_enter_on_a_gpu_opens_the_figure_its_sparkline_shows(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("f")  # the sparklines show tensor activity
        await settle(pilot)
        assert pilot.app.screen.query_one(GpuPanel).figure == SPARK_FIGURES[1]
        await pilot.press("down", "enter")
        await settle(pilot)
        view = pilot.app.screen.query_one(HistoryView)
        assert pilot.app.screen.query_one(TabbedContent).active == "history"
        assert view.subject is not None and view.subject.gpu_index == 1
        assert view.figure == "gpu_tensor_activity_ratio"
        assert view.request is not None and view.request.series == "gpu_tensor_activity_ratio"
        figures = view.query_one(OptionList)
        assert figures.highlighted is not None
        assert figures.get_option_at_index(figures.highlighted).id == "gpu_tensor_activity_ratio"
        # Back in the overview, the next figure; enter on GPU 0 opens that one.
        await pilot.press("1", "f", "up", "enter")
        await settle(pilot)
        assert view.subject is not None and view.subject.gpu_index == 0
        assert view.figure == SPARK_FIGURES[2].series


async def test_the_history_list_is_grouped_with_human_names_and_units(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        figures = pilot.app.screen.query_one(HistoryView).query_one(OptionList)
        options = [figures.get_option_at_index(i) for i in range(figures.option_count)]
        headings = [str(o.prompt) for o in options if o.disabled]
        assert headings[:3] == ["activity", "memory", "power and heat"]
        labels = [str(o.prompt).strip() for o in options if not o.disabled]
        assert "tensor IMMA activity (%)" in labels and "power (W)" in labels
        assert not any("_" in label or "…" in label for label in labels)  # whole, and not raw names
        lines = screen_lines(pilot.app)
        assert any("History · GPU 0 · utilization (%)" in line for line in lines)


async def test_cluster_keeps_node_ports_and_counts_one_gpu(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = build_scene(monkeypatch, gpus=2, faults=False, triton=False, hostname="gpu-node-02")
    clients = [scene.client("127.0.0.1:53517"), other.client("127.0.0.1:53518")]
    try:
        for width, names in (
            (80, ["127.0.0…:53517", "127.0.0…:53518"]),
            (200, ["127.0.0.1:53517", "127.0.0.1:53518"]),
        ):
            async with TopApp(clients, refresh_seconds=0.1).run_test(size=(width, 24)) as pilot:
                await settle(pilot)
                cluster = pilot.app.screen
                assert isinstance(cluster, ClusterScreen)
                table = cluster.query_one(SyncTable)
                assert [str(table.get_cell(str(i), "node")) for i in range(2)] == names
                title = str(cluster.query_one("#cluster-title", Static).render())
                assert "! 1 GPU not answering" in title  # GPU 3 of the first node
    finally:
        other.close()


async def test_wide_tables_give_names_their_room(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        widths = {
            c.key: c.width
            for c in pilot.app.screen.query_one("#overview-models", ModelPanel)
            .query_one(SyncTable)
            .shown_columns
        }
        assert widths["gpus"] <= 15 and widths["model"] >= 30 and widths["server"] > widths["gpus"]
        processes = pilot.app.screen.query_one("#overview-processes", ProcessPanel).table
        user = {c.key: c.width for c in processes.shown_columns}["user"]
        assert user >= 20
        assert {str(processes.get_cell(k, "user")) for k in processes.row_keys} == {"alice", "svc-infer"}


async def test_a_sort_in_the_overview_shows_its_top_and_holds_in_the_tab(
    utc: None, no_color_unset: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = build_scene(monkeypatch, gpus=8)  # 8 processes: more than the overview's pane holds
    try:
        await _sort_in_the_overview(scene)
    finally:
        scene.close()


async def _sort_in_the_overview(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        panel = pilot.app.screen.query_one("#overview-processes", ProcessPanel)
        panel.table.focus()
        await pilot.press(*["down"] * 7)  # the last process: the pane scrolls down to it
        await settle(pilot)
        assert panel.table.cursor_row > 0 and panel.table.scroll_y > 0
        await pilot.press("s")
        await settle(pilot)
        assert panel.sort == ("sm", True)
        assert panel.table.cursor_row == 0 and panel.table.scroll_y == 0
        await pilot.press("2")
        await settle(pilot)
        tab = pilot.app.screen.query_one("#processes-panel", ProcessPanel)
        assert tab.sort == ("sm", True) and tab.table.row_keys == panel.table.row_keys
        await pilot.press("r", "1")  # reversed in the tab: the overview follows
        await settle(pilot)
        assert panel.sort == ("sm", False) and panel.table.row_keys == tab.table.row_keys


async def test_help_says_how_to_close_it(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(pilot.app.screen, HelpScreen)
        text = str(pilot.app.screen.query_one(Static).render())
        assert "escape or ? closes this help" in text.splitlines()[0]


async def test_what_an_nvitop_user_looks_for(scene: Scene) -> None:
    """The GPU's PCI bus id, UUID and modes; each process's share of its GPU's memory and
    running time; bars for utilization and memory where there is room (issue 14 item 3)."""
    snapshot = scene.engine.latest()
    assert snapshot is not None
    async with make_app(scene).run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        host = str(screen.query_one("#host-line", Static).render())
        assert host == (
            "Host · CPU 23% of 64 cores · memory 253.0/2015.0 GiB · swap 0.0/0.0 GiB · load 14.6 13.9 12.2"
        )  # the recorded host (demo/processes.py), through the snapshot
        detail = str(screen.query_one("#gpu-detail", Static).render()).splitlines()
        info = snapshot.devices[0]
        assert info.pci_bus_id and info.pci_bus_id in detail[1] and snapshot.gpus[0].uuid in detail[1]
        assert "persistence on" in detail[1] and "MIG off" in detail[1]
        gpus = screen.query_one(GpuPanel).query_one(SyncTable)
        assert str(gpus.get_cell("1", "util_bar")) == "█" * 10  # GPU 1 at 100 %
        processes = screen.query_one("#overview-processes", ProcessPanel).table
        key = processes.row_keys[0]
        process = next(p for p in snapshot.processes if f"{p.pid}@{p.gpu_index}" == key)
        gpu = next(g for g in snapshot.gpus if g.index == process.gpu_index)
        assert process.used_memory_bytes and gpu.memory_total_bytes and process.started_at
        share = round(100 * process.used_memory_bytes / gpu.memory_total_bytes)
        assert str(processes.get_cell(key, "share")).strip() == f"{share}%"
        # The host's side, through the model (demo/processes.py's figures for a serve.py).
        assert (process.cpu_ratio, process.host_memory_bytes) == (1.02, int(6.2 * 1024**3))
        assert str(processes.get_cell(key, "cpu")).strip() == "102%"
        assert str(processes.get_cell(key, "rss")).strip() == "6.2 GiB"
        running = int(snapshot.timestamp - process.started_at)
        hours, rest = divmod(running, 3600)
        assert 0 < hours < 24
        assert str(processes.get_cell(key, "time")).strip() == f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    async with make_app(scene).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        detail = str(pilot.app.screen.query_one("#gpu-detail", Static).render())
        assert "\n" not in detail  # 24 rows: one line, the rows keep their room


async def test_a_new_snapshot_does_not_redraw_the_whole_screen(scene: Scene) -> None:
    """Each refresh repaints what changed (cells, a title), not the whole screen: a screen-wide
    repaint each second was most of `top`'s redraw cost (issue 14 item 1)."""
    async with make_app(scene).run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        compositor = pilot.app.screen._compositor
        full = compositor.render_full_update
        calls: list[int] = []

        def counted(*args: object, **kwargs: object) -> object:
            calls.append(1)
            return full(*args, **kwargs)  # type: ignore[arg-type]

        compositor.render_full_update = counted  # type: ignore[method-assign]
        before = pilot.app.screen.query_one(GpuPanel).snapshot
        for _ in range(3):
            scene.run(1)
            await pilot.pause(0.3)
            await settle(pilot)
        assert pilot.app.screen.query_one(GpuPanel).snapshot is not before  # new data came
        assert calls == []
