"""`gpuwatch daemon` on a real GPU under load: its CPU and RSS against `nvidia-smi dmon -d 1`.

The daemon runs at its defaults (1 s ticks, the SQLite store, /metrics and the API) beside
`nvidia-smi dmon -d 1`, both started a few seconds before the window and sampled over the same
window from /proc (schedstat: every thread, ns resolution). Two windows: no scraper, then a
scraper fetching /metrics every 15 s, as a Prometheus would. RSS is the daemon's at the end.

Usage (GPU machine, repository root): python3 bench/device/daemon_cpu.py --out DIR [--window 60]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import cpu_seconds

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PY = sys.executable
SERVING = re.compile(r"serving (http://127\.0\.0\.1:\d+)/metrics")


def start_daemon(out: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = out / "daemon.log"
    proc = subprocess.Popen(
        [PY, "-m", "gpuwatch", "daemon", "--listen", "127.0.0.1:0", "--db", str(out / "gpuwatch.db")],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        cwd=REPO,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        found = SERVING.search(log.read_text(errors="replace"))
        if found:
            return proc, found.group(1)
        time.sleep(0.2)
    raise SystemExit(f"the daemon never served: {log.read_text()}")


def window(daemon: int, dmon: int, seconds: float, scrape_url: str | None) -> dict[str, float]:
    stop = threading.Event()
    scrapes = [0]

    def scraper() -> None:
        while not stop.wait(15.0):
            with urllib.request.urlopen(scrape_url, timeout=10) as r:
                r.read()
            scrapes[0] += 1

    thread = threading.Thread(target=scraper, daemon=True) if scrape_url else None
    c0, d0, t0 = cpu_seconds(daemon), cpu_seconds(dmon), time.time()
    if thread:
        thread.start()
    time.sleep(seconds)
    c1, d1, t1 = cpu_seconds(daemon), cpu_seconds(dmon), time.time()
    stop.set()
    wall = t1 - t0
    return {
        "seconds": round(wall, 1),
        "daemon_cpu_s": round(c1 - c0, 4),
        "dmon_cpu_s": round(d1 - d0, 4),
        "daemon_pct_core": round(100 * (c1 - c0) / wall, 3),
        "dmon_pct_core": round(100 * (d1 - d0) / wall, 3),
        "ratio": round((c1 - c0) / max(1e-9, d1 - d0), 3),
        "scrapes": scrapes[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--window", type=float, default=60)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    marks = out / "daemon_phases.jsonl"
    marks.unlink(missing_ok=True)
    load = subprocess.Popen([PY, str(HERE / "load.py"), "phases", "--file", str(marks), "--seconds", "300"])
    while not marks.exists():
        time.sleep(0.2)
    daemon, url = start_daemon(out)
    dmon = subprocess.Popen(["nvidia-smi", "dmon", "-d", "1"], stdout=subprocess.DEVNULL)
    time.sleep(8)  # both past start-up; the daemon's first slow reads and GPM baselines done
    result = {
        "no_scraper": window(daemon.pid, dmon.pid, args.window, None),
        "scraped_every_15s": window(daemon.pid, dmon.pid, args.window, url + "/metrics"),
        "daemon_rss_mib": round(psutil.Process(daemon.pid).memory_info().rss / 2**20, 1),
    }
    with urllib.request.urlopen(url + "/api/v1/health", timeout=10) as r:
        result["health"] = json.loads(r.read())
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        (out / "metrics.txt").write_bytes(r.read())
    dmon.terminate()
    daemon.terminate()
    daemon.wait(timeout=30)
    load.terminate()
    (out / "daemon_cpu.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "health"}, indent=1))
    print("health:", result["health"].get("status"), result["health"].get("problems"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
