"""InProcessClient: the TUI's view of an engine in this process, over the recorded GPUs."""

from __future__ import annotations

import pytest

from gpuwatch import model
from gpuwatch.client.inprocess import InProcessClient
from gpuwatch.client.protocol import Client, SourceUnavailableError
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.engine import Engine
from gpuwatch.series import MemoryHistory, UnknownSeriesError
from tests.conftest import ManualClock, make_collector
from tests.tui.scene import SCENE_NVML, build_scene


def test_no_snapshot_yet_is_unavailable(clock: ManualClock, recorded4: RecordedNvml) -> None:
    engine = Engine(make_collector(recorded4, SCENE_NVML, clock), clock=clock)
    client = InProcessClient(engine, MemoryHistory(), name="n", clock=clock)
    with pytest.raises(SourceUnavailableError, match="starting: no snapshot yet"):
        client.snapshot()


def test_latest_then_stale_then_live_again(monkeypatch: pytest.MonkeyPatch) -> None:
    scene = build_scene(monkeypatch, ticks=12, faults=False)
    try:
        client: Client = scene.client()
        assert client.snapshot() is scene.engine.latest()
        scene.clock.advance(5)  # exactly the limit: still fresh
        assert client.snapshot().timestamp == scene.clock() - 5
        scene.clock.advance(4)
        with pytest.raises(SourceUnavailableError, match="no new snapshot for 9 s"):
            client.snapshot()
        latest = scene.run(1)
        assert client.snapshot() is latest
    finally:
        scene.close()


def test_history_and_events_come_from_the_history(monkeypatch: pytest.MonkeyPatch) -> None:
    scene = build_scene(monkeypatch, ticks=140, faults=True)
    try:
        client = scene.client()
        now = scene.clock()
        series = client.history("gpu_power_watts", {"gpu": "1"}, now - 60, now, 12)
        assert [s.key.label("gpu") for s in series] == ["1"]
        assert 1 <= len(series[0].points) <= 13
        assert all(50 < p.mean <= 700 for p in series[0].points)
        every_gpu = client.history("gpu_power_watts", {}, now - 60, now, 12)
        assert sorted(s.key.label("gpu") for s in every_gpu) == ["0", "1", "2", "3"]
        with pytest.raises(UnknownSeriesError):
            client.history("gpu_no_such_figure", {}, now - 60, now, 12)
        events = client.events(now - 3600, now)
        findings = {model.EventKind.FINDING_BEGAN, model.EventKind.FINDING_ENDED}
        kinds = [e.kind for e in events if e.kind not in findings]
        assert kinds == [model.EventKind.GPU_LOST, model.EventKind.XID]  # newest first
        began = [e for e in events if e.kind is model.EventKind.FINDING_BEGAN]
        assert any(e.gpu_index == 3 and e.severity is model.Severity.CRITICAL for e in began)
        assert client.events(now - 3600, now, kinds=[model.EventKind.XID], limit=5)[0].code == 31
    finally:
        scene.close()


def test_close_runs_the_owners_hook_once() -> None:
    stopped: list[bool] = []
    client = InProcessClient(_NoEngine(), MemoryHistory(), name="n", on_close=lambda: stopped.append(True))
    client.close()
    client.close()
    assert stopped == [True]
    assert client.name == "n"


class _NoEngine:
    def latest(self) -> model.Snapshot | None:
        return None
