"""systemd/gpuwatch.service: `systemd-analyze verify` finds nothing and `systemd-analyze
security --offline=true` rates its exposure at 2.0 or less (units cannot be started in CI)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

UNIT = REPO / "systemd" / "gpuwatch.service"
pytestmark = pytest.mark.systemd


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (tests/run.sh installs it)")
    return tool


def _exec_start() -> str:
    match = re.search(r"^ExecStart=(\S+)", UNIT.read_text(), re.MULTILINE)
    assert match, "no ExecStart="
    return match.group(1)


def test_verify_is_clean(tmp_path: Path) -> None:
    """verify checks that ExecStart's program exists, so it runs against a root holding the
    system's units and, at ExecStart's path, a launcher of this checkout's gpuwatch."""
    tool = _analyze()
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system/gpuwatch.service")
    launcher = root / _exec_start().lstrip("/")
    launcher.parent.mkdir(parents=True)
    launcher.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m gpuwatch "$@"\n')
    launcher.chmod(0o755)
    result = subprocess.run(
        [tool, "verify", f"--root={root}", "gpuwatch.service"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )
    # and the launcher really starts this gpuwatch
    assert subprocess.run(
        [str(launcher), "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout.startswith("gpuwatch ")


def test_security_exposure_is_at_most_2() -> None:
    tool = _analyze()
    result = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r"Overall exposure level for gpuwatch\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_the_unit_is_what_the_daemon_needs() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "StateDirectory=gpuwatch",
        "DevicePolicy=closed",
        "DeviceAllow=/dev/nvidiactl rw",
        "DeviceAllow=char-nvidia-frontend rw",
    ):
        assert f"\n{line}\n" in text, line
    assert re.search(r"^WatchdogSec=\d+", text, re.MULTILINE)
    assert "PrivateDevices=yes" not in text  # it would hide /dev/nvidia*
