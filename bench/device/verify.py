"""Verify gpuwatch's NVML collection on a real GPU against nvidia-smi, under a PyTorch load.

In one run: a matmul phase and a copy phase (bench/device/load.py) with a second process
holding memory idle; in each phase `gpuwatch snapshot --json` beside `nvidia-smi --query-gpu`
and `--query-compute-apps`, compared (utilization within 5 points, memory used exact to the MiB,
power within 5 %, the same PIDs and memory, GPM tensor activity high in the matmul and DRAM
bandwidth high in the copy); and the CPU of gpuwatch's engine at 1 Hz against
`nvidia-smi dmon -d 1` over the same 30 s window, both sampled from outside the same way.

Usage (on a GPU machine, from the repository root): python3 bench/device/verify.py --out DIR
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import cpu_seconds

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PY = sys.executable
MIB = 1024 * 1024
SMI_FIELDS = (
    "utilization.gpu,memory.used,power.draw,clocks.sm,temperature.gpu,clocks_event_reasons.active,pstate"
)


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO, **kw)


def wait_phase(path: Path, phase: str, timeout: float = 120) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                mark = json.loads(line)
                if mark["phase"] == phase:
                    return float(mark["t"])
        time.sleep(0.2)
    raise SystemExit(f"phase {phase} never started")


def compare(phase: str) -> dict[str, Any]:
    snap = run([PY, "-m", "gpuwatch", "snapshot", "--json", "--window", "0.5"])
    smi = run(["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"])
    apps = run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
    doc = json.loads(snap.stdout)
    g = doc["gpus"][0]
    util, mem, power, sm, temp, reasons, pstate = [x.strip() for x in smi.stdout.splitlines()[0].split(",")]
    smi_pids = {}
    for line in apps.stdout.splitlines():
        pid, used = [x.strip() for x in line.split(",")]
        smi_pids[int(pid)] = int(used)
    ours = {p["pid"]: (p["used_memory_bytes"] or 0) // MIB for p in doc["processes"] if p["gpu_index"] == 0}
    gpm = g["gpm"] or {}
    return {
        "phase": phase,
        "gpuwatch": {
            "util_pct": round(g["utilization_ratio"] * 100),
            "mem_used_mib": round(g["memory_used_bytes"] / MIB, 3),
            "power_w": g["power_watts"],
            "sm_mhz": g["sm_clock_mhz"],
            "temp_c": g["temperature_celsius"],
            "reasons": g["clock_event_reasons"],
            "pstate": g["performance_state"],
            "tensor_pct": None
            if gpm.get("tensor_activity_ratio") is None
            else round(gpm["tensor_activity_ratio"] * 100, 1),
            "dram_pct": None
            if gpm.get("dram_bandwidth_ratio") is None
            else round(gpm["dram_bandwidth_ratio"] * 100, 1),
            "sm_occupancy_pct": None
            if gpm.get("sm_occupancy_ratio") is None
            else round(gpm["sm_occupancy_ratio"] * 100, 1),
            "pids": ours,
        },
        "nvidia_smi": {
            "util_pct": int(util),
            "mem_used_mib": int(mem),
            "power_w": float(power),
            "sm_mhz": int(sm),
            "temp_c": int(temp),
            "reasons": reasons,
            "pstate": pstate,
            "pids": smi_pids,
        },
        "checks": {
            "util_within_5": abs(round(g["utilization_ratio"] * 100) - int(util)) <= 5,
            # nvidia-smi rounds used memory up to the next MiB: 3582.375 MiB prints as 3583.
            "mem_exact_mib": math.ceil(g["memory_used_bytes"] / MIB) == int(mem),
            "power_within_5pct": abs(g["power_watts"] - float(power)) <= 0.05 * float(power),
            "same_pids_and_memory": ours == smi_pids,
        },
        "snapshot_exit": snap.returncode,
    }


STATIC_FIELDS = "power.min_limit,power.max_limit,power.default_limit,memory.total,pci.bus_id,uuid"


def compare_static() -> dict[str, Any]:
    """The GPU's static facts in `snapshot --json` against `nvidia-smi --query-gpu`."""
    snap = run([PY, "-m", "gpuwatch", "snapshot", "--json", "--window", "0.2"])
    smi = run(["nvidia-smi", f"--query-gpu={STATIC_FIELDS}", "--format=csv,noheader,nounits"])
    d = json.loads(snap.stdout)["devices"][0]
    low, high, default, total, bus, uuid = [x.strip() for x in smi.stdout.splitlines()[0].split(",")]
    ours = {
        "power_min_w": d["power_limit_min_watts"],
        "power_max_w": d["power_limit_max_watts"],
        "power_default_w": d["power_limit_default_watts"],
        "memory_total_mib": d["memory_total_bytes"] // MIB,
        "pci_bus_id": d["pci_bus_id"],
        "uuid": d["uuid"],
    }
    theirs = {
        "power_min_w": float(low),
        "power_max_w": float(high),
        "power_default_w": float(default),
        "memory_total_mib": int(total),
        "pci_bus_id": bus,
        "uuid": uuid,
    }
    return {"gpuwatch": ours, "nvidia_smi": theirs, "equal": {k: ours[k] == theirs[k] for k in ours}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--phase-seconds", type=float, default=40)
    parser.add_argument("--window", type=float, default=30)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    phases = out / "phases.jsonl"
    phases.unlink(missing_ok=True)
    results: dict[str, Any] = {"started": time.time()}
    results["nvidia_smi_L"] = run(["nvidia-smi", "-L"]).stdout.strip()
    results["snapshot_text_idle"] = run([PY, "-m", "gpuwatch", "snapshot"]).stdout
    results["static"] = compare_static()

    holder = subprocess.Popen([PY, str(HERE / "load.py"), "hold", "--gib", "2", "--seconds", "150"])
    time.sleep(4)
    load = subprocess.Popen(
        [PY, str(HERE / "load.py"), "phases", "--file", str(phases), "--seconds", str(args.phase_seconds)]
    )
    t_matmul = wait_phase(phases, "matmul")

    # CPU: gpuwatch's engine at 1 Hz beside `nvidia-smi dmon -d 1`, sampled over the same window.
    loop = subprocess.Popen(
        [
            PY,
            str(HERE / "collect_loop.py"),
            "--seconds",
            str(args.window + 8),
            "--out",
            str(out / "loop.json"),
        ],
        cwd=REPO,
    )
    dmon = subprocess.Popen(["nvidia-smi", "dmon", "-d", "1"], stdout=subprocess.DEVNULL)
    time.sleep(4)  # both past start-up
    p_loop, p_dmon = psutil.Process(loop.pid), psutil.Process(dmon.pid)
    c_loop0, c_dmon0, w0 = cpu_seconds(p_loop.pid), cpu_seconds(p_dmon.pid), time.time()

    samples = []
    for delay in (10, 16, 22):
        time.sleep(max(0.0, t_matmul + delay - time.time()))
        samples.append(compare("matmul"))
    results["snapshot_text_matmul"] = run([PY, "-m", "gpuwatch", "snapshot"]).stdout

    time.sleep(max(0.0, w0 + args.window - time.time()))
    c_loop1, c_dmon1, w1 = cpu_seconds(p_loop.pid), cpu_seconds(p_dmon.pid), time.time()
    dmon.terminate()
    loop.wait(timeout=60)
    results["cpu_window"] = {
        "seconds": round(w1 - w0, 2),
        "gpuwatch_engine_cpu_s": round(c_loop1 - c_loop0, 4),
        "nvidia_smi_dmon_cpu_s": round(c_dmon1 - c_dmon0, 4),
        "ratio": round((c_loop1 - c_loop0) / max(1e-9, c_dmon1 - c_dmon0), 3),
        "gpuwatch_pct_of_core": round(100 * (c_loop1 - c_loop0) / (w1 - w0), 3),
        "dmon_pct_of_core": round(100 * (c_dmon1 - c_dmon0) / (w1 - w0), 3),
        "gpuwatch_rss_mib": None,
    }
    t_copy = wait_phase(phases, "copy")
    for delay in (10, 16, 22):
        time.sleep(max(0.0, t_copy + delay - time.time()))
        samples.append(compare("copy"))
    results["samples"] = samples
    load.wait(timeout=120)
    holder.terminate()
    results["call_costs_idle"] = json.loads(run([PY, str(HERE / "call_costs.py")]).stdout or "null")
    loop_doc = json.loads((out / "loop.json").read_text())
    results["loop_ticks"] = loop_doc["ticks"]
    results["loop_unsupported"] = loop_doc["unsupported"]
    (out / "loop_snapshot.json").write_text(json.dumps(loop_doc["snapshot"], indent=1))
    (out / "loop.json").unlink()

    ok = all(all(s["checks"].values()) for s in samples)
    mm = [s for s in samples if s["phase"] == "matmul"]
    cp = [s for s in samples if s["phase"] == "copy"]
    results["gpm_checks"] = {
        "tensor_high_in_matmul": all((s["gpuwatch"]["tensor_pct"] or 0) > 50 for s in mm),
        "dram_high_in_copy": all((s["gpuwatch"]["dram_pct"] or 0) > 50 for s in cp),
        "tensor_low_in_copy": all((s["gpuwatch"]["tensor_pct"] or 0) < 5 for s in cp),
    }
    results["all_checks_pass"] = (
        ok and all(results["gpm_checks"].values()) and all(results["static"]["equal"].values())
    )
    (out / "results.json").write_text(json.dumps(results, indent=1))
    for s in samples:
        a, b = s["gpuwatch"], s["nvidia_smi"]
        print(
            f"{s['phase']:<7} util {a['util_pct']:>3}/{b['util_pct']:>3}  mem {a['mem_used_mib']}/{b['mem_used_mib']} MiB  "
            f"power {a['power_w']:.1f}/{b['power_w']:.1f} W  sm {a['sm_mhz']}/{b['sm_mhz']}  "
            f"tensor {a['tensor_pct']} dram {a['dram_pct']} occ {a['sm_occupancy_pct']}  reasons {a['reasons']}/{b['reasons']}  "
            f"pids {a['pids']} / {b['pids']}  {s['checks']}"
        )
    print("static facts:", json.dumps(results["static"]))
    print(json.dumps(results["cpu_window"]), json.dumps(results["gpm_checks"]))
    print("calls:", json.dumps(results["call_costs_idle"]))
    print("ALL CHECKS PASS" if results["all_checks_pass"] else "SOME CHECKS FAILED")
    print(results["snapshot_text_matmul"])
    return 0 if results["all_checks_pass"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
