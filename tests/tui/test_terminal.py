"""`gpuwatch top --demo` in a real terminal: tmux at 80×24, read back with capture-pane."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.daemons import Daemon

pytestmark = pytest.mark.tmux

GPU_ROW = re.compile(r"^\s+([0-3])\s+(?:\d+%|—)\s")
"""A GPU's row: its index, then its utilization ("—" for the demo's GPU 3, in MIG mode)."""


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "top")

    def wait_for(self, what: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if what(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"the screen never showed what was expected:\n{screen}")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (tests/run.sh installs it)")
    session = Tmux(f"gpuwatch-test-{os.getpid()}")
    yield session
    subprocess.run(["tmux", "-L", session.socket, "kill-server"], capture_output=True, check=False)


def test_top_demo_in_a_real_terminal(tmux: Tmux, tmp_path: Path) -> None:
    status = tmp_path / "status"
    env = f"PYTHONPATH={shlex.quote(str(REPO))} TERM=xterm-256color"
    command = (
        f"cd {shlex.quote(str(REPO))} && env {env} {shlex.quote(sys.executable)} -m gpuwatch top --demo; "
        f"echo $? > {shlex.quote(str(status))}; sleep 30"
    )
    tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", command)

    def overview_ready(screen: str) -> bool:
        rows = {m.group(1) for line in screen.splitlines() if (m := GPU_ROW.match(line))}
        return rows == {"0", "1", "2", "3"} and "svc-infer" in screen

    screen = tmux.wait_for(overview_ready)
    lines = screen.splitlines()
    assert len(lines) == 24 and max(len(line) for line in lines) <= 80
    assert "demo" in lines[0] and "LIVE" in lines[0]
    assert "PID" in screen and "Processes ·" in screen  # the processes, beside the GPUs
    # The recorded Triton models; rates (and so "failing") come with the second poll.
    models = tmux.wait_for(lambda s: "resnet50" in s and "bert_base" in s and "failing" in s)
    # The ensemble bert_pipeline is listed with its steps under it, as a tree, not beside them.
    names = [line.split()[0:2] for line in models.splitlines() if "bert" in line or "tokenizer" in line]
    assert ["bert_pipeline"] in [n[:1] for n in names] and ["└", "bert_base"] in names, models

    tmux("send-keys", "-t", "top", "2")
    screen = tmux.wait_for(lambda s: "Filter /" in s)
    assert not any(GPU_ROW.match(line) for line in screen.splitlines())  # the GPU rows gave way
    tmux("send-keys", "-t", "top", "5")
    tmux.wait_for(lambda s: "Events ·" in s)

    tmux("send-keys", "-t", "top", "q")
    deadline = time.monotonic() + 15
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status.read_text().strip() == "0"


def _wait_for_status(status: Path) -> str:
    deadline = time.monotonic() + 15
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return status.read_text().strip()


def test_top_connect_to_a_real_daemon_in_a_real_terminal(tmux: Tmux, tmp_path: Path) -> None:
    daemon = Daemon()
    try:
        for name, args in (
            ("named", f"--connect {daemon.url}"),
            # No --connect: the local daemon, found where the config says it listens.
            ("probed", f"--config {_config_listening_on(tmp_path, daemon.port)}"),
        ):
            status = tmp_path / f"status-{name}"
            env = f"PYTHONPATH={shlex.quote(str(REPO))} TERM=xterm-256color"
            command = (
                f"cd {shlex.quote(str(REPO))} && env {env} {shlex.quote(sys.executable)} -m gpuwatch top "
                f"{args}; echo $? > {shlex.quote(str(status))}; sleep 30"
            )
            tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", command)

            def gpus_shown(screen: str) -> bool:
                rows = {m.group(1) for line in screen.splitlines() if (m := GPU_ROW.match(line))}
                return rows == {"0", "1", "2", "3"} and "LIVE" in screen.splitlines()[0]

            screen = tmux.wait_for(gpus_shown)
            lines = screen.splitlines()
            assert len(lines) == 24 and max(len(line) for line in lines) <= 80
            assert f"daemon {daemon.url}" in lines[0] and "demo" in lines[0]
            assert "PID" in screen and "Processes ·" in screen
            tmux.wait_for(lambda s: "resnet50" in s)  # the daemon serves the recorded Triton models too
            tmux("send-keys", "-t", "top", "5")
            tmux.wait_for(lambda s: "gpuwatch daemon started" in s)  # the daemon's own event
            tmux("send-keys", "-t", "top", "q")
            assert _wait_for_status(status) == "0"
            tmux("kill-session", "-t", "top")
    finally:
        daemon.stop()


def _config_listening_on(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[daemon]\nlisten = "127.0.0.1:{port}"\n')
    return path


def test_top_demo_filter_resize_and_a_week_of_history(tmux: Tmux, tmp_path: Path) -> None:
    """What a new user tries first (issue 14): type a filter and read it back, shrink the
    terminal below 80×24 and grow it back, open the 7 d history."""
    status = tmp_path / "status"
    env = f"PYTHONPATH={shlex.quote(str(REPO))} TERM=xterm-256color NO_COLOR=1"
    command = (
        # -u: the tmux server copies this process's C environment, where GNU readline (loaded
        # by the test run) leaves COLUMNS and LINES; with them set, no resize would be seen.
        f"cd {shlex.quote(str(REPO))} && env -u COLUMNS -u LINES {env} "
        f"{shlex.quote(sys.executable)} -m gpuwatch top --demo; "
        f"echo $? > {shlex.quote(str(status))}; sleep 30"
    )
    tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", command)
    tmux.wait_for(lambda s: "svc-infer" in s and "Processes ·" in s)

    tmux("send-keys", "-t", "top", "2")
    tmux.wait_for(lambda s: "Filter /" in s and "s Sort" in s.splitlines()[-1])  # the table has the keys
    tmux("send-keys", "-t", "top", "/")
    tmux.wait_for(lambda s: "s Sort" not in s.splitlines()[-1])  # the filter box has the keys
    tmux("send-keys", "-t", "top", "-l", "alice")
    screen = tmux.wait_for(lambda s: "Filter / alice" in s and re.search(r"· \d+ of \d+ ·", s) is not None)
    rows = [line for line in screen.splitlines() if re.match(r"^\s+\d{3,}\s+\S+\s", line)]
    assert rows and all(" alice " in row for row in rows), screen  # only alice's processes
    tmux("send-keys", "-t", "top", "Escape")
    screen = tmux.wait_for(
        lambda s: re.search(r"Processes · \d+ ·", s) is not None and "s Sort" in s.splitlines()[-1]
    )
    assert "alice" not in screen.splitlines()[3]  # the title no longer names the filter

    tmux("resize-window", "-t", "top", "-x", "70", "-y", "20")
    tmux.wait_for(lambda s: "this one is 70×20" in s)
    tmux("resize-window", "-t", "top", "-x", "60", "-y", "15")
    tmux.wait_for(lambda s: "this one is 60×15" in s)  # the size now, not the one before
    tmux("resize-window", "-t", "top", "-x", "80", "-y", "24")
    tmux.wait_for(lambda s: re.search(r"Processes · \d+ ·", s) is not None)

    tmux("send-keys", "-t", "top", "4")
    tmux.wait_for(lambda s: "History · GPU 0 · utilization (%)" in s)
    tmux("send-keys", "-t", "top", "t", "t", "t")
    screen = tmux.wait_for(lambda s: "[7 d]" in s and re.search(r"\d\d-\d\d\s+\d\d-\d\d", s) is not None)
    dates = re.findall(r"(?<![\d:])\d\d-\d\d(?![\d:])", screen)
    assert len(dates) >= 2, screen
    assert re.search(r"\d\d-\d\d\d", screen) is None, screen  # no label runs into the next
    assert "activity" in screen and "tensor activity (%)" in screen  # the list, grouped, in words

    tmux("send-keys", "-t", "top", "q")
    assert _wait_for_status(status) == "0"
