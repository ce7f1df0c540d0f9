"""No interval lost, against a real tritonserver 2.51 behind a proxy that holds every third
statistics answer 0.45 s: past the engine's assembly (0.3 s after each second), so that poll
finishes after its tick's snapshot. Over the run, the intervals the snapshots show add up to
the change of Triton's own counters, and /metrics' batch histogram `_count` to the
executions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from gpuwatch import model
from gpuwatch.collect.triton.collector import TritonCollector
from gpuwatch.config import NvmlSettings, TritonServerSettings, TritonSettings
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.engine import Engine
from gpuwatch.serve.metrics import MetricsState
from tests.conftest import make_collector
from tests.triton.conftest import Load
from tests.triton.server import TritonProcess

pytestmark = pytest.mark.triton


class DelayingProxy:
    """127.0.0.1 → the server's HTTP port; every `every`-th GET /v2/models/stats is held."""

    def __init__(self, upstream: str, *, every: int = 3, delay_seconds: float = 0.45) -> None:
        self.held = 0
        self.stats_requests = 0
        proxy = self
        client = httpx.Client(base_url=upstream, timeout=10)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if method == "GET" and self.path == "/v2/models/stats":
                    with lock:
                        proxy.stats_requests += 1
                        hold = proxy.stats_requests % every == 0
                        proxy.held += hold
                    if hold:
                        time.sleep(delay_seconds)
                with lock:
                    answer = client.request(method, self.path, content=body)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def proxy(triton_server: TritonProcess) -> Iterator[DelayingProxy]:
    p = DelayingProxy(triton_server.url)
    yield p
    p.close()


def _stats(server: TritonProcess, name: str) -> dict[str, Any]:
    doc = httpx.get(f"{server.url}/v2/models/{name}/stats", timeout=5).json()
    entry: dict[str, Any] = doc["model_stats"][0]
    return entry


def test_intervals_add_up_to_the_counters_with_late_polls(
    triton_server: TritonProcess, proxy: DelayingProxy, load: Load
) -> None:
    triton = TritonCollector(
        TritonSettings(timeout_seconds=1.0),
        [TritonServerSettings(name="proxied", url=proxy.url, metrics_url=triton_server.metrics_url)],
    )
    nvml = make_collector(RecordedNvml(1), NvmlSettings(), time.time)  # type: ignore[arg-type]
    engine = Engine(nvml, triton)  # type: ignore[arg-type]
    snapshots: list[model.Snapshot] = []
    metrics = MetricsState()
    executions_in_histogram: list[int] = []

    def observe(snapshot: model.Snapshot) -> None:
        metrics.observe(snapshot)
        counts = metrics.view().tally.batches_by_model.get(("proxied", "resnet", "1"))
        executions_in_histogram.append(counts.buckets[-1] if counts else 0)
        snapshots.append(snapshot)

    engine.subscribe(observe)
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            load.send("resnet", [1.0] * 24)

    engine.start()
    sender = threading.Thread(target=traffic)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _has_resnet(snapshots):
            time.sleep(0.1)
        assert _has_resnet(snapshots)
        first_at = len(snapshots)
        sender.start()
        time.sleep(9)
        stop.set()
        sender.join()
        time.sleep(2.5)  # the last requests' poll, and a snapshot that took it
    finally:
        stop.set()
        engine.stop()
    seen = snapshots[first_at - 1 :]
    models = [_resnet(s) for s in seen]
    assert all(m is not None for m in models)
    begin, end = models[0], models[-1]
    assert begin is not None and end is not None
    # the intervals every snapshot showed, each poll once (a snapshot with no new poll repeats it)
    polled: dict[float, model.ModelInterval] = {}
    for s, m in zip(seen[1:], models[1:], strict=True):
        (server,) = s.triton
        assert m is not None and m.interval is not None and server.polled_at is not None
        polled[server.polled_at] = m.interval
    intervals = list(polled.values())
    assert not any(i.reset for i in intervals)

    def total(field: str) -> int:
        a, b = getattr(end.totals, field), getattr(begin.totals, field)
        return int(a - b)

    def summed(rate: str) -> int:
        return round(sum((getattr(i, rate) or 0.0) * i.interval_seconds for i in intervals))

    assert proxy.held >= 3  # some polls were late
    requests = total("request_success_count")
    assert requests > 100
    assert summed("requests_per_second") == requests
    assert summed("inferences_per_second") == total("inference_count")
    assert summed("executions_per_second") == total("execution_count")
    assert sum(sum(i.batch_size_histogram.values()) for i in intervals) == total("execution_count")
    # /metrics' histogram `_count` grew by exactly the executions Triton counted
    assert executions_in_histogram[-1] - executions_in_histogram[first_at - 1] == total("execution_count")
    assert _stats(triton_server, "resnet")["execution_count"] == end.totals.execution_count  # all seen
    print(
        f"late polls {proxy.held} of {proxy.stats_requests}; {len(intervals)} intervals; "
        f"requests {requests}, executions {total('execution_count')}"
    )


def _resnet(s: model.Snapshot) -> model.ModelStats | None:
    for server in s.triton:
        for m in server.models:
            if m.name == "resnet" and m.interval is not None:
                return m
    return None


def _has_resnet(snapshots: list[model.Snapshot]) -> bool:
    return bool(snapshots) and _resnet(snapshots[-1]) is not None
