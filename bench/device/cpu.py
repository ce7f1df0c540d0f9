"""CPU of gpuwatch's collection on a real GPU under load, three ways, over equal windows.

1. gpuwatch's engine at 1 Hz beside `nvidia-smi dmon -d 1`, both sampled over the same window;
2. the bare pynvml calls gpuwatch makes, replayed at the same cadence (their own cost);
3. a py-spy profile of the engine (if py-spy is importable/installed), to see where it goes.

Usage (on a GPU machine, repository root): python3 bench/device/cpu.py --out DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import cpu_seconds

HERE = Path(__file__).resolve().parent
PY = sys.executable


def window(procs: dict[str, subprocess.Popen[bytes]], seconds: float, settle: float = 5) -> dict[str, float]:
    time.sleep(settle)
    ps = {k: psutil.Process(p.pid) for k, p in procs.items()}
    c0 = {k: cpu_seconds(p.pid) for k, p in ps.items()}
    t0 = time.time()
    time.sleep(seconds)
    c1 = {k: cpu_seconds(p.pid) for k, p in ps.items()}
    dt = time.time() - t0
    return {k: round((c1[k] - c0[k]) / dt * 100, 3) for k in ps}  # % of one core


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--window", type=float, default=60)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    marks = out / "cpu_phases.jsonl"
    marks.unlink(missing_ok=True)
    load = subprocess.Popen([PY, str(HERE / "load.py"), "phases", "--file", str(marks), "--seconds", "200"])
    while not marks.exists():
        time.sleep(0.2)
    res: dict[str, object] = {}
    life = args.window + 10

    engine = subprocess.Popen(
        [
            PY,
            str(HERE / "collect_loop.py"),
            "--mode",
            "engine",
            "--seconds",
            str(life),
            "--out",
            str(out / "engine.json"),
        ]
    )
    dmon = subprocess.Popen(["nvidia-smi", "dmon", "-d", "1"], stdout=subprocess.DEVNULL)
    res["engine_vs_dmon_pct_core"] = window({"gpuwatch": engine, "dmon": dmon}, args.window)
    dmon.terminate()
    engine.wait()

    bare = subprocess.Popen(
        [
            PY,
            str(HERE / "collect_loop.py"),
            "--mode",
            "bare",
            "--seconds",
            str(life),
            "--out",
            str(out / "bare.json"),
        ]
    )
    dmon = subprocess.Popen(["nvidia-smi", "dmon", "-d", "1"], stdout=subprocess.DEVNULL)
    res["bare_vs_dmon_pct_core"] = window({"bare_calls": bare, "dmon": dmon}, args.window)
    dmon.terminate()
    bare.wait()

    spy = shutil.which("py-spy")
    if spy:
        subprocess.run(
            [
                spy,
                "record",
                "--rate",
                "250",
                "--format",
                "raw",
                "--threads",
                "--duration",
                str(int(args.window)),
                "--output",
                str(out / "profile.txt"),
                "--",
                PY,
                str(HERE / "collect_loop.py"),
                "--mode",
                "engine",
                "--seconds",
                str(life),
                "--out",
                str(out / "engine2.json"),
            ],
            check=False,
        )
    load.terminate()
    res["engine_run"] = {
        k: v for k, v in json.loads((out / "engine.json").read_text()).items() if k != "snapshot"
    }
    res["bare_run"] = json.loads((out / "bare.json").read_text())
    e, b = res["engine_vs_dmon_pct_core"], res["bare_vs_dmon_pct_core"]
    res["ratio_engine_to_dmon"] = round(e["gpuwatch"] / e["dmon"], 3)  # type: ignore[index]
    res["engine_overhead_over_bare_calls"] = round((e["gpuwatch"] - b["bare_calls"]) / b["bare_calls"], 3)  # type: ignore[index]
    (out / "cpu.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
