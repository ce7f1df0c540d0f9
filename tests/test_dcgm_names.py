"""dcgm-exporter's names (`[metrics] dcgm_exporter_names`): off by default, the table's rows,
their units and labels, the XID last-value gauge, promtool, docs/dcgm.md, and a real Prometheus
scraping a demo daemon answering queries written the way Grafana dashboard 12239 writes them."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpuwatch import config, model
from gpuwatch.catalog import dcgm, doc
from gpuwatch.catalog.index import BY_NAME
from gpuwatch.serve.metrics import MetricsExporter, MetricsState
from tests.conftest import REPO, ManualClock
from tests.daemons import Daemon
from tests.promserver import prometheus, query, wait_for_data
from tests.serve_support import full_snapshot, golden_snapshots

MIB = 1 << 20
LABELS = ("gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION")


def _render(*snapshots: model.Snapshot, dcgm_names: bool = True) -> str:
    state = MetricsState()
    for snapshot in snapshots:
        state.observe(snapshot)
    return MetricsExporter(state, dcgm_names=dcgm_names).render().decode()


def _values(text: str, name: str) -> dict[str, float]:
    """gpu → value of family `name` (the parser adds `_total` to a counter's samples)."""
    return {
        s.labels["gpu"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name in (name, name + "_total")
    }


def test_off_by_default_and_in_the_shipped_config() -> None:
    assert config.Settings().metrics.dcgm_exporter_names is False
    assert "[metrics]\n" in (REPO / "config.toml").read_text()
    assert "dcgm_exporter_names = false" in (REPO / "config.toml").read_text()
    assert "DCGM_" not in _render(full_snapshot(), dcgm_names=False)
    assert "DCGM_FI_DEV_GPU_TEMP{" in _render(full_snapshot())


def test_every_row_is_a_gpu_figure_once_in_dcgm_field_order() -> None:
    ids = [row.field_id for row in dcgm.FIELDS]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert len({row.name for row in dcgm.FIELDS}) == len(dcgm.FIELDS)
    for row in dcgm.FIELDS:
        assert row.figure in BY_NAME, row
        assert row.name.startswith(("DCGM_FI_DEV_", "DCGM_FI_PROF_")), row
        if row.name.startswith("DCGM_FI_PROF_") and row.unit == "ratio":
            assert row.closeness == "stand-in" and BY_NAME[row.figure].metric.endswith("_ratio")
    assert dcgm.LABELS == LABELS


def test_values_are_in_dcgms_legacy_units_under_its_labels() -> None:
    snapshot = full_snapshot()
    text = _render(snapshot)
    sample = snapshot.gpus[0]
    gpu = str(sample.index)
    assert sample.memory_used_bytes and sample.energy_joules and sample.utilization_ratio is not None
    assert sample.gpm is not None and sample.gpm.tensor_activity_ratio is not None
    assert _values(text, "DCGM_FI_DEV_FB_USED")[gpu] == sample.memory_used_bytes // MIB
    assert _values(text, "DCGM_FI_DEV_FB_FREE")[gpu] == (sample.memory_free_bytes or 0) // MIB
    assert _values(text, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")[gpu] == pytest.approx(
        sample.energy_joules * 1000
    )
    assert _values(text, "DCGM_FI_DEV_GPU_UTIL")[gpu] == pytest.approx(sample.utilization_ratio * 100)
    assert _values(text, "DCGM_FI_DEV_SM_CLOCK")[gpu] == sample.sm_clock_mhz
    assert _values(text, "DCGM_FI_DEV_POWER_USAGE")[gpu] == pytest.approx(sample.power_watts)
    assert _values(text, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE")[gpu] == pytest.approx(
        sample.gpm.tensor_activity_ratio
    )
    info = next(d for d in snapshot.devices if d.index == sample.index)
    temp = next(
        s for f in text_string_to_metric_families(text) for s in f.samples if s.name == "DCGM_FI_DEV_GPU_TEMP"
    )
    assert tuple(temp.labels) == LABELS
    assert temp.labels == {
        "gpu": gpu,
        "UUID": sample.uuid,
        "pci_bus_id": info.pci_bus_id,
        "device": f"nvidia{sample.index}",
        "modelName": info.name,
        "Hostname": snapshot.node.hostname,
        "DCGM_FI_DRIVER_VERSION": snapshot.node.driver_version,
    }


def test_a_value_the_source_cannot_give_stays_absent() -> None:
    snapshot = full_snapshot()
    gpus = (dataclasses.replace(snapshot.gpus[0], gpm=None, memory_used_bytes=None), *snapshot.gpus[1:])
    text = _render(dataclasses.replace(snapshot, gpus=gpus))
    gpu = str(gpus[0].index)
    assert gpu not in _values(text, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE")
    assert gpu not in _values(text, "DCGM_FI_DEV_FB_USED")
    assert gpu in _values(text, "DCGM_FI_DEV_GPU_TEMP")


def test_xid_errors_is_the_last_xid_as_dcgm_exporter_has_it() -> None:
    first = full_snapshot()
    uuid = first.gpus[0].uuid

    def xid(code: int) -> model.Event:
        return model.Event(
            timestamp=first.timestamp,
            kind=model.EventKind.XID,
            severity=model.Severity.WARNING,
            message=f"XID {code}",
            gpu_index=0,
            gpu_uuid=uuid,
            code=code,
        )

    quiet = dataclasses.replace(first, events=())
    assert set(_values(_render(quiet), "DCGM_FI_DEV_XID_ERRORS").values()) == {0}
    later = dataclasses.replace(first, timestamp=first.timestamp + 1, events=(xid(79),))
    then = dataclasses.replace(first, timestamp=first.timestamp + 2, events=(xid(13), xid(48)))
    after = dataclasses.replace(first, timestamp=first.timestamp + 3, events=())
    values = _values(_render(quiet, later, then, after), "DCGM_FI_DEV_XID_ERRORS")
    assert values["0"] == 48
    assert all(v == 0 for gpu, v in values.items() if gpu != "0")


@pytest.mark.prometheus
def test_promtool_says_only_what_it_says_of_dcgm_exporter_itself() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (tests/run.sh installs it)")
    for body in (_render(full_snapshot()), _render(*golden_snapshots(ManualClock()))):
        result = subprocess.run(
            [promtool, "check", "metrics"], input=body.encode(), capture_output=True, timeout=60, check=False
        )
        said = {tuple(line.split(" ", 1)) for line in (result.stdout + result.stderr).decode().splitlines()}
        present = {name for name, _ in dcgm.LINT_EXPECTED if f"\n{name}{{" in body}
        expected = {(name, problem) for name, problem in dcgm.LINT_EXPECTED if name in present}
        assert len(present) >= len(dcgm.FIELDS) - 3  # the golden H100s: no fan, no NVLink (None)
        assert said == expected, said ^ expected
        assert not any(name.startswith("gpuwatch_") for name, _ in said)


def test_docs_dcgm_md_is_rendered_from_the_table() -> None:
    text = (REPO / "docs" / "dcgm.md").read_text()
    assert text == doc.render_dcgm_doc(), "regenerate: python -m gpuwatch.catalog.doc dcgm > docs/dcgm.md"


@pytest.mark.parametrize(("value", "ok"), [("true", True), ("false", True), ('"yes"', False), ("1", False)])
def test_config_check_takes_a_boolean_only(tmp_path: Path, value: str, ok: bool) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[metrics]\ndcgm_exporter_names = {value}\n")
    if ok:
        assert config.load(path).metrics.dcgm_exporter_names is (value == "true")
    else:
        with pytest.raises(config.ConfigError, match=r"\[metrics\] dcgm_exporter_names"):
            config.load(path)


# --------------------------------------------------------------------------- a real Prometheus

DASHBOARD_12239 = (
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
)
SAME_AS = {
    # dcgm name → the PromQL of gpuwatch's own family in dcgm's unit, per gpu
    "DCGM_FI_DEV_GPU_TEMP": "gpuwatch_gpu_temperature_celsius",
    "DCGM_FI_DEV_POWER_USAGE": "gpuwatch_gpu_power_watts",
    "DCGM_FI_DEV_SM_CLOCK": "gpuwatch_gpu_sm_clock_hertz / 1e6",
    "DCGM_FI_DEV_FB_USED": "floor(gpuwatch_gpu_memory_used_bytes / 1048576)",
    "DCGM_FI_DEV_FB_FREE": "floor(gpuwatch_gpu_memory_free_bytes / 1048576)",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "gpuwatch_gpu_graphics_activity_ratio",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": "gpuwatch_gpu_tensor_activity_ratio",
}
GROUPING = "Hostname, gpu, UUID, GPU_I_ID, GPU_I_PROFILE"


@pytest.mark.prometheus
def test_dashboard_12239s_queries_answer_from_a_real_prometheus(tmp_path: Path) -> None:
    settings = tmp_path / "dcgm.toml"
    settings.write_text(
        '[metrics]\ndcgm_exporter_names = true\n[demo]\ntriton = false\nscenario = "xid-burst"\n'
    )
    daemon = Daemon(config=settings)
    try:
        snapshot = daemon.get("snapshot").json()
        devices = {str(d["index"]): d for d in snapshot["devices"]}
        assert len(devices) == 4
        with prometheus(tmp_path, {"demo": daemon.url.removeprefix("http://")}) as url:
            for name in DASHBOARD_12239:
                # As 12239's panels write them: the family by instance and gpu, and the
                # per-GPU aggregation by the labels it groups on.
                found = wait_for_data(url, f"{name}{{instance=~'.+', gpu=~'.+'}}")
                at = float(found[0]["value"][0])  # every query below at this instant: one scrape
                grouped = query(url, f"avg by ({GROUPING}) ({name})", at)
                assert len(grouped) == 4, (name, grouped)
                ours = {r["metric"]["gpu"]: float(r["value"][1]) for r in query(url, f"{SAME_AS[name]}", at)}
                for row in grouped:
                    labels = row["metric"]
                    device = devices[labels["gpu"]]
                    assert labels["UUID"] == device["uuid"]
                    assert labels["Hostname"] == snapshot["node"]["hostname"]
                    assert "GPU_I_ID" not in labels  # no MIG on the recorded H100s
                    assert float(row["value"][1]) == pytest.approx(ours[labels["gpu"]], rel=1e-6, abs=1e-6)
            full = query(url, "DCGM_FI_DEV_GPU_TEMP")
            for row in full:
                labels = row["metric"]
                device = devices[labels["gpu"]]
                assert labels["modelName"] == device["name"]
                assert labels["pci_bus_id"] == device["pci_bus_id"]
                assert labels["device"] == f"nvidia{labels['gpu']}"
                assert labels["DCGM_FI_DRIVER_VERSION"] == snapshot["node"]["driver_version"]
            # XID as dcgm-exporter's last-value gauge: the scenario's last XID on each GPU.
            last = {"1": 109, "2": 94, "3": 64}
            wait_for_data(url, 'DCGM_FI_DEV_XID_ERRORS{gpu="3"} == 64', timeout=90)
            xids = {r["metric"]["gpu"]: float(r["value"][1]) for r in query(url, "DCGM_FI_DEV_XID_ERRORS")}
            assert {gpu: xids[gpu] for gpu in last} == last
            assert xids["0"] != 0  # GPU 0 had the application XIDs
    finally:
        daemon.stop()


def test_the_doc_names_every_row() -> None:
    text = (REPO / "docs" / "dcgm.md").read_text()
    assert set(re.findall(r"`(DCGM_FI_[A-Z0-9_]+)`", text)) >= {row.name for row in dcgm.FIELDS}
