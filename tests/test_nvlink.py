"""NVLink and topology over the recorded 2-GPU NVLinked H200 node (gpuwatch/demo/nvlink.py).

The real collector runs over the recorded pair; what it reports is held equal to the captures
in gpuwatch/demo/data/h200x2/: the matrix to `nvidia-smi topo -m`, the links to `nvidia-smi
nvlink -s` and the static capture, each link's traffic to the all-reduce trace's counters. A
single GPU without NVLink reports no links and no NVLink rates (None, never 0.0).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuwatch import cli, model
from gpuwatch.collect.nvml.collector import NvmlCollector
from gpuwatch.config import NvmlSettings
from gpuwatch.demo import nvlink as recorded_pair
from gpuwatch.demo.nvlink import RecordedNvlinkNode
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.text import topology as topology_text
from tests.conftest import ManualClock, make_collector

KIB = 1024
MIB = 1024 * 1024
PERIOD = 0.5
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def pair(clock: ManualClock) -> Iterator[RecordedNvlinkNode]:
    source = RecordedNvlinkNode(clock=clock)
    yield source
    source.close()


def read(collector: NvmlCollector) -> model.Snapshot:
    """One fast and one slow read, as a snapshot would see them (views only: no engine needed)."""
    collector.poll_fast()
    collector.poll_slow()
    view = collector.view()
    return model.Snapshot(
        timestamp=0.0, node=view.node, devices=view.devices, gpus=view.gpus, topology=view.topology
    )


def trace() -> list[dict[str, object]]:
    return recorded_pair.load_trace()


def test_the_matrix_equals_the_captured_nvidia_smi_topo(pair: RecordedNvlinkNode, clock: ManualClock) -> None:
    collector = make_collector(pair, NvmlSettings(), clock)
    snapshot = read(collector)
    assert snapshot.topology is not None
    captured = ANSI.sub("", recorded_pair.captured_topo()).splitlines()
    matrix = topology_text.matrix(snapshot.topology)
    assert matrix == captured[: len(matrix)]
    assert matrix[1] == "GPU0\t X \tNV18\t0-31\t0\t\tN/A"  # the capture's rows, spelled out
    assert len(matrix) == 3 and captured[3] == ""  # and nothing of the capture's matrix left out


def test_links_match_the_capture(pair: RecordedNvlinkNode, clock: ManualClock) -> None:
    collector = make_collector(pair, NvmlSettings(), clock)
    snapshot = read(collector)
    status = recorded_pair.captured_nvlink_status()
    speeds: dict[int, list[float]] = {}
    for block in re.split(r"^GPU ", status, flags=re.MULTILINE)[1:]:
        gpu = int(block.split(":", 1)[0])
        speeds[gpu] = [float(s) * 1e9 for s in re.findall(r"Link \d+: ([\d.]+) GB/s", block)]
    node = recorded_pair.load_node()
    for sample, info, facts in zip(snapshot.gpus, snapshot.devices, node["gpus"], strict=True):
        assert info.uuid == facts["uuid"] and info.pci_bus_id == facts["bus"]
        assert info.nvlink_link_count == 18 == len(sample.nvlinks)
        assert [n.state for n in sample.nvlinks] == [model.NvlinkState.UP] * 18
        assert {n.version for n in sample.nvlinks} == {"4.0"}  # NVML's 6
        assert [n.speed_bytes_per_second for n in sample.nvlinks] == speeds[sample.index]
        # The far end's bus id is the VM's sentinel: None, and the peer comes from P2P status.
        assert {n.remote_pci_bus_id for n in sample.nvlinks} == {None}
        assert {n.remote_gpu_index for n in sample.nvlinks} == {1 - sample.index}
        assert {n.crc_error_count for n in sample.nvlinks} == {0}


def test_each_links_traffic_is_its_share_of_the_all_reduce(
    pair: RecordedNvlinkNode, clock: ManualClock
) -> None:
    """Read at every trace step: each link carries 1/18 of the GPU's counted KiB, and the GPU's
    own rate is GPM's, both as the trace holds them."""
    collector = make_collector(pair, NvmlSettings(), clock)
    lines = trace()
    seen_busy = 0
    read(collector)
    for i in range(1, len(lines)):
        clock.advance(PERIOD)
        snapshot = read(collector)
        for sample in snapshot.gpus:
            recorded = lines[i]["gpus"][sample.index]  # type: ignore[index]
            before = lines[i - 1]["gpus"][sample.index]  # type: ignore[index]
            (_, tx), (_, rx) = recorded["nvlink_kib_total"]
            (_, tx0), (_, rx0) = before["nvlink_kib_total"]
            per_link_tx = (tx - tx0) * KIB / PERIOD / 18
            per_link_rx = (rx - rx0) * KIB / PERIOD / 18
            for n in sample.nvlinks:
                assert n.tx_bytes_per_second == pytest.approx(per_link_tx, abs=2 * KIB / PERIOD)
                assert n.rx_bytes_per_second == pytest.approx(per_link_rx, abs=2 * KIB / PERIOD)
            assert sum(n.tx_bytes_per_second or 0 for n in sample.nvlinks) == pytest.approx(
                (tx - tx0) * KIB / PERIOD
            )
            assert sample.nvlink_tx_bytes_per_second == pytest.approx(recorded["gpm"]["nvlink_tx_mibs"] * MIB)
            assert sample.nvlink_rx_bytes_per_second == pytest.approx(recorded["gpm"]["nvlink_rx_mibs"] * MIB)
            seen_busy += per_link_tx > 10e9
    assert seen_busy > 40  # the all-reduce was replayed: ~16 GB/s per link, ~290 GB/s per GPU


