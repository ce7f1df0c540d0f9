"""`gpuwatch daemon` for real: a subprocess over the recorded GPUs, systemd's notify protocol on
a real unix datagram socket, SIGTERM, and serving what it can when NVML is not there."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpuwatch import config
from gpuwatch.assemble import build_engine
from gpuwatch.daemon import Daemon
from gpuwatch.serve.notify import Notifier
from tests.conftest import REPO, run_gpuwatch

URL = re.compile(rb"serving (https?://[0-9.:\[\]]+)/metrics")


class NotifySocket:
    """What systemd listens on: a unix datagram socket; collects every datagram it receives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def wait_for(self, line: str, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line in m.splitlines() for m in self.messages):
                return self.messages
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
        raise AssertionError(f"{line!r} never arrived; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.close()


def start_daemon(
    *args: str, db: Path, env: dict[str, str], prefix: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    full_env.pop("GPUWATCH_CONFIG", None)
    command = [sys.executable, "-m", "gpuwatch", "daemon", "--listen", "127.0.0.1:0", "--db", str(db)]
    proc = subprocess.Popen(
        [*prefix, *command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd=REPO,
    )
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        match = URL.search(line)
        if match:
            return proc, match.group(1).decode()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the daemon did not announce its address: {seen.decode()}")


def stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    return proc.returncode, err.decode()


def test_daemon_under_systemd_notify_serves_and_stops_cleanly(notify: NotifySocket, tmp_path: Path) -> None:
    proc, url = start_daemon(
        "--demo", db=tmp_path / "g.db", env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
    )
    try:
        messages = notify.wait_for("READY=1")
        ready = next(m for m in messages if "READY=1" in m.splitlines())
        assert f"MAINPID={proc.pid}" in ready.splitlines()
        assert any(line.startswith("STATUS=serving http://127.0.0.1:") for line in ready.splitlines())
        # keep-alives every half WATCHDOG_USEC once the engine ticks, and a status naming the GPUs
        notify.wait_for("WATCHDOG=1")
        notify.wait_for("STATUS=4/4 GPUs ok; Triton 1/1 up; serving " + url)
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert 'gpuwatch_build_info{version="0.1.0",source="recorded"} 1' in metrics
        assert "gpuwatch_gpu_up{" in metrics
        events = httpx.get(url + "/api/v1/events", params={"kinds": "daemon_start"}, timeout=10).json()
        assert len(events["events"]) == 1
        watchdogs = sum(m.splitlines().count("WATCHDOG=1") for m in notify.messages)
    finally:
        code, err = stop(proc)
    assert code == 0, err
    notify.wait_for("STOPPING=1", timeout=2)
    assert watchdogs >= 1
    assert "did not reach the history" not in err  # daemon_stop was in a snapshot before exit
    assert "Traceback" not in err


def test_without_nvml_the_daemon_serves_and_says_why(tmp_path: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import pynvml; pynvml.nvmlInit()"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if probe.returncode == 0:
        pytest.skip("this machine has a working NVIDIA driver")
    proc, url = start_daemon(db=tmp_path / "g.db", env={})
    try:
        deadline = time.monotonic() + 20
        health: dict[str, object] = {}
        while time.monotonic() < deadline:
            health = httpx.get(url + "/api/v1/health", timeout=10).json()
            if health["status"] != "starting":
                break
            time.sleep(0.2)
        nvml = health["nvml"]
        assert isinstance(nvml, dict) and nvml["up"] is False and nvml["status"], health
        assert health["status"] == "degraded"
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert "gpuwatch_nvml_up 0\n" in metrics
        assert "gpuwatch_gpu_up{" not in metrics
    finally:
        code, err = stop(proc)
    assert code == 0, err


def test_watchdog_is_withheld_while_the_engine_is_not_ticking(notify: NotifySocket, tmp_path: Path) -> None:
    settings = config.parse({"daemon": {"listen": "127.0.0.1:0", "database": str(tmp_path / "g.db")}})
    offset = [0.0]

    def clock() -> float:
        return time.time() + offset[0]

    daemon = Daemon(
        settings,
        lambda s: build_engine(s, demo=True),
        notifier=Notifier(str(notify.path), watchdog_seconds=0.4),
        clock=clock,
    )
    runner = threading.Thread(target=daemon.run, kwargs={"install_signals": False}, daemon=True)
    runner.start()
    try:
        notify.wait_for("WATCHDOG=1")
        assert daemon.ticking()
        offset[0] = 3600.0  # as if the engine's newest snapshot were an hour old
        assert not daemon.ticking()
        time.sleep(0.3)
        notify.messages.clear()
        time.sleep(1.2)  # three keep-alive periods
        try:
            notify.wait_for("WATCHDOG=1", timeout=0.5)
            withheld = False
        except AssertionError:
            withheld = True
        assert withheld, notify.messages
        offset[0] = 0.0
        notify.wait_for("WATCHDOG=1", timeout=5)
    finally:
        daemon.request_stop()
        runner.join(timeout=10)
    assert not runner.is_alive()


def test_the_daemon_keeps_its_history_and_events_in_the_store(tmp_path: Path) -> None:
    db = tmp_path / "state" / "gpuwatch.db"
    proc, url = start_daemon("--demo", db=db, env={})
    try:
        deadline = time.monotonic() + 30
        points: list[object] = []
        while time.monotonic() < deadline and len(points) < 3:
            doc = httpx.get(
                url + "/api/v1/history",
                params={"series": "gpu_power_watts", "gpu": "1", "from": "-1m"},
                timeout=10,
            ).json()
            points = doc["result"][0]["points"] if doc["result"] else []
            time.sleep(0.3)
        assert len(points) >= 3, "the API's history is not filling from the store"
        health = httpx.get(url + "/api/v1/health", timeout=10).json()
        assert health["store"]["ok"] is True and health["store"]["path"] == str(db)
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert "gpuwatch_store_up 1" in metrics
    finally:
        code, err = stop(proc)
    assert code == 0, err
    # After the daemon is gone the file holds what it served, and both ends of its life.
    query = run_gpuwatch(
        "query",
        "gpu_power_watts",
        "--gpu",
        "1",
        "--since",
        "2m",
        "--points",
        "1000",
        "--db",
        str(db),
        "--json",
    )
    assert query.returncode == 0, query.stderr
    stored = json.loads(query.stdout)["result"][0]["points"]
    assert len(stored) >= len(points)
    assert {p[0] for p in points} <= {p[0] for p in stored}  # the seconds the API served are on disk
    events = run_gpuwatch("events", "--since", "5m", "--db", str(db), "--json")
    kinds = {e["kind"] for e in json.loads(events.stdout)["events"]}
    assert {"daemon_start", "daemon_stop"} <= kinds


def test_a_second_daemon_on_the_same_database_stops_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "state" / "gpuwatch.db"
    proc, url = start_daemon("--demo", db=db, env={})
    try:
        second = run_gpuwatch("daemon", "--demo", "--listen", "127.0.0.1:0", "--db", str(db))
        assert second.returncode == 1
        assert "Traceback" not in second.stderr
        lines = [line for line in second.stderr.splitlines() if line.startswith("gpuwatch:")]
        assert len(lines) == 1, second.stderr
        assert f"database {db} is already being written by pid {proc.pid} " in lines[0]
        # The first daemon goes on writing (the second may have been refused before its first tick).
        refused_at = time.time()
        deadline = time.monotonic() + 30
        health: dict[str, Any] = {}
        later: list[object] = []
        while time.monotonic() < deadline and not (later and (health.get("store") or {}).get("ok")):
            health = httpx.get(url + "/api/v1/health", timeout=10).json()
            doc = httpx.get(
                url + "/api/v1/history",
                params={"series": "gpu_power_watts", "gpu": "0", "from": str(refused_at)},
                timeout=10,
            ).json()
            later = doc["result"][0]["points"] if doc["result"] else []
            time.sleep(0.3)
        assert later, "the first daemon stored nothing after the second was refused"
        assert health["store"]["ok"] is True, health
    finally:
        code, err = stop(proc)
    assert code == 0, err


def test_a_database_it_cannot_use_stops_it_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state directory should be\n")
    result = run_gpuwatch("daemon", "--demo", "--listen", "127.0.0.1:0", "--db", str(blocker / "gpuwatch.db"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("gpuwatch:")]
    assert len(lines) == 1 and str(blocker) in lines[0], result.stderr


def test_notifier_reads_systemds_environment(tmp_path: Path) -> None:
    n = Notifier.from_environment({"NOTIFY_SOCKET": "@gpuwatch-test", "WATCHDOG_USEC": "30000000"})
    assert n.enabled and n.watchdog_seconds == 30.0
    n.close()
    other_pid = Notifier.from_environment(
        {"NOTIFY_SOCKET": str(tmp_path / "s"), "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    )
    assert other_pid.watchdog_seconds is None  # the watchdog is for another process
    other_pid.close()
    assert not Notifier.from_environment({}).enabled
    assert not Notifier.from_environment({}).ready("x")  # a no-op without systemd


def test_abstract_notify_socket(tmp_path: Path) -> None:
    name = f"gpuwatch-test-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind("\0" + name)
    listener.settimeout(5)
    try:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready("serving")
        assert listener.recv(4096).decode().splitlines()[:2] == ["READY=1", "STATUS=serving"]
        notifier.close()
    finally:
        listener.close()


def test_a_database_that_cannot_be_written_at_start_serves_live_data_and_writes_once_it_can(
    tmp_path: Path,
) -> None:
    # A file-size limit of 0 makes every write of the database fail (EFBIG, SQLite's "disk I/O
    # error"), as a full disk does; raising it later is space coming back.
    db = tmp_path / "g.db"
    proc, url = start_daemon(
        "--demo",
        db=db,
        env={},
        prefix=("prlimit", "--fsize=0:unlimited", "--"),  # util-linux; it execs the daemon
    )
    try:
        deadline = time.monotonic() + 15
        while "gpuwatch_gpu_up{" not in (metrics := httpx.get(url + "/metrics", timeout=10).text):
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
        assert "\ngpuwatch_store_up 0\n" in metrics  # live data is served, the store says it is down
        health = httpx.get(url + "/api/v1/health", timeout=10).json()
        assert any("held in memory" in p and "disk I/O error" in p for p in health["problems"]), health
        before = httpx.get(url + "/api/v1/history", params={"series": "gpu_up", "from": "-1m"}, timeout=10)
        held = [p[0] for p in before.json()["result"][0]["points"]]
        assert held, "history is served from memory while the file cannot be written"

        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        deadline = time.monotonic() + 20
        while "\ngpuwatch_store_up 1\n" not in httpx.get(url + "/metrics", timeout=10).text:
            assert time.monotonic() < deadline, "the store never opened once space came back"
            time.sleep(0.5)
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "Traceback" not in err
    assert "held in memory were not written" not in err
    stored = run_gpuwatch(
        "query", "gpu_up", "--gpu", "0", "--since", "5m", "--points", "300", "--json", "--db", str(db)
    )
    assert stored.returncode == 0, stored.stderr
    times = {p[0] for p in json.loads(stored.stdout)["result"][0]["points"]}
    assert set(held) <= times  # the snapshots held before the file opened were written
