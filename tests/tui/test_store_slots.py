"""The TUI's sparkline slots over a real store's answer: every stored bucket lands in its own
slot and no slot is empty where there is data (a start-anchored grid that did not match the
slots once drew gaps), whatever tier answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuwatch.store import Store
from gpuwatch.tui.buckets import aligned_range, to_slots
from tests.conftest import ManualClock
from tests.storekit import gpu, open_test_store, snapshot

START = 1_795_557_600.0  # a whole hour
TICKS = 7_300  # two hours and a bit of 1 s ticks: the minute tier answers long ranges


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, ManualClock]]:
    clock = ManualClock(START)
    store = open_test_store(Path(tmp_path_factory.mktemp("slots")) / "gpuwatch.db", clock)
    for i in range(TICKS):
        clock.now = START + i
        store.submit(snapshot(clock.now, [gpu(0, power_watts=100.0 + i % 60)]))
        if i % 1000 == 999:
            assert store.flush(30)
    assert store.flush(30)
    yield store, clock
    store.close()


@pytest.mark.parametrize(("span", "slots"), [(60, 60), (900, 40), (3600, 60), (3600, 33), (7000, 70)])
@pytest.mark.parametrize("now_offset", [0.0, 0.4, 17.0])
def test_every_slot_of_a_sparkline_has_its_bucket(
    filled: tuple[Store, ManualClock], span: int, slots: int, now_offset: float
) -> None:
    store, _ = filled
    now = START + TICKS - 61 + now_offset
    start, end, count = aligned_range(now, span, slots)
    (data,) = store.history.query("gpu_power_watts", {"gpu": "0"}, start, end, count)
    assert len(data.points) <= count
    cells = to_slots(data.points, start, end, count)
    assert all(cell is not None for cell in cells), [i for i, c in enumerate(cells) if c is None]
    # One stored point per slot, starting where the slot starts.
    assert [p.timestamp for p in data.points] == [start + (end - start) * i / count for i in range(count)]