def test_a_gpu_without_links_says_so_once_and_reports_no_rates(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The recorded H100 (NVLink state and link count NotSupported, as on the single H200): GPM
    answers 0.0 for NVLink there, and gpuwatch reports None, never 0.0."""
    recorded = RecordedNvml(1, clock=clock)
    collector = make_collector(recorded, NvmlSettings(), clock)
    with caplog.at_level(logging.INFO, logger="gpuwatch.nvml"):
        for _ in range(4):
            clock.advance(1.0)
            snapshot = read(collector)
    (sample,) = snapshot.gpus
    assert sample.gpm is not None and sample.gpm.sm_activity_ratio is not None  # GPM answered
    assert sample.nvlink_tx_bytes_per_second is None and sample.nvlink_rx_bytes_per_second is None
    assert sample.gpm.nvlink_tx_bytes_per_second is None and sample.gpm.nvlink_rx_bytes_per_second is None
    assert sample.nvlinks == ()
    assert snapshot.devices[0].nvlink_link_count is None
    said = [r for r in caplog.records if "no NVLink links" in r.getMessage()]
    assert len(said) == 1
    assert recorded.calls[(0, "nvmlDeviceGetNvLinkState")] == 0
    assert topology_text.links_line(sample) == "GPU0  no NVLink links"
    recorded.close()


def test_topology_is_read_once_and_again_when_a_link_changes(
    pair: RecordedNvlinkNode, clock: ManualClock
) -> None:
    collector = make_collector(pair, NvmlSettings(), clock)
    for _ in range(5):
        clock.advance(1.0)
        snapshot = read(collector)
    asked = pair.calls[(0, "nvmlDeviceGetTopologyCommonAncestor")]
    assert asked == 2  # once per pair of GPUs (a→b and b→a), not once per read
    pair.link_down(0, 3)
    clock.advance(1.0)
    snapshot = read(collector)
    assert pair.calls[(0, "nvmlDeviceGetTopologyCommonAncestor")] == 2 * asked
    assert snapshot.topology is not None
    assert [row.paths for row in snapshot.topology.rows] == [("X", "NV17"), ("NV17", "X")]
    assert snapshot.gpus[0].nvlinks[3].state is model.NvlinkState.DOWN
    assert snapshot.gpus[0].nvlinks[3].tx_bytes_per_second is None
    events = collector.drain_events()
    down = [e for e in events if e.kind is model.EventKind.NVLINK_DOWN]
    assert {(e.gpu_index, e.message) for e in down} == {
        (0, "GPU 0: NVLink link 3 went down"),
        (1, "GPU 1: NVLink link 3 went down"),
    }


def test_rising_error_counters_raise_an_event_each_time(pair: RecordedNvlinkNode, clock: ManualClock) -> None:
    collector = make_collector(pair, NvmlSettings(), clock)
    read(collector)
    pair.link_errors(1, 5, "crc", 40)
    pair.link_errors(1, 5, "replay", 4)
    for _ in range(3):
        clock.advance(1.0)
        snapshot = read(collector)
    link = snapshot.gpus[1].nvlinks[5]
    assert (link.crc_error_count, link.replay_error_count, link.recovery_error_count) == (120, 12, 0)
    rose = [e for e in collector.drain_events() if e.kind is model.EventKind.NVLINK_ERRORS]
    assert [e.message for e in rose] == ["GPU 1: NVLink link 5 errors rose: CRC +40, replay +4"] * 3
    assert all(e.gpu_index == 1 and e.severity is model.Severity.WARNING for e in rose)


def test_topo_demo_prints_the_matrix_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[demo]\nnode = "h200x2"\n')
    assert cli.main(["topo", "--demo", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "GPU0\t X \tNV18\t0-31\t0\t\tN/A" in out
    assert "GPU1  NVLink 18/18 up, v4.0, 26.562 GB/s each, to GPU0" in out
    assert cli.main(["topo", "--demo", "--json", "--config", str(config)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["topology"]["rows"][0]["paths"] == ["X", "NV18"]
    assert [n["state"] for n in doc["nvlinks"]["1"]] == ["up"] * 18


def test_the_nvlink_degraded_scenario_raises_both_findings(clock: ManualClock) -> None:
    from gpuwatch.demo import scenarios
    from gpuwatch.engine import Engine

    pair = RecordedNvlinkNode(clock=clock)
    scenarios.apply_to_gpus(scenarios.SCENARIOS["nvlink-degraded"], pair, tick_seconds=1.0)
    collector = make_collector(pair, NvmlSettings(), clock)
    engine = Engine(collector, None, clock=clock)
    kinds: dict[float, set[tuple[model.FindingKind, int | None]]] = {}
    for second in range(0, 40, 5):
        clock.advance(5.0)
        collector.poll_fast()
        collector.poll_events()
        collector.poll_slow()
        snapshot = engine.build_snapshot(clock())
        kinds[second] = {
            (f.kind, f.subject.gpu_index) for f in snapshot.findings if f.subject.gpu_index is not None
        }
    assert kinds[20] == set()  # the faults start 30 s in (the jobs run by hand: no collector findings)
    assert kinds[35] == {
        (model.FindingKind.GPU_NVLINK_DOWN, 0),
        (model.FindingKind.GPU_NVLINK_DOWN, 1),
        (model.FindingKind.GPU_NVLINK_ERRORS, 1),
    }
    down = next(f for f in snapshot.findings if f.kind is model.FindingKind.GPU_NVLINK_DOWN)
    assert down.severity is model.Severity.CRITICAL and down.message == "NVLink link 3 down of 18"
    pair.close()


def test_the_nvlink_degraded_scenario_needs_the_pair(clock: ManualClock) -> None:
    from gpuwatch.config import ConfigError
    from gpuwatch.demo import scenarios

    with pytest.raises(ConfigError, match='node = "h200x2"'):
        scenarios.apply_to_gpus(
            scenarios.SCENARIOS["nvlink-degraded"], RecordedNvml(4, clock=clock), tick_seconds=1.0
        )


def test_history_keeps_each_gpus_links_and_traffic(
    pair: RecordedNvlinkNode, clock: ManualClock, tmp_path: Path
) -> None:
    """Through the real SQLite store: links up, error sums and NVLink traffic per GPU."""
    from gpuwatch.engine import Engine
    from tests.storekit import open_test_store

    collector = make_collector(pair, NvmlSettings(), clock)
    engine = Engine(collector, None, clock=clock)
    store = open_test_store(tmp_path / "gpuwatch.db", clock)
    start = clock()
    try:
        for _ in range(30):  # 15 s of the trace: the all-reduce runs from 10 s
            clock.advance(PERIOD)
            collector.poll_fast()
            collector.poll_slow()
            store.submit(engine.build_snapshot(clock()))
        assert store.flush(30)
        end = clock() + 1
        up = store.history.query("gpu_nvlink_links_up", {"gpu": "1"}, start, end, 100)
        assert {p.mean for d in up for p in d.points} == {18.0}
        crc = store.history.query("gpu_nvlink_crc_errors_count", {}, start, end, 100)
        assert {d.key.label("gpu") for d in crc} == {"0", "1"}
        assert {p.mean for d in crc for p in d.points} == {0.0}
        tx = store.history.query("gpu_nvlink_tx_bytes_per_second", {"gpu": "0"}, start, end, 100)
        peak = max(p.maximum for d in tx for p in d.points)
        assert peak == pytest.approx(
            max(line["gpus"][0]["gpm"]["nvlink_tx_mibs"] for line in trace()[:31]) * MIB, rel=1e-6
        )  # type: ignore[index]
    finally:
        store.close()


def test_the_dashboards_gpu_detail_shows_the_links(pair: RecordedNvlinkNode, clock: ManualClock) -> None:
    from gpuwatch.tui import cells
    from gpuwatch.tui.gpu_panel import SPARK_FIGURES, spark_range

    collector = make_collector(pair, NvmlSettings(), clock)
    for _ in range(30):  # into the all-reduce
        clock.advance(PERIOD)
        snapshot = read(collector)
    sample, info = snapshot.gpus[0], snapshot.devices[0]
    detail = cells.gpu_detail(sample, info, None)
    assert re.search(r"NVLink 18/18 up to GPU 1 ↑ 30\d GB/s ↓ 30\d GB/s$", detail), detail
    nvlink = next(f for f in SPARK_FIGURES if f.series == "gpu_nvlink_tx_bytes_per_second")
    assert spark_range(nvlink, sample, info) == (0.0, pytest.approx(18 * 26.562e9))
    pair.link_down(0, 3)
    pair.link_errors(0, 7, "recovery", 1)
    clock.advance(1.0)
    snapshot = read(collector)
    detail = cells.gpu_detail(snapshot.gpus[0], info, None)
    assert "NVLink 17/18 up to GPU 1 (! down: 3)" in detail and detail.endswith("· ! 1 NVLink errors")
    no_links = cells.gpu_detail(model.GpuSample(0, "GPU-0", sm_clock_mhz=1980), None, None)
    assert "NVLink" not in no_links


def test_the_device_scripts_single_gpu_path_runs_on_the_demo(tmp_path: Path) -> None:
    """bench/device/nvlink_verify.py, for the lead to run on real GPUs: its single-GPU path
    (links None, not 0) over the recorded H100, through to its report."""
    import subprocess
    import sys

    from tests.conftest import REPO

    script = REPO / "bench" / "device" / "nvlink_verify.py"
    done = subprocess.run(
        [sys.executable, str(script), "--demo", "h100", "--window", "0.2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "nvlink_verify.json").read_text())
    assert report["path"] == "single GPU (no NVLink)"
    assert report["checks"]["gpu0"]["nvlink_tx_bytes_per_second"] is None
    assert report["checks"]["gpu0"]["gpm_present"] is True


def test_the_snapshot_text_counts_the_links_and_a_gpu_without_shows_none(
    pair: RecordedNvlinkNode, clock: ManualClock
) -> None:
    from gpuwatch.text import report

    collector = make_collector(pair, NvmlSettings(), clock)
    for _ in range(30):
        clock.advance(PERIOD)
        snapshot = read(collector)
    text = report.render(snapshot)
    assert re.search(r"NVLink 18/18 ↑30\d GB/s", text), text  # the rest is clipped at 80 columns
    single = RecordedNvml(1, clock=clock)
    alone = make_collector(single, NvmlSettings(), clock)
    for _ in range(3):
        clock.advance(1.0)
        snapshot = read(alone)
    assert "NVLink" not in report.render(snapshot)
    single.close()


def test_an_unknown_demo_node_is_one_line(tmp_path: Path) -> None:
    from gpuwatch import config

    path = tmp_path / "config.toml"
    path.write_text('[demo]\nnode = "h300x8"\n')
    with pytest.raises(config.ConfigError) as raised:
        config.load(path)
    assert "h300x8" in str(raised.value) and "h200x2" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert config.Settings().demo.node == "h100"  # the default stays the recorded H100s
