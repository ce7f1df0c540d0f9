"""The assessment's cost: its CPU as a share of a whole tick's, at 8 GPUs × 100 Triton models.

Method (issue 12): an engine over the recorded NVML source with 8 GPUs and a stand-in Triton
source holding 100 model versions (a tenth queue-bound, a twentieth failing, one stalled, the
rest healthy; every figure the rules read is set) is driven tick by tick on a manual clock. A
tick is what the daemon spends per second: the NVML fast poll and the event poll of 8 GPUs,
a fifth of a slow poll (its cadence is 5 s), and `Engine.tick` (join, health, the snapshot and
the assessment in it). In the same run, the assessment alone (`assess` on each tick's snapshot
with the previous state, as the engine calls it) is timed over the same snapshots. Both are
process CPU time. The Triton polls' own cost is left out of the tick, which makes the tick
cheaper than the daemon's and the share larger than it is: the figure is an upper bound.

Usage: python bench/assess_bench.py [--ticks N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpuwatch import model
from gpuwatch.assess import AssessState, assess
from gpuwatch.collect.contract import Job
from gpuwatch.collect.nvml.collector import NvmlCollector
from gpuwatch.config import NvmlSettings
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.demo.processes import RecordedProcesses
from gpuwatch.engine import Engine

GPUS = 8
MODELS = 100
SLOW_EVERY = 5


class Clock:
    def __init__(self) -> None:
        self.now = 1_795_558_200.0

    def __call__(self) -> float:
        return self.now


def models(t: float) -> tuple[model.ModelStats, ...]:
    out = []
    for n in range(MODELS):
        queue = 0.8 if n % 10 == 0 else 0.1
        failures = 30.0 if n % 20 == 1 else 0.0
        ok = 0.0 if n == 2 else 100.0 + (t % 7)
        out.append(
            model.ModelStats(
                "local",
                f"model_{n:03d}",
                "1",
                state=model.ModelState.READY,
                max_batch_size=32,
                preferred_batch_sizes=(8, 16) if n % 3 == 0 else (),
                dynamic_batching=True,
                max_queue_delay_seconds=1e-4,
                instance_count=1,
                instance_kind="KIND_GPU",
                gpu_indexes=(n % GPUS,),
                pending_requests=4 if n == 2 else 0,
                interval=model.ModelInterval(
                    1.0,
                    requests_per_second=ok,
                    failures_per_second=failures,
                    failures_per_second_by_reason={"BACKEND": failures} if failures else {},
                    average_batch_size=9.0,
                    batch_fill_ratio=9.0 / 32,
                    preferred_batch_ratio=0.6,
                    queue_share_ratio=queue,
                    queue_delay_ratio=0.4,
                ),
            )
        )
    return tuple(out)


class Triton:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def jobs(self) -> list[Job]:
        return []

    def view(self) -> tuple[model.TritonServerStatus, ...]:
        return (
            model.TritonServerStatus(
                "local", "http://127.0.0.1:8000", model.ServerState.UP, models=models(self.clock.now)
            ),
        )

    def drain_events(self) -> list[model.Event]:
        return []

    def close(self) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    clock = Clock()
    recorded = RecordedNvml(GPUS, clock=clock)
    collector = NvmlCollector(
        recorded,
        NvmlSettings(call_timeout_seconds=30.0),
        RecordedProcesses(recorded.host_processes()),
        source_name="recorded",
        clock=clock,
    )
    # The jobs run through the engine on the manual clock, as its threads would run them: polled
    # behind its back they read stale, and three collector_stale findings a tick were measured.
    engine = Engine(collector, Triton(clock), clock=clock, monotonic=clock)  # type: ignore[arg-type]
    snapshots: list[model.Snapshot] = []
    ratios: list[float] = []
    ticks_ms: list[float] = []
    assess_ms: list[float] = []
    try:
        engine.run_job("nvml_slow")
        for _ in range(5):  # warm up: rates and GPM need two readings
            clock.now += 1.0
            engine.run_job("nvml")
            engine.run_job("nvml_events")
            engine.tick()
        for _ in range(args.rounds):  # rounds alternate, so a busy neighbour slows both alike
            snapshots = []
            tick_cpu = 0.0
            for n in range(args.ticks):
                clock.now += 1.0
                start = time.process_time()
                engine.run_job("nvml")
                engine.run_job("nvml_events")
                if n % SLOW_EVERY == 0:
                    engine.run_job("nvml_slow")
                snapshots.append(engine.tick())
                tick_cpu += time.process_time() - start
            state: AssessState | None = None
            start = time.process_time()
            for s in snapshots:
                state = assess(s, state, s.timestamp)
            assess_cpu = time.process_time() - start
            ratios.append(assess_cpu / tick_cpu)
            ticks_ms.append(tick_cpu / args.ticks * 1e3)
            assess_ms.append(assess_cpu / args.ticks * 1e3)
    finally:
        engine.stop()
        recorded.close()
    last = snapshots[-1]
    kinds = sorted({f.kind.value for f in last.findings})
    print(
        f"{GPUS} GPUs × {MODELS} models, {args.ticks} ticks; findings at the last tick: {len(last.findings)}"
    )
    print(f"  kinds: {', '.join(kinds)}")
    print(f"tick (collect + engine.tick, assessment included): {statistics.median(ticks_ms):8.3f} ms CPU")
    print(f"assessment alone:                                 {statistics.median(assess_ms):8.3f} ms CPU")
    print(
        f"assessment / tick: median {statistics.median(ratios):.1%} of {args.rounds} rounds "
        f"(min {min(ratios):.1%}, max {max(ratios):.1%}; budget 5 %)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
