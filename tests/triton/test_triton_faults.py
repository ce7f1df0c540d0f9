"""Endpoint faults (issue 4, point 4) against a small misbehaving HTTP server that otherwise
answers with real Triton 2.51 captures: connection refused, a 10 s stall, garbage, a 50 MB body,
wrong JSON shapes, HTTP 4xx/5xx and a model that is not ready. Each gives the server or the
model a status with a clear reason, the poll keeps its deadline and reads a bounded number of
bytes, and NVML ticks go on while a Triton poll is stuck."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from gpuwatch import model
from gpuwatch.collect.triton.collector import TritonCollector
from gpuwatch.collect.triton.poller import ABSENT_RECHECK_SECONDS
from gpuwatch.config import TritonServerSettings, TritonSettings
from gpuwatch.engine import Engine
from tests.conftest import ManualClock, make_collector
from tests.triton.fake_triton import DATA, FakeTriton, Fault
from tests.triton.server import free_ports

SETTINGS = TritonSettings(timeout_seconds=0.5)


@pytest.fixture
def fake() -> Iterator[FakeTriton]:
    with FakeTriton() as server:
        yield server


def collector(fake: FakeTriton, settings: TritonSettings = SETTINGS, **server: object) -> TritonCollector:
    s = TritonServerSettings(name="fake", url=fake.url, metrics_url=fake.metrics_url, **server)  # type: ignore[arg-type]
    return TritonCollector(settings, [s])


def poll(c: TritonCollector) -> tuple[str | None, model.TritonServerStatus]:
    result = c.pollers[0].poll()
    return result, c.view()[0]


def kinds(c: TritonCollector) -> list[model.EventKind]:
    return [e.kind for e in c.drain_events()]


def test_the_captures_give_an_up_server_with_its_models(fake: FakeTriton) -> None:
    c = collector(fake)
    result, status = poll(c)
    assert result is None
    assert status.state == model.ServerState.UP and status.reason is None
    assert status.version == "2.51.0"
    resnet = {m.name: m for m in status.models}["resnet_stub"]
    assert resnet.state == "READY"
    assert resnet.totals.request_success_count == 300
    assert (resnet.max_batch_size, resnet.instance_count, resnet.instance_kind) == (32, 2, "CPU")


def test_headers_go_to_the_api_and_not_to_the_metrics_port(fake: FakeTriton) -> None:
    c = collector(fake, headers={"triton-key": "s3cret"})
    poll(c)
    api = [h for m, p, h in fake.requests if p.startswith("/v2")]
    metrics = [h for m, p, h in fake.requests if p == "/metrics"]
    assert api and all(h.get("triton-key") == "s3cret" for h in api)
    assert metrics and all("triton-key" not in h for h in metrics)


# --------------------------------------------------------------------------- connection refused


def test_connection_refused_on_a_configured_server_is_down_with_a_reason() -> None:
    (port,) = free_ports(1)
    s = TritonServerSettings(
        name="gone", url=f"http://127.0.0.1:{port}", metrics_url=f"http://127.0.0.1:{port + 2}/metrics"
    )
    c = TritonCollector(SETTINGS, [s])
    result = c.pollers[0].poll()
    status = c.view()[0]
    assert status.state == model.ServerState.DOWN
    assert status.reason == f"http://127.0.0.1:{port}: connection refused"
    assert result == status.reason
    events = c.drain_events()
    assert [(e.kind, e.severity) for e in events] == [(model.EventKind.TRITON_DOWN, model.Severity.CRITICAL)]
    c.pollers[0].poll()
    assert c.drain_events() == []  # one event per outage, not one per poll


def test_the_implicit_local_server_is_quietly_absent_until_one_listens() -> None:
    (port,) = free_ports(1)
    s = TritonServerSettings(
        name="local", url=f"http://127.0.0.1:{port}", metrics_url=f"http://127.0.0.1:{port}/metrics"
    )
    monotonic = ManualClock(1000.0)
    c = TritonCollector(SETTINGS, [s], implicit=True, monotonic=monotonic)
    assert c.pollers[0].poll() is None
    status = c.view()[0]
    assert status.state == model.ServerState.ABSENT
    assert status.reason == f"nothing listens at http://127.0.0.1:{port} (looked again every 15 s)"
    assert c.drain_events() == []
    with FakeTriton(port):
        # Absent, the implicit server is looked for every 15 s, not at every poll (a poll of
        # nothing costs ~1 ms of CPU): one that starts is seen at the next look.
        monotonic.advance(ABSENT_RECHECK_SECONDS - 1)
        assert c.pollers[0].poll() is None
        assert c.view()[0].state == model.ServerState.ABSENT
        monotonic.advance(1)
        assert c.pollers[0].poll() is None
        assert c.view()[0].state == model.ServerState.UP
        assert kinds(c) == [model.EventKind.TRITON_UP]
        monotonic.advance(1)  # up: polled at every tick again
        assert c.pollers[0].poll() is None
        assert c.view()[0].polled_at is not None


# --------------------------------------------------------------------------- a 10 s stall


def test_a_stalled_server_is_cut_off_at_the_deadline(fake: FakeTriton) -> None:
    stall = fake.faults["/v2/health/ready"] = Fault("stall", stall_seconds=10)
    c = collector(fake)
    result, status = poll(c)
    # The poll came back while the server was still holding the request: the deadline, not
    # the server, ended it.
    assert stall.stalling == 1 and not stall.release.is_set()
    assert status.state == model.ServerState.DOWN
    assert result is not None and "no answer within" in result
    assert status.models == ()
    stall.release.set()


def test_a_stalled_kept_alive_connection_is_retried_on_a_fresh_one(fake: FakeTriton) -> None:
    # Triton 2.51 loading a model: requests on connections already open get no answer for
    # seconds, a new connection is answered at once. Down means down on a fresh connection too.
    c = collector(fake)
    assert poll(c)[1].state == model.ServerState.UP
    kinds(c)
    for path in ("/v2/health/ready", "/v2/repository/index", "/v2/models/stats", "/metrics"):
        fake.faults[path] = Fault("stall_kept_alive", stall_seconds=10)
    started = time.monotonic()
    result, status = poll(c)
    took = time.monotonic() - started
    assert fake.stalled_kept_alive >= 2  # the API's and the metrics port's kept connections
    assert result is None and status.state == model.ServerState.UP and status.reason is None
    assert {m.name: m for m in status.models}["resnet_stub"].totals.request_success_count == 300
    assert status.models[0].pending_requests is not None  # /metrics came back too
    assert kinds(c) == []  # no triton_down, no triton_restart
    assert took < SETTINGS.timeout_seconds + 0.2  # within the one deadline
    for fault in fake.faults.values():
        fault.release.set()


def test_a_server_that_answers_on_no_connection_is_down(fake: FakeTriton) -> None:
    c = collector(fake)
    poll(c)
    kinds(c)
    stall = fake.faults["/v2/health/ready"] = Fault("stall", stall_seconds=10)
    result, status = poll(c)
    assert stall.stalling == 2  # the kept-alive connection, then a fresh one
    assert status.state == model.ServerState.DOWN
    assert result is not None and "also on a fresh connection" in result
    assert kinds(c) == [model.EventKind.TRITON_DOWN]
    stall.release.set()


def test_a_stalled_metrics_port_leaves_the_api_figures(fake: FakeTriton) -> None:
    stall = fake.faults["/metrics"] = Fault("stall", stall_seconds=10)
    c = collector(fake)
    result, status = poll(c)
    assert stall.stalling == 1
    assert status.state == model.ServerState.UP
    assert result is not None and result.startswith("metrics: no answer within")
    resnet = {m.name: m for m in status.models}["resnet_stub"]
    assert resnet.totals.request_success_count == 300  # from /v2/models/stats
    assert resnet.pending_requests is None  # only /metrics has it
    stall.release.set()


# --------------------------------------------------------------------------- garbage


def test_garbage_on_the_metrics_port(fake: FakeTriton) -> None:
    fake.faults["/metrics"] = Fault("garbage", body=b"<html><body>502 Bad Gateway</body></html>")
    _, status = poll(collector(fake))
    assert status.state == model.ServerState.UP
    assert status.reason is not None and status.reason.startswith(
        "metrics: not Prometheus text: unparseable line"
    )
    fake.faults["/metrics"] = Fault("garbage", body=bytes(range(256)) * 4)
    _, status = poll(collector(fake))
    assert status.reason is not None and status.reason.startswith("metrics: not UTF-8 text")


def test_garbage_everywhere_is_an_error_not_a_down(fake: FakeTriton) -> None:
    for path in ("/v2/repository/index", "/v2/models/stats"):
        fake.faults[path] = Fault("garbage", body=b"\x00\x01 certainly not json")
    fake.faults["/metrics"] = Fault("garbage", body=b"{not: prometheus}")
    c = collector(fake)
    result, status = poll(c)
    assert status.state == model.ServerState.ERROR
    assert result is not None
    assert "repository index: not JSON" in result and "statistics: not JSON" in result
    assert "metrics: not Prometheus text" in result
    events = c.drain_events()
    assert [(e.kind, e.severity) for e in events] == [(model.EventKind.TRITON_DOWN, model.Severity.WARNING)]


# --------------------------------------------------------------------------- a 50 MB body


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_50_mb_body_is_refused_without_being_read(fake: FakeTriton, chunked: bool) -> None:
    huge = fake.faults["/v2/models/stats"] = Fault("huge", size=50 * 1024 * 1024, chunked=chunked)
    settings = TritonSettings(timeout_seconds=5.0, max_response_bytes=1024 * 1024)
    _, status = poll(collector(fake, settings))
    assert status.state == model.ServerState.UP  # index and metrics still answer
    assert status.reason is not None
    if chunked:
        assert "statistics: response is over the 1 MiB cap (stopped reading)" in status.reason
    else:
        assert "statistics: response of 52428800 bytes is over the 1 MiB cap" in status.reason
    # What the server managed to write before the collector hung up: the cap plus what fits in
    # the sockets' buffers, never the 50 MB.
    time.sleep(0.2)
    assert huge.written < 16 * 1024 * 1024


# --------------------------------------------------------------------------- wrong JSON shapes


def test_wrong_shapes_are_named(fake: FakeTriton) -> None:
    fake.faults["/v2/models/stats"] = Fault("json", doc={"model_stats": "resnet_stub"})
    fake.faults["/v2/repository/index"] = Fault("json", doc={"models": ["resnet_stub"]})
    result, status = poll(collector(fake))
    assert status.state == model.ServerState.UP  # /metrics still gives every model
    assert result is not None
    assert (
        "statistics: unexpected shape: model_stats: expected a list, got the string 'resnet_stub'" in result
    )
    assert "repository index: unexpected shape: expected a list of models, got an object" in result
    assert {m.name for m in status.models} == {"resnet_stub", "bert_stub"}


def test_a_bad_stats_entry_and_a_bad_config_mark_only_their_model(fake: FakeTriton) -> None:
    stats = json.loads((DATA / "models_stats.json").read_text())
    bad = next(e for e in stats["model_stats"] if e["name"] == "bert_stub")
    bad["batch_stats"] = {"1": "x"}
    fake.set_body("GET", "/v2/models/stats", stats)
    fake.faults["/v2/models/resnet_stub/versions/1/config"] = Fault("json", doc={"max_batch_size": "lots"})
    result, status = poll(collector(fake))
    models = {m.name: m for m in status.models}
    assert result is None and status.state == model.ServerState.UP
    assert models["bert_stub"].state_reason == (
        "statistics: model_stats[0].batch_stats: expected a list, got an object"
    )
    assert models["bert_stub"].totals.inference_count == 100  # /metrics still counts it
    assert models["resnet_stub"].state_reason is not None
    assert models["resnet_stub"].state_reason.startswith(
        "config: max_batch_size: expected a non-negative integer"
    )
    assert models["resnet_stub"].totals.request_success_count == 300


# --------------------------------------------------------------------------- HTTP 4xx and 5xx


def test_http_errors_name_the_endpoint_and_triton_error_text(fake: FakeTriton) -> None:
    fake.faults["/v2/models/stats"] = Fault(
        "status", status=500, body=b'{"error":"failed to get statistics"}'
    )
    fake.faults["/metrics"] = Fault("status", status=404, body=b"Not Found")
    result, status = poll(collector(fake))
    assert status.state == model.ServerState.UP  # the index still answers
    assert result == (
        "statistics: HTTP 500 Internal Server Error: failed to get statistics; "
        "metrics: HTTP 404 Not Found: 'Not Found'"
    )


def test_5xx_from_every_endpoint_is_down(fake: FakeTriton) -> None:
    for path in ("/v2/repository/index", "/v2/models/stats", "/metrics"):
        fake.faults[path] = Fault("status", status=503, body=b'{"error":"shutting down"}')
    _, status = poll(collector(fake))
    assert status.state == model.ServerState.DOWN


def test_5xx_on_health_is_down_and_4xx_is_not_ready(fake: FakeTriton) -> None:
    fake.faults["/v2/health/ready"] = Fault("status", status=503)
    _, status = poll(collector(fake))
    assert status.state == model.ServerState.DOWN
    assert status.reason == f"{fake.url}: HTTP 503 Service Unavailable"
    fake.faults["/v2/health/ready"] = Fault("status", status=400)
    _, status = poll(collector(fake))
    assert status.state == model.ServerState.UP
    assert status.reason == "not ready (HTTP 400 Bad Request)"


def test_a_restricted_api_without_its_header(fake: FakeTriton) -> None:
    forbidden = b'{"error":"This API is restricted, expecting header \'triton-key\'"}'
    for path in ("/v2/repository/index", "/v2/models/stats"):
        fake.faults[path] = Fault("status", status=403, body=forbidden)
    result, status = poll(collector(fake))
    assert status.state == model.ServerState.UP  # /metrics has no authentication
    assert result is not None and "HTTP 403 Forbidden: This API is restricted" in result
    resnet = {m.name: m for m in status.models}["resnet_stub"]
    assert resnet.totals.request_success_count == 300 and resnet.state is None


# --------------------------------------------------------------------------- a model not ready


def test_a_model_that_is_not_ready(fake: FakeTriton) -> None:
    c = collector(fake)
    poll(c)
    c.drain_events()
    index = json.loads((DATA / "repository_index.json").read_text())
    index[0] = {
        "name": "bert_stub",
        "version": "1",
        "state": "UNAVAILABLE",
        "reason": "Internal: CUDA out of memory\nAt: ...",
    }
    fake.set_body("POST", "/v2/repository/index", index)
    _, status = poll(c)
    bert = {m.name: m for m in status.models}["bert_stub"]
    assert (bert.state, bert.state_reason) == ("UNAVAILABLE", "Internal: CUDA out of memory")
    events = c.drain_events()
    assert [(e.kind, e.severity, e.model) for e in events] == [
        (model.EventKind.MODEL_STATE, model.Severity.WARNING, "bert_stub")
    ]
    assert events[0].message == "bert_stub:1 on fake: READY → UNAVAILABLE (Internal: CUDA out of memory)"


def test_a_state_from_a_newer_triton_is_kept_as_its_word_and_is_not_ready(fake: FakeTriton) -> None:
    c = collector(fake)
    _, first = poll(c)
    assert {m.name: m.state for m in first.models}["bert_stub"] is model.ModelState.READY
    c.drain_events()
    index = json.loads((DATA / "repository_index.json").read_text())
    index[0] = {"name": "bert_stub", "version": "1", "state": "PAUSED"}
    fake.set_body("POST", "/v2/repository/index", index)
    _, status = poll(c)
    bert = {m.name: m for m in status.models}["bert_stub"]
    assert bert.state == "PAUSED" and not isinstance(bert.state, model.ModelState)
    assert bert.state != model.ModelState.READY
    events = c.drain_events()
    assert [(e.kind, e.severity, e.message) for e in events] == [
        (model.EventKind.MODEL_STATE, model.Severity.WARNING, "bert_stub:1 on fake: READY → PAUSED")
    ]


# --------------------------------------------------------------------------- NVML is never delayed


def test_nvml_ticks_go_on_while_a_triton_poll_is_stuck(
    fake: FakeTriton, recorded4, fast_nvml_settings, clock
) -> None:  # type: ignore[no-untyped-def]
    stall = fake.faults["/v2/health/ready"] = Fault("stall", stall_seconds=30)
    gpus = make_collector(recorded4, fast_nvml_settings, clock)
    triton = collector(fake, TritonSettings(timeout_seconds=60.0, interval_seconds=0.2))
    engine = Engine(gpus, triton, tick_seconds=0.2)
    engine.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            health = {h.name: h for h in engine.health()}
            if health["triton-fake"].stale and health["nvml"].runs_count >= 5:
                break
            time.sleep(0.05)
        health = {h.name: h for h in engine.health()}
        assert stall.stalling == 1  # the Triton poll is still waiting on the server
        assert health["triton-fake"].stale and health["triton-fake"].runs_count == 0
        assert health["nvml"].runs_count >= 5 and not health["nvml"].stale
        snapshot = engine.build_snapshot(clock())
        assert len(snapshot.gpus) == 4
    finally:
        stall.release.set()
        engine.stop()
        threading.Event().wait(0.1)
