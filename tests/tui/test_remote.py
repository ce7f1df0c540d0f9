"""The dashboard against real daemons (`gpuwatch daemon --demo` subprocesses), through Pilot.

One node's dashboard over HTTP; the daemon SIGKILLed under it (the last data stays, marked
STALE with the reason) and a new daemon on the same port (it goes LIVE again by itself); the
cluster view over live daemons and one that does not answer, with a drill-down; and an SVG of
the cluster view, made deterministic with the daemon's own HTTP server over the recorded
snapshots of tests/serve_support.py on a fixed clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from gpuwatch import model
from gpuwatch.client.http import HttpClient
from gpuwatch.tui.app import TopApp
from gpuwatch.tui.chart import Chart
from gpuwatch.tui.cluster_screen import ClusterScreen
from gpuwatch.tui.events_panel import EventsPanel
from gpuwatch.tui.feed import Feed
from gpuwatch.tui.gpu_panel import GpuPanel
from gpuwatch.tui.history_view import HistoryView
from gpuwatch.tui.node_header import NodeHeader
from gpuwatch.tui.node_screen import NodeScreen
from gpuwatch.tui.table import SyncTable
from tests.conftest import ManualClock
from tests.daemons import Daemon, unused_port
from tests.serve_support import Served
from tests.tui.conftest import settle

SnapCompare = Callable[..., bool]


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    d = Daemon()
    yield d
    d.stop()


async def until(pilot: Pilot[None], condition: Callable[[], object], timeout: float = 20.0) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"the screen never reached the expected state: {condition}")
        await pilot.pause(0.05)


@pytest.mark.anyio
async def test_one_daemons_dashboard(daemon: Daemon) -> None:
    client = HttpClient(daemon.url)
    try:
        async with TopApp([client], refresh_seconds=0.2).run_test(size=(100, 30)) as pilot:
            screen = pilot.app.screen
            assert isinstance(screen, NodeScreen)
            header, gpus = screen.query_one(NodeHeader), screen.query_one(GpuPanel)
            await until(pilot, lambda: header.snapshot is not None and gpus.sparks)
            served = daemon.get("snapshot").json()
            # each GPU, then the MIG devices of one in MIG mode (the demo's last), from the JSON API
            assert gpus.query_one(SyncTable).row_keys == [
                key
                for g in served["gpus"]
                for key in [
                    str(g["index"]),
                    *(
                        f"{g['index']}:{m['mig_index']}"
                        for m in served["mig_devices"]
                        if m["gpu_uuid"] == g["uuid"]
                    ),
                ]
            ]
            assert len(served["mig_devices"]) == 2
            line = header.render().plain
            assert f"daemon {daemon.url}" in line and "LIVE" in line and "demo" in line
            # Sparklines from the daemon's history: a value for the busy GPU 1 (the matmul).
            assert any(v is not None and v > 0.5 for v in gpus.sparks[1])

            await pilot.press("5")
            await settle(pilot)
            events = screen.query_one(EventsPanel)
            await until(pilot, lambda: any(e.kind == model.EventKind.DAEMON_START for e in events.events))

            await pilot.press("1", "down", "enter")  # GPU 1's history
            view = screen.query_one(HistoryView)
            await until(pilot, lambda: (d := view.query_one(Chart).data) is not None and d.points)
            assert screen.active_tab == "history"
            assert view.subject is not None and view.subject.gpu_index == 1
    finally:
        client.close()


@pytest.mark.anyio
async def test_daemon_killed_then_back_on_its_port() -> None:
    first = Daemon()
    second: Daemon | None = None
    client = HttpClient(first.url)
    try:
        async with TopApp([client], refresh_seconds=0.2).run_test(size=(80, 24)) as pilot:
            screen = pilot.app.screen
            header = screen.query_one(NodeHeader)
            table = screen.query_one(GpuPanel).query_one(SyncTable)
            await until(pilot, lambda: header.snapshot is not None)
            rows = table.row_keys
            first.kill()
            await until(pilot, lambda: header.problem is not None)
            last = header.snapshot
            assert header.problem == "connection refused"
            assert "! STALE: connection refused" in header.render().plain
            await pilot.pause(0.5)  # it keeps asking; what is shown stays as it was
            assert (
                header.snapshot is last and table.row_keys == rows and header.problem == "connection refused"
            )

            second = Daemon(first.port)
            await until(pilot, lambda: header.problem is None)
            assert header.snapshot is not None and last is not None
            assert header.snapshot.timestamp > last.timestamp
            assert "LIVE" in header.render().plain and "STALE" not in header.render().plain
    finally:
        client.close()
        first.kill()
        if second is not None:
            second.stop()


@pytest.mark.anyio
async def test_cluster_of_daemons_with_one_down(daemon: Daemon) -> None:
    other = Daemon()
    nobody = f"http://127.0.0.1:{unused_port()}"
    clients = [HttpClient(daemon.url), HttpClient(other.url), HttpClient(nobody)]
    try:
        async with TopApp(clients, refresh_seconds=0.2).run_test(size=(100, 30)) as pilot:
            cluster = pilot.app.screen
            assert isinstance(cluster, ClusterScreen)
            states = lambda: [cluster.node_state(i) for i in range(3)]  # noqa: E731
            await until(pilot, lambda: states() == ["up", "up", "down"])
            table = cluster.query_one(SyncTable)
            assert [str(table.get_cell(k, "gpus")) for k in ("0", "1")] == ["4", "4"]
            assert str(table.get_cell("2", "state")) == "DOWN"
            down = str(cluster.query_one("#cluster-down", Static).render())
            assert f"{clients[2].name} DOWN: connection refused" in down
            title = str(cluster.query_one("#cluster-title", Static).render())
            assert "3 nodes, 2 up, 1 down · 8 GPUs" in title

            assert table.row_keys[0] == "2"  # the node that is down sorts first
            # The two daemons sort by their findings, which change as the demo runs: pick by key.
            table.move_cursor(row=table.row_keys.index("1"), animate=False)
            await pilot.press("enter")
            node = pilot.app.screen
            assert isinstance(node, NodeScreen) and node.client is clients[1]
            header = node.query_one(NodeHeader)
            await until(pilot, lambda: header.snapshot is not None)
            assert f"daemon {other.url}" in header.render().plain
            assert all(f.paused for f in cluster.query(Feed))
            await pilot.press("escape")
            await settle(pilot)
            assert pilot.app.screen is cluster and not any(f.paused for f in cluster.query(Feed))
    finally:
        for c in clients:
            c.close()
        other.stop()


def test_cluster_over_http_snapshot(snap_compare: SnapCompare, utc: None, no_color_unset: None) -> None:
    # The daemon's HTTP server and API over the recorded snapshots, stamped up to now so the
    # daemon's Date says they are fresh; the figures depend on the ticks, not on the time.
    servers = [Served(ManualClock(float(int(time.time()) - 6))) for _ in range(2)]
    names = ["gpu-node-01", "gpu-node-02", "gpu-node-03"]
    urls = [s.url for s in servers] + [f"http://127.0.0.1:{unused_port()}"]
    # A generous staleness limit: a slow CI machine must not turn a row STALE in the picture.
    clients = [HttpClient(u, name=n, stale_after_seconds=600) for u, n in zip(urls, names, strict=True)]

    async def all_answered(pilot: Pilot[None]) -> None:
        cluster = pilot.app.screen
        assert isinstance(cluster, ClusterScreen)
        await until(pilot, lambda: [cluster.node_state(i) for i in range(3)] == ["up", "up", "down"])
        # Rows sort by findings as the answers come in; where the cursor is left depends on
        # which came first (the down node's refusal may beat the first layout): put it on top.
        cluster.query_one(SyncTable).move_cursor(row=0, animate=False)
        await settle(pilot)

    try:
        assert snap_compare(TopApp(clients, refresh_seconds=0.5), run_before=all_answered)
    finally:
        for c in clients:
            c.close()
        for s in servers:
            s.close()
