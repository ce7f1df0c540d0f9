"""Linking Triton to the rest of the snapshot: `tritonserver` processes to their configured
server, Triton's gpu_uuid labels to NVML's GPU indexes, all in one pure join that writes
nothing back into the collector; and the server-level resets the collector names (a restart
seen as every counter going down, recovery after an outage)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from gpuwatch import model
from gpuwatch.collect.joins import Joined, join
from gpuwatch.collect.triton import link
from gpuwatch.collect.triton.collector import TritonCollector
from gpuwatch.collect.triton.link import http_port, resolve_gpu_indexes, tritonserver_links
from gpuwatch.config import TritonServerSettings, TritonSettings
from gpuwatch.text import fmt
from tests.triton.fake_triton import DATA, FakeTriton


def proc(pid: int, command: str, name: str | None = None) -> model.ProcessSample:
    return model.ProcessSample(pid=pid, gpu_index=0, gpu_uuid="GPU-a", name=name, command=command)


def test_processes_are_matched_to_servers_by_their_http_port() -> None:
    servers = [
        ("a", "http://127.0.0.1:8000"),
        ("b", "http://localhost:9000"),
        ("far", "http://10.9.9.9:7000"),
    ]
    processes = [
        proc(10, "/opt/tritonserver/bin/tritonserver --model-repository=/m"),  # default port 8000
        proc(11, "tritonserver --model-repository /m --http-port 9000"),
        proc(12, "tritonserver --http-port=7000"),  # a far server's port, but this host: no link
        proc(13, "python3 serve.py --http-port=8000"),  # not Triton
        proc(14, "/usr/bin/python3 -m triton_worker", name="tritonserver"),  # named so by NVML/psutil
    ]
    links = tritonserver_links(processes, servers, local_names=frozenset({"node-7"}))
    assert links == {10: "a", 11: "b", 14: "a"}


def test_one_local_server_takes_a_container_with_another_port() -> None:
    servers = [("only", "http://node-7:8100")]  # docker run -p 8100:8000
    links = tritonserver_links(
        [proc(20, "tritonserver --model-repository=/models")], servers, frozenset({"node-7"})
    )
    assert links == {20: "only"}
    assert (
        tritonserver_links([proc(20, "tritonserver")], [("far", "http://10.0.0.2:8000")], frozenset()) == {}
    )


def test_http_port_of_a_command_line() -> None:
    assert http_port("tritonserver --http-port=8123") == 8123
    assert http_port("tritonserver --http-port 8124 --grpc-port 8125") == 8124
    assert http_port("tritonserver") == 8000
    assert http_port("tritonserver --http-port=oops") == 8000


def test_gpu_uuids_resolve_to_nvml_indexes() -> None:
    devices = (model.GpuInfo(index=0, uuid="GPU-AAAA-1"), model.GpuInfo(index=3, uuid="GPU-bbbb-2"))
    models = (
        model.ModelStats(server="s", name="on_gpus", version="1", gpu_uuids=("gpu-aaaa-1", "bbbb-2")),
        model.ModelStats(server="s", name="unknown", version="1", gpu_uuids=("GPU-ffff",), gpu_indexes=(1,)),
        model.ModelStats(server="s", name="cpu", version="1"),
    )
    server = model.TritonServerStatus("s", "http://h:8000", model.ServerState.UP, models=models)
    (linked,) = resolve_gpu_indexes((server,), devices)
    assert [m.gpu_indexes for m in linked.models] == [(0, 3), (1,), ()]


@dataclass(frozen=True)
class Placement:
    """The part of a GPU view a join reads."""

    devices: tuple[model.GpuInfo, ...]
    processes: tuple[model.ProcessSample, ...]
    gpus: tuple[model.GpuSample, ...] = ()
    mig_devices: tuple[model.MigDevice, ...] = ()


def test_one_join_marks_processes_gives_each_server_its_pids_and_resolves_gpus() -> None:
    devices = (model.GpuInfo(index=0, uuid="GPU-AAAA-1"), model.GpuInfo(index=3, uuid="GPU-bbbb-2"))
    processes = (
        proc(30, "tritonserver --http-port=9000"),
        proc(10, "tritonserver"),
        proc(11, "python3 train.py"),
        model.ProcessSample(pid=10, gpu_index=3, gpu_uuid="GPU-bbbb-2", name="tritonserver"),
        proc(20, "tritonserver --http-port 8000"),
    )
    models = (
        model.ModelStats(server="a", name="on_gpus", version="1", gpu_uuids=("gpu-aaaa-1", "bbbb-2")),
        model.ModelStats(server="a", name="config_only", version="1", gpu_indexes=(1,)),
    )
    servers = (
        model.TritonServerStatus("a", "http://127.0.0.1:8000", model.ServerState.UP, models=models),
        model.TritonServerStatus("b", "http://localhost:9000/", model.ServerState.DOWN),
        model.TritonServerStatus("idle", "http://127.0.0.1:7000", model.ServerState.ABSENT, pids=(99,)),
        model.TritonServerStatus("far", "http://10.9.9.9:8000", model.ServerState.UP),
    )
    joined = join(Placement(devices, processes), servers, local_names=frozenset({"node-7"}))
    assert isinstance(joined, Joined)
    assert [p.triton_server for p in joined.processes] == ["b", "a", None, "a", "a"]
    assert [(s.name, s.pids) for s in joined.servers] == [
        ("a", (10, 20)),
        ("b", (30,)),
        ("idle", ()),
        ("far", ()),
    ]
    assert [m.gpu_indexes for m in joined.servers[0].models] == [(0, 3), (1,)]
    # pure: the inputs are what they were, and the same views join to the same result
    assert [p.triton_server for p in processes] == [None] * 5 and servers[2].pids == (99,)
    assert join(Placement(devices, processes), servers, local_names=frozenset({"node-7"})) == joined


def test_no_servers_leave_the_processes_as_they_are() -> None:
    processes = (proc(10, "tritonserver"),)
    joined = join(Placement((), processes), ())
    assert joined.processes is processes and joined.servers == ()


def test_a_join_writes_nothing_back_into_the_collector() -> None:
    with FakeTriton() as fake:
        c = collector(fake)
        c.pollers[0].poll()
        before = c.view()
        joined = join(Placement((), (proc(10, f"tritonserver --http-port={fake.port}"),)), before)
        assert joined.servers[0].pids == (10,)
        assert c.view() == before and c.view()[0].pids == ()
        assert not hasattr(c, "link_processes") and not hasattr(c.pollers[0], "set_pids")


# --------------------------------------------------------------------------- server-level resets


def collector(fake: FakeTriton) -> TritonCollector:
    server = TritonServerSettings(name="fake", url=fake.url, metrics_url=fake.metrics_url)
    return TritonCollector(TritonSettings(timeout_seconds=0.5), [server])


def test_every_model_restarting_at_once_is_a_server_restart() -> None:
    with FakeTriton() as fake:
        c = collector(fake)
        c.pollers[0].poll()
        stats = json.loads((DATA / "models_stats.json").read_text())
        for entry in stats["model_stats"]:
            entry["inference_count"] = entry["execution_count"] = 1
            for leaf in entry["inference_stats"].values():
                leaf["count"], leaf["ns"] = min(leaf["count"], 1), min(leaf["ns"], 1000)
            entry["batch_stats"] = []
        fake.set_body("GET", "/v2/models/stats", stats)
        metrics = (DATA / "metrics.txt").read_text()
        fake.set_body(
            "GET", "/metrics", re.sub(r"(\} )\d+$", r"\g<1>1", metrics, flags=re.MULTILINE), "text/plain"
        )
        c.pollers[0].poll()
        status = c.view()[0]
        assert {m.interval.reset_reason for m in status.models if m.interval} == {"server restart"}
        kinds = [e.kind for e in c.drain_events()]
        assert kinds == [model.EventKind.TRITON_RESTART]


def test_one_model_reset_after_an_outage_is_that_models_reload_not_a_restart() -> None:
    # The model that was loading started again; the other went on: no server restart.
    with FakeTriton() as fake:
        port = fake.port
        c = collector(fake)
        c.pollers[0].poll()
    c.pollers[0].poll()
    assert c.view()[0].state == model.ServerState.DOWN
    c.drain_events()
    with FakeTriton(port) as fake:
        stats = json.loads((DATA / "models_stats.json").read_text())
        (bert,) = [e for e in stats["model_stats"] if e["name"] == "bert_stub"]
        bert["inference_count"] = bert["execution_count"] = 0
        for leaf in bert["inference_stats"].values():
            leaf["count"] = leaf["ns"] = 0
        bert["batch_stats"] = []
        fake.set_body("GET", "/v2/models/stats", stats)
        c.pollers[0].poll()
    status = c.view()[0]
    reasons = {m.name: m.interval.reset_reason for m in status.models if m.interval}
    assert reasons["bert_stub"] == "reload: statistics started again, /metrics continued (config override?)"
    assert reasons["resnet_stub"] == "re-baselined: the server was unreachable since the last poll"
    events = c.drain_events()
    assert [e.kind for e in events] == [model.EventKind.TRITON_UP, model.EventKind.MODEL_RESET]
    assert events[1].model == "bert_stub"


def test_recovery_after_an_outage_re_baselines_without_a_restart() -> None:
    with FakeTriton() as fake:
        port = fake.port
        c = collector(fake)
        c.pollers[0].poll()
    c.pollers[0].poll()
    assert c.view()[0].state == model.ServerState.DOWN
    with FakeTriton(port):
        c.pollers[0].poll()
    status = c.view()[0]
    assert status.state == model.ServerState.UP
    reasons = {m.interval.reset_reason for m in status.models if m.interval}
    assert reasons == {"re-baselined: the server was unreachable since the last poll"}
    assert all(m.interval.requests_per_second is None for m in status.models if m.interval)
    kinds = [e.kind for e in c.drain_events()]
    assert kinds == [model.EventKind.TRITON_DOWN, model.EventKind.TRITON_UP]


STUB = (
    "/opt/tritonserver/backends/python/triton_python_backend_stub /models/llama/1/model.py "
    "triton_python_backend_shm_region_b5c1 1048576 1048576 40 /opt/tritonserver/backends/python "
    "336 llama_0_1 DEFAULT"
)


def test_a_servers_backend_stubs_are_linked_with_the_model_and_instance_they_run() -> None:
    devices = (model.GpuInfo(index=0, uuid="GPU-AAAA-1"),)
    processes = (
        proc(40, "tritonserver --http-port 8000"),
        model.ProcessSample(
            pid=41,
            gpu_index=0,
            gpu_uuid="GPU-AAAA-1",
            name="triton_python_backend_stub",
            command=STUB,
            parent_pid=40,
            used_memory_bytes=30 * 2**30,
        ),
        model.ProcessSample(  # a child of another process: not the server's
            pid=42,
            gpu_index=0,
            gpu_uuid="GPU-AAAA-1",
            name="triton_python_backend_stub",
            command=STUB,
            parent_pid=7,
        ),
    )
    server = model.TritonServerStatus("local", "http://127.0.0.1:8000", model.ServerState.UP)
    linked = join(Placement(devices, processes), (server,))
    marks = [(p.pid, p.triton_server, p.triton_model, p.triton_instance) for p in linked.processes]
    assert marks == [(40, "local", None, None), (41, "local", "llama", "llama_0_1"), (42, None, None, None)]
    assert fmt.triton_tag(linked.processes[1]) == "[triton local: llama_0_1]"
    assert link.stub_model("python3 train.py") == (None, None)
