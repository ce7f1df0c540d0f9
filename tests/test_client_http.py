"""HttpClient against real daemons: `gpuwatch daemon --demo` subprocesses over real sockets.

What the client returns is checked against what the daemon serves (the raw JSON, decoded by the
codec), and every way a node can fail is produced for real: nothing listening, a daemon killed
and started again on its port, a daemon before its first tick, one that stopped ticking, one that
wants a token, TLS with a certificate we do and do not trust, a server that is not gpuwatch, one
that accepts and never answers.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuwatch import jsonform, model
from gpuwatch.client.connect import tls_context
from gpuwatch.client.http import HttpClient
from gpuwatch.client.protocol import AuthenticationError, ClientError, NotReadyError, SourceUnavailableError
from gpuwatch.series import UnknownSeriesError
from tests.conftest import ManualClock
from tests.daemons import Daemon, unused_port, wait_until
from tests.serve_support import Served
from tests.test_serve_http import _self_signed

TOKEN = "s3cret-token-for-the-tests-0123456789"


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    d = Daemon()
    yield d
    d.stop()


@pytest.fixture
def client(daemon: Daemon) -> Iterator[HttpClient]:
    c = HttpClient(daemon.url)
    yield c
    c.close()


def test_snapshot_is_what_the_daemon_serves(daemon: Daemon, client: HttpClient) -> None:
    def same_tick() -> tuple[dict[str, object], model.Snapshot] | None:
        raw = daemon.get("snapshot").json()
        got = client.snapshot()
        return (raw, got) if raw["timestamp"] == got.timestamp else None

    raw, got = wait_until(same_tick)
    assert got == jsonform.decode_snapshot(raw)
    assert jsonform.encode_snapshot(got) == raw  # nothing lost or added on the way
    assert [g.index for g in got.gpus] == [0, 1, 2, 3] and got.node.source == "recorded"
    assert client.name == f"127.0.0.1:{daemon.port}" and client.origin == f"daemon {daemon.url}"


def test_history_is_the_daemons_history(daemon: Daemon, client: HttpClient) -> None:
    first = client.snapshot().timestamp

    def four_ticks_later() -> model.Snapshot | None:
        snapshot = client.snapshot()
        return snapshot if snapshot.timestamp >= first + 4 else None

    latest = wait_until(four_ticks_later)
    start, end = latest.timestamp - 4, latest.timestamp - 0.5  # all in the past: fixed
    params = {"series": "gpu_power_watts", "from": repr(start), "to": repr(end), "points": "2"}
    raw = daemon.get("history", **params).json()["result"]
    every = client.history("gpu_power_watts", {}, start, end, 2)
    assert [dict(s.key.labels) for s in every] == [r["labels"] for r in raw]
    assert [s.resolution_seconds for s in every] == [r["resolution_seconds"] for r in raw]
    assert [[[p.timestamp, p.mean, p.minimum, p.maximum] for p in s.points] for s in every] == [
        r["points"] for r in raw
    ]
    assert all(1 <= len(s.points) <= 3 and s.key.name == "gpu_power_watts" for s in every)
    one = client.history("gpu_power_watts", {"gpu": "1"}, start, end, 2)
    assert [s.key.label("gpu") for s in one] == ["1"] and one[0] == every[1]
    assert client.history("gpu_power_watts", {"gpu": "9"}, start, end, 2) == []


def test_events_newest_first_and_filtered(daemon: Daemon, client: HttpClient) -> None:
    now = client.snapshot().timestamp
    events = client.events(now - 3600, now + 5)
    raw = daemon.get("events", **{"from": repr(now - 3600), "to": repr(now + 5)}).json()["events"]
    assert events == [jsonform.decode(model.Event, e) for e in raw]
    started = [e for e in events if e.kind == model.EventKind.DAEMON_START]
    assert len(started) == 1 and started[0].message == "gpuwatch daemon started"
    assert client.events(now - 3600, now + 5, kinds=[model.EventKind.DAEMON_START], limit=1) == started
    assert client.events(now - 3600, now + 5, kinds=[model.EventKind.XID]) == []
    assert client.events(started[0].timestamp + 1, now + 5, kinds=[model.EventKind.DAEMON_START]) == []


def test_unknown_series_is_unknown_series_error(client: HttpClient) -> None:
    with pytest.raises(UnknownSeriesError):
        client.history("gpu_no_such_figure", {}, 0, 1, 10)
    with pytest.raises(ClientError, match="refused the history request: unknown parameter 'colour'"):
        client.history("gpu_power_watts", {"colour": "red"}, 0, 1, 10)


def test_an_answer_over_the_size_bound_is_refused(daemon: Daemon) -> None:
    small = HttpClient(daemon.url, max_response_bytes=1000)  # a 4-GPU snapshot is ~12 kB
    try:
        with pytest.raises(SourceUnavailableError, match="answer larger than"):
            small.snapshot()
        assert small.events(0, 1) == []  # a small answer still passes
    finally:
        small.close()


def test_nothing_listening_is_connection_refused() -> None:
    client = HttpClient(f"http://127.0.0.1:{unused_port()}")
    try:
        for call in (
            client.snapshot,
            lambda: client.history("gpu_up", {}, 0, 1, 1),
            lambda: client.events(0, 1),
        ):
            with pytest.raises(SourceUnavailableError, match=r"^connection refused$"):
                call()
    finally:
        client.close()


def test_killed_daemon_is_refused_then_a_new_one_on_its_port_answers() -> None:
    first = Daemon()
    client = HttpClient(first.url)
    second: Daemon | None = None
    try:
        before = client.snapshot()  # leaves a keep-alive connection to the first daemon
        first.kill()
        with pytest.raises(SourceUnavailableError, match=r"^connection refused$"):
            client.snapshot()
        second = Daemon(first.port)
        after = client.snapshot()
        assert after.timestamp > before.timestamp
        events = client.events(after.timestamp - 600, after.timestamp + 5, [model.EventKind.DAEMON_START])
        assert len(events) == 1 and events[0].timestamp > before.timestamp  # the new daemon's
    finally:
        client.close()
        first.kill()
        if second is not None:
            second.stop()


def test_before_the_first_tick_is_not_ready(tmp_path: Path) -> None:
    # A daemon that ticks on the hour: it serves at once, and has no snapshot until then.
    if 3600 - time.time() % 3600 < 10:
        time.sleep(3600 - time.time() % 3600 + 1)  # not with the hour about to strike
    config = tmp_path / "config.toml"
    config.write_text("[nvml]\ninterval_seconds = 3600\n")
    daemon = Daemon(config=config, ready=False)
    client = HttpClient(daemon.url)
    try:
        answer = daemon.get("snapshot")
        assert (answer.status_code, answer.json()["code"]) == (503, "not_ready")
        with pytest.raises(NotReadyError, match=r"^the daemon is starting: no snapshot yet$"):
            client.snapshot()
        assert client.events(0, time.time() + 5) == []  # its history answers: empty until a tick
    finally:
        client.close()
        daemon.kill()  # a clean stop would wait two ticks for its last event


def test_not_ready_is_read_from_the_code_of_the_servers_answer(clock: ManualClock) -> None:
    """The real API before its first tick, through the real HTTP server: the client acts on
    `code`, so a daemon may reword the message."""
    served = Served(clock, snapshots=False)
    client = HttpClient(served.url)
    try:
        with pytest.raises(NotReadyError, match=r"^the daemon is starting: no snapshot yet$"):
            client.snapshot()
    finally:
        client.close()
        served.close()


@contextlib.contextmanager
def _client_of_a_server_answering(status: int, body: object) -> Iterator[HttpClient]:
    """An HttpClient of a plain HTTP server that answers every GET with `status` and `body`
    as JSON: what another daemon (newer, older, or not gpuwatch at all) could send."""
    payload = json.dumps(body).encode()

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = HttpClient(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (
            {"error": "warming up", "status": 503, "code": "not_ready"},
            NotReadyError,
            r"^the daemon is starting",
        ),
        (  # a daemon of 0.1.0: no code, only its message says so
            {"error": "no snapshot yet: the daemon is starting, its first tick", "status": 503},
            NotReadyError,
            r"^the daemon is starting",
        ),
        (
            {"error": "no snapshot yet, and a code we do not know", "status": 503, "code": "later"},
            SourceUnavailableError,
            r"^HTTP 503: no snapshot yet, and a code",
        ),
        (
            {"error": "too many connections (limit 8); retry shortly", "status": 503},
            SourceUnavailableError,
            r"^HTTP 503: too many connections",
        ),
    ],
    ids=["code", "old-daemon-text", "other-code", "busy"],
)
def test_a_503_is_not_ready_by_its_code_or_an_old_daemons_text(
    body: dict[str, object], error: type[Exception], match: str
) -> None:
    with _client_of_a_server_answering(503, body) as client, pytest.raises(error, match=match):
        client.snapshot()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"error": "no figure called that here", "status": 400, "code": "unknown_series"},
            UnknownSeriesError,
        ),
        ({"error": "series='x' is not a series: see /api/v1/series", "status": 400}, UnknownSeriesError),
        (
            {"error": "series='x' is not a series, and a code we do not know", "status": 400, "code": "x"},
            ClientError,
        ),
        ({"error": "points='0': expected an integer from 1 to 10000", "status": 400}, ClientError),
    ],
    ids=["code", "old-daemon-text", "other-code", "other-400"],
)
def test_an_unknown_series_is_read_from_the_code_or_an_old_daemons_text(
    body: dict[str, object], error: type[Exception]
) -> None:
    with _client_of_a_server_answering(400, body) as client:
        with pytest.raises(error) as raised:
            client.history("x", {}, 0, 1, 10)
        assert raised.type is error  # UnknownSeriesError is no ClientError, nor the reverse


def test_a_daemon_whose_engine_stopped_reads_stale_by_its_own_clock() -> None:
    # Snapshots from 100 s ago, served now: the daemon's Date header says how old they are.
    served = Served(ManualClock(time.time() - 100))
    client = HttpClient(served.url)
    try:
        with pytest.raises(SourceUnavailableError, match=r"^no new snapshot for 9\d s: the daemon's engine"):
            client.snapshot()
        # The same history and events still answer: only the live figures are stale.
        assert client.events(0, time.time())
    finally:
        client.close()
        served.close()


def test_the_same_snapshot_for_too_long_reads_stale_whatever_the_clocks_say() -> None:
    # A daemon whose clock runs ahead (its Date says nothing is old) but hands out one snapshot.
    served = Served(ManualClock(time.time() + 1000))
    ours = ManualClock(0.0)
    client = HttpClient(served.url, monotonic=ours)
    try:
        assert client.snapshot() == served.latest
        ours.advance(5)  # exactly the limit: still fresh
        assert client.snapshot() == served.latest
        ours.advance(2)
        with pytest.raises(SourceUnavailableError, match=r"^no new snapshot for 7 s"):
            client.snapshot()
    finally:
        client.close()
        served.close()


def test_a_daemon_that_wants_a_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = tmp_path / "config.toml"
    config.write_text(f'[daemon]\nbearer_token_file = "{token_file}"\n')
    daemon = Daemon(config=config, token=TOKEN)
    clients = [
        HttpClient(daemon.url),
        HttpClient(daemon.url, token="x" * 40),
        HttpClient(daemon.url, token=TOKEN),
    ]
    anonymous, wrong, right = clients
    try:
        with pytest.raises(
            AuthenticationError, match=r"requires a token \(HTTP 401\); set \[top\] token_file"
        ):
            anonymous.snapshot()
        with pytest.raises(
            AuthenticationError, match=r"refused the token \(HTTP 401\); check \[top\] token_file"
        ):
            wrong.history("gpu_up", {}, 0, 1, 1)
        snapshot = right.snapshot()
        assert len(snapshot.gpus) == 4
        assert right.events(0, snapshot.timestamp + 5, [model.EventKind.DAEMON_START])
    finally:
        for c in clients:
            c.close()
        daemon.stop()


def test_https_with_the_daemons_ca_and_without(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(f'[daemon]\ntls_cert_file = "{cert}"\ntls_key_file = "{key}"\n')
    daemon = Daemon(config=config, ca_file=cert)
    assert daemon.url.startswith("https://127.0.0.1:")
    trusting = HttpClient(daemon.url, verify=tls_context(str(cert)))
    doubting = HttpClient(daemon.url)  # the system's CAs do not know a self-signed certificate
    plain = HttpClient(daemon.url.replace("https:", "http:"))
    try:
        assert len(trusting.snapshot().gpus) == 4
        with pytest.raises(
            SourceUnavailableError, match=r"^TLS: the daemon's certificate is not trusted .*ca_file"
        ):
            doubting.snapshot()
        with pytest.raises(SourceUnavailableError):  # plain HTTP to the TLS port: no answer we can use
            plain.snapshot()
    finally:
        for c in (trusting, doubting, plain):
            c.close()
        daemon.stop()


# --------------------------------------------------------------------------- not gpuwatch


class _NotGpuwatch(http.server.BaseHTTPRequestHandler):
    """A web server that is something else: HTML at /api/v1/snapshot, 500 at events, 404 elsewhere."""

    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/snapshot"):
            self._send(200, b"<html><body>It works!</body></html>", "text/html")
        elif self.path.startswith("/api/v1/events"):
            self._send(500, b"<h1>Internal Server Error</h1>\n<p>oops</p>", "text/html")
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_server_that_is_not_gpuwatch() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotGpuwatch)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = HttpClient(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        with pytest.raises(
            SourceUnavailableError, match=r"^not a gpuwatch daemon: the answer is not JSON \(text/html\)"
        ):
            client.snapshot()
        with pytest.raises(
            SourceUnavailableError, match=r"^HTTP 500: <h1>Internal Server Error</h1> <p>oops</p>$"
        ):
            client.events(0, 1)
        with pytest.raises(
            SourceUnavailableError,
            match=r"^not a gpuwatch daemon \(or an older one\): .*/history answers 404",
        ):
            client.history("gpu_up", {}, 0, 1, 1)
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
        client = HttpClient(f"http://127.0.0.1:{listener.getsockname()[1]}", read_timeout_seconds=0.3)
        try:
            with pytest.raises(SourceUnavailableError, match=r"^no answer within 0.3 s$"):
                client.snapshot()
        finally:
            client.close()


def test_names_and_origins() -> None:
    named = [HttpClient(u) for u in ("gpu-node-02", "gpu-node-02:9000", "https://[::1]:9477/gw")]
    try:
        assert [c.name for c in named] == ["gpu-node-02", "gpu-node-02:9000", "[::1]"]
        assert [c.origin for c in named] == [
            "daemon http://gpu-node-02:9477",
            "daemon http://gpu-node-02:9000",
            "daemon https://[::1]:9477/gw",
        ]
    finally:
        for c in named:
            c.close()


def test_history_reads_what_json_cannot_carry_as_a_gap_never_a_zero() -> None:
    """The one decoder of the JSON form (jsonform.decode_history) is the client's: a point whose
    mean was NaN or ±inf comes as null and is a gap; a null extreme is the mean."""
    doc = {
        "series": "gpu_power_watts",
        "result": [
            {
                "labels": {"gpu": "0", "uuid": "GPU-x"},
                "resolution_seconds": 60,
                "points": [[60, 1.5, 1.0, 2.0], [120, None, None, None], [180, 3.0, None, None]],
            }
        ],
    }
    with _client_of_a_server_answering(200, doc) as client:
        (data,) = client.history("gpu_power_watts", {}, 0, 200, 10)
        assert [(p.timestamp, p.mean, p.minimum, p.maximum) for p in data.points] == [
            (60.0, 1.5, 1.0, 2.0),
            (180.0, 3.0, 3.0, 3.0),
        ]
        assert data.resolution_seconds == 60.0
        assert dict(data.key.labels) == {"gpu": "0", "uuid": "GPU-x"}
        bad = {**doc, "result": [{**doc["result"][0], "resolution_seconds": 0}]}
        with pytest.raises(jsonform.DecodeError, match="resolution_seconds"):
            jsonform.decode_history(bad)
