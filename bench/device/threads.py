"""Where a process spends its CPU, thread by thread: CPU share and wake-ups per second.

Starts the command given after `--`, waits `--warmup` seconds, then samples every thread's
schedstat (ns of CPU) and voluntary context switches (one per sleep, so one per wake-up) over
`--window` seconds, and prints one line per thread name (threads of one name summed) and the
total, with the process's RSS. Used to find what to cut in the daemon (issue 15, item 7) and in
`gpuwatch top` (issue 14, item 1).

Usage: python3 bench/device/threads.py [--window 30] [--warmup 8] [--json OUT] -- gpuwatch daemon ...
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path


def sample(pid: int) -> dict[str, tuple[str, int, int]]:
    """Thread id → (name, CPU ns, voluntary context switches)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        try:
            name = Path(f"{base}/comm").read_text().strip()
            run_ns = int(Path(f"{base}/schedstat").read_text().split()[0])
            status = Path(f"{base}/status").read_text().splitlines()
        except (FileNotFoundError, ProcessLookupError):
            continue
        switches = next(int(line.split()[1]) for line in status if line.startswith("voluntary_ctxt_switches"))
        out[tid] = (name, run_ns, switches)
    return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--json")
    parser.add_argument(
        "--by-thread", action="store_true", help="one line per thread id (Python does not name OS threads)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(args.warmup)
        before = sample(proc.pid)
        time.sleep(args.window)
        after = sample(proc.pid)
        rss = rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    by_name: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for tid, (name, run_ns, switches) in after.items():
        _, run0, switches0 = before.get(tid, (name, 0, 0))
        row = by_name[f"{name}/{tid}" if args.by_thread else name]
        row[0] += (run_ns - run0) / 1e9 / args.window * 100
        row[1] += (switches - switches0) / args.window
        row[2] += 1
    rows = sorted(by_name.items(), key=lambda kv: -kv[1][0])
    print(f"{'thread':24s} {'n':>3s} {'% core':>8s} {'wakeups/s':>10s}")
    for name, (cpu, wakes, count) in rows:
        print(f"{name:24s} {int(count):3d} {cpu:8.3f} {wakes:10.1f}")
    total_cpu = sum(r[0] for _, r in rows)
    total_wakes = sum(r[1] for _, r in rows)
    print(f"{'total':24s} {len(after):3d} {total_cpu:8.3f} {total_wakes:10.1f}   RSS {rss:.1f} MiB")
    if args.json:
        doc = {
            "command": command,
            "window_seconds": args.window,
            "rss_mib": rss,
            "threads": {
                name: {"cpu_percent": r[0], "wakeups_per_second": r[1], "count": r[2]} for name, r in rows
            },
        }
        Path(args.json).write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
