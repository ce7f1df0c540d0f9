"""Sparklines fetched once per slot: the window arithmetic, the live last slot against what the
history itself says of that slot, and how many history requests a dashboard sends."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest

from gpuwatch import model, series
from gpuwatch.client.inprocess import InProcessClient
from gpuwatch.tui.app import TopApp
from gpuwatch.tui.buckets import to_slots
from gpuwatch.tui.gpu_panel import SPARK_SECONDS, GpuPanel
from gpuwatch.tui.node_header import NodeHeader
from gpuwatch.tui.sparks import SparkLines, Window, gpu_values, window_for
from tests.tui.conftest import settle
from tests.tui.scene import Scene

FIGURE = "gpu_power_watts"


def test_the_window_ends_with_the_slot_now_falls_in() -> None:
    assert window_for(FIGURE, 344.0, 120, 12) == Window(FIGURE, 230.0, 350.0, 12)
    # A snapshot stamped on a boundary starts the new slot (as the store buckets it).
    assert window_for(FIGURE, 340.0, 120, 12) == Window(FIGURE, 230.0, 350.0, 12)
    assert window_for(FIGURE, 339.5, 120, 12) == Window(FIGURE, 220.0, 340.0, 12)


def test_one_fetch_per_slot_and_again_after_a_failure() -> None:
    sparks = SparkLines(120)
    first = sparks.want(FIGURE, 341.0, 12)
    assert first == Window(FIGURE, 230.0, 350.0, 12)
    assert [sparks.want(FIGURE, t, 12) for t in (342.0, 345.0, 349.0)] == [None, None, None]
    assert sparks.want(FIGURE, 350.0, 12) == Window(FIGURE, 240.0, 360.0, 12)
    assert sparks.want("gpu_temperature_celsius", 351.0, 12) is not None  # another figure
    assert sparks.want("gpu_temperature_celsius", 351.0, 24) is not None  # a wider column
    third = sparks.want(FIGURE, 352.0, 12)
    assert third is not None
    sparks.failed(third)
    assert sparks.want(FIGURE, 353.0, 12) == third


def _fetch(client: InProcessClient, window: Window) -> dict[int, list[series.Point | None]]:
    data = client.history(window.series, {}, window.start, window.end, window.slots)
    return {
        int(s.key.label("gpu") or -1): to_slots(s.points, window.start, window.end, window.slots)
        for s in data
    }


def test_the_live_last_slot_is_the_historys_mean_of_it(scene: Scene) -> None:
    """Fetched once, then folded from snapshots: the newest character reads what asking the
    history again would have read, tick after tick, until the slot ends."""
    client = scene.client()
    sparks = SparkLines(SPARK_SECONDS)
    latest = scene.engine.latest()
    assert latest is not None and latest.timestamp % 10 == 4  # mid-slot: 5 ticks already in it
    window = sparks.want(FIGURE, latest.timestamp, 12)
    assert window is not None and window.slot_seconds == 10
    sparks.fetched(window, latest.timestamp, 1.0, _fetch(client, window))
    for _ in range(5):  # ticks 5…9 of the slot
        snapshot = scene.run(1)
        assert sparks.want(FIGURE, snapshot.timestamp, 12) is None  # nothing to fetch
        assert sparks.observe(snapshot, FIGURE)
        again = _fetch(client, window)
        shown = sparks.values()
        for gpu in (0, 1, 2):
            last = again[gpu][-1]
            assert last is not None and shown[gpu][-1] == pytest.approx(last.mean)
        assert shown[0][:-1] == [None if p is None else p.mean for p in again[0][:-1]]
    assert sparks.want(FIGURE, scene.run(1).timestamp, 12) is not None  # the next slot


def test_snapshots_seen_while_a_fetch_is_out_are_folded_when_it_lands(scene: Scene) -> None:
    client = scene.client()
    sparks = SparkLines(SPARK_SECONDS)
    asked_at = scene.engine.latest()
    assert asked_at is not None
    window = sparks.want(FIGURE, asked_at.timestamp, 12)
    assert window is not None
    answer = _fetch(client, window)  # the history as it was when asked
    for _ in range(2):  # two snapshots arrive before the answer does
        assert not sparks.observe(scene.run(1), FIGURE)
    sparks.fetched(window, asked_at.timestamp, 1.0, answer)
    now = _fetch(client, window)
    for gpu in (0, 1, 2):
        last = now[gpu][-1]
        assert last is not None and sparks.values()[gpu][-1] == pytest.approx(last.mean)
    assert gpu_values(asked_at, FIGURE).keys() == {0, 1, 2}  # GPU 3 is lost: no value, not a 0


class Counting:
    """The scene's client, passed through, with every history request written down."""

    def __init__(self, inner: InProcessClient) -> None:
        self.inner = inner
        self.history_calls: list[tuple[str, float, float]] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def origin(self) -> str:
        return self.inner.origin

    def snapshot(self) -> model.Snapshot:
        return self.inner.snapshot()

    def history(
        self, name: str, match: Mapping[str, str], start: float, end: float, points: int
    ) -> list[series.SeriesData]:
        self.history_calls.append((name, start, end))
        return self.inner.history(name, match, start, end, points)

    def events(
        self, start: float, end: float, kinds: Iterable[model.EventKind] | None = None, limit: int = 200
    ) -> list[model.Event]:
        return self.inner.events(start, end, kinds, limit)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.anyio
async def test_a_dashboard_asks_for_sparkline_history_once_per_slot(scene: Scene) -> None:
    client = Counting(scene.client())
    async with TopApp([client], refresh_seconds=0.1).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        header, panel = screen.query_one(NodeHeader), screen.query_one(GpuPanel)
        lasts = []
        for _ in range(30):
            latest = scene.run(1)
            for _ in range(100):
                await pilot.pause(0.02)
                if header.snapshot is latest:
                    break
            await settle(pilot, 2)
            assert header.snapshot is latest
            lasts.append(panel.sparks[1][-1])
        windows = {(start, end) for name, start, end in client.history_calls if name == panel.figure.series}
        asked = [c for c in client.history_calls if c[0] == panel.figure.series]
        slot = {end - start for start, end in windows}.pop() / panel.spark_points
        # 31 snapshots over 30 s: one request per slot they touched, not one per refresh.
        assert len(asked) == len(windows) <= 30 / slot + 2
        assert len(set(lasts)) > len(windows)  # …and the newest character moved in between
