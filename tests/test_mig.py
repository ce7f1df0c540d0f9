"""MIG through the real collector over the recorded source: a GPU in MIG mode shows its MIG
devices (instance ids, profile, MIG UUID, memory), the processes on each, GPM per GPU instance,
None with a reason where NVML gives nothing per MIG device, reconfiguration while running, and
its /metrics series (promtool clean)."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpuwatch import jsonform, model, series
from gpuwatch.collect.host import HostProcess
from gpuwatch.collect.joins import join
from gpuwatch.collect.nvml.collector import NvmlCollector
from gpuwatch.config import DemoSettings, NvmlSettings, Settings
from gpuwatch.demo.assemble import DEMO_TRITON_PID, build_demo_sources, build_recorded_gpus
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.demo.nvml_mig import MIB, MIXED_LAYOUT, PROFILES, MigInstance
from gpuwatch.engine import Engine
from gpuwatch.serve.metrics import MetricsExporter, MetricsState
from gpuwatch.text import report
from tests.conftest import REPO, ManualClock, make_collector
from tests.storekit import open_test_store, rows

MIG_GPU = 1
SERVER_PID = 900


@pytest.fixture
def recorded(clock: ManualClock) -> Iterator[RecordedNvml]:
    host = HostProcess("triton-server", "tritonserver", "tritonserver --model-repository=/models", None, 0.0)
    extra = [(0, SERVER_PID, 2 * 1024**3, host), (MIG_GPU, SERVER_PID, 3 * 1024**3, host)]
    source = RecordedNvml(2, clock=clock, mig={MIG_GPU: MIXED_LAYOUT}, extra_processes=extra)
    yield source
    source.close()


@pytest.fixture
def collector(recorded: RecordedNvml, clock: ManualClock) -> Iterator[NvmlCollector]:
    c = make_collector(recorded, NvmlSettings(), clock)
    yield c
    c.close()


def run(collector: NvmlCollector, clock: ManualClock, ticks: int = 3) -> None:
    for _ in range(ticks):
        collector.poll_fast()
        collector.poll_slow()
        clock.advance(1.0)


def test_a_gpu_in_mig_mode_shows_each_mig_device_under_it(
    collector: NvmlCollector, recorded: RecordedNvml, clock: ManualClock
) -> None:
    run(collector, clock)
    view = collector.view()
    devices = view.mig_devices
    assert [d.gpu_index for d in devices] == [MIG_GPU] * len(MIXED_LAYOUT)
    assert [d.mig_index for d in devices] == list(range(len(MIXED_LAYOUT)))
    assert [(d.gpu_instance_id, d.compute_instance_id, d.profile) for d in devices] == [
        (i.gpu_instance_id, i.compute_instance_id, i.profile) for i in MIXED_LAYOUT
    ]
    assert [d.uuid for d in devices] == recorded.mig_device_uuids(MIG_GPU)
    assert all(d.uuid.startswith("MIG-") and d.gpu_uuid == view.gpus[MIG_GPU].uuid for d in devices)
    assert [d.memory_total_bytes for d in devices] == [PROFILES[i.profile][1] * MIB for i in MIXED_LAYOUT]
    for d in devices:
        assert d.memory_used_bytes is not None and d.memory_free_bytes is not None
        assert d.memory_used_bytes + d.memory_free_bytes <= (d.memory_total_bytes or 0)
    busy = [d for d in devices if d.memory_used_bytes]
    assert [d.profile for d in busy] == ["3g.40gb", "1g.10gb"]
    # the whole GPU still answers; only what NVML refuses in MIG mode is None
    facts = {d.index: d for d in view.devices}
    assert facts[MIG_GPU].mig_enabled is True and facts[0].mig_enabled is False
    parent = view.gpus[MIG_GPU]
    assert parent.utilization_ratio is None and parent.power_watts is not None
    assert parent.memory_used_bytes == sum(d.memory_used_bytes or 0 for d in devices)


def test_what_nvml_does_not_give_per_mig_device_is_none_with_its_reason(
    collector: NvmlCollector, clock: ManualClock
) -> None:
    run(collector, clock)
    for d in collector.view().mig_devices:
        assert d.utilization_ratio is None
        assert d.encoder_utilization_ratio is None and d.decoder_utilization_ratio is None
        assert set(model.MIG_NOT_PER_DEVICE) <= set(d.unavailable)
        assert "utilization" in d.unavailable["utilization_ratio"]


def test_processes_carry_the_mig_device_they_run_on(
    collector: NvmlCollector, recorded: RecordedNvml, clock: ManualClock
) -> None:
    run(collector, clock)
    view = collector.view()
    by_uuid = {d.uuid: d for d in view.mig_devices}
    on_mig = [p for p in view.processes if p.gpu_index == MIG_GPU]
    assert on_mig, "the recorded trace runs processes on every GPU"
    for p in on_mig:
        device = by_uuid[p.mig_uuid or ""]
        assert (p.gpu_instance_id, p.compute_instance_id, p.mig_index) == (
            device.gpu_instance_id,
            device.compute_instance_id,
            device.mig_index,
        )
    serving = next(p for p in on_mig if p.pid == recorded.recorded_pid(MIG_GPU, 428))
    assert by_uuid[serving.mig_uuid or ""].profile == "3g.40gb"
    server = next(p for p in on_mig if p.pid == SERVER_PID)
    assert server.mig_index == 0 and server.used_memory_bytes == 3 * 1024**3
    whole = [p for p in view.processes if p.gpu_index == 0]
    assert whole and all(
        p.mig_uuid is None and p.gpu_instance_id is None and p.mig_index is None for p in whole
    )


def test_gpm_is_read_per_gpu_instance(
    collector: NvmlCollector, recorded: RecordedNvml, clock: ManualClock
) -> None:
    run(collector, clock, ticks=1)
    assert all(d.gpm is None and "gpm" in d.unavailable for d in collector.view().mig_devices)
    run(collector, clock, ticks=6)
    devices = collector.view().mig_devices
    assert all(d.gpm is not None and "gpm" not in d.unavailable for d in devices)
    idle = [d for d in devices if not d.memory_used_bytes]
    assert idle and all(d.gpm is not None and d.gpm.sm_activity_ratio == 0.0 for d in idle)
    assert recorded.calls[(MIG_GPU, "nvmlGpmMigSampleGet")] == 7 * len(MIXED_LAYOUT), (
        "one sample per instance per slow read"
    )
    assert recorded.calls[(0, "nvmlGpmMigSampleGet")] == 0


def test_a_gpu_not_in_mig_mode_has_no_mig_devices_and_is_not_asked_for_them(
    clock: ManualClock,
) -> None:
    recorded = RecordedNvml(2, clock=clock)
    collector = make_collector(recorded, NvmlSettings(), clock)
    try:
        run(collector, clock)
        view = collector.view()
        assert view.mig_devices == ()
        assert all(d.mig_enabled is False for d in view.devices)
        asked = {fn for _, fn in recorded.calls if "Mig" in fn}
        assert asked == {"nvmlDeviceGetMigMode"}, "MIG is off: nothing but its mode is asked"
        assert all(g.utilization_ratio is not None for g in view.gpus)
    finally:
        collector.close()


def test_mig_reconfigured_while_running_is_seen_at_the_next_tick(
    collector: NvmlCollector, recorded: RecordedNvml, clock: ManualClock
) -> None:
    run(collector, clock)
    before = {d.uuid for d in collector.view().mig_devices}
    collector.drain_events()
    layout = (MigInstance("4g.40gb", 1, 0, (428,)), MigInstance("3g.40gb", 2, 0, (430,)))
    recorded.reconfigure_mig(MIG_GPU, layout)
    run(collector, clock)
    after = collector.view().mig_devices
    assert [d.profile for d in after] == ["4g.40gb", "3g.40gb"]
    assert {d.uuid for d in after}.isdisjoint(before)
    events = [e for e in collector.drain_events() if e.kind is model.EventKind.MIG_CHANGED]
    assert len(events) == 1 and events[0].gpu_index == MIG_GPU
    assert "+4g.40gb" in events[0].message and "−1g.10gb" in events[0].message
    assert recorded.stale_handle_uses == 0
    # and every instance vanishing leaves none behind
    recorded.reconfigure_mig(MIG_GPU, ())
    run(collector, clock, ticks=1)
    assert collector.view().mig_devices == ()


def _metrics(collector: NvmlCollector) -> str:
    view = collector.view()
    snapshot = model.Snapshot(
        timestamp=1.0,
        node=view.node,
        devices=view.devices,
        gpus=view.gpus,
        processes=view.processes,
        mig_devices=view.mig_devices,
    )
    state = MetricsState()
    state.observe(snapshot)
    return MetricsExporter(state).render().decode()


def test_mig_devices_on_metrics_carry_their_parent_and_instance_labels(
    collector: NvmlCollector, clock: ManualClock
) -> None:
    run(collector, clock, ticks=4)
    text = _metrics(collector)
    used = {
        s.labels["mig_uuid"]: s
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "gpuwatch_mig_memory_used_bytes"
    }
    devices = {d.uuid: d for d in collector.view().mig_devices}
    assert set(used) == set(devices)
    for uuid, s in used.items():
        d = devices[uuid]
        assert s.labels == {
            "gpu": str(MIG_GPU),
            "uuid": d.gpu_uuid,
            "gpu_instance": str(d.gpu_instance_id),
            "compute_instance": str(d.compute_instance_id),
            "mig_profile": d.profile,
            "mig_uuid": uuid,
        }
        assert s.value == d.memory_used_bytes
    assert "gpuwatch_mig_sm_activity_ratio{" in text
    assert "mig_utilization" not in text, "NVML gives no utilization per MIG device: not exported"


@pytest.mark.prometheus
def test_promtool_finds_nothing_to_complain_about_in_the_mig_series(
    collector: NvmlCollector, clock: ManualClock
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (tests/run.sh installs it)")
    run(collector, clock, ticks=4)
    body = _metrics(collector).encode()
    assert b"gpuwatch_mig_device_info{" in body
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stdout and not result.stderr, result.stdout + result.stderr


def test_the_demo_shows_its_last_gpu_in_mig_mode_and_links_the_model_on_it() -> None:
    """`--demo` (4 GPUs): GPU 3 is in MIG mode; the embedder model placed there runs in the
    tritonserver process on MIG device 3:0, and is linked to that device."""
    settings = Settings()
    gpus = build_recorded_gpus(settings)
    triton = build_demo_sources(settings)[1]
    engine = Engine(gpus, triton)
    try:
        snapshot = engine.collect_once(0.3)
    finally:
        engine.stop()
    assert {m.gpu_index for m in snapshot.mig_devices} == {3}
    first = next(m for m in snapshot.mig_devices if m.mig_index == 0)
    server = next(p for p in snapshot.processes if p.pid == DEMO_TRITON_PID and p.gpu_index == 3)
    assert server.mig_uuid == first.uuid and server.triton_server == "local"
    models = {m.name: m for m in snapshot.triton[0].models}
    assert models["embedder"].gpu_indexes == (3,) and models["embedder"].mig_uuids == (first.uuid,)
    assert models["resnet50"].mig_uuids == ()
    assert jsonform.decode_snapshot(jsonform.encode_snapshot(snapshot)) == snapshot
    no_mig = build_recorded_gpus(Settings(demo=DemoSettings(mig=False)))
    engine = Engine(no_mig, None)
    try:
        assert engine.collect_once(0.3).mig_devices == ()
    finally:
        engine.stop()


def test_a_triton_gpu_uuid_label_naming_a_mig_device_links_the_model_to_it(
    collector: NvmlCollector, clock: ManualClock
) -> None:
    run(collector, clock)
    view = collector.view()
    target = view.mig_devices[2]
    stats = model.ModelStats(server="local", name="m", version="1", gpu_uuids=(target.uuid,))
    server = model.TritonServerStatus("local", "http://127.0.0.1:8000", model.ServerState.UP, models=(stats,))
    (linked,) = join(view, (server,)).servers
    assert linked.models[0].mig_uuids == (target.uuid,)
    assert linked.models[0].gpu_indexes == (MIG_GPU,)


def test_mig_devices_are_kept_in_history_one_series_per_device(
    collector: NvmlCollector, clock: ManualClock, tmp_path: Path
) -> None:
    store = open_test_store(tmp_path / "gpuwatch.db", clock)
    try:
        start = clock()
        for _ in range(6):
            run(collector, clock, ticks=1)
            view = collector.view()
            store.submit(
                model.Snapshot(
                    timestamp=float(int(clock())),
                    node=view.node,
                    devices=view.devices,
                    gpus=view.gpus,
                    mig_devices=view.mig_devices,
                )
            )
        assert store.flush(30)
        devices = collector.view().mig_devices
        got = store.history.query("mig_memory_total_bytes", {"gpu": str(MIG_GPU)}, start, clock() + 1, 10)
        assert {d.key.label("mig_uuid") for d in got} == {d.uuid for d in devices}
        for data in got:
            device = next(d for d in devices if d.uuid == data.key.label("mig_uuid"))
            assert data.key.label("mig_profile") == device.profile
            assert {p.mean for p in data.points} == {device.memory_total_bytes}
        one = devices[0]
        sm = store.history.query("mig_sm_activity_ratio", {"mig_uuid": one.uuid}, start, clock() + 1, 10)
        assert len(sm) == 1 and sm[0].points, "GPM per GPU instance is kept once it has two samples"
        assert "mig" in series.KINDS and "mig_memory_used_bytes" in series.entity_series("mig")
    finally:
        store.close()


def test_the_device_check_holds_over_the_recorded_source() -> None:
    """bench/device/mig_check.py, run by the lead on the H200, checks the same over the recorded
    source here: the recorded answers with MIG off are those the H200 gave."""
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "device" / "mig_check.py"), "--recorded"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every MIG check holds" in result.stdout
    assert " NO\n" not in result.stdout


def test_a_database_from_before_mig_gets_the_mig_tables_when_opened(
    clock: ManualClock, tmp_path: Path
) -> None:
    db = tmp_path / "gpuwatch.db"
    open_test_store(db, clock).close()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        mig_tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'mig_%'")
        ]
        assert mig_tables, "a new database has the mig tables"
        for name in mig_tables:
            conn.execute(f"DROP TABLE {name}")  # as a database written before MIG support
        conn.commit()
    open_test_store(db, clock).close()
    assert sorted(
        r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'mig_%'")
    ) == sorted(mig_tables)


def test_a_lost_mig_gpu_takes_its_mig_devices_and_brings_them_back(
    recorded: RecordedNvml, clock: ManualClock, fast_nvml_settings: NvmlSettings
) -> None:
    collector = make_collector(recorded, fast_nvml_settings, clock)
    try:
        _lost_and_back(collector, recorded, clock)
    finally:
        collector.close()


def _lost_and_back(collector: NvmlCollector, recorded: RecordedNvml, clock: ManualClock) -> None:
    run(collector, clock, ticks=4)
    before = [d.uuid for d in collector.view().mig_devices]
    buffers = len(recorded._gpm_buffers)
    fault = recorded.inject("GPU_IS_LOST", gpu=MIG_GPU)
    run(collector, clock, ticks=2)
    view = collector.view()
    assert view.gpus[MIG_GPU].state is model.GpuState.LOST
    assert view.mig_devices == (), "a lost GPU's MIG devices are not shown as if they answered"
    freed = buffers - len(recorded._gpm_buffers)
    assert freed == 2 * (1 + len(MIXED_LAYOUT)), (
        "the GPU's two GPM buffers and two per GPU instance are freed"
    )
    recorded.clear(fault)
    deadline = time.monotonic() + 5.0  # the retry waits real seconds (backoff from 0.2 s)
    while not collector.view().mig_devices and time.monotonic() < deadline:
        run(collector, clock, ticks=1)
        time.sleep(0.05)
    assert [d.uuid for d in collector.view().mig_devices] == before
    assert recorded.stale_handle_uses == 0


def test_snapshot_text_nests_mig_devices_under_their_gpu(
    collector: NvmlCollector, clock: ManualClock
) -> None:
    run(collector, clock, ticks=4)
    view = collector.view()
    snapshot = model.Snapshot(
        timestamp=clock(),
        node=view.node,
        devices=view.devices,
        gpus=view.gpus,
        processes=view.processes,
        mig_devices=view.mig_devices,
    )
    lines = report.render(snapshot).splitlines()
    parent = next(i for i, line in enumerate(lines) if line.startswith(f"  {MIG_GPU}  "))
    rows = [line for line in lines[parent:] if "MIG-" in line]
    assert [r.split()[1] for r in rows] == [f"{MIG_GPU}:{i}" for i in range(len(MIXED_LAYOUT))]
    assert rows[0].split()[2] == "3g.40gb" and rows[-1].lstrip().startswith("└")
    assert all(r.split()[3] == "—" for r in rows), "no utilization per MIG device: —, never 0%"
    server = next(line for line in lines if line.lstrip().startswith(f"{SERVER_PID} {MIG_GPU}:0 "))
    assert "tritonserver" in server


def test_a_mig_device_whose_name_lacks_its_profile_is_named_from_the_parents_profiles(
    recorded: RecordedNvml, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = recorded.nvmlDeviceGetName
    monkeypatch.setattr(recorded, "nvmlDeviceGetName", lambda h: named(h).split(" MIG ")[0])
    collector = make_collector(recorded, NvmlSettings(), clock)
    try:
        run(collector, clock, ticks=2)
        assert [d.profile for d in collector.view().mig_devices] == [i.profile for i in MIXED_LAYOUT]
        asked = recorded.calls[(MIG_GPU, "nvmlDeviceGetGpuInstanceProfileInfo")]
        assert asked == pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT, "the profiles are read once per GPU"
    finally:
        collector.close()
