"""What a user does with the dashboard, driven through Textual's Pilot over the recorded node.

Each test asserts what the screen holds after the keys (row order, rows kept by a filter, the
command line shown, the tab open, the history fetched), against the node's own snapshot and
history: nothing here is a stand-in for gpuwatch's logic.
"""

from __future__ import annotations

import pytest
from textual.widgets import Static, TabbedContent

from gpuwatch import model
from gpuwatch.client.inprocess import InProcessClient
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.engine import Engine
from gpuwatch.series import MemoryHistory
from gpuwatch.tui.app import TopApp
from gpuwatch.tui.chart import Chart, draw_chart
from gpuwatch.tui.cluster_screen import ClusterScreen
from gpuwatch.tui.events_panel import EventsPanel
from gpuwatch.tui.feed import Feed
from gpuwatch.tui.gpu_panel import SPARK_FIGURES, GpuPanel
from gpuwatch.tui.help_screen import HelpScreen
from gpuwatch.tui.history_view import RANGES, HistoryView
from gpuwatch.tui.model_detail import ModelDetail
from gpuwatch.tui.model_panel import ModelPanel
from gpuwatch.tui.node_header import NodeHeader
from gpuwatch.tui.node_screen import NodeScreen
from gpuwatch.tui.process_panel import ProcessPanel
from gpuwatch.tui.table import SyncTable
from gpuwatch.tui.too_small import TooSmallScreen
from tests.conftest import ManualClock, make_collector
from tests.tui.conftest import settle
from tests.tui.scene import SCENE_NVML, Scene, build_scene

pytestmark = pytest.mark.anyio  # anyio (an httpx dependency) runs the async tests


def make_app(scene: Scene, **kwargs: object) -> TopApp:
    return TopApp([scene.client()], refresh_seconds=0.1, **kwargs)  # type: ignore[arg-type]


def process_keys(snapshot: model.Snapshot, key: object, reverse: bool) -> list[str]:
    ordered = sorted(snapshot.processes, key=key, reverse=reverse)  # type: ignore[arg-type]
    return [f"{p.pid}@{p.gpu_index}" for p in ordered]


def text_of(widget: Static) -> str:
    return str(widget.render())


async def test_processes_sort_by_any_column(scene: Scene) -> None:
    snapshot = scene.engine.latest()
    assert snapshot is not None and len(snapshot.processes) >= 4
    async with make_app(scene).run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        panel = pilot.app.screen.query_one("#processes-panel", ProcessPanel)
        table = panel.query_one(SyncTable)

        def by_memory(p: model.ProcessSample) -> object:
            return (p.used_memory_bytes or -1, -p.pid)

        assert table.row_keys == process_keys(snapshot, by_memory, True)
        await pilot.press("s")  # next column: SM, busiest first
        assert panel.sort_column == "sm"
        assert table.row_keys == process_keys(
            snapshot, lambda p: (p.sm_utilization_ratio or -1, -p.pid), True
        )
        await pilot.press("r")
        assert table.row_keys == process_keys(
            snapshot, lambda p: (p.sm_utilization_ratio or -1, -p.pid), False
        )
        # A click on a header sorts by that column; a second click reverses it.
        await pilot.click("#processes-panel SyncTable", offset=(3, 0))  # the PID header
        await pilot.pause()
        assert panel.sort_column == "pid"
        assert table.row_keys == process_keys(snapshot, lambda p: p.pid, False)
        await pilot.click("#processes-panel SyncTable", offset=(3, 0))
        await pilot.pause()
        assert table.row_keys == process_keys(snapshot, lambda p: p.pid, True)
        assert "by PID ↓" in text_of(panel.query_one(".panel-title", Static))


