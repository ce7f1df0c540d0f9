"""Run gpuwatch's NVML collection over the real GPU at its default cadences, for a while.

`--mode engine`: the whole engine in-process (collector, worker threads, snapshots each tick).
`--mode bare`: first capture the exact pynvml calls the collector makes in one slow period
(5 fast ticks and one slow read), then replay only those calls, at the same cadence, with no
gpuwatch code around them: the calls' own cost. CPU is read from outside (bench/device/cpu.py
samples this process), so every mode, and `nvidia-smi dmon`, is measured the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pynvml

from gpuwatch import config, jsonform
from gpuwatch.assemble import build_engine
from gpuwatch.collect.host import HostProcesses
from gpuwatch.collect.nvml.collector import NvmlCollector

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nvml_capture import Capture


def engine_mode(seconds: float, out: Path) -> None:
    engine = build_engine(config.Settings(), demo=False)
    ticks: list[float] = []
    engine.subscribe(lambda s: ticks.append(s.timestamp))
    engine.start()
    time.sleep(seconds)
    latest = engine.latest()
    engine.stop()
    gateway = engine.gpus.gateway  # type: ignore[attr-defined]
    doc = {
        "ticks": len(ticks),
        "snapshot": jsonform.encode_snapshot(latest) if latest else None,
        "unsupported": [list(x) for x in gateway.stats().unsupported],
        "calls": gateway.stats().calls_count,
    }
    out.write_text(json.dumps(doc))


def bare_mode(seconds: float, out: Path) -> None:
    settings = config.Settings().nvml
    capture = Capture(pynvml)
    collector = NvmlCollector(capture, settings, HostProcesses())
    for _ in range(2):  # warm up: init, GPM baselines
        collector.poll_fast()
        collector.poll_slow()
        time.sleep(1)
    capture.recording = True
    for _ in range(5):
        collector.poll_fast()
        collector.poll_events()
    collector.poll_slow()
    capture.recording = False
    calls = [(getattr(pynvml, name), args) for name, args in capture.calls]
    end = time.time() + seconds
    periods = 0
    while time.time() < end:
        for fn, args in calls:
            with contextlib.suppress(pynvml.NVMLError):
                fn(*args)
        periods += 1
        time.sleep(5.0)
    collector.close()
    out.write_text(
        json.dumps(
            {
                "calls_per_period": len(calls),
                "periods": periods,
                "names": sorted({n for n, _ in capture.calls}),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--mode", choices=("engine", "bare"), default="engine")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    (engine_mode if args.mode == "engine" else bare_mode)(args.seconds, Path(args.out))


if __name__ == "__main__":
    main()
