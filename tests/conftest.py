"""Shared fixtures: a manual clock, the recorded NVML source, and running the CLI for real."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuwatch.collect.nvml.collector import NvmlCollector
from gpuwatch.config import NvmlSettings
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.demo.processes import RecordedProcesses

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


class ManualClock:
    """A wall clock that moves only when a test says so."""

    def __init__(self, start: float = 1_795_558_200.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fast_nvml_settings() -> NvmlSettings:
    """Short deadlines so hang tests take a fraction of a second."""
    return NvmlSettings(
        interval_seconds=0.2, slow_interval_seconds=0.5, call_timeout_seconds=0.15, retry_max_seconds=1.0
    )


def make_collector(recorded: RecordedNvml, settings: NvmlSettings, clock: ManualClock) -> NvmlCollector:
    return NvmlCollector(
        recorded, settings, RecordedProcesses(recorded.host_processes()), source_name="recorded", clock=clock
    )


@pytest.fixture
def recorded4(clock: ManualClock) -> Iterator[RecordedNvml]:
    source = RecordedNvml(4, clock=clock)
    yield source
    source.close()


def run_gpuwatch(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m gpuwatch ARGS` from this checkout, as a user would run the command."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.pop("GPUWATCH_CONFIG", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gpuwatch", *args],
        check=False,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        input=input_text,
        cwd=REPO,
    )


DEFAULT_DATABASE = Path("/var/lib/gpuwatch/gpuwatch.db")


@pytest.fixture(scope="session", autouse=True)
def tests_never_touch_the_real_state_directory() -> Iterator[None]:
    """Every daemon a test starts keeps its history under the test's own tmp dir."""

    def seen() -> float | None:
        return DEFAULT_DATABASE.stat().st_mtime if DEFAULT_DATABASE.exists() else None

    before = seen()
    yield
    assert seen() == before, f"a test wrote {DEFAULT_DATABASE}: give its daemon --db under tmp_path"
