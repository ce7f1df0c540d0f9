"""What one poll-and-derive of a Triton server costs, against fetching the same endpoints raw.

    /work/venv/bin/python bench/triton_bench.py [--sizes 1,20,100] [--rounds 30]

For each size N it starts a real tritonserver 2.51 (from the nvidia-pytriton wheel) with N small
Python-backend models (dynamic batching, a little traffic first so every model has batch
statistics), then alternates, `rounds` times each:

- raw: the endpoints one steady-state poll reads — GET /v2/health/ready, POST
  /v2/repository/index, GET /v2/models/stats, GET /metrics — with plain keep-alive
  `httpx.Client`s, bodies read and thrown away, one after another;
- raw ‖: the same, with /metrics fetched on a second thread beside the API, as the poll does;
- poll: `ServerPoller.poll()`, which fetches the same endpoints (model configs are cached: they
  are read once, then every `config_refresh_seconds`) and parses, derives and builds the
  server's status.

It prints the median wall time of each, the ratios poll / raw and poll / raw ‖, and the median
CPU time of this process (all threads) for raw and poll. The goal is a wall-time ratio of at
most 1.5. The first, cold poll (every config read, every /metrics series parsed for the first
time) is printed apart. The models are idle while it measures (their traffic came before):
the steady state of a big server, where most models are idle at any moment.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpuwatch.collect.triton.poller import ServerPoller  # noqa: E402
from gpuwatch.config import TritonServerSettings, TritonSettings  # noqa: E402
from tests.triton.server import ModelSpec, start_server, write_repository  # noqa: E402


def models(n: int) -> list[ModelSpec]:
    return [ModelSpec(f"m{i:03d}", max_batch_size=8, max_queue_delay_us=500, sleep_ms=1) for i in range(n)]


def warm_up(url: str, names: list[str]) -> None:
    """A few concurrent requests per model, so each has a batch histogram and latencies."""
    import numpy as np
    import tritonclient.http as triton_http

    def run(chunk: list[str]) -> None:
        client = triton_http.InferenceServerClient(url.removeprefix("http://"), network_timeout=60)
        data = np.ones((1, 4), dtype=np.float32)
        inp = triton_http.InferInput("INPUT0", [1, 4], "FP32")
        inp.set_data_from_numpy(data)
        for name in chunk:
            for _ in range(3):
                client.infer(name, [inp])

    threads = [threading.Thread(target=run, args=(names[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def measure(n: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"gpuwatch-bench-{n}-") as tmp:
        work = Path(tmp)
        specs = models(n)
        repo = write_repository(work / "models", specs)
        started = time.monotonic()
        server = start_server(repo, work, cache_bytes=None, ready_timeout=600)
        startup = time.monotonic() - started
        try:
            warm_up(server.url, [s.name for s in specs])
            poller = ServerPoller(
                TritonServerSettings(name="bench", url=server.url, metrics_url=server.metrics_url),
                TritonSettings(timeout_seconds=30.0),
            )
            cold_wall, cold_cpu = _timed(poller.poll)
            for _ in range(3):
                poller.poll()
            status = poller.status()
            assert status.state.value == "up" and len(status.models) == n, status.reason
            assert all(m.max_batch_size == 8 for m in status.models), "every config read"
            client = httpx.Client(timeout=30.0)
            metrics_client = httpx.Client(timeout=30.0)

            def api() -> None:
                client.get(f"{server.url}/v2/health/ready").read()
                client.post(f"{server.url}/v2/repository/index", json={}).read()
                client.get(f"{server.url}/v2/models/stats").read()

            def metrics() -> None:
                metrics_client.get(server.metrics_url).read()

            def raw() -> None:
                api()
                metrics()

            def raw_beside() -> None:
                t = threading.Thread(target=metrics)
                t.start()
                api()
                t.join()

            raw()
            raw_beside()
            raw_wall, raw_cpu, beside_wall, poll_wall, poll_cpu = [], [], [], [], []
            for _ in range(rounds):
                w, c = _timed(raw)
                raw_wall.append(w)
                raw_cpu.append(c)
                beside_wall.append(_timed(raw_beside)[0])
                w, c = _timed(poller.poll)
                poll_wall.append(w)
                poll_cpu.append(c)
            client.close()
            metrics_client.close()
            poller.close()
        finally:
            server.stop()
    return {
        "startup": startup,
        "cold_wall": cold_wall,
        "cold_cpu": cold_cpu,
        "raw_wall": statistics.median(raw_wall),
        "beside_wall": statistics.median(beside_wall),
        "raw_cpu": statistics.median(raw_cpu),
        "poll_wall": statistics.median(poll_wall),
        "poll_cpu": statistics.median(poll_cpu),
    }


def _timed(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,20,100")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("Triton poll-and-derive vs raw fetch of the same endpoints (medians of", args.rounds, "rounds)")
    print(
        f"{'models':>6} {'raw':>8} {'raw ‖':>8} {'poll':>8} {'÷raw':>6} {'÷raw ‖':>6}   "
        f"{'raw CPU':>8} {'poll CPU':>8} {'÷raw':>6}   {'cold poll':>9}"
    )
    worst = worst_beside = 0.0
    for n in sizes:
        r = measure(n, args.rounds)
        ratio = r["poll_wall"] / r["raw_wall"]
        ratio_beside = r["poll_wall"] / r["beside_wall"]
        cpu_ratio = r["poll_cpu"] / r["raw_cpu"] if r["raw_cpu"] else float("nan")
        worst, worst_beside = max(worst, ratio), max(worst_beside, ratio_beside)
        print(
            f"{n:>6} {r['raw_wall'] * 1e3:>6.2f}ms {r['beside_wall'] * 1e3:>6.2f}ms "
            f"{r['poll_wall'] * 1e3:>6.2f}ms {ratio:>5.2f}× {ratio_beside:>5.2f}×   "
            f"{r['raw_cpu'] * 1e3:>6.2f}ms {r['poll_cpu'] * 1e3:>6.2f}ms {cpu_ratio:>5.2f}×   "
            f"{r['cold_wall'] * 1e3:>7.1f}ms",
            flush=True,
        )
    for name, value in (("raw", worst), ("raw ‖", worst_beside)):
        verdict = "meets" if value <= 1.5 else "misses"
        print(f"worst wall-time ratio to {name}: {value:.2f}× ({verdict} the goal of ≤ 1.5×)")


if __name__ == "__main__":
    main()
