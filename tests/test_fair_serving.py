"""Fair serving (issue #15, finding 1) against a real `gpuwatch daemon --demo` on 127.0.0.1.

Before: 80 idle sockets, or slowloris at 1 byte/s, kept /metrics down (4 of 136 scrapes
answered over 35 s); 64 clients that never read → 503 for 9.5 s. Now one source address holds
at most 8 connections (more are closed at accept), the request head and the answer each have a
5 s deadline in total, and /metrics has 4 reserved slots. Each test scrapes every 0.25 s for
8 s from 127.0.0.1 during the flood, sent from other loopback addresses (127.0.0.2, 127.0.1.N),
and states how many scrapes were answered. Floods are bounded in count (≤ 80) and time (≤ 10 s).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.daemons import Daemon

SCRAPES = 32  # one every 0.25 s: 8 s


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    d = Daemon()
    yield d
    d.stop()


def _connect(port: int, source: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def _scrapes_answered(daemon: Daemon) -> int:
    answered = 0
    with httpx.Client(timeout=2) as client:
        for _ in range(SCRAPES):
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{daemon.url}/metrics").status_code == 200:
                    answered += 1
            time.sleep(0.25)
    return answered


def _during(flood: Callable[[threading.Event], None], daemon: Daemon) -> int:
    stop = threading.Event()
    thread = threading.Thread(target=flood, args=(stop,), daemon=True)
    thread.start()
    time.sleep(1.0)  # the flood is in place
    try:
        return _scrapes_answered(daemon)
    finally:
        stop.set()
        thread.join(15)


def test_80_idle_sockets_from_one_host_leave_metrics_served(daemon: Daemon) -> None:
    held: list[socket.socket] = []

    def flood(stop: threading.Event) -> None:
        for _ in range(80):
            if (sock := _connect(daemon.port, "127.0.0.2")) is not None:
                held.append(sock)
        stop.wait(10)
        for sock in held:
            sock.close()

    answered = _during(flood, daemon)
    print(f"80 idle sockets: {answered} of {SCRAPES} scrapes answered")
    assert answered == SCRAPES


def test_slowloris_at_one_byte_a_second_leaves_metrics_served(daemon: Daemon) -> None:
    def flood(stop: threading.Event) -> None:
        socks = [s for _ in range(80) if (s := _connect(daemon.port, "127.0.0.2")) is not None]
        with contextlib.suppress(OSError):
            for s in socks:
                s.sendall(b"GET /metrics HTTP/1.1\r\n")
        while not stop.wait(1.0):  # one byte a second on every socket still open
            for s in list(socks):
                try:
                    s.sendall(b"X")
                except OSError:
                    socks.remove(s)
                    s.close()
            # like a real slowloris, reopen what was cut
            while len(socks) < 80 and (s := _connect(daemon.port, "127.0.0.2")) is not None:
                with contextlib.suppress(OSError):
                    s.sendall(b"GET /metrics HTTP/1.1\r\n")
                socks.append(s)
                if len(socks) >= 80:
                    break
        for s in socks:
            s.close()

    answered = _during(flood, daemon)
    print(f"slowloris, 80 sockets at 1 byte/s: {answered} of {SCRAPES} scrapes answered")
    assert answered == SCRAPES


def test_64_clients_that_never_read_leave_metrics_served(daemon: Daemon) -> None:
    """64 hosts, each one connection pipelining API requests and never reading its answers:
    they hold every general slot until the write deadline cuts them; scrapes take the reserve."""
    request = b"GET /api/v1/series HTTP/1.1\r\nHost: x\r\n\r\n" * 2000

    def flood(stop: threading.Event) -> None:
        socks = [s for n in range(64) if (s := _connect(daemon.port, f"127.0.1.{n + 1}")) is not None]
        for s in socks:
            s.setblocking(False)
            with contextlib.suppress(OSError):
                s.send(request)
        stop.wait(10)
        for s in socks:
            s.close()

    answered = _during(flood, daemon)
    counts = httpx.get(f"{daemon.url}/api/v1/health", timeout=5)
    print(f"64 non-reading clients: {answered} of {SCRAPES} scrapes answered")
    assert counts.status_code == 200
    assert answered >= SCRAPES - 1
