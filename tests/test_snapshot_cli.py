"""`gpuwatch snapshot`, run as a user runs it: text, JSON against the documented schema, exit codes."""

import json
import subprocess
import sys

import jsonschema
import pytest

from gpuwatch import jsonform, model
from tests.conftest import REPO, run_gpuwatch

SCHEMA_PATH = REPO / "docs" / "snapshot.schema.json"


def test_documented_schema_is_current() -> None:
    assert json.loads(SCHEMA_PATH.read_text()) == jsonform.snapshot_schema(), (
        "docs/snapshot.schema.json is stale: python -m gpuwatch.jsonform > docs/snapshot.schema.json"
    )


@pytest.fixture(scope="module")
def demo_json() -> dict[str, object]:
    result = run_gpuwatch("snapshot", "--demo", "--json")
    assert result.returncode == 0, result.stderr
    doc: dict[str, object] = json.loads(result.stdout)
    return doc


def test_snapshot_loads_no_dashboard_store_or_server() -> None:
    """`gpuwatch snapshot` stays light: what only the dashboard or the daemon needs is imported
    by the wiring that builds them (gpuwatch.assemble), never on the way to a snapshot."""
    code = (
        "import sys; from gpuwatch import cli; code = cli.main(['snapshot', '--demo', '--json']); "
        "bad = ('textual', 'sqlalchemy', 'sqlite3', 'gpuwatch.store', 'gpuwatch.serve', "
        "'gpuwatch.daemon', 'gpuwatch.tui', 'gpuwatch.client'); "
        "print(code, sorted(m for m in sys.modules if m.startswith(bad)), file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert json.loads(result.stdout)["gpus"]
    assert result.stderr.strip().splitlines()[-1] == "0 []"


def test_json_validates_against_the_documented_schema(demo_json: dict[str, object]) -> None:
    documented = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(documented)
    jsonschema.validate(demo_json, documented, cls=jsonschema.Draft202012Validator)


def test_schema_rejects_what_the_contract_forbids(demo_json: dict[str, object]) -> None:
    documented = json.loads(SCHEMA_PATH.read_text())
    broken = json.loads(json.dumps(demo_json))
    broken["gpus"][0]["power_watts"] = "high"  # type: ignore[index]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, documented, cls=jsonschema.Draft202012Validator)
    extra = json.loads(json.dumps(demo_json))
    extra["gpus"][0]["surprise"] = 1  # type: ignore[index]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(extra, documented, cls=jsonschema.Draft202012Validator)


def test_json_decodes_back_to_the_same_snapshot(demo_json: dict[str, object]) -> None:
    snapshot = jsonform.decode_snapshot(demo_json)
    assert len(snapshot.gpus) == 4
    assert jsonform.encode_snapshot(snapshot) == demo_json
    assert all(g.state == model.GpuState.OK for g in snapshot.gpus)
    assert snapshot.node.source == "recorded"
    assert any(p.user == "svc-infer" for p in snapshot.processes)


def test_model_states_cross_the_codec_as_members_or_as_a_newer_tritons_word(
    demo_json: dict[str, object],
) -> None:
    known = model.ModelStats(server="s", name="m", version="1", state=model.ModelState.UNAVAILABLE)
    newer = model.ModelStats(server="s", name="m", version="2", state="PAUSED")
    unknown = model.ModelStats(server="s", name="m", version="3")
    for stats, word in ((known, "UNAVAILABLE"), (newer, "PAUSED"), (unknown, None)):
        doc = jsonform.encode(stats)
        assert doc["state"] == word
        back = jsonform.decode(model.ModelStats, doc)
        assert back == stats and jsonform.encode(back) == doc
    assert jsonform.decode(model.ModelStats, jsonform.encode(known)).state is model.ModelState.UNAVAILABLE
    assert type(jsonform.decode(model.ModelStats, jsonform.encode(newer)).state) is str
    documented = json.loads(SCHEMA_PATH.read_text())
    with_word = json.loads(json.dumps(demo_json))
    with_word["triton"][0]["models"][0]["state"] = "PAUSED"  # type: ignore[index]
    jsonschema.validate(with_word, documented, cls=jsonschema.Draft202012Validator)
    with_word["triton"][0]["models"][0]["state"] = 3  # type: ignore[index]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(with_word, documented, cls=jsonschema.Draft202012Validator)


def test_decode_rejects_a_wrong_shape_with_a_path() -> None:
    with pytest.raises(jsonform.DecodeError, match=r"\$\.gpus\[0\]\.index: expected an integer"):
        jsonform.decode_snapshot(
            {
                "schema_version": model.SCHEMA_VERSION,
                "timestamp": 1.0,
                "node": {"hostname": "h", "gpuwatch_version": "0", "source": "nvml"},
                "gpus": [{"index": "zero", "uuid": "u"}],
            }
        )
    with pytest.raises(jsonform.DecodeError, match="schema_version"):
        jsonform.decode_snapshot({"schema_version": 999})


def test_text_fits_80_columns_and_shows_what_nvidia_smi_does_and_more() -> None:
    result = run_gpuwatch("snapshot", "--demo")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, too_wide
    text = result.stdout
    for column in ("Util", "Tensor", "DRAM", "Memory GiB", "Temp", "Power W", "SM MHz", "Command"):
        assert column in text
    assert text.count("H100 80GB HBM3") == 4
    assert "svc-infer" in text and "serve.py" in text


def test_no_gpu_data_exits_1_with_the_reason() -> None:
    # This machine has no NVIDIA driver: the real NVML cannot start.
    result = run_gpuwatch("snapshot")
    assert result.returncode == 1
    assert "NVML unavailable" in result.stderr and "--demo" in result.stderr
    assert "Traceback" not in result.stderr
    as_json = run_gpuwatch("snapshot", "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["nvml_status"].startswith("NVML unavailable")


def test_usage_errors_exit_2() -> None:
    assert run_gpuwatch("snapshot", "--window", "-1", "--demo").returncode == 2
    assert run_gpuwatch("snapshot", "--bogus").returncode == 2
    assert run_gpuwatch().returncode == 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--demo", "--triton", "http://127.0.0.1:8000"], "--demo replays recorded GPUs and Triton models"),
        (["--triton", "http://[::1"], "--triton 'http://[::1': expected Triton's HTTP URL"),
        (["--triton", "ftp://x"], "the scheme is 'ftp'"),
    ],
)
def test_triton_urls_and_the_demo_are_one_line_exit_2(args: list[str], says: str) -> None:
    """`--demo --triton URL` used to ignore --triton silently; `http://[::1` was a traceback."""
    result = run_gpuwatch("snapshot", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("gpuwatch: ") and says in result.stderr
    assert result.stderr.count("\n") == 1


def test_documented_field_tables_are_current() -> None:
    doc = (REPO / "docs" / "snapshot.md").read_text()
    assert jsonform.markdown_tables() in doc, "docs/snapshot.md is stale: see its Fields section"
