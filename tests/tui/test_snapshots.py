"""SVG snapshots of the dashboard over the recorded node (tests/tui/scene.py), fixed clock.

The node at its last tick has a power-capped GPU (1), a GPU with an XID (2), a lost GPU (3) and
a Triton server with a failing model (bert-large) and one that did not load (llama-8b). Each
snapshot is the screen a user gets after the keys pressed; a change in what any panel draws
shows up here as a diff to review (`pytest --snapshot-update` to accept it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot

from gpuwatch.demo.nvml_mig import MIXED_LAYOUT
from gpuwatch.tui.app import TopApp
from tests.kube_servers import running_servers
from tests.tui.conftest import settle
from tests.tui.scene import Scene, build_demo_scene, build_scene

SnapCompare = Callable[..., bool]


def app_for(scene: Scene, *, monochrome: bool = False) -> TopApp:
    return TopApp([scene.client()], refresh_seconds=0.5, monochrome=monochrome)


def keys(*pressed: str) -> Callable[[Pilot[None]], Any]:
    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press(*pressed)
        await settle(pilot)

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_overview(snap_compare: SnapCompare, scene: Scene, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(scene), terminal_size=size, run_before=keys())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_models_with_a_failing_model(snap_compare: SnapCompare, scene: Scene, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(scene), terminal_size=size, run_before=keys("3"))


def test_processes_filtered(snap_compare: SnapCompare, scene: Scene) -> None:
    assert snap_compare(app_for(scene), run_before=keys("2", "slash", *"svc", "enter", "down"))


def test_processes_in_pods(
    snap_compare: SnapCompare, monkeypatch: pytest.MonkeyPatch, utc: None, no_color_unset: None
) -> None:
    """On a Kubernetes node the Container column reads `namespace/pod` (CRI labels over a real
    gRPC server), and the line under the table names the pod and container in full."""
    with running_servers() as servers:
        scene = build_scene(monkeypatch, pods=servers)
        try:
            assert snap_compare(app_for(scene), terminal_size=(120, 40), run_before=keys("2"))
        finally:
            scene.close()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_processes_filter_while_typing(
    snap_compare: SnapCompare, scene: Scene, size: tuple[int, int]
) -> None:
    # The filter's one row shows the text typed, not two border rows (issue 14).
    assert snap_compare(app_for(scene), terminal_size=size, run_before=keys("2", "slash", *"svc"))


def test_overview_at_200_columns(snap_compare: SnapCompare, scene: Scene) -> None:
    assert snap_compare(app_for(scene), terminal_size=(200, 50), run_before=keys())


def test_history_of_7_days(snap_compare: SnapCompare, scene: Scene) -> None:
    # Dates on the time axis, apart and none past now; the list grouped with units.
    assert snap_compare(app_for(scene), run_before=keys("4", "t", "t", "t"))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_history_of_the_lost_gpu(snap_compare: SnapCompare, scene: Scene, size: tuple[int, int]) -> None:
    # GPU 3: its utilization until it fell off the bus, and the L of the loss on the event row.
    assert snap_compare(app_for(scene), terminal_size=size, run_before=keys("down", "down", "down", "enter"))


def test_events(snap_compare: SnapCompare, scene: Scene) -> None:
    assert snap_compare(app_for(scene), run_before=keys("5"))


def test_monochrome(snap_compare: SnapCompare, scene: Scene) -> None:
    assert snap_compare(app_for(scene, monochrome=True), run_before=keys())


def test_stale(snap_compare: SnapCompare, scene: Scene) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        scene.clock.advance(12)  # the engine stops ticking: the node answers nothing new
        await pilot.pause(0.6)
        await settle(pilot)

    assert snap_compare(app_for(scene), run_before=run_before)


def test_help(snap_compare: SnapCompare, scene: Scene) -> None:
    assert snap_compare(app_for(scene), run_before=keys("question_mark"))


def test_too_small(snap_compare: SnapCompare, scene: Scene) -> None:
    assert snap_compare(app_for(scene), terminal_size=(70, 20), run_before=keys())


def test_cluster(snap_compare: SnapCompare, scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    quiet = build_scene(monkeypatch, gpus=2, faults=False, triton=False, hostname="gpu-node-02")
    gone = build_scene(monkeypatch, gpus=8, faults=False, ticks=10, hostname="gpu-node-03")
    gone.clock.advance(30)  # its engine stopped: it reads DOWN with the reason
    try:
        clients = [scene.client("gpu-node-01"), quiet.client("gpu-node-02"), gone.client("gpu-node-03")]
        app = TopApp(clients, refresh_seconds=0.5)
        # 120 columns: room for the Reason, which says each node's findings (sorted by them).
        assert snap_compare(app, terminal_size=(120, 24), run_before=keys())
    finally:
        quiet.close()
        gone.close()


@pytest.fixture
def mig_scene(monkeypatch: pytest.MonkeyPatch, utc: None, no_color_unset: None) -> Iterator[Scene]:
    """Two GPUs, the second in MIG mode (3g + 2g + 1g + 1g, two idle), no faults."""
    s = build_scene(monkeypatch, gpus=2, faults=False, mig={1: MIXED_LAYOUT})
    yield s
    s.close()


def test_mig_devices_nested_under_their_gpu(snap_compare: SnapCompare, mig_scene: Scene) -> None:
    assert snap_compare(app_for(mig_scene), terminal_size=(120, 40), run_before=keys())


def test_processes_on_mig_devices_read_gpu_colon_device(snap_compare: SnapCompare, mig_scene: Scene) -> None:
    assert snap_compare(app_for(mig_scene), terminal_size=(120, 40), run_before=keys("2"))


def test_demo_overview(snap_compare: SnapCompare, monkeypatch: pytest.MonkeyPatch, utc: None) -> None:
    """What `gpuwatch top --demo` shows a minute in, at 120×40: the README's screenshot."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    demo = build_demo_scene(monkeypatch)
    try:
        app = TopApp([demo.client()], refresh_seconds=0.5)
        assert snap_compare(app, terminal_size=(120, 40), run_before=keys())
    finally:
        demo.close()