async def test_processes_filter_and_whole_command_line(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("2", "slash", *"alice", "enter")
        await settle(pilot)
        panel = pilot.app.screen.query_one("#processes-panel", ProcessPanel)
        shown = panel.visible_processes()
        assert shown and all(p.user == "alice" for p in shown)
        assert len(panel.query_one(SyncTable).row_keys) == len(shown)
        title = text_of(panel.query_one(".panel-title", Static))
        assert f"{len(shown)} of 4" in title and "alice" in title
        # The table cuts the command at 80 columns; the line under it shows all of it.
        await pilot.press("down")
        key = panel.query_one(SyncTable).cursor_key
        process = next(p for p in shown if f"{p.pid}@{p.gpu_index}" == key)
        assert process.command is not None and len(process.command) > 30
        line = text_of(panel.query_one("#process-command", Static))
        assert process.command.split()[-1] in line and str(process.pid) in line
        # Filtering by GPU, then clearing the filter, brings every process back.
        await pilot.press("slash", *("backspace" for _ in "alice"), *"gpu2", "enter")
        assert {p.gpu_index for p in panel.visible_processes()} == {2}
        await pilot.press("slash", *("backspace" for _ in "gpu2"), "enter")
        assert len(panel.query_one(SyncTable).row_keys) == 4


async def test_panels_switch_with_number_keys(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        tabs = pilot.app.screen.query_one(TabbedContent)
        for key, tab in zip("23451", ("processes", "models", "history", "events", "overview"), strict=True):
            await pilot.press(key)
            await settle(pilot)
            assert tabs.active == tab
        # A panel shown later gets the latest snapshot when its tab opens.
        assert pilot.app.screen.query_one("#models-panel", ModelPanel).snapshot is scene.engine.latest()


async def test_gpu_rows_flag_power_cap_xid_and_lost(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = pilot.app.screen.query_one(GpuPanel).query_one(SyncTable)
        flags = [str(table.get_cell(key, "flags")) for key in table.row_keys]
        # GPU 1 has been power capped for 12 s of the matmul, less than its finding's onset (30 s):
        # NVML's words, unmarked; GPU 3's loss is a finding.
        assert flags[1] == "power cap"
        assert flags[2].startswith("XID 31")
        assert flags[3] == "! LOST"
        assert str(table.get_cell("3", "util")) == "—"
        # The lost GPU's reason is on the detail line when the cursor is on it.
        await pilot.press("down", "down", "down")
        detail = text_of(pilot.app.screen.query_one("#gpu-detail", Static))
        assert "LOST: GPU is lost" in detail


async def test_sparkline_figure_follows_history(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        panel = pilot.app.screen.query_one(GpuPanel)
        utilization = dict(panel.sparks)
        assert utilization[1] and any(v is not None for v in utilization[1])
        await pilot.press("f")
        await settle(pilot)
        assert panel.figure == SPARK_FIGURES[1]
        assert "tensor activity" in text_of(panel.query_one("#gpu-title", Static))
        # GPU 2 ran the memory copy at full utilization and no tensor work: the two lines differ.
        assert panel.sparks[2] != utilization[2]
        known = [v for v in panel.sparks[2] if v is not None]
        assert known and min(known) < 0.05


async def test_history_range_and_events(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down", "enter")  # GPU 3, the lost one
        await settle(pilot)
        screen = pilot.app.screen
        assert screen.query_one(TabbedContent).active == "history"
        view = screen.query_one(HistoryView)
        assert view.subject is not None and view.subject.gpu_index == 3
        chart = screen.query_one(Chart)
        assert chart.data is not None and chart.data.points
        # the GPU's own event, and its finding's beginning (the history view marks both)
        assert sorted(e.kind for e in chart.data.events) == [
            model.EventKind.FINDING_BEGAN,
            model.EventKind.GPU_LOST,
        ]
        assert all(e.gpu_index == 3 for e in chart.data.events)
        drawn = draw_chart(chart.data, 60, 12, chart.bar_style).plain.splitlines()
        assert "L" in drawn[-2]  # the event row
        spans = []
        for _ in RANGES:
            assert view.request is not None
            spans.append(view.request.end - view.request.start)
            await pilot.press("t")
            await settle(pilot)
        assert [round(s / r[0], 1) for s, r in zip(spans, RANGES, strict=True)] == [1.0] * 4
        assert view.range_index == 0  # back to 15 min after 7 d
        # The next subject after the last GPU is the first model: its own figures, no events.
        await pilot.press("g")
        await settle(pilot)
        assert view.subject is not None and view.subject.model == "resnet50"
        assert view.figure == "model_requests_per_second"
        assert chart.data is not None and chart.data.points and chart.data.events == ()


async def test_model_select_shows_histogram_config_and_opens_history(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        screen = pilot.app.screen
        panel = screen.query_one("#models-panel", ModelPanel)
        detail = screen.query_one(ModelDetail)
        assert panel.selected() is not None and panel.selected().name == "bert-large"  # type: ignore[union-attr]
        info = text_of(detail.query_one("#model-info", Static))
        assert "! critical failing 1" in info and "REJECTED 12.5/s" in info
        bars = text_of(detail.query_one("#model-histogram", Static))
        assert "16*" in bars and "11" in bars  # size 16 is preferred; size 8 ran 11 times
        await pilot.press("down", "down")  # resnet50
        await settle(pilot)
        assert detail.stats is not None and detail.stats.name == "resnet50"
        info = text_of(detail.query_one("#model-info", Static))
        assert "preferred 4, 8" in info and "2 × KIND_GPU on GPU 0, 1" in info
        assert detail.history.get("model_requests_per_second")
        await pilot.press("enter")
        await settle(pilot)
        view = screen.query_one(HistoryView)
        assert screen.query_one(TabbedContent).active == "history"
        assert view.subject is not None and view.subject.model == "resnet50"
        assert view.figure == "model_requests_per_second"
        data = screen.query_one(Chart).data
        assert data is not None and data.points
        assert 340 < max(p.mean for p in data.points) < 480


async def test_source_goes_stale_then_recovers(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        header = screen.query_one(NodeHeader)
        before = screen.query_one(GpuPanel).query_one(SyncTable).row_keys
        last = scene.engine.latest()
        scene.clock.advance(20)  # the engine stops ticking
        await pilot.pause(0.3)
        await settle(pilot)
        assert header.problem is not None and "no new snapshot for 20 s" in header.problem
        assert "STALE" in header.render().plain
        assert header.snapshot is last  # the last data stays on screen
        assert screen.query_one(GpuPanel).query_one(SyncTable).row_keys == before
        scene.run(1)  # it ticks again: the next poll finds it
        await pilot.pause(0.3)
        await settle(pilot)
        assert header.problem is None
        assert "LIVE" in header.render().plain
        assert header.snapshot is scene.engine.latest() and header.snapshot is not last


async def test_cluster_drill_down_and_back(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    other = build_scene(monkeypatch, gpus=2, faults=False, triton=False, ticks=20, hostname="gpu-node-02")
    gone = build_scene(monkeypatch, gpus=2, faults=False, triton=False, ticks=5, hostname="gpu-node-03")
    gone.clock.advance(60)
    clients = [scene.client("node-a"), other.client("node-b"), gone.client("node-c")]
    try:
        async with TopApp(clients, refresh_seconds=0.1).run_test(size=(140, 30)) as pilot:
            await settle(pilot)
            cluster = pilot.app.screen
            assert isinstance(cluster, ClusterScreen)
            assert [cluster.node_state(i) for i in range(3)] == ["up", "up", "down"]
            table = cluster.query_one(SyncTable)
            # Down first, then node-a with its critical findings said in words, then the quiet one.
            assert table.row_keys == ["2", "0", "1"]
            reason = str(table.get_cell("0", "note"))
            assert reason.startswith("! 3 critical 1 warning: bert-large:2 failing"), reason
            assert "GPU 3 LOST" in cluster.summaries[0].looks  # further on, past the column's end
            assert str(table.get_cell("1", "note")) == ""
            assert str(table.get_cell("0", "lost")) == "1"  # GPU 3 of node-a
            assert str(table.get_cell("0", "failures")).startswith("! ")
            down = text_of(cluster.query_one("#cluster-down", Static))
            assert "node-c DOWN: no new snapshot for 60 s" in down
            await pilot.press("down", "enter")
            await settle(pilot)
            node = pilot.app.screen
            assert isinstance(node, NodeScreen) and node.client is clients[1]
            assert node.query_one(NodeHeader).snapshot is not None
            assert node.query_one(NodeHeader).snapshot.node.hostname == "gpu-node-02"  # type: ignore[union-attr]
            assert all(f.paused for f in cluster.query(Feed))  # the cluster stops polling meanwhile
            await pilot.press("escape")
            await settle(pilot)
            assert pilot.app.screen is cluster
            assert not any(f.paused for f in cluster.query(Feed))
    finally:
        other.close()
        gone.close()


async def test_too_small_terminal_then_enlarged(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(70, 20)) as pilot:
        await settle(pilot)
        assert isinstance(pilot.app.screen, TooSmallScreen)
        assert "this one is 70×20" in text_of(pilot.app.screen.query_one("#too-small", Static))
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert isinstance(pilot.app.screen, NodeScreen)


async def test_help_then_quit(scene: Scene) -> None:
    app = make_app(scene)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, NodeScreen)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_monochrome_from_no_color(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not make_app(scene).monochrome
    assert make_app(scene, monochrome=True).palette.monochrome
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(scene)
    assert app.monochrome and app.palette.monochrome
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = pilot.app.screen.query_one(GpuPanel).query_one(SyncTable)
        lost = table.get_cell("3", "flags")
        # Without colour the lost GPU still says ! LOST, in reverse video.
        assert str(lost) == "! LOST" and lost.style.reverse  # type: ignore[union-attr]


async def test_events_newest_first_with_the_whole_message(scene: Scene) -> None:
    async with make_app(scene).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        panel = pilot.app.screen.query_one(EventsPanel)
        assert panel.events is not None
        findings = {model.EventKind.FINDING_BEGAN, model.EventKind.FINDING_ENDED}
        kinds = [e.kind for e in panel.events]
        assert [k for k in kinds if k not in findings] == [model.EventKind.GPU_LOST, model.EventKind.XID]
        began = [e for e in panel.events if e.kind is model.EventKind.FINDING_BEGAN]
        assert any(e.gpu_index == 3 and e.message.startswith("GPU 3 LOST: lost") for e in began)
        detail = text_of(panel.query_one("#event-detail", Static))
        assert detail.endswith("GPU 3 lost: GPU is lost (nvmlDeviceGetUtilizationRates)")
        await pilot.press(*["down"] * kinds.index(model.EventKind.XID))
        assert "XID 31" in text_of(panel.query_one("#event-detail", Static))


async def test_no_driver_says_why_and_offers_the_demo(utc: None, no_color_unset: None) -> None:
    clock = ManualClock()
    recorded = RecordedNvml(2, clock=clock)
    recorded.inject("DRIVER_NOT_LOADED")
    collector = make_collector(recorded, SCENE_NVML, clock)
    engine = Engine(collector, clock=clock)
    history = MemoryHistory()
    engine.subscribe(history.add)
    collector.poll_fast()
    snapshot = engine.tick()
    assert not snapshot.gpus and snapshot.nvml_status
    client = InProcessClient(engine, history, name="no-driver", clock=clock)
    try:
        async with TopApp([client], refresh_seconds=0.1).run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            panel = pilot.app.screen.query_one(GpuPanel)
            assert "! no GPU data (try --demo)" in text_of(panel.query_one("#gpu-title", Static))
            assert text_of(panel.query_one("#gpu-note", Static)) == snapshot.nvml_status
            assert panel.query_one("#gpu-note", Static).display
            assert panel.query_one(SyncTable).row_keys == []
    finally:
        recorded.close()
        collector.close()
