"""Real `gpuwatch daemon --demo` processes for the client's and the dashboard's tests.

Each daemon is this checkout's CLI in a subprocess, on 127.0.0.1 and a port picked at run time
(or a given one, to restart a daemon where the last one was), over the recorded H100s.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

from tests.conftest import REPO

ANNOUNCED = re.compile(r"serving (https?://[0-9.:\[\]]+)/metrics")
T = TypeVar("T")


def wait_until(what: Callable[[], T | None], timeout: float = 20.0, every: float = 0.05) -> T:
    """Poll `what` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {what}")
        time.sleep(every)


def unused_port() -> int:
    """A port nothing listens on now (the kernel's pick, released at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """`gpuwatch daemon --demo --listen 127.0.0.1:PORT [--config PATH]`, started and ready."""

    def __init__(
        self,
        port: int = 0,
        *,
        config: Path | None = None,
        token: str | None = None,
        ca_file: Path | None = None,
        ready: bool = True,
        db: Path | None = None,
    ) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("GPUWATCH_CONFIG", None)
        # Its own history: a database in a directory of its own, removed when it stops.
        self._state = None if db is not None else tempfile.TemporaryDirectory(prefix="gpuwatch-daemon-")
        self.db = db if db is not None else Path(self._state.name) / "gpuwatch.db"  # type: ignore[union-attr]
        args = ["daemon", "--demo", "--listen", f"127.0.0.1:{port}", "--db", str(self.db)]
        if config is not None:
            args += ["--config", str(config)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gpuwatch", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        self.log: list[str] = []
        self.url = self._announced()
        # Keep reading its log, so a chatty daemon never blocks on a full pipe.
        threading.Thread(target=self._read_log, name="daemon-log", daemon=True).start()
        self.port = int(self.url.rsplit(":", 1)[1])
        self.token = token
        """What this test's own requests send (the daemon's token comes from `config`)."""
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        )
        if ready:
            self.wait_ready()

    def _announced(self) -> str:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            self.log.append(line)
            match = ANNOUNCED.search(line)
            if match:
                return match.group(1)
            if not line and self.proc.poll() is not None:
                break
        self.proc.kill()
        raise AssertionError("the daemon did not announce its address:\n" + "".join(self.log))

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def get(self, path: str, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.get(
            f"{self.url}/api/v1/{path}", params=params, headers=headers, timeout=10, verify=self.verify
        )

    def wait_ready(self) -> None:
        """Until the first tick has been published (the snapshot endpoint answers 200)."""
        wait_until(lambda: self.get("snapshot").status_code == 200)

    def kill(self) -> None:
        """SIGKILL: gone at once, no goodbye, as a crashed or OOM-killed daemon is."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self._state is not None:
            self._state.cleanup()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._state is not None:
            self._state.cleanup()
