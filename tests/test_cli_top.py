"""`gpuwatch top` as a command: its arguments, its errors, and what the dashboard may import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_gpuwatch


def test_help_names_the_options() -> None:
    result = run_gpuwatch("top", "--help")
    assert result.returncode == 0
    for option in ("--demo", "--config", "--no-color", "--refresh", "--connect"):
        assert option in result.stdout
    assert "top" in run_gpuwatch("--help").stdout


def test_bad_refresh_is_one_line_and_exit_2() -> None:
    result = run_gpuwatch("top", "--demo", "--refresh", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["gpuwatch: --refresh 0.0: expected seconds from 0.1 to 60"]


@pytest.mark.parametrize(
    ("args", "config_text", "line"),
    [
        (
            ["--connect", "ftp://gpu-node-02"],
            "",
            "gpuwatch: --connect 'ftp://gpu-node-02': expected an http:// or https:// URL, "
            "e.g. http://gpu-node-02:9477",
        ),
        (
            [],
            '[top]\nconnect = ["gpu-node-01", "http://gpu-node-02:99999"]\n',
            "gpuwatch: [top] connect 'http://gpu-node-02:99999': the port is not a number from 1 to 65535",
        ),
        (
            ["--demo", "--connect", "gpu-node-02"],
            "",
            "gpuwatch: --demo runs recorded GPUs in this process: drop --connect, or drop --demo "
            "to read the daemons",
        ),
        (
            ["--connect", "gpu-node-02"],
            '[top]\ntoken_file = "/nonexistent/gpuwatch-token"\n',
            "gpuwatch: [top] token_file /nonexistent/gpuwatch-token: no such file",
        ),
        (
            ["--connect", "https://gpu-node-02"],
            '[top]\nca_file = "/nonexistent/ca.pem"\n',
            "gpuwatch: [top] ca_file /nonexistent/ca.pem: no such file",
        ),
    ],
    ids=["bad-url", "bad-config-url", "demo-and-connect", "token-file", "ca-file"],
)
def test_what_to_read_errors_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], config_text: str, line: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text)
    result = run_gpuwatch("top", "--config", str(path), *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [line]


def test_the_dashboard_loads_no_collector_engine_or_store() -> None:
    """The layer rules (tests/test_layers.py) keep imports out of gpuwatch/tui; this checks what
    actually loads."""
    code = (
        "import sys, gpuwatch.tui.app, gpuwatch.client.protocol, gpuwatch.client.http, "
        "gpuwatch.client.connect; "
        "bad = ('pynvml', 'gpuwatch.collect', 'gpuwatch.engine', 'gpuwatch.assemble', "
        "'gpuwatch.store', 'sqlalchemy', 'sqlite3'); "
        "print(sorted(m for m in sys.modules if m.startswith(bad)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_dashboard_of_daemons_loads_no_nvml_or_collector() -> None:
    """The wiring (gpuwatch.assemble) imports the real collectors only to build an engine: a
    dashboard that reads daemons builds HTTP clients and never loads pynvml."""
    code = (
        "import sys; from gpuwatch import assemble, config; from gpuwatch.client.connect import Plan; "
        "clients = assemble.top_clients(Plan(('http://127.0.0.1:9',), None, None), config.Settings(), "
        "demo=False); "
        "bad = ('pynvml', 'psutil', 'gpuwatch.collect.nvml', 'gpuwatch.collect.triton.collector', "
        "'gpuwatch.collect.host', 'gpuwatch.demo', 'gpuwatch.store', 'sqlalchemy'); "
        "print([type(c).__name__ for c in clients], sorted(m for m in sys.modules if m.startswith(bad)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    assert out.strip() == "['HttpClient'] []"
