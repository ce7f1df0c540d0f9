"""Record the demo's Triton capture from a real tritonserver under a varying load.

    .venv/bin/python -m tools.record_triton_demo [OUT] [--seconds 150]

Starts Triton 2.51 (from the nvidia-pytriton wheel) with five models — `resnet50` (dynamic
batching, 2 instances, preferred sizes), `bert_base` (raises for marked requests: its failure
share rises and falls), `tokenizer` and the ensemble `bert_pipeline` over tokenizer → bert_base,
and `embedder` (no batching) — drives a load whose concurrency rises and falls, reloads
`resnet50` with a config override part-way (statistics restart, /metrics continue) and unloads
and loads `embedder` later (both restart). Once a second it captures the raw bodies of
`/metrics`, `/v2/models/stats`, the repository index and every changed model config, into
gpuwatch/demo/data/triton/demo.jsonl.gz, which `gpuwatch.demo.triton` replays.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import tritonclient.http as triton_http

from tests.triton.server import ModelSpec, start_server, write_repository

MODELS = (
    ModelSpec(
        "resnet50",
        max_batch_size=32,
        preferred_batch_sizes=(4, 8),
        max_queue_delay_us=2000,
        instances=2,
        sleep_ms=8,
    ),
    ModelSpec("bert_base", max_batch_size=8, max_queue_delay_us=1000, raise_marker=True, sleep_ms=4),
    ModelSpec("tokenizer", max_batch_size=16, max_queue_delay_us=500, sleep_ms=1),
    ModelSpec("bert_pipeline", max_batch_size=8, steps=("tokenizer", "bert_base")),
    ModelSpec("embedder", max_batch_size=0, sleep_ms=3),
)
OUT = Path(__file__).resolve().parents[2] / "gpuwatch" / "collect" / "data" / "triton" / "demo.jsonl.gz"


class Load:
    """Client threads whose number and failure share follow the clock."""

    def __init__(self, url: str, seconds: float) -> None:
        self.url = url
        self.seconds = seconds
        self.t0 = time.monotonic()
        self.stop = threading.Event()
        self.paused: set[str] = set()
        self.sent: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self._lock = threading.Lock()

    def phase(self) -> float:
        return (time.monotonic() - self.t0) / self.seconds

    def worker(self, model: str, slot: int, shape: tuple[int, ...], wanted, fail_share) -> None:  # type: ignore[no-untyped-def]
        client = triton_http.InferenceServerClient(self.url.removeprefix("http://"), connection_timeout=5)
        rng = np.random.default_rng(slot)
        while not self.stop.is_set():
            phase = self.phase()
            if slot >= wanted(phase) or model in self.paused:
                time.sleep(0.05)
                continue
            data = np.ones(shape, dtype=np.float32)
            if rng.random() < fail_share(phase):
                data[..., 0] = -1.0
            inp = triton_http.InferInput("INPUT0", list(shape), "FP32")
            inp.set_data_from_numpy(data)
            try:
                client.infer(model, [inp])
                ok = True
            except Exception:
                ok = False
            with self._lock:
                self.sent[model] = self.sent.get(model, 0) + 1
                if not ok:
                    self.errors[model] = self.errors.get(model, 0) + 1
            time.sleep(0.01)


def _wave(lo: float, hi: float, periods: float, shift: float = 0.0):  # type: ignore[no-untyped-def]
    return lambda phase: lo + (hi - lo) * (0.5 - 0.5 * math.cos(2 * math.pi * (periods * phase + shift)))


def record(out: Path, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="gpuwatch-record-") as tmp:
        work = Path(tmp)
        repo = write_repository(work / "models", MODELS)
        server = start_server(repo, work, cache_bytes=None)
        try:
            _drive(server.url, server.metrics_url, out, seconds)
        finally:
            server.stop()


def _in_thread(url: str, method: str, *args: object, **kwargs: object) -> None:
    """Run a client call on a thread of its own (tritonclient's HTTP client is gevent-based:
    a client may only be used on the thread that made it)."""

    def call() -> None:
        client = triton_http.InferenceServerClient(url.removeprefix("http://"), network_timeout=60)
        getattr(client, method)(*args, **kwargs)

    threading.Thread(target=call, daemon=True).start()


def _drive(url: str, metrics_url: str, out: Path, seconds: float) -> None:
    load = Load(url, seconds)
    plans = {
        "resnet50": (10, (1, 4), _wave(1, 10, 1.5), lambda p: 0.0),
        "bert_pipeline": (4, (1, 4), _wave(1, 4, 1.0, 0.25), _wave(0.02, 0.3, 1.0, 0.5)),
        "embedder": (2, (4,), _wave(0, 2, 2.0), lambda p: 0.0),
    }
    threads = []
    for model, (slots, shape, wanted, fail) in plans.items():
        for slot in range(slots):
            t = threading.Thread(target=load.worker, args=(model, slot, shape, wanted, fail), daemon=True)
            t.start()
            threads.append(t)
    client = triton_http.InferenceServerClient(
        url.removeprefix("http://"), connection_timeout=30, network_timeout=30
    )
    http = httpx.Client(timeout=5)
    frames = []
    configs: dict[str, object] = {}
    events = {
        int(seconds * 0.45): "override",
        int(seconds * 0.72): "unload",
        int(seconds * 0.72) + 3: "load",
    }
    metadata = http.get(f"{url}/v2").json()
    start = time.monotonic()
    for tick in range(int(seconds)):
        target = start + tick
        time.sleep(max(0.0, target - time.monotonic()))
        action = events.get(tick)
        if action == "override":
            cfg = http.get(f"{url}/v2/models/resnet50/config").json()
            cfg["dynamic_batching"]["preferred_batch_size"] = [8, 16]
            cfg["max_batch_size"] = 16
            _in_thread(url, "load_model", "resnet50", config=json.dumps(cfg))
        elif action == "unload":
            load.paused.add("embedder")
            client.unload_model("embedder")
        elif action == "load":
            _in_thread(url, "load_model", "embedder")
            threading.Timer(2.0, lambda: load.paused.discard("embedder")).start()
        frame: dict[str, object] = {
            "t": round(time.monotonic() - start, 3),
            "wall_ms": int(time.time() * 1000),
        }
        frame["health"] = http.get(f"{url}/v2/health/ready").status_code
        index = http.post(f"{url}/v2/repository/index", json={}).json()
        frame["index"] = index
        stats = http.get(f"{url}/v2/models/stats")
        frame["stats"] = stats.json() if stats.status_code == 200 else None
        frame["metrics"] = http.get(metrics_url).text
        changed = {}
        for row in index:
            if row.get("state") != "READY":
                continue
            key = f"{row['name']}/{row['version']}"
            cfg = http.get(f"{url}/v2/models/{row['name']}/versions/{row['version']}/config").json()
            if configs.get(key) != cfg:
                changed[key] = configs[key] = cfg
        if changed:
            frame["configs"] = changed
        frames.append(frame)
        print(
            f"{tick:4d} {frame['t']:7.2f}s {action or '':8s} sent={load.sent} errors={load.errors}",
            flush=True,
        )
    load.stop.set()
    for t in threads:
        t.join(5)
    header = {
        "format": "gpuwatch-triton-recording/1",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "period_seconds": 1.0,
        "metadata": metadata,
        "description": (
            "Triton 2.51.0 (nvidia-pytriton 0.7.0 wheel) on a CPU-only machine, Python-backend models "
            "under a varying load; resnet50 reloaded with a config override at 45%, embedder "
            "unloaded and loaded at 72% (tools/record_triton_demo.py)"
        ),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        f.write(json.dumps(header, separators=(",", ":")) + "\n")
        for frame in frames:
            f.write(json.dumps(frame, separators=(",", ":")) + "\n")
    print(f"wrote {len(frames)} frames to {out} ({out.stat().st_size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=OUT)
    parser.add_argument("--seconds", type=float, default=150.0)
    args = parser.parse_args()
    record(args.out, args.seconds)


if __name__ == "__main__":
    main()
