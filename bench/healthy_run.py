"""False positives of the findings over a healthy run: how many are raised when nothing is wrong.

Method (issue 12, "a well-batched model under steady load gets no finding over at least
3 minutes"): the daemon's engine — the real collectors, the engine's jobs, the assessment on
every tick — runs for `--seconds` (180 by default) over

1. `demo`: the demo's `healthy` scenario (recorded GPUs and the recorded Triton models, without
   the recording's failures, batching as Triton advises), one tick a second on a manual clock,
   as `gpuwatch daemon --demo --scenario healthy` would tick for that long (`--wall`: in real
   time, the engine's own threads, instead);
2. `triton` (with `--triton`): a real Triton 2.51 (tests/triton/server.py, the nvidia-pytriton
   wheel; starting it costs ~30 s of CPU) serving one dynamically batched Python model with two
   instances, under a steady load it keeps up with (`--threads` clients, each one request then
   `--pause-ms`), beside the recorded GPUs, in real time.

It prints every finding that began (kind, subject, when, its words) and the count: the
false-positive figure. A GPU finding of the recorded GPUs (their trace has a power-capped
matmul) is listed apart: it is not about the model under test.

Usage: python bench/healthy_run.py [--seconds 180] [--wall] [--triton] [--threads 4] [--pause-ms 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpuwatch import config, model  # noqa: E402
from gpuwatch.collect.triton.collector import TritonCollector  # noqa: E402
from gpuwatch.config import TritonServerSettings  # noqa: E402
from gpuwatch.demo.assemble import build_demo_sources, build_recorded_gpus  # noqa: E402
from gpuwatch.engine import Engine  # noqa: E402

Began = list[tuple[float, model.Finding]]


class ManualClock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


LAST: list[model.Snapshot] = []


def watch(engine: Engine, began: Began, start: float) -> None:
    """Keep every finding that begins: active in a snapshot and not in the one before."""
    active: set[tuple[model.FindingKind, model.Subject]] = set()

    def on_snapshot(snapshot: model.Snapshot) -> None:
        nonlocal active
        LAST[:] = [snapshot]
        for f in snapshot.findings:
            if (f.kind, f.subject) not in active:
                began.append((snapshot.timestamp - start, f))
        active = {(f.kind, f.subject) for f in snapshot.findings}

    engine.subscribe(on_snapshot)


def run_demo(seconds: int, wall: bool) -> Began:
    settings = config.parse({"demo": {"scenario": "healthy"}})
    began: Began = []
    if wall:
        gpus, triton = build_demo_sources(settings)
        engine = Engine(gpus, triton)
        watch(engine, began, time.time())
        engine.start()
        try:
            time.sleep(seconds)
        finally:
            engine.stop()
        return began
    clock = ManualClock()
    gpus, triton = build_demo_sources(settings, clock, clock)
    engine = Engine(gpus, triton, clock=clock, monotonic=clock)
    jobs = [j.name for j in (*gpus.jobs(), *(triton.jobs() if triton else ()))]
    watch(engine, began, clock.now)
    try:
        for _ in range(seconds):
            clock.now += 1.0
            for name in jobs:
                engine.run_job(name)
            engine.tick()
    finally:
        engine.stop()
    return began


def run_triton(seconds: int, threads: int, pause_ms: float) -> tuple[Began, int, int]:
    """(findings began, requests answered, requests refused)."""
    import numpy as np
    import tritonclient.http as triton_http

    from tests.triton.server import ModelSpec, start_server, write_repository

    spec = ModelSpec("steady", max_batch_size=8, max_queue_delay_us=0, instances=2, sleep_ms=5)
    with tempfile.TemporaryDirectory(prefix="gpuwatch-healthy-") as tmp:
        repo = write_repository(Path(tmp) / "models", [spec])
        server = start_server(repo, Path(tmp) / "work", load=("steady",), cache_bytes=None)
        stop = threading.Event()
        answered = [0] * threads
        refused = [0] * threads

        def client(n: int) -> None:
            c = triton_http.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=30)
            data = np.ones((1, 4), dtype=np.float32)
            inp = triton_http.InferInput("INPUT0", [1, 4], "FP32")
            inp.set_data_from_numpy(data)
            while not stop.is_set():
                try:
                    c.infer("steady", [inp])
                    answered[n] += 1
                except Exception:
                    refused[n] += 1
                stop.wait(pause_ms / 1000.0)

        settings = config.parse({"demo": {"triton": False}})
        gpus = build_recorded_gpus(settings)
        collector = TritonCollector(
            settings.triton,
            [TritonServerSettings(name="local", url=server.url, metrics_url=server.metrics_url)],
        )
        engine = Engine(gpus, collector)
        began: Began = []
        workers = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(threads)]
        try:
            for w in workers:
                w.start()
            time.sleep(5.0)  # the load is steady before the watch begins
            watch(engine, began, time.time())
            engine.start()
            time.sleep(seconds)
        finally:
            stop.set()
            engine.stop()
            for w in workers:
                w.join(timeout=10)
            server.stop()
    return began, sum(answered), sum(refused)


def report(name: str, began: Began, seconds: int) -> int:
    model_findings = [(at, f) for at, f in began if f.subject.kind is not model.SubjectKind.GPU]
    gpu_findings = [(at, f) for at, f in began if f.subject.kind is model.SubjectKind.GPU]
    print(f"{name}: {len(model_findings)} findings began in {seconds} s (false positives)")
    for server in LAST[0].triton if LAST else ():  # what the last tick saw: the run was watched
        for m in server.models:
            i = m.interval
            if i is not None and not i.reset:
                print(
                    f"  last tick: {server.name}/{m.name} {server.state.value}, {i.requests_per_second or 0:.0f} ok/s, "
                    f"queue share {i.queue_share_ratio or 0:.0%}, batch {i.average_batch_size or 0:.1f}"
                )
    for at, f in model_findings:
        print(f"  {at:6.0f} s  {f.severity.value:<8} {f.kind.value:<22} {f.subject.label()}: {f.message}")
    if gpu_findings:
        print(f"  and {len(gpu_findings)} of the recorded GPUs (their trace, not the run under test):")
        for at, f in gpu_findings:
            print(f"  {at:6.0f} s  {f.severity.value:<8} {f.kind.value:<22} {f.subject.label()}: {f.message}")
    return len(model_findings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--wall", action="store_true", help="run the demo in real time")
    parser.add_argument("--triton", action="store_true", help="also a real Triton under steady load")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--pause-ms", type=float, default=20.0)
    args = parser.parse_args()
    report(
        f"demo, scenario healthy ({'real time' if args.wall else 'manual clock'})",
        run_demo(args.seconds, args.wall),
        args.seconds,
    )
    if args.triton:
        began, answered, refused = run_triton(args.seconds, args.threads, args.pause_ms)
        print(
            f"triton: {answered} requests answered ({answered / (args.seconds + 5):.0f}/s), {refused} refused, "
            f"{args.threads} clients pausing {args.pause_ms:g} ms"
        )
        report("triton, one dynamically batched model, 2 instances, steady load", began, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
