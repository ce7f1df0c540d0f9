"""The Triton block of `gpuwatch snapshot` (80 columns), the `--triton URL` override and how
the collector is assembled from settings."""

from __future__ import annotations

import dataclasses

import pytest

from gpuwatch import model
from gpuwatch.assemble import build_triton
from gpuwatch.assess import assess
from gpuwatch.collect.triton.collector import TritonCollector
from gpuwatch.config import (
    ConfigError,
    Settings,
    TritonServerSettings,
    TritonSettings,
    triton_server_from_url,
)
from gpuwatch.text import report
from tests.conftest import run_gpuwatch

NODE = model.NodeInfo(hostname="node-7", gpuwatch_version="0", source="nvml")


def interval(**figures: object) -> model.ModelInterval:
    return model.ModelInterval(interval_seconds=1.0, **figures)  # type: ignore[arg-type]


def stats(name: str, **fields: object) -> model.ModelStats:
    fields.setdefault("state", "READY")
    return model.ModelStats(server="a", name=name, version="1", **fields)  # type: ignore[arg-type]


def render(*servers: model.TritonServerStatus) -> list[str]:
    """The report of an assessed snapshot (as `gpuwatch snapshot` prints it: judged at once)."""
    snapshot = model.Snapshot(timestamp=1_795_558_300.0, node=NODE, triton=servers)
    found = assess(snapshot, None, snapshot.timestamp, immediate=True).findings
    text = report.render(dataclasses.replace(snapshot, findings=found))
    lines = text.splitlines()
    assert all(len(line) <= report.WIDTH for line in lines)
    return lines


def body(lines: list[str]) -> list[str]:
    """The rows under the model table's header."""
    return lines[next(i for i, line in enumerate(lines) if line.startswith("Model ")) + 1 :]


def test_a_model_row_shows_rates_batch_queue_compute_share_pending_and_gpus() -> None:
    m = stats(
        "resnet50",
        max_batch_size=32,
        pending_requests=3,
        gpu_indexes=(0, 1),
        interval=interval(
            requests_per_second=152.34,
            failures_per_second=0.0,
            average_batch_size=5.2,
            average_queue_seconds=0.0021,
            average_compute_input_seconds=0.0001,
            average_compute_infer_seconds=0.011,
            average_compute_output_seconds=0.0002,
            queue_share_ratio=0.16,
        ),
    )
    server = model.TritonServerStatus(
        "a", "http://h:8000", model.ServerState.UP, version="2.51.0", models=(m,)
    )
    lines = render(server)
    assert "Triton a · up · v2.51.0 · http://h:8000" in lines
    assert body(lines)[0].split() == [
        "resnet50:1",
        "READY",
        "152.3",
        "0.0",
        "5.2/32",
        "2.1",
        "ms",
        "11.3",
        "ms",
        "16%",
        "3",
        "0,1",
    ]


def test_an_ensemble_is_a_tree_over_its_steps() -> None:
    models = (
        stats("tokenizer", instance_kind="CPU"),
        stats("bert", gpu_indexes=(2,)),
        stats("pipeline", ensemble_steps=("tokenizer", "bert"), max_batch_size=8),
        stats("embedder", max_batch_size=0),
    )
    lines = render(model.TritonServerStatus("a", "http://h:8000", model.ServerState.UP, models=models))
    names = [
        line.split()[0] if not line.startswith(("├", "└")) else line[:2] + line.split()[1]
        for line in body(lines)
        if not line.startswith("  ")  # the ensemble's note under the table
    ]
    assert names == ["embedder:1", "pipeline:1", "├ tokenizer:1", "└ bert:1"]
    rows = {line.split()[0]: line.split() for line in body(lines)}
    assert rows["embedder:1"][4] == "off"  # max_batch_size 0
    assert rows["pipeline:1"][4] == "—"  # an ensemble runs no batches of its own


def test_an_ensembles_failures_are_not_its_own_and_ok_counts_successes() -> None:
    """Triton counts each failed step in the ensemble's statistics too (4 failed requests gave
    the ensemble 8, tests/triton/test_triton_live.py): the ensemble row shows no Fail/s of its
    own, the failing step's row shows the real figure, and a note under the table says why."""
    models = (
        stats(
            "bert",
            gpu_indexes=(2,),
            interval=interval(requests_per_second=138.2, failures_per_second=49.7),
        ),
        stats(
            "pipeline",
            ensemble_steps=("bert",),
            interval=interval(requests_per_second=138.2, failures_per_second=100.6),
        ),
    )
    lines = render(model.TritonServerStatus("a", "http://h:8000", model.ServerState.UP, models=models))
    header = next(line for line in lines if line.startswith("Model "))
    assert header.split()[2:4] == ["OK/s", "Fail/s"]
    rows = {line.split()[0]: line.split() for line in body(lines) if not line.startswith("  ")}
    assert rows["pipeline:1"][2:4] == ["138.2", "—"]
    assert rows["└"][3:5] == ["138.2", "49.7"]
    assert "100.6" not in "\n".join(lines)
    assert "  An ensemble's Fail/s is not shown: Triton counts each failed step twice." in lines


