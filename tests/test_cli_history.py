"""`gpuwatch query` and `gpuwatch events` against a database file, as a user runs them."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from gpuwatch import cli, jsonform, model
from gpuwatch.store import open_history
from tests.conftest import ManualClock, run_gpuwatch
from tests.storekit import gpu, model_stats, open_test_store, snapshot

MINUTES = 20


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 minutes up to a minute ago: two GPUs, a model, an XID and a model state change."""
    path = tmp_path_factory.mktemp("history") / "gpuwatch.db"
    clock = ManualClock(start=float(int(time.time())) - MINUTES * 60 - 60)
    store = open_test_store(path, clock)
    for i in range(MINUTES * 60):
        clock.advance(1)
        events = []
        if i == 300:
            events.append(
                model.Event(
                    clock.now, model.EventKind.XID, model.Severity.CRITICAL, "XID 79", gpu_index=1, code=79
                )
            )
        if i == 600:
            events.append(
                model.Event(
                    clock.now,
                    model.EventKind.MODEL_STATE,
                    model.Severity.WARNING,
                    "UNAVAILABLE: failed to load " + "x" * 100,
                    server="local",
                    model="resnet50",
                    version="3",
                )
            )
        gpus = [
            gpu(g, power_watts=100.0 + 50 * g + i % 60, memory_used_bytes=2**30 * (g + 1)) for g in range(2)
        ]
        store.submit(
            snapshot(clock.now, gpus, [model_stats("resnet50", "3", requests_per_second=12.5)], events)
        )
        if i % 500 == 0:
            assert store.flush(30)
    store.close()
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_query_prints_each_series_in_80_columns(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, "query", "gpu_power_watts", "--since", "1h", "--points", "12", "--db", str(db)
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0] == "gpu_power_watts: Power draw."
    assert lines[1].startswith("2 series in buckets of 5m, ")
    blocks = out.split("\n\n")[1:]
    assert [b.splitlines()[0] for b in blocks] == ["gpu 0  uuid GPU-0000", "gpu 1  uuid GPU-0001"]
    # Whole 5-minute buckets of GPU 1's sawtooth: 150 to 209 W.
    assert "     179.5 W     150.0 W     209.0 W" in blocks[1]


