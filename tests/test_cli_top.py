"""`gpuwatch top` as a command: its arguments, its errors, and what the dashboard may import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, run_gpuwatch


def test_help_names_the_options() -> None:
    result = run_gpuwatch("top", "--help")
    assert result.returncode == 0
    for option in ("--demo", "--config", "--no-color", "--refresh"):
        assert option in result.stdout
    assert "top" in run_gpuwatch("--help").stdout


def test_bad_refresh_is_one_line_and_exit_2() -> None:
    result = run_gpuwatch("top", "--demo", "--refresh", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["gpuwatch: --refresh 0.0: expected seconds from 0.1 to 60"]


def test_daemon_urls_in_config_are_refused_until_the_http_client_exists(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[top]\nconnect = ["http://gpu-node-02:9477"]\n')
    result = run_gpuwatch("top", "--demo", "--config", str(path))
    assert result.returncode == 2
    assert "[top] connect" in result.stderr and "Traceback" not in result.stderr


def test_the_dashboard_loads_no_collector_engine_or_store() -> None:
    """The lint rule keeps imports out of gpuwatch/tui; this checks what actually loads."""
    code = (
        "import sys, gpuwatch.tui.app, gpuwatch.client; "
        "bad = ('pynvml', 'gpuwatch.collect', 'gpuwatch.engine', 'gpuwatch.assemble', "
        "'gpuwatch.store', 'sqlalchemy', 'sqlite3'); "
        "print(sorted(m for m in sys.modules if m.startswith(bad)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    assert out.strip() == "[]"