def test_missing_figures_are_dashes_and_notes_follow_their_model() -> None:
    models = (
        stats("new"),  # no interval yet: every figure unknown
        stats("reloaded", interval=model.ModelInterval(1.0, reset=True, reset_reason="unload/load")),
        stats(
            "failing",
            interval=interval(
                requests_per_second=30.0,
                failures_per_second=10.0,
                failures_per_second_by_reason={"BACKEND": 10.0, "OTHER": 0.0},
            ),
        ),
        model.ModelStats(
            server="a", name="broken", version="1", state="UNAVAILABLE", state_reason="Internal: no weights"
        ),
    )
    rows = body(render(model.TritonServerStatus("a", "http://h:8000", model.ServerState.UP, models=models)))
    assert rows[0].split() == ["broken:1", "UNAVAIL", "—", "—", "—", "—", "—", "—", "—"]
    assert rows[1] == "  ! Internal: no weights"
    assert rows[2].split()[:4] == ["failing:1", "READY", "30.0", "10.0"]
    assert rows[3] == "  ! failing 25% of requests: BACKEND 10.0/s"
    assert rows[4].split() == ["new:1", "READY", "—", "—", "—", "—", "—", "—", "—"]
    assert rows[5].split()[:3] == ["reloaded:1", "READY", "—"]
    assert rows[6] == "  reset: unload/load"


def test_a_down_server_says_why_and_an_absent_one_says_nothing() -> None:
    down = model.TritonServerStatus(
        "b", "http://h:9000", model.ServerState.DOWN, "http://h:9000: connection refused"
    )
    absent = model.TritonServerStatus(
        "local", "http://127.0.0.1:8000", model.ServerState.ABSENT, "nothing listens"
    )
    lines = render(down, absent)
    assert "Triton b · down · http://h:9000" in lines
    assert "  ! DOWN: http://h:9000: connection refused" in lines
    assert not any("local" in line for line in lines)


def test_long_names_and_reasons_are_clipped_to_80_columns() -> None:
    m = stats("a_model_with_a_very_long_name_indeed", state_reason="x" * 200, state="UNAVAILABLE")
    lines = render(
        model.TritonServerStatus("a", "http://h:8000", model.ServerState.UP, "y" * 300, models=(m,))
    )
    assert any(line.startswith("a_model_with_a_ve…") for line in lines)


# --------------------------------------------------------------------------- settings and --triton


@pytest.mark.parametrize(
    ("spec", "name", "url", "metrics_url"),
    [
        ("http://node-3:8000", "node-3:8000", "http://node-3:8000", "http://node-3:8002/metrics"),
        ("127.0.0.1:8100", "127.0.0.1:8100", "http://127.0.0.1:8100", "http://127.0.0.1:8102/metrics"),
        (
            "https://triton.example/",
            "triton.example:443",
            "https://triton.example",
            "http://triton.example:445/metrics",
        ),
        ("http://h:8000,http://h:9102/metrics", "h:8000", "http://h:8000", "http://h:9102/metrics"),
    ],
)
def test_triton_url_gives_a_server(spec: str, name: str, url: str, metrics_url: str) -> None:
    s = triton_server_from_url(spec)
    assert (s.name, s.url, s.metrics_url, s.headers) == (name, url, metrics_url, {})


@pytest.mark.parametrize("spec", ["ftp://h:8000", "http://", "http://h:notaport"])
def test_a_bad_triton_url_is_one_line(spec: str) -> None:
    with pytest.raises(ConfigError, match="expected Triton's HTTP URL"):
        triton_server_from_url(spec)


def test_a_bad_triton_url_on_the_command_line_exits_2() -> None:
    result = run_gpuwatch("snapshot", "--triton", "ftp://h:8000")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gpuwatch: --triton 'ftp://h:8000': expected Triton's HTTP URL, like http://HOST:8000 "
        "(optionally followed by ,METRICS_URL): the scheme is 'ftp'"
    ]


def test_the_default_is_one_implicit_local_server_and_urls_replace_it() -> None:
    default = build_triton(Settings(), urls=None)
    assert isinstance(default, TritonCollector)
    assert [(p.name, p.url, p.metrics_url, p._implicit) for p in default.pollers] == [
        ("local", "http://127.0.0.1:8000", "http://127.0.0.1:8002/metrics", True)
    ]
    given = build_triton(Settings(), urls=["h1:8000", "h1:8000"])
    assert isinstance(given, TritonCollector)
    assert [(p.name, p._implicit) for p in given.pollers] == [("h1:8000", False), ("h1:8000-2", False)]
    off = Settings(triton=TritonSettings(enabled=False))
    assert build_triton(off, urls=None) is None
    configured = Settings(triton=TritonSettings(servers=[TritonServerSettings(name="a", headers={"k": "v"})]))
    collector = build_triton(configured, urls=None)
    assert isinstance(collector, TritonCollector)
    assert [(p.name, p._fetcher._headers, p._implicit) for p in collector.pollers] == [
        ("a", {"k": "v"}, False)
    ]


def test_needs_a_look_comes_first_and_a_stalled_model_reads_so_under_its_row() -> None:
    models = (
        stats(
            "stuck",
            pending_requests=5,
            last_inference_at=1_795_558_269.0,
            interval=interval(requests_per_second=0.0, failures_per_second=0.0),
        ),
        stats(
            "quiet",
            pending_requests=0,
            last_inference_at=1_795_558_269.0,
            interval=interval(requests_per_second=0.0, failures_per_second=0.0),
        ),
    )
    lines = render(model.TritonServerStatus("a", "http://h:8000", model.ServerState.UP, models=models))
    assert lines[2:5] == [
        "Needs a look (1)",
        "! critical stuck:1: 5 requests pending, none finishing",
        "           → look at the backend's log; the model may need a reload",
    ]
    rows = body(lines)
    assert rows[0].split()[0] == "quiet:1" and rows[1] == "  idle, last inference 31 s ago"
    assert rows[2].split()[0] == "stuck:1" and rows[3] == "  ! 5 requests pending, none finishing"