def test_query_points_1_is_one_point(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Cut at the epoch, a window one bucket wide straddled two: `--points 1` printed 2.
    for since in ("1h", "10m", "5m", "2m"):
        args = ("query", "gpu_power_watts", "--gpu", "1", "--since", since, "--points", "1", "--json")
        code, out, _ = _run(capsys, *args, "--db", str(db))
        assert code == 0
        (result,) = json.loads(out)["result"]
        assert len(result["points"]) == 1, since


def test_query_json_is_what_the_history_gives(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "query", "gpuwatch_gpu_power_watts", "--gpu", "1", "--points", "7", "--json", "--db", str(db)
    )
    assert code == 0
    doc = json.loads(out)
    assert (doc["series"], doc["match"]) == ("gpu_power_watts", {"gpu": "1"})
    (result,) = doc["result"]
    assert result["labels"] == {"gpu": "1", "uuid": "GPU-0001"}
    assert 0 < len(result["points"]) <= 7
    (expected,) = open_history(db).query("gpu_power_watts", {"gpu": "1"}, doc["from"], doc["to"], 7)
    assert jsonform.decode_history(doc) == [expected]  # the API's form, read back


def test_model_series_take_model_labels(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "query", "model_requests_per_second", "--model", "resnet50", "--db", str(db))
    assert code == 0
    assert "server local  model resnet50  version 3" in out
    assert "12.50 /s" in out
    code, _, err = _run(capsys, "query", "model_requests_per_second", "--gpu", "0", "--db", str(db))
    assert code == 2
    assert err == (
        "gpuwatch: --gpu does not apply to model_requests_per_second, a model series "
        "(use --server, --model, --version)\n"
    )


def test_nothing_found_is_exit_1_with_the_reason(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "query", "gpu_power_watts", "--gpu", "7", "--db", str(db))
    assert (code, out) == (1, "")
    assert err == "gpuwatch: no data for gpu_power_watts --gpu 7 since 1h (until now)\n"
    code, out, err = _run(
        capsys, "query", "gpu_power_watts", "--since", "3h", "--until", "2h", "--db", str(db)
    )
    assert code == 1
    code, out, err = _run(capsys, "events", "--kind", "gpu_lost", "--db", str(db))
    assert (code, out, err) == (1, "", "gpuwatch: no events of kind gpu_lost since 1h (until now)\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "gpu_powr_watts"], "unknown series 'gpu_powr_watts': did you mean gpu_power_watts"),
        (["query", "nonsense"], "unknown series 'nonsense': see gpuwatch query --list"),
        (["query"], "name a series"),
        (["query", "gpu_up", "--since", "1x"], "--since 1x: expected Unix seconds, now, a relative time"),
        (["query", "gpu_up", "--since", "-1x"], "--since -1x: expected Unix seconds, now, a relative time"),
        (["query", "gpu_up", "--since", "-1h", "--until", "-2h"], "--since -1h is not before --until -2h"),
        (["query", "gpu_up", "--since", "1h", "--until", "2h"], "--since 1h is not before --until 2h"),
        (["query", "gpu_up", "--points", "0"], "--points 0: expected a number from 1 to 100000"),
        (["events", "--kind", "xyz"], "--kind xyz: expected one of xid, "),
        (["query", "gpu_up", "--since", "99999999999d"], "--since 99999999999d: 99999999999d before now is"),
        (["events", "--since", "-99999999999w"], "--since -99999999999w: -99999999999w before now is"),
        (["query", "gpu_up", "--until", "9999-12-31T23:59"], "--until 9999-12-31T23:59: expected Unix"),
    ],
)
def test_usage_errors_are_exit_2_one_line(
    db: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = _run(capsys, *args, "--db", str(db))
    assert (code, out) == (2, "")
    assert err.startswith(f"gpuwatch: {message}")
    assert err.count("\n") == 1


def test_a_range_to_the_latest_moment_answers_what_is_stored(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--until 1e11` (the documented latest moment, the year 5138) lies past the store's row
    keys (2248): it used to print an OverflowError traceback; the range is cut at the keys."""
    code, out, err = _run(
        capsys, "query", "gpu_power_watts", "--since", "0", "--until", "1e11", "--db", str(db)
    )
    assert (code, err) == (0, "") and "W" in out


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (["--since", "14m"], ["--until", "1s"]),
        (["--since", "-14m"], ["--until", "-1s"]),
        (["--since=-14m"], []),
    ],
    ids=["ago", "minus", "minus-with-equals"],
)
def test_since_and_until_take_a_span_ago_with_or_without_a_minus(
    db: Path, capsys: pytest.CaptureFixture[str], since: list[str], until: list[str]
) -> None:
    """One grammar with the API's from/to: `-14m` is 14 minutes ago, as `14m` is (argparse alone
    would read a bare `-14m` as an option of its own)."""
    code, out, err = _run(capsys, "events", *since, *until, "--json", "--db", str(db))
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["to"] - doc["from"] == pytest.approx(840 - (1 if until else 0), abs=0.5)
    # The model state change was 11 minutes ago when the database was written, the XID 16:
    # only the first is in range.
    assert [e["kind"] for e in doc["events"]] == ["model_state"]


def test_events_newest_first_filtered_by_kind(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "events", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["time", "severity", "kind", "message"]
    assert [line.split()[2:4] for line in lines[1:]] == [["warning", "model_state"], ["critical", "xid"]]
    # Into a pipe (capsys is one) a message is whole, whatever its length, for grep (issue 14).
    assert lines[1].endswith(" local/resnet50 v3: UNAVAILABLE: failed to load " + "x" * 100)
    code, out, _ = _run(capsys, "events", "--kind", "xid", "--json", "--db", str(db))
    (event,) = json.loads(out)["events"]
    assert (event["kind"], event["gpu_index"], event["code"]) == ("xid", 1, 79)


def test_events_fit_the_terminal_they_are_printed_on(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    xs = {}
    for columns in (80, 150):
        monkeypatch.setenv("COLUMNS", str(columns))
        code, out, _ = _run(capsys, "events", "--db", str(db))
        assert code == 0
        lines = out.splitlines()
        assert len(lines[1]) == columns and lines[1].endswith("…")  # cut to the terminal, not to 80
        xs[columns] = lines[1].count("x")
    assert xs[80] == 0 < xs[150]  # the wider terminal shows more of the message


def test_the_list_of_series(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "query", "--list")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert "gpu_power_watts" in names and "model_requests_per_second" in names and "triton_up" in names


def test_as_a_process_bad_databases_are_exit_1_without_a_traceback(db: Path, tmp_path: Path) -> None:
    missing = run_gpuwatch("query", "gpu_power_watts", "--db", str(tmp_path / "none.db"))
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == (
        f"gpuwatch: no database at {tmp_path / 'none.db'} (is the daemon running there? name one with --db)\n"
    )

    newer = tmp_path / "newer.db"
    newer.write_bytes(db.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE schema_version SET version = 7")
    conn.close()
    refused = run_gpuwatch("events", "--db", str(newer))
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"gpuwatch: the database {newer} was written by a newer gpuwatch")
    assert "Traceback" not in refused.stderr and refused.stderr.count("\n") == 1

    ok = run_gpuwatch("query", "gpu_power_watts", "--gpu", "0", "--points", "4", "--db", str(db))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count(" W ") >= 4
