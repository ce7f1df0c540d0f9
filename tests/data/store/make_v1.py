"""Writes tests/data/store/v1.db: a database of schema version 1, as gpuwatch wrote it before
the weighted history (commit 4ee31ce), for the test of the migration to version 2.

Run with that gpuwatch, not this one (the file must be what version 1 wrote):

    git archive 4ee31ce | tar -x -C /tmp/gw-v1
    cd /tmp/gw-v1 && PYTHONPATH=/tmp/gw-v1 python /work/…/tests/data/store/make_v1.py OUT.db

The series: 3 minutes and 30 s of one model under a bursty load (`burst`, shared with the test),
1 s intervals, and one GPU; the first three minutes rolled up into the minute tier.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from tests.conftest import ManualClock
from tests.storekit import gpu, model_stats, open_test_store, snapshot

START = 1_795_557_600.0  # a whole hour
TICKS = 210


def burst(i: int) -> tuple[int, float]:
    """Tick i's requests and their mean queue time (s): 10 s of 200 requests at 40 ms queue,
    then 10 s of 5 requests at 0.5 ms."""
    return (200, 0.040) if (i // 10) % 2 == 0 else (5, 0.0005)


def main(out: Path) -> None:
    clock = ManualClock(START)
    store = open_test_store(out, clock)
    for i in range(TICKS):
        n, queue = burst(i)
        clock.now = START + i
        store.submit(
            snapshot(
                START + i,
                [gpu(0, power_watts=100.0 + i)],
                [model_stats("m", requests_per_second=float(n), average_queue_seconds=queue)],
            )
        )
    assert store.flush(30)
    store.close()
    with sqlite3.connect(out) as conn:
        conn.execute("VACUUM")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
