"""The engine: snapshots per tick, job health, and a stuck job that stalls nothing else."""

import itertools
import threading
import time

from gpuwatch import model
from gpuwatch.config import NvmlSettings
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.engine import Engine
from tests.conftest import make_collector
from tests.test_nvml_collector import wait_for


def health(engine: Engine, name: str) -> model.CollectorHealth:
    return next(h for h in engine.health() if h.name == name)


def test_snapshots_tick_and_a_stuck_job_is_flagged_stale_while_others_go_on() -> None:
    recorded = RecordedNvml(2)
    settings = NvmlSettings(interval_seconds=0.2, slow_interval_seconds=0.5, call_timeout_seconds=0.15)
    engine = Engine(make_collector(recorded, settings, time.time), tick_seconds=0.2)  # type: ignore[arg-type]
    seen: list[model.Snapshot] = []
    engine.subscribe(seen.append)
    engine.start()
    try:
        wait_for(lambda: len(seen) >= 3 and bool(seen[-1].gpus), lambda: None)
        stamps = [s.timestamp for s in seen]
        assert all(b > a for a, b in itertools.pairwise(stamps))
        assert all(abs(t / 0.2 - round(t / 0.2)) < 1e-6 for t in stamps)  # aligned ticks
        assert health(engine, "nvml").ok and not health(engine, "nvml").stale

        fault = recorded.inject("HANG", calls={"nvmlEventSetWait_v2"})
        wait_for(lambda: health(engine, "nvml_events").stale, lambda: None)
        stale = health(engine, "nvml_events")
        assert not stale.ok and stale.last_error is not None and "running for" in stale.last_error
        before = len(seen)
        wait_for(lambda: len(seen) >= before + 3, lambda: None)  # ticks go on
        assert health(engine, "nvml").ok and seen[-1].gpus[0].state == model.GpuState.OK
        assert any(not h.ok for h in seen[-1].collectors)

        recorded.clear(fault)
        wait_for(lambda: health(engine, "nvml_events").ok, lambda: None)
    finally:
        recorded.close()
        engine.stop()


def test_collect_once_gives_rates_and_gpm() -> None:
    recorded = RecordedNvml(2)
    settings = NvmlSettings()
    engine = Engine(make_collector(recorded, settings, time.time))  # type: ignore[arg-type]
    snapshot = engine.collect_once(0.6)
    engine.stop()
    assert len(snapshot.gpus) == 2
    assert all(g.gpm is not None for g in snapshot.gpus)
    assert {h.name for h in snapshot.collectors} == {"nvml", "nvml_slow", "nvml_events"}
    assert all(h.ok for h in snapshot.collectors)


def test_a_job_that_finds_nvml_starting_waits_for_the_gpus_to_open() -> None:
    # The slow job must not find NVML ready while the GPUs are still opening: it would skip
    # them and lose its first GPM sample (GPM needs two), so a one-shot snapshot had no GPM.
    recorded = RecordedNvml(2)
    collector = make_collector(recorded, NvmlSettings(), time.time)  # type: ignore[arg-type]
    opening = recorded.inject("HANG", calls={"nvmlDeviceGetUUID"})
    initialising = threading.Thread(target=collector.poll_fast)
    try:
        initialising.start()
        time.sleep(0.3)  # init is now held in the GPUs' open
        threading.Timer(0.3, recorded.clear, args=(opening,)).start()
        collector.poll_slow()  # started while the GPUs open: waits for them, takes sample one
        time.sleep(0.2)
        collector.poll_slow()  # sample two
        initialising.join(5)
        assert [g.gpm is not None for g in collector.view().gpus] == [True, True]
    finally:
        recorded.clear()
        recorded.close()
        collector.close()
