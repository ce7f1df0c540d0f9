"""The collector against a real tritonserver (2.51, from the nvidia-pytriton wheel): a known
load sent with tritonclient gives exact request, inference and failure counts and plausible
batch sizes; what Triton does not count is not counted; unload/load and a config-override
reload are resets; a killed and restarted server is down with a reason, then recovers with no
negative rate, while a second server on other ports goes on."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import psutil
import pytest

from gpuwatch import model
from gpuwatch.collect.host import HostProcesses
from gpuwatch.collect.joins import join
from gpuwatch.collect.triton.collector import TritonCollector
from gpuwatch.config import TritonServerSettings, TritonSettings
from tests.conftest import run_gpuwatch
from tests.triton.conftest import Load
from tests.triton.server import ModelSpec, TritonProcess, start_server, write_repository

pytestmark = pytest.mark.triton

SETTINGS = TritonSettings(timeout_seconds=10.0)


def server_settings(server: TritonProcess, name: str = "live") -> TritonServerSettings:
    return TritonServerSettings(name=name, url=server.url, metrics_url=server.metrics_url)


def collector(*servers: TritonProcess) -> TritonCollector:
    names = ["live", "second"]
    return TritonCollector(SETTINGS, [server_settings(s, names[i]) for i, s in enumerate(servers)])


def poll(c: TritonCollector, i: int = 0) -> dict[str, model.ModelStats]:
    c.pollers[i].poll()
    status = c.view()[i]
    assert status.state == model.ServerState.UP, status.reason
    return {m.name: m for m in status.models}


def delta(after: model.ModelStats, before: model.ModelStats, field: str) -> int:
    a, b = getattr(after.totals, field), getattr(before.totals, field)
    assert a is not None and b is not None
    return int(a - b)


def counted(m: model.ModelStats) -> int:
    """Requests in the interval, from its rate: Δsuccess = requests/s × Δt."""
    assert m.interval is not None and m.interval.requests_per_second is not None
    return round(m.interval.requests_per_second * m.interval.interval_seconds)


def test_exact_counts_under_a_known_load(triton_server: TritonProcess, load: Load) -> None:
    c = collector(triton_server)
    before = poll(c)
    got_resnet = load.send("resnet", [1.0] * 120)
    got_pipeline = load.send("pipeline", [1.0] * 30)
    markers = [-1.0 if i % 4 == 0 else 1.0 for i in range(40)]  # every 4th request raises
    got_raise = load.send("bert_raise", markers)
    got_plain = load.send("plain", [1.0] * 15, shape=(4,))
    assert got_resnet == {"ok": 120} and got_pipeline == {"ok": 30} and got_plain == {"ok": 15}
    assert got_raise == {"ok": 30, "500": 10}
    after = poll(c)

    resnet = after["resnet"]  # its own 120, and the pipeline's 30 through its second step
    assert delta(resnet, before["resnet"], "request_success_count") == 150
    assert delta(resnet, before["resnet"], "inference_count") == 150
    assert counted(resnet) == 150
    i = resnet.interval
    assert i is not None and not i.reset
    executions = delta(resnet, before["resnet"], "execution_count")
    assert sum(i.batch_size_histogram.values()) == executions
    assert sum(b * n for b, n in i.batch_size_histogram.items()) == 150
    assert 1 <= min(i.batch_size_histogram) <= max(i.batch_size_histogram) <= 32
    assert i.average_batch_size is not None and 1.0 <= i.average_batch_size <= 32
    assert max(i.batch_size_histogram) > 1, "8 threads into 2 instances of 10 ms: requests must batch"
    assert i.preferred_batch_ratio is not None and 0.0 <= i.preferred_batch_ratio <= 1.0
    assert i.batch_fill_ratio == pytest.approx(i.average_batch_size / 32)
    assert i.average_compute_infer_seconds is not None and i.average_compute_infer_seconds >= 0.010 / 32
    assert i.queue_share_ratio is not None and 0.0 <= i.queue_share_ratio <= 1.0
    assert (resnet.max_batch_size, resnet.preferred_batch_sizes, resnet.instance_count) == (32, (4, 8), 2)
    assert resnet.max_queue_delay_seconds == pytest.approx(0.002)
    assert resnet.instance_kind == "CPU" and resnet.pending_requests == 0

    raised = after["bert_raise"]
    assert delta(raised, before["bert_raise"], "request_success_count") == 30
    assert delta(raised, before["bert_raise"], "request_failure_count") == 10
    assert (
        raised.totals.failure_count_by_reason["BACKEND"]
        - before["bert_raise"].totals.failure_count_by_reason["BACKEND"]
        == 10
    )
    assert delta(raised, before["bert_raise"], "execution_count") == 40  # no batching: one each
    ri = raised.interval
    assert ri is not None and ri.batch_size_histogram == {1: 40}
    assert ri.failures_per_second is not None
    assert round(ri.failures_per_second * ri.interval_seconds) == 10
    assert round(ri.failures_per_second_by_reason["BACKEND"] * ri.interval_seconds) == 10

    plain = after["plain"]
    assert delta(plain, before["plain"], "request_success_count") == 15
    assert plain.max_batch_size == 0 and plain.interval is not None
    assert plain.interval.batch_fill_ratio is None  # a model that does not batch has no fill

    pipeline = after["pipeline"]
    assert pipeline.ensemble_steps == ("prep", "resnet")
    assert pipeline.platform == "ensemble"
    assert delta(pipeline, before["pipeline"], "request_success_count") == 30
    assert delta(after["prep"], before["prep"], "request_success_count") == 30
    assert pipeline.interval is not None and pipeline.interval.average_batch_size is None


def test_what_triton_does_not_count(triton_server: TritonProcess, load: Load) -> None:
    """Bad input (HTTP 400) is not counted at all; a Python model's error response (HTTP 500,
    no raise) counts as a success."""
    c = collector(triton_server)
    before = poll(c)
    assert load.send("resnet", [1.0] * 5, shape=(1, 3)) == {"400": 5}
    assert load.send("bert_raise", [-2.0] * 6) == {"500": 6}
    after = poll(c)
    assert delta(after["resnet"], before["resnet"], "request_success_count") == 0
    assert delta(after["resnet"], before["resnet"], "request_failure_count") == 0
    assert delta(after["bert_raise"], before["bert_raise"], "request_success_count") == 6
    assert delta(after["bert_raise"], before["bert_raise"], "request_failure_count") == 0


def test_an_ensemble_counts_a_failing_step(triton_server: TritonProcess, load: Load) -> None:
    """A failure in a step fails the ensemble's request too: the ensemble is shown as a tree
    over its steps, never summed with them. (Triton 2.51 counts each such failure twice in the
    ensemble's own statistics: docs/triton.md.)"""
    c = collector(triton_server)
    before = poll(c)
    # prep doubles its input: -0.5 reaches bert_raise as its raise marker, -1
    assert load.send("pipeline_raise", [-0.5, 1.0] * 4) == {"ok": 4, "500": 4}
    after = poll(c)
    assert delta(after["bert_raise"], before["bert_raise"], "request_failure_count") == 4
    assert delta(after["pipeline_raise"], before["pipeline_raise"], "request_success_count") == 4
    assert delta(after["pipeline_raise"], before["pipeline_raise"], "request_failure_count") == 8
    assert after["pipeline_raise"].ensemble_steps == ("prep", "bert_raise")


def test_a_model_that_fails_to_load_is_unavailable_with_its_reason(triton_server: TritonProcess) -> None:
    models = poll(collector(triton_server))
    broken = models["broken"]
    assert broken.state == "UNAVAILABLE"
    assert (
        broken.state_reason is not None
        and "fail_init is set: this model refuses to load" in broken.state_reason
    )
    assert broken.interval is None or broken.interval.requests_per_second is None


def test_the_response_cache(triton_server: TritonProcess, load: Load) -> None:
    c = collector(triton_server)
    before = poll(c)
    for _ in range(10):  # one after another: the first misses, the nine others hit
        assert load.one("cached", marker=7.0) == "ok"
    after = poll(c)
    assert delta(after["cached"], before["cached"], "request_success_count") == 10
    assert delta(after["cached"], before["cached"], "cache_hit_count") == 9
    assert delta(after["cached"], before["cached"], "inference_count") == 1
    i = after["cached"].interval
    assert i is not None and i.cache_hit_ratio == pytest.approx(0.9)


def test_unload_then_load_is_a_reset(triton_server: TritonProcess, load: Load) -> None:
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(triton_server.url.removeprefix("http://"), network_timeout=60)
    c = collector(triton_server)
    poll(c)
    assert load.send("cycle", [1.0] * 12) == {"ok": 12}
    before = poll(c)["cycle"]
    assert before.totals.request_success_count is not None and before.totals.request_success_count >= 12
    c.drain_events()
    client.unload_model("cycle")
    deadline = time.monotonic() + 30
    while poll(c)["cycle"].state != "UNAVAILABLE":
        assert time.monotonic() < deadline, "cycle never became UNAVAILABLE"
        time.sleep(0.3)
    gone = poll(c)["cycle"]
    assert gone.totals.request_success_count is None and gone.state_reason == "unloaded"
    client.load_model("cycle")
    loaded = poll(c)["cycle"]
    assert loaded.state == "READY"
    assert loaded.interval is not None and loaded.interval.reset
    assert loaded.interval.reset_reason == "unload/load: statistics and /metrics started again"
    assert loaded.interval.requests_per_second is None
    events = c.drain_events()
    assert [e.message.split(": ", 1)[1] for e in events if e.kind == model.EventKind.MODEL_STATE][:1] == [
        "READY → UNLOADING"
    ]
    assert any(e.kind == model.EventKind.MODEL_STATE and e.message.endswith("→ READY") for e in events)
    assert [e.kind for e in events if e.kind == model.EventKind.MODEL_RESET] == [model.EventKind.MODEL_RESET]
    assert load.send("cycle", [1.0] * 7) == {"ok": 7}
    after = poll(c)["cycle"]
    assert after.totals.request_success_count == 7  # since the load
    assert after.interval is not None and not after.interval.reset and counted(after) == 7


def test_a_config_override_reload_restarts_stats_but_not_metrics(
    triton_server: TritonProcess, load: Load
) -> None:
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(triton_server.url.removeprefix("http://"), network_timeout=60)
    c = collector(triton_server)
    poll(c)
    assert load.send("cycle", [1.0] * 9) == {"ok": 9}
    before = poll(c)["cycle"]
    c.drain_events()
    config = client.get_model_config("cycle")
    config["max_batch_size"] = 8
    config["dynamic_batching"]["preferred_batch_size"] = [8]
    client.load_model("cycle", config=json.dumps(config))
    reloaded = poll(c)["cycle"]
    assert reloaded.interval is not None and reloaded.interval.reset
    assert (
        reloaded.interval.reset_reason
        == "reload: statistics started again, /metrics continued (config override?)"
    )
    assert reloaded.totals.request_success_count == 0  # statistics restart with the reload
    assert [e.kind for e in c.drain_events()] == [model.EventKind.MODEL_RESET]
    assert before.max_batch_size == 16
    assert load.send("cycle", [1.0] * 4) == {"ok": 4}
    after = poll(c)["cycle"]
    assert after.max_batch_size == 8  # the config was read again after the reset
    assert after.interval is not None and not after.interval.reset and counted(after) == 4
    assert after.interval.requests_per_second is not None and after.interval.requests_per_second > 0


@dataclass(frozen=True)
class Placement:
    """The part of a GPU view a join reads."""

    devices: tuple[model.GpuInfo, ...]
    processes: tuple[model.ProcessSample, ...]
    gpus: tuple[model.GpuSample, ...] = ()
    mig_devices: tuple[model.MigDevice, ...] = ()


def test_the_tritonserver_process_is_linked_to_its_server(triton_server: TritonProcess) -> None:
    proc = psutil.Process(triton_server.pid)
    sample = model.ProcessSample(
        pid=proc.pid, gpu_index=0, gpu_uuid="GPU-x", name=proc.name(), command=" ".join(proc.cmdline())
    )
    other = model.ProcessSample(
        pid=1, gpu_index=0, gpu_uuid="GPU-x", name="python3", command="python3 train.py"
    )
    c = collector(triton_server)
    linked = join(Placement((), (sample, other)), c.view())
    assert [p.triton_server for p in linked.processes] == ["live", None]
    assert linked.servers[0].pids == (proc.pid,)


def test_the_servers_python_backend_stubs_are_linked_to_it_and_to_their_models(
    triton_server: TritonProcess,
) -> None:
    # Real children of a real tritonserver, described by the real host reader (parent PID and
    # command line from /proc): each is marked with the server, its model and its instance.
    host = HostProcesses()
    server = psutil.Process(triton_server.pid)
    pids = [server.pid] + [c.pid for c in server.children() if c.name() == "triton_python_backend_stub"]
    assert len(pids) > 2  # the session's models are python models, some with 2 instances
    samples = []
    for pid in pids:
        facts = host.describe(pid)
        assert facts is not None
        samples.append(
            model.ProcessSample(
                pid=pid,
                gpu_index=0,
                gpu_uuid="GPU-x",
                name=facts.name,
                command=facts.command,
                parent_pid=facts.parent_pid,
            )
        )
    c = collector(triton_server)
    poll(c)
    linked = join(Placement((), tuple(samples)), c.view())
    stubs = linked.processes[1:]
    assert all(p.triton_server == "live" for p in linked.processes)
    models = {m.name for s in linked.servers for m in s.models}
    assert all(p.triton_model in models for p in stubs), [(p.triton_model, p.command) for p in stubs]
    assert all(
        p.triton_instance is not None
        and p.triton_model is not None
        and p.triton_instance.startswith(p.triton_model + "_")
        for p in stubs
    )


def test_snapshot_with_triton_urls(triton_server: TritonProcess) -> None:
    result = run_gpuwatch("snapshot", "--triton", f"{triton_server.url},{triton_server.metrics_url}")
    # No NVML on this machine: said on stderr, yet Triton data was obtained, so exit 0.
    assert result.returncode == 0 and "no GPU data" in result.stderr
    out = result.stdout
    assert "Triton 127.0.0.1:" in out and " · up · v2.51.0 · " in out
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    rows = {
        line.split()[0]: line
        for line in lines
        if line.strip() and line[0] not in " !" and ":" in line.split()[0]
    }
    assert rows["plain:1"].split()[1] == "READY"
    assert rows["broken:1"].split()[1] == "UNAVAIL"
    at = lines.index(next(line for line in lines if line.startswith("pipeline:1 ")))
    steps = [line.split()[1] for line in lines[at + 1 :] if line.startswith(("├", "└"))][:2]
    assert steps == ["prep:1", "resnet:1"]
    assert "resnet:1" not in rows and "prep:1" not in rows  # a step is shown under its ensemble
    # without a metrics URL it is the HTTP port + 2: nothing there, and the API still answers
    bare = run_gpuwatch("snapshot", "--json", "--triton", triton_server.url)
    server = json.loads(bare.stdout)["triton"][0]
    assert server["state"] == "up" and "metrics: connection refused" in server["reason"]
    assert {m["name"] for m in server["models"]} >= {"resnet", "pipeline", "broken"}


def test_kill_and_restart_while_a_second_server_goes_on(
    triton_server: TritonProcess, load: Load, workdir
) -> None:  # type: ignore[no-untyped-def]
    repo = write_repository(
        workdir / "models", (ModelSpec("echo", max_batch_size=8, max_queue_delay_us=500),)
    )
    second = start_server(repo, workdir, cache_bytes=None)
    try:
        c = collector(triton_server, second)
        poll(c, 1)
        Load(second).send("echo", [1.0] * 20)
        assert poll(c, 1)["echo"].totals.request_success_count == 20
        c.drain_events()

        second.kill()
        assert c.pollers[1].poll() is not None
        down = c.view()[1]
        assert down.state == model.ServerState.DOWN
        assert down.reason == f"{second.url}: connection refused"
        assert poll(c, 0)["resnet"].state == "READY"  # the first server is not affected
        events = c.drain_events()
        assert [(e.kind, e.server) for e in events] == [(model.EventKind.TRITON_DOWN, "second")]

        second.restart()
        echo = poll(c, 1)["echo"]
        assert echo.interval is not None and echo.interval.reset
        assert echo.interval.reset_reason == "server restart"
        assert echo.interval.requests_per_second is None
        assert echo.totals.request_success_count == 0
        kinds = [e.kind for e in c.drain_events()]
        assert model.EventKind.TRITON_UP in kinds and model.EventKind.TRITON_RESTART in kinds

        Load(second).send("echo", [1.0] * 5)
        after = poll(c, 1)["echo"]
        i = after.interval
        assert i is not None and not i.reset and counted(after) == 5
        rates = (
            i.requests_per_second,
            i.inferences_per_second,
            i.executions_per_second,
            i.failures_per_second,
        )
        assert all(r is not None and r >= 0 for r in rates)
    finally:
        second.stop()


def test_a_slow_model_load_is_no_outage_and_no_restart(triton_server: TritonProcess, workdir) -> None:  # type: ignore[no-untyped-def]
    # Triton 2.51 stalls kept-alive connections while it loads a model (here: initialize takes
    # 4 s, four times the poll's deadline) and answers new ones at once. The poller retries on
    # a fresh connection: no triton_down, no triton_restart, no "server restart", up throughout.
    import threading

    import httpx

    repo = write_repository(
        workdir / "models",
        (
            ModelSpec("serving", max_batch_size=8, max_queue_delay_us=500, sleep_ms=1),
            ModelSpec("slow_load", max_batch_size=8, init_sleep_ms=4000),
        ),
    )
    server = start_server(repo, workdir, load=("serving",), cache_bytes=None)
    try:
        c = TritonCollector(TritonSettings(timeout_seconds=1.0), [server_settings(server, "loading")])
        poller = c.pollers[0]
        assert poller.poll() is None
        c.view()
        load = Load(server, threads=2)
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                load.send("serving", [1.0] * 4)

        loading = threading.Thread(
            target=lambda: httpx.post(f"{server.url}/v2/repository/models/slow_load/load", timeout=60)
        )
        sender = threading.Thread(target=traffic)
        sender.start()
        time.sleep(0.5)
        loading.start()
        states, resets, took = [], [], []
        while loading.is_alive() or len(states) < 3:
            t0 = time.monotonic()
            poller.poll()
            took.append(time.monotonic() - t0)
            (status,) = c.view()
            states.append(status.state)
            resets += [m.interval.reset_reason for m in status.models if m.interval and m.interval.reset]
            time.sleep(max(0.0, 0.5 - (time.monotonic() - t0)))
            assert len(states) < 60
        stop.set()
        sender.join()
        loading.join()
        poller.poll()
        (status,) = c.view()
        events = c.drain_events()
        kinds = {e.kind for e in events}
        assert {m.name: m.state for m in status.models}["slow_load"] == "READY"
        assert set(states) == {model.ServerState.UP}, states
        assert model.EventKind.TRITON_DOWN not in kinds and model.EventKind.TRITON_RESTART not in kinds
        assert "server restart" not in resets
        assert max(took) < 1.3  # every poll within its deadline
        # the stall was met and passed: at least one request went again on a fresh connection
        assert poller.fresh_retries >= 1, (len(states), max(took))
    finally:
        server.stop()


def assessed(c: TritonCollector, at: float) -> dict[str | None, list[model.Finding]]:
    """The findings of a snapshot of this real server, judged at once (as `gpuwatch snapshot`)."""
    from gpuwatch.assess import assess

    snapshot = model.Snapshot(timestamp=at, node=model.NodeInfo("live", "0", "nvml"), triton=c.view())
    out: dict[str | None, list[model.Finding]] = {}
    for f in assess(snapshot, None, at, immediate=True).findings:
        out.setdefault(f.subject.model, []).append(f)
    return out


def test_live_verdicts_failing_not_ready_and_a_healthy_model_gets_none(
    triton_server: TritonProcess, load: Load
) -> None:
    """Against a real Triton: a model failing a quarter of its requests is `failing` with its
    share, the model that will not load is `not ready` with Triton's reason, the ensemble is
    not judged on its double-counted failures, and a model under a light steady load that does
    not queue gets no finding."""
    c = collector(triton_server)
    poll(c)
    markers = [-1.0 if i % 4 == 0 else 1.0 for i in range(40)]
    assert load.send("bert_raise", markers) == {"ok": 30, "500": 10}
    assert load.send("pipeline_raise", [-0.5, 1.0] * 4) == {"ok": 4, "500": 4}
    assert load.send("plain", [1.0] * 40, shape=(4,)) == {"ok": 40}  # several at a time
    poll(c)
    found = assessed(c, time.time())
    [failing] = [f for f in found["bert_raise"] if f.kind is model.FindingKind.MODEL_FAILING]
    assert failing.severity is model.Severity.CRITICAL
    assert 0.25 <= failing.evidence["failure_ratio"] <= 0.32  # 10 + 4 of 44 (the pipeline's)
    assert failing.words.startswith("failing ")
    [broken] = found["broken"]
    assert broken.kind is model.FindingKind.MODEL_NOT_READY and "refuses to load" in broken.message
    assert "pipeline_raise" not in found  # its own failure figure counts each failure twice
    # one instance, no batching, requests several at a time: they queue behind each other
    [queued] = found["plain"]
    assert queued.kind is model.FindingKind.MODEL_QUEUE_BOUND and queued.evidence["queue_share_ratio"] > 0.5
    assert queued.advice == "add an instance (instance_group count 1 → 2)"
    # the same model under a load it keeps up with (one request at a time): no finding
    assert [load.one("plain", 1.0, (4,)) for _ in range(20)] == ["ok"] * 20
    poll(c)
    assert "plain" not in assessed(c, time.time())
