"""Kubernetes attribution against real gRPC servers speaking the kubelet's PodResources v1 and
the CRI v1 on unix sockets (tests/kube_servers.py): GPUs → pods, processes → pods, and every way
a socket can fail — absent, not ours to open, stalled, a reply over gRPC's 4 MiB default.

The recorded GPUs of --demo stand in for NVML (their UUIDs are `recorded_gpu_uuid(i)`); the
demo's tritonserver process runs in the container `DEMO_CONTAINER`, which the test runtime
lists as a pod's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpuwatch import config, model
from gpuwatch.assemble import build_engine
from gpuwatch.collect.contract import KubernetesView
from gpuwatch.collect.kubernetes.attribute import attribute
from gpuwatch.collect.kubernetes.collector import RETRY_SECONDS, KubernetesCollector
from gpuwatch.collect.kubernetes.generated import podresources_pb2
from gpuwatch.demo.nvml import recorded_gpu_uuid
from gpuwatch.serve.metrics import MetricsExporter, MetricsState
from gpuwatch.text import fmt
from gpuwatch.tui.process_panel import matches
from tests.conftest import run_gpuwatch
from tests.kube_servers import Servers, gpu_pod, kubelet_container, running_servers

GPU0, GPU1, GPU2 = (recorded_gpu_uuid(i) for i in range(3))
DEMO_CONTAINER = hashlib.sha256(b"demo-tritonserver").hexdigest()
POD_UID = "0f9b7c1e-2d3a-4b5c-8d6e-7f8091a2b3c4"
MIG = "MIG-5c4b3a29-1807-5e6d-9c8b-7a6f5e4d3c2b"


@pytest.fixture
def servers() -> Iterator[Servers]:
    with running_servers() as s:
        yield s


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings_for(servers: Servers, **kubernetes: object) -> config.Settings:
    named: dict[str, object] = {
        "pod_resources_socket": servers.kubelet_socket,
        "cri_socket": servers.cri_socket,
    }
    k8s = dataclasses.replace(config.KubernetesSettings(), **{**named, **kubernetes})
    return dataclasses.replace(config.Settings(), kubernetes=k8s)


def collector(
    servers: Servers,
    processes: tuple[model.ProcessSample, ...] = (),
    clock: Monotonic | None = None,
    *,
    kubelet: str | None = None,
    **kubernetes: object,
) -> KubernetesCollector:
    return KubernetesCollector(
        settings_for(servers, **kubernetes).kubernetes,
        pod_resources_socket=kubelet or servers.kubelet_socket,
        cri_socket=servers.cri_socket,
        processes=lambda: processes,
        clock=clock or Monotonic(),
    )


def exported(snapshot: model.Snapshot) -> dict[str, list[dict[str, str]]]:
    state = MetricsState()
    state.observe(snapshot)
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(MetricsExporter(state).render().decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample.labels)
    return out


def health(snapshot: model.Snapshot, name: str) -> model.CollectorHealth:
    return next(h for h in snapshot.collectors if h.name == name)


# --------------------------------------------------------------------------- GPUs and processes


def test_the_demo_with_named_sockets_shows_pods_on_gpus_processes_and_metrics(servers: Servers) -> None:
    servers.kubelet.pods = [
        gpu_pod("inference", "llama-0", "server", GPU0),
        # time-slicing: two replicas of GPU 1, two pods
        gpu_pod("batch", "embed-a", "worker", f"{GPU1}::0"),
        gpu_pod("batch", "embed-b", "worker", f"{GPU1}::1"),
        gpu_pod("other", "elsewhere", "x", "GPU-not-on-this-node"),
    ]
    servers.runtime.containers = [
        kubelet_container(DEMO_CONTAINER, "inference", "triton-0", "tritonserver", POD_UID),
        kubelet_container("ab" * 32, "kube-system", "unrelated", "c", "uid-x"),
    ]
    engine = build_engine(settings_for(servers), demo=True)
    try:
        snap = engine.collect_once(0.05)
    finally:
        engine.stop()
    by_uuid = {g.uuid: g for g in snap.gpus}
    assert by_uuid[GPU0].pods == (model.PodRef("inference", "llama-0", "server", GPU0),)
    assert [p.pod for p in by_uuid[GPU1].pods] == ["embed-a", "embed-b"]
    assert by_uuid[GPU2].pods == ()
    triton = [p for p in snap.processes if p.container_id == DEMO_CONTAINER]
    assert triton and all(p.pod == model.PodRef("inference", "triton-0", "tritonserver") for p in triton)
    assert all(p.pod is None for p in snap.processes if p.container_id != DEMO_CONTAINER)
    assert health(snap, "pod-resources").ok and health(snap, "cri").ok

    metrics = exported(snap)
    up = {s["uuid"]: s for s in metrics["gpuwatch_gpu_up"]}
    assert up[GPU0] == {
        "gpu": "0",
        "uuid": GPU0,
        "namespace": "inference",
        "pod": "llama-0",
        "container": "server",
    }
    assert up[GPU1] == {"gpu": "1", "uuid": GPU1}  # shared: no labels, and no series per holder
    assert up[GPU2] == {"gpu": "2", "uuid": GPU2}
    holders = sorted((s["uuid"], s["pod"], s["device"]) for s in metrics["gpuwatch_gpu_pod_info"])
    assert holders == [
        (GPU0, "llama-0", GPU0),
        (GPU1, "embed-a", f"{GPU1}::0"),
        (GPU1, "embed-b", f"{GPU1}::1"),
    ]
    memory = [
        s for s in metrics["gpuwatch_process_gpu_memory_bytes"] if s["container"] == DEMO_CONTAINER[:12]
    ]
    assert memory and all(s["namespace"] == "inference" and s["pod"] == "triton-0" for s in memory)


def test_metrics_with_pods_are_what_prometheus_client_writes_and_promtool_accepts(servers: Servers) -> None:
    servers.kubelet.pods = [gpu_pod("inference", "llama-0", "server", GPU0)]
    servers.runtime.containers = [
        kubelet_container(DEMO_CONTAINER, "inference", "triton-0", "triton", POD_UID)
    ]
    engine = build_engine(settings_for(servers), demo=True)
    try:
        snap = engine.collect_once(0.05)
    finally:
        engine.stop()
    state = MetricsState()
    state.observe(snap)
    exporter = MetricsExporter(state)
    ours = exporter.render().decode()

    def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
        families = text_string_to_metric_families(text)
        return {(s.name, tuple(sorted(s.labels.items())), s.value) for f in families for s in f.samples}

    assert samples(ours) == samples(generate_latest(exporter.registry).decode())
    assert 'pod="llama-0"' in ours and 'pod=""' not in ours
    promtool = shutil.which("promtool")
    if promtool is not None:
        result = subprocess.run(
            [promtool, "check", "metrics"], input=ours.encode(), capture_output=True, check=False
        )
        assert result.returncode == 0 and not result.stdout and not result.stderr, (
            result.stdout + result.stderr
        )


def test_a_mig_device_held_by_a_pod_marks_its_parent_gpu(servers: Servers) -> None:
    servers.kubelet.pods = [gpu_pod("ml", "small-0", "infer", MIG)]
    c = collector(servers)
    assert c.run_pod_resources() is None
    view = c.view()
    assert view.devices == {MIG: (model.PodRef("ml", "small-0", "infer", MIG),)}
    gpus = (model.GpuSample(0, GPU0), model.GpuSample(1, GPU1))
    marked, _ = attribute(gpus, (), view, {MIG: GPU1})
    assert marked[0].pods == () and marked[1].pods == (model.PodRef("ml", "small-0", "infer", MIG),)
    unknown, _ = attribute(gpus, (), view)  # a MIG UUID without its parent marks nothing
    assert all(g.pods == () for g in unknown)


def test_a_process_whose_container_is_unlisted_gets_its_pod_by_uid(servers: Servers) -> None:
    servers.runtime.containers = [kubelet_container("cd" * 32, "ml", "trainer-0", "sidecar", POD_UID)]
    c = collector(servers)
    assert c.run_cri() is None
    process = model.ProcessSample(1, 0, GPU0, container_id="ef" * 32, pod_uid=POD_UID)
    _, (marked,) = attribute((), (process,), c.view())
    assert marked.pod == model.PodRef("ml", "trainer-0", "")


# --------------------------------------------------------------------------- cached, refreshed on change


def test_a_pod_that_ends_leaves_at_the_next_refresh_and_a_new_one_comes_at_once(servers: Servers) -> None:
    clock = Monotonic()
    processes: list[model.ProcessSample] = []
    c = KubernetesCollector(
        settings_for(servers, refresh_seconds=30.0).kubernetes,
        pod_resources_socket=servers.kubelet_socket,
        cri_socket=None,
        processes=lambda: tuple(processes),
        clock=clock,
    )
    servers.kubelet.pods = [gpu_pod("ml", "job-1", "main", GPU0)]
    assert c.run_pod_resources() is None
    assert servers.kubelet.calls == 1
    servers.kubelet.pods = []  # the pod ends
    clock.now += 10
    assert c.run_pod_resources() is None
    assert servers.kubelet.calls == 1 and GPU0 in c.view().devices  # cached between ticks
    clock.now += 20
    assert c.run_pod_resources() is None
    assert servers.kubelet.calls == 2 and c.view().devices == {}

    servers.kubelet.pods = [gpu_pod("ml", "job-2", "main", GPU1)]
    processes.append(model.ProcessSample(5, 1, GPU1, container_id="12" * 32, pod_uid=POD_UID))
    assert c.run_pod_resources() is None  # a GPU process in a pod not seen: re-listed at once
    assert servers.kubelet.calls == 3 and c.view().devices[GPU1][0].pod == "job-2"
    assert c.run_pod_resources() is None
    assert servers.kubelet.calls == 3


def test_an_unknown_container_is_asked_for_once_then_waits_for_the_refresh(servers: Servers) -> None:
    clock = Monotonic()
    processes = [model.ProcessSample(5, 0, GPU0, container_id="77" * 32, pod_uid=POD_UID)]
    c = KubernetesCollector(
        settings_for(servers).kubernetes,
        pod_resources_socket=None,
        cri_socket=servers.cri_socket,
        processes=lambda: tuple(processes),
        clock=clock,
    )
    assert c.run_cri() is None and servers.runtime.calls == 1
    assert c.run_cri() is None and servers.runtime.calls == 1  # still unlisted: not asked again
    servers.runtime.containers = [kubelet_container("88" * 32, "ml", "new", "main", POD_UID)]
    processes.append(model.ProcessSample(6, 0, GPU0, container_id="88" * 32, pod_uid=POD_UID))
    assert c.run_cri() is None and servers.runtime.calls == 2  # a new container: at once
    assert c.view().containers["88" * 32].pod == "new"
    servers.runtime.containers.append(kubelet_container("77" * 32, "ml", "late", "main", POD_UID))
    assert c.run_cri() is None and servers.runtime.calls == 2
    clock.now += 30
    assert c.run_cri() is None and servers.runtime.calls == 3  # the refresh
    assert c.view().containers["77" * 32].pod == "late"


# --------------------------------------------------------------------------- failures: one line of health


def test_a_reply_over_grpcs_4_mib_default_is_read_and_one_over_the_cap_is_one_line(servers: Servers) -> None:
    filler = [gpu_pod("bulk", f"pod-{i:05d}-" + "x" * 200, "c", f"cpu-{i}") for i in range(20_000)]
    servers.kubelet.pods = [*filler, gpu_pod("ml", "big-node", "main", GPU0)]
    size = podresources_pb2.ListPodResourcesResponse(pod_resources=servers.kubelet.pods).ByteSize()
    assert size > 4 * 1024 * 1024
    big = collector(servers)
    assert big.run_pod_resources() is None
    assert big.view().devices[GPU0][0].pod == "big-node"
    small = collector(servers, max_reply_bytes=4 * 1024 * 1024)
    error = small.run_pod_resources()
    assert error == (
        f"{servers.kubelet_socket}: reply larger than 4194304 bytes; raise [kubernetes] max_reply_bytes"
    )


def test_an_absent_socket_is_one_line_of_health_and_retried(servers: Servers) -> None:
    clock = Monotonic()
    absent = str(servers.directory / "nothing.sock")
    c = collector(servers, clock=clock, kubelet=absent)
    assert c.run_pod_resources() == f"{absent}: no socket there"
    os.symlink(servers.kubelet_socket, absent)  # the kubelet comes up
    servers.kubelet.pods = [gpu_pod("ml", "a", "b", GPU0)]
    assert c.run_pod_resources() == f"{absent}: no socket there"  # not yet due: the same line
    clock.now += RETRY_SECONDS
    assert c.run_pod_resources() is None and GPU0 in c.view().devices


def test_a_named_absent_socket_shows_in_the_snapshots_health(servers: Servers) -> None:
    settings = settings_for(servers, pod_resources_socket=str(servers.directory / "gone.sock"))
    engine = build_engine(settings, demo=True)
    try:
        snap = engine.collect_once(0.05)
    finally:
        engine.stop()
    kubelet = health(snap, "pod-resources")
    assert not kubelet.ok and kubelet.last_error == f"{servers.directory / 'gone.sock'}: no socket there"
    assert health(snap, "cri").ok and health(snap, "nvml").ok


def test_a_socket_gpuwatch_may_not_open_is_one_line(servers: Servers) -> None:
    os.chmod(servers.kubelet_socket, 0o600)
    os.chmod(servers.directory, 0o755)
    c = collector(servers)
    if os.geteuid() != 0:
        os.chmod(servers.kubelet_socket, 0)
        assert c.run_pod_resources() == (
            f"{servers.kubelet_socket}: permission denied (gpuwatch needs read and write on it)"
        )
        return
    # root opens anything: ask as nobody, in a child that touches no gRPC before it fails
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, str(c.run_pod_resources()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    os.waitpid(pid, 0)
    assert said == f"{servers.kubelet_socket}: permission denied (gpuwatch needs read and write on it)"


def test_a_server_that_never_answers_never_delays_a_tick_and_keeps_the_last_labels(servers: Servers) -> None:
    servers.kubelet.pods = [gpu_pod("inference", "llama-0", "server", GPU0)]
    settings = settings_for(servers, timeout_seconds=0.3, refresh_seconds=1.0)
    engine = build_engine(settings, demo=True)
    runner = next(r for r in engine._runners if r.job.name == "pod-resources")
    nvml = [r for r in engine._runners if r.job.name.startswith("nvml")]
    try:
        for r in nvml:
            r.run_once()
        runner.run_once()  # a good answer first
        servers.kubelet.stall.on = True
        kubernetes = engine.kubernetes
        assert isinstance(kubernetes, KubernetesCollector)
        kubernetes._kubelet_poll.last_attempt = None  # due now
        stuck = threading.Thread(target=runner.run_once, daemon=True)
        stuck.start()
        assert servers.kubelet.stall.entered.wait(10)
        snap = engine.tick()  # while the job waits on the kubelet
        assert stuck.is_alive()
        assert next(g for g in snap.gpus if g.uuid == GPU0).pods[0].pod == "llama-0"
        stuck.join(10)
        after = engine.tick()
    finally:
        servers.kubelet.stall.release.set()
        engine.stop()
    kubelet = health(after, "pod-resources")
    assert not kubelet.ok and kubelet.last_error == f"{servers.kubelet_socket}: no answer within 0.3 s"
    assert next(g for g in after.gpus if g.uuid == GPU0).pods[0].pod == "llama-0"  # the last good answer


def test_assemble_uses_only_sockets_that_exist_or_are_named() -> None:
    plain = config.KubernetesSettings()
    assert plain.pod_resources_path(demo=True) is None
    assert plain.pod_resources_path(demo=False) == config.DEFAULT_POD_RESOURCES_SOCKET
    assert plain.cri_path(demo=False, exists=lambda p: p == config.CRI_SOCKETS[1]) == config.CRI_SOCKETS[1]
    assert plain.cri_path(demo=False, exists=lambda p: False) is None
    assert plain.cri_path(demo=True, exists=lambda p: True) is None
    off = dataclasses.replace(plain, pod_resources_socket="", cri_socket="off")
    assert off.pod_resources_path(demo=False) is None and off.cri_path(demo=False) is None
    engine = build_engine(config.Settings(), demo=True)
    try:
        assert engine.kubernetes is None and not any(r.job.name == "cri" for r in engine._runners)
    finally:
        engine.stop()


def test_an_empty_view_changes_nothing() -> None:
    gpu = model.GpuSample(0, GPU0)
    process = model.ProcessSample(1, 0, GPU0, container_id="ab" * 32, pod_uid=POD_UID)
    gpus, processes = attribute((gpu,), (process,), KubernetesView({}, {}, {}))
    assert gpus[0] is gpu and processes[0] is process


# --------------------------------------------------------------------------- the faces


def test_gpuwatch_snapshot_demo_shows_the_pods_of_named_sockets(servers: Servers, tmp_path: Path) -> None:
    servers.kubelet.pods = [gpu_pod("inference", "llama-0", "server", GPU0)]
    servers.runtime.containers = [
        kubelet_container(DEMO_CONTAINER, "ml", "triton-0", "tritonserver", POD_UID)
    ]
    cfg = tmp_path / "config.toml"
    sockets = f'pod_resources_socket = "{servers.kubelet_socket}"\ncri_socket = "{servers.cri_socket}"\n'
    cfg.write_text("[kubernetes]\n" + sockets)
    text = run_gpuwatch("snapshot", "--demo", env={"GPUWATCH_CONFIG": str(cfg)})
    assert text.returncode == 0, text.stderr
    rows = [line for line in text.stdout.splitlines() if "tritonserver" in line]
    assert rows and all(" ml/triton-0 " in row for row in rows)
    doc = run_gpuwatch("snapshot", "--demo", "--json", env={"GPUWATCH_CONFIG": str(cfg)})
    snap = json.loads(doc.stdout)
    gpu0 = next(g for g in snap["gpus"] if g["uuid"] == GPU0)
    assert gpu0["pods"] == [
        {"namespace": "inference", "pod": "llama-0", "container": "server", "device_id": GPU0}
    ]
    assert {p["pod"]["pod"] for p in snap["processes"] if p["pod"]} == {"triton-0"}


def test_without_kubernetes_the_container_column_is_the_hash() -> None:
    process = model.ProcessSample(1, 0, GPU0, container_id=DEMO_CONTAINER)
    assert fmt.container_of(process) == DEMO_CONTAINER[:12]
    in_pod = dataclasses.replace(process, pod=model.PodRef("ml", "triton-0", "tritonserver"))
    assert fmt.container_of(in_pod) == "ml/triton-0"
    assert matches(in_pod, "triton-0") and matches(in_pod, "ML/") and not matches(process, "triton-0")
    assert fmt.container_of(model.ProcessSample(2, 0, GPU0)) is None
