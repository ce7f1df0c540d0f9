"""The HTTP server over real loopback sockets: stuck and slow clients, the 503 beyond
max_connections, real TLS with a throwaway certificate, bearer and bcrypt basic auth, and the
exposure rules. Every stuck client here is bounded in count (a handful) and time (seconds)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gpuwatch.config import DaemonSettings
from gpuwatch.serve.auth import AuthConfigError, Authenticator
from gpuwatch.serve.http import ExposureError, ListenAddress, check_exposure, is_loopback, tls_context
from tests.conftest import ManualClock, run_gpuwatch
from tests.serve_support import Served

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def served(clock: ManualClock) -> Iterator[Served]:
    s = Served(clock, max_connections=2, timeout_seconds=1.0, overflow=1)
    yield s
    s.close()


def _stuck(port: int) -> socket.socket:
    """A client that connects and then says nothing."""
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _closed_by_server(sock: socket.socket, within_seconds: float) -> bool:
    sock.settimeout(within_seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


# --------------------------------------------------------------------------- slow and stuck clients


def test_stuck_clients_get_a_503_neighbour_and_are_cut_after_the_timeout(served: Served) -> None:
    stuck = [_stuck(served.port), _stuck(served.port)]
    try:
        time.sleep(0.2)  # both accepted: every general slot is taken
        busy = httpx.get(f"{served.url}/api/v1/series", timeout=5)
        assert busy.status_code == 503
        assert "too many connections (limit 2)" in busy.json()["error"]
        assert busy.headers["Retry-After"] == "1"
        # a scrape still gets one of the reserved slots
        assert httpx.get(f"{served.url}/metrics", timeout=5).status_code == 200
        # the stuck ones are disconnected once the 1 s request timeout passes ...
        assert all(_closed_by_server(s, within_seconds=4) for s in stuck)
        # ... and their slots serve others again
        again = httpx.get(f"{served.url}/metrics", timeout=5)
        assert again.status_code == 200
        assert b"gpuwatch_gpu_up" in again.content
    finally:
        for s in stuck:
            s.close()
    assert served.server.counts["rejected_503"] >= 1


def test_a_client_dribbling_bytes_is_cut_by_the_total_deadline(served: Served) -> None:
    sock = _stuck(served.port)
    try:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        cut = False
        for _ in range(20):  # one header byte every 0.3 s would take 6 s; the deadline is 1 s
            time.sleep(0.3)
            try:
                sock.sendall(b"X")
            except OSError:
                cut = True
                break
            if _closed_by_server(sock, within_seconds=0.01):
                cut = True
                break
        assert cut, "a slow client was never disconnected"
    finally:
        sock.close()
    assert served.server.counts["reaped"] >= 1
    assert httpx.get(f"{served.url}/api/v1/health", timeout=5).status_code == 200


def test_keep_alive_serves_several_requests_on_one_connection(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=5) as client:
        for path in ("/metrics", "/api/v1/health", "/api/v1/series", "/"):
            assert client.get(path).status_code == 200


def test_http_level_garbage_gets_json_errors(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(b"BREW /coffee HTCPCP/1.0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400"), reply
    assert b'"error"' in reply
    post = httpx.post(f"{served.url}/metrics", timeout=5)
    assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"
    missing = httpx.get(f"{served.url}/nope", timeout=5)
    assert missing.status_code == 404 and "no such path" in missing.json()["error"]
    head = httpx.head(f"{served.url}/metrics", timeout=5)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) > 1000 and not head.content


# --------------------------------------------------------------------------- TLS


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gpuwatch test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_tls_serves_https_and_a_silent_tcp_client_blocks_nobody(clock: ManualClock, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = tls_context(DaemonSettings(tls_cert_file=str(cert), tls_key_file=str(key)))
    served = Served(clock, tls=context, max_connections=2, timeout_seconds=1.0)
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        assert served.url.startswith("https://")
        silent = _stuck(served.port)  # never starts a handshake
        try:
            response = httpx.get(f"{served.url}/metrics", verify=trust, timeout=5)
            assert response.status_code == 200 and b"gpuwatch_gpu_up" in response.content
        finally:
            silent.close()
        with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port
            httpx.get(f"http://127.0.0.1:{served.port}/metrics", timeout=5)
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate
            httpx.get(f"{served.url}/metrics", timeout=5)
        assert httpx.get(f"{served.url}/api/v1/health", verify=trust, timeout=5).status_code == 200
    finally:
        served.close()


def test_tls_settings_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ExposureError, match="go together"):
        tls_context(DaemonSettings(tls_cert_file="/x.pem"))
    with pytest.raises(ExposureError, match="no such file"):
        tls_context(
            DaemonSettings(tls_cert_file=str(tmp_path / "a.pem"), tls_key_file=str(tmp_path / "b.pem"))
        )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ExposureError, match="cannot load"):
        tls_context(DaemonSettings(tls_cert_file=str(garbage), tls_key_file=str(garbage)))


# --------------------------------------------------------------------------- authentication


def test_bearer_token_guards_every_path_metrics_included(clock: ManualClock, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    auth = Authenticator.from_settings(DaemonSettings(bearer_token_file=str(token_file)))
    served = Served(clock, auth=auth)
    try:
        for path in ("/metrics", "/api/v1/snapshot", "/api/v1/openapi.json"):
            denied = httpx.get(served.url + path, timeout=5)
            assert denied.status_code == 401, path
            assert denied.headers["WWW-Authenticate"] == 'Bearer realm="gpuwatch"'
            wrong = httpx.get(served.url + path, headers={"Authorization": "Bearer " + "x" * 32}, timeout=5)
            assert wrong.status_code == 401
            ok = httpx.get(served.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
            assert ok.status_code == 200, path
        assert (
            TOKEN not in httpx.get(served.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
        )
    finally:
        served.close()


def test_basic_auth_with_real_bcrypt_hashes(clock: ManualClock, tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"s3cret pass", bcrypt.gensalt(rounds=4)).decode()
    # htpasswd -B writes the $2y$ prefix; it must work too
    other = bcrypt.hashpw(b"other", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)
    users = tmp_path / "users"
    users.write_text(f"# prometheus scrapes as alice\nalice:{hashed}\n\nbob:{other}\n")
    auth = Authenticator.from_settings(DaemonSettings(basic_auth_file=str(users)))
    served = Served(clock, auth=auth)
    try:
        url = served.url + "/metrics"
        assert httpx.get(url, timeout=5).headers["WWW-Authenticate"] == 'Basic realm="gpuwatch"'
        assert httpx.get(url, auth=("alice", "s3cret pass"), timeout=5).status_code == 200
        assert httpx.get(url, auth=("alice", "s3cret pass"), timeout=5).status_code == 200  # remembered
        assert httpx.get(url, auth=("bob", "other"), timeout=5).status_code == 200
        assert httpx.get(url, auth=("alice", "wrong"), timeout=5).status_code == 401
        assert httpx.get(url, auth=("mallory", "s3cret pass"), timeout=5).status_code == 401
        assert httpx.get(url, auth=("bob", "s3cret pass"), timeout=5).status_code == 401
        for header in (
            "Basic !!!",
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Bearer " + TOKEN,
            "junk",
        ):
            assert httpx.get(url, headers={"Authorization": header}, timeout=5).status_code == 401, header
    finally:
        served.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("alice\n", "line 1: expected USER:BCRYPT_HASH"),
        ("alice:plaintext\n", "line 1: expected USER:BCRYPT_HASH"),
        ("# nobody\n", "no USER:BCRYPT_HASH line"),
    ],
)
def test_bad_password_files_are_one_clear_line(tmp_path: Path, content: str, message: str) -> None:
    users = tmp_path / "users"
    users.write_text(content)
    with pytest.raises(AuthConfigError, match=message) as info:
        Authenticator.from_settings(DaemonSettings(basic_auth_file=str(users)))
    assert "\n" not in str(info.value)


def test_bad_token_files_are_one_clear_line(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(AuthConfigError, match="at least 16 characters"):
        Authenticator.from_settings(DaemonSettings(bearer_token_file=str(short)))
    with pytest.raises(AuthConfigError, match="no such file"):
        Authenticator.from_settings(DaemonSettings(bearer_token_file=str(tmp_path / "missing")))
    assert Authenticator.from_settings(DaemonSettings()) is None


# --------------------------------------------------------------------------- exposure


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:9477", "127.0.0.1", 9477),
        ("[::1]:80", "::1", 80),
        (":9477", "", 9477),
        ("localhost:0", "localhost", 0),
    ],
)
def test_listen_addresses_parse(text: str, host: str, port: int) -> None:
    assert ListenAddress.parse(text) == ListenAddress(host, port)


@pytest.mark.parametrize("text", ["9477", "127.0.0.1:http", "127.0.0.1:70000", "::1:9477", "host:-1"])
def test_bad_listen_addresses_say_what_is_expected(text: str) -> None:
    with pytest.raises(ExposureError, match="listen"):
        ListenAddress.parse(text)


def test_only_loopback_may_go_without_authentication() -> None:
    assert (
        is_loopback("127.0.0.1")
        and is_loopback("127.0.0.2")
        and is_loopback("::1")
        and is_loopback("localhost")
    )
    assert (
        not is_loopback("0.0.0.0")
        and not is_loopback("")
        and not is_loopback("::")
        and not is_loopback("10.1.2.3")
    )
    remote = ListenAddress("0.0.0.0", 9477)
    with pytest.raises(ExposureError, match=r"refusing to listen on 0\.0\.0\.0:9477 without authentication"):
        check_exposure(remote, DaemonSettings(), None)
    check_exposure(remote, DaemonSettings(allow_unauthenticated_remote=True), None)
    check_exposure(remote, DaemonSettings(), Authenticator(bearer_token=TOKEN))
    check_exposure(ListenAddress("127.0.0.1", 9477), DaemonSettings(), None)


def test_the_daemon_refuses_a_remote_listen_without_auth_in_one_line() -> None:
    result = run_gpuwatch("daemon", "--demo", "--listen", "0.0.0.0:0", timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpuwatch: refusing to listen on 0.0.0.0:0"), result.stderr


def test_the_daemon_says_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        db = str(tmp_path / "g.db")
        result = run_gpuwatch("daemon", "--demo", "--listen", f"127.0.0.1:{port}", "--db", db, timeout=60)
    assert result.returncode == 1
    assert f"gpuwatch: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr


def test_the_daemon_rejects_a_malformed_listen_in_one_line() -> None:
    result = run_gpuwatch("daemon", "--demo", "--listen", "localhost", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "gpuwatch: listen 'localhost': expected HOST:PORT, e.g. 127.0.0.1:9477"


def test_ipv6_loopback(clock: ManualClock) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    from gpuwatch.series import MemoryHistory
    from gpuwatch.serve.api import Api
    from gpuwatch.serve.http import HttpServer
    from gpuwatch.serve.metrics import MetricsExporter, MetricsState
    from tests.serve_support import golden_snapshots

    state = MetricsState()
    for snapshot in golden_snapshots(clock):  # /metrics is a 503 until the first tick
        state.observe(snapshot)
    try:
        server = HttpServer(
            ListenAddress("::1", 0),
            MetricsExporter(state),
            Api(lambda: None, MemoryHistory(), lambda: ()),
        )
    except OSError as exc:
        pytest.skip(f"cannot bind [::1]: {exc}")
    server.start()
    try:
        assert server.url.startswith("http://[::1]:")
        answer = httpx.get(server.url + "/metrics", timeout=5)
        assert answer.status_code == 200 and "gpuwatch_gpu_up" in answer.text
    finally:
        server.stop()
