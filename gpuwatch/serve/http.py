"""The HTTP server: /metrics and /api/v1/ over the stdlib's http.server, with exposure rules.

Place in the flow: the daemon builds one `HttpServer` around a `MetricsExporter` and an `Api`;
every request reads what those hold (the latest snapshot, the history); nothing here reaches
NVML or Triton.

Why the stdlib: the daemon serves a handful of GET endpoints whose bodies are already rendered
bytes; what matters is that a slow or hostile client cannot starve the others, and that is
easier to guarantee and to test with the accept loop in hand than behind a framework's defaults.
- Per client, at accept: one source address holds at most `max_connections_per_client`
  connections (8); past that its new connections are closed unanswered before they take a slot
  or a thread, so one host's idle sockets or slowloris cannot fill the server.
- Bounded concurrency: at most `max_connections` connections are served at once, each on its
  own thread. `reserved` more slots (4) serve only `/metrics` and `/api/v1/health`: a
  connection accepted while the general slots are full takes one, and once its head is read
  (under a one-second deadline) any other path is answered 503. A few more (`overflow`) are
  answered 503 at once, on short-lived threads with a one-second deadline; past that,
  connections are closed unanswered.
- Deadlines, in total, never per byte: the request head (request line and headers, or the
  keep-alive wait for the next one) must arrive within `head_timeout_seconds` (5 s) and the
  answer be taken by the client within `write_timeout_seconds` (5 s), both capped by
  `request_timeout_seconds`; a reaper cuts a connection past its deadline, so a client
  dribbling one byte at a time, or one that never reads, is disconnected.
- TLS handshakes happen on the connection's own thread under the same deadline, never on the
  accept loop.

Exposure rules (`check_exposure`): the default listen address is loopback; a non-loopback
address without authentication refuses to start unless `allow_unauthenticated_remote` is set.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import logging
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gpuwatch import __version__
from gpuwatch.config import DaemonSettings, SettingFileError, read_setting_file
from gpuwatch.serve import api as api_module
from gpuwatch.serve.auth import Authenticator
from gpuwatch.serve.metrics import CONTENT_TYPE, MetricsExporter

log = logging.getLogger("gpuwatch.http")

OVERFLOW_DEADLINE_SECONDS = 1.0
"""The deadline of a 503 answered from the overflow, and of a reserved slot's request head."""
MAX_CONNECTIONS_PER_CLIENT = 8
"""Connections one source address may hold at once; more are closed at accept."""
RESERVED_SLOTS = 4
"""Slots beyond `max_connections` that serve only `RESERVED_PATHS`."""
RESERVED_PATHS = frozenset({"/metrics", "/api/v1/health"})
HEAD_DEADLINE_SECONDS = 5.0
"""The whole request head (or keep-alive wait) must arrive within this."""
WRITE_DEADLINE_SECONDS = 5.0
"""The client must take the whole answer within this."""
MAX_HEAD_BYTES = 32_768
"""The request line and every header of one request together: a client is told 431 past it.
http.server alone bounds each line (64 KiB) and the count (100), not their sum: 64 clients
sending 99 lines of 64 KiB drove the daemon from 67 MB to 2.86 GB."""


ACCEPT_POLL_SECONDS = 3600.0
"""How often the accept loop looks at its stop flag unprompted; `stop()` wakes it at once."""
"""How often an idle daemon's accept loop and reaper wake: an idle node should cost nothing."""


class ExposureError(ValueError):
    """The daemon would listen in a way it must not, or cannot; str() is one line with the fix."""


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """ "HOST:PORT", "[IPV6]:PORT" or ":PORT" (all interfaces)."""
        host, sep, port_text = text.strip().rpartition(":")
        if not sep:
            raise ExposureError(f"listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9477")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            raise ExposureError(f"listen {text!r}: write an IPv6 address in brackets, e.g. [::1]:9477")
        try:
            port = int(port_text)
        except ValueError:
            raise ExposureError(
                f"listen {text!r}: port {port_text!r} is not a number from 0 to 65535"
            ) from None
        if not 0 <= port <= 65535:
            raise ExposureError(f"listen {text!r}: port {port} is not from 0 to 65535")
        return cls(host, port)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address ("" and 0.0.0.0 are not)."""
    if host in ("", "0.0.0.0", "::"):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0])).is_loopback for info in infos)


def check_exposure(address: ListenAddress, settings: DaemonSettings, auth: Authenticator | None) -> None:
    if auth is None and not is_loopback(address.host) and not settings.allow_unauthenticated_remote:
        raise ExposureError(
            f"refusing to listen on {address} without authentication: set [daemon] bearer_token_file or "
            "basic_auth_file, listen on 127.0.0.1, or set [daemon] allow_unauthenticated_remote = true"
        )


def tls_context(settings: DaemonSettings) -> ssl.SSLContext | None:
    if not settings.tls_cert_file and not settings.tls_key_file:
        return None
    if not (settings.tls_cert_file and settings.tls_key_file):
        raise ExposureError("[daemon] tls_cert_file and tls_key_file go together: set both, or neither")
    for setting, name in (("tls_cert_file", settings.tls_cert_file), ("tls_key_file", settings.tls_key_file)):
        try:
            read_setting_file(Path(name))
        except FileNotFoundError:
            raise ExposureError(f"[daemon] {setting} {name}: no such file") from None
        except SettingFileError as exc:
            raise ExposureError(f"[daemon] {setting} {name}: {exc}") from None
        except OSError as exc:
            raise ExposureError(f"[daemon] {setting} {name}: cannot read: {exc.strerror or exc}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except FileNotFoundError as exc:
        raise ExposureError(f"[daemon] TLS: {exc.filename}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise ExposureError(
            f"[daemon] TLS: cannot load {settings.tls_cert_file} with {settings.tls_key_file}: {exc}"
        ) from None
    return context


# --------------------------------------------------------------------------- the server

NOT_READY_TEXT = b"gpuwatch is starting: its first tick has not completed; retry in a second\n"


class _Connection:
    __slots__ = ("deadline", "mode", "sock")

    def __init__(self, sock: socket.socket, deadline: float, mode: str) -> None:
        self.sock = sock
        self.deadline = deadline
        self.mode = mode


class _Server(HTTPServer):
    """HTTPServer with bounded, deadline-reaped connection threads (see the module docstring)."""

    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, owner: HttpServer, address: ListenAddress) -> None:
        self.owner = owner
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        self.address_family = family
        super().__init__((address.host, address.port), _Handler, bind_and_activate=False)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        try:
            self.server_bind()
            self.server_activate()
        except OSError:
            self.server_close()
            raise

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can hang on a broken resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        owner = self.owner
        client = str(client_address[0])
        if not owner.admit(client):
            owner.count("closed_per_client")
            self.shutdown_request(request)
            return
        if owner.slots.acquire(blocking=False):
            mode = "serve"
        elif owner.reserve.acquire(blocking=False):
            mode = "reserved"
        elif owner.overflow.acquire(blocking=False):
            mode = "reject"
        else:
            owner.release_client(client)
            owner.count("closed_unanswered")
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._run, args=(request, client_address, mode), name="http-conn", daemon=True
        )
        thread.start()

    def _run(self, sock: socket.socket, client_address: Any, mode: str) -> None:
        owner = self.owner
        limit = (
            owner.head_timeout_seconds
            if mode == "serve"
            else min(owner.head_timeout_seconds, OVERFLOW_DEADLINE_SECONDS)
        )
        conn = owner.register(sock, limit, mode)
        owner.local.conn = conn
        try:
            sock.settimeout(limit)
            # headers and body are two writes: without this, Nagle + delayed ACK add ~40 ms
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if owner.tls is not None:
                sock = owner.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                conn.sock = sock
                sock.do_handshake()
            if mode == "reject":
                owner.count("rejected_503")
                sock.sendall(_busy_response(owner.max_connections))
                _linger(sock)
            else:
                self.finish_request(sock, client_address)
        except (OSError, ssl.SSLError) as exc:
            log.debug("connection from %s ended: %s", client_address, exc)
        except Exception:
            log.exception("connection from %s failed", client_address)
        finally:
            owner.local.conn = None
            owner.unregister(conn)
            self.shutdown_request(sock)
            {"serve": owner.slots, "reserved": owner.reserve, "reject": owner.overflow}[mode].release()
            owner.release_client(str(client_address[0]))

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("request from %s failed", client_address)


def _linger(sock: socket.socket) -> None:
    """Read what the client sent before closing: closing with its request unread would reset
    the connection, and the client could lose the 503 before reading it."""
    with contextlib.suppress(OSError):
        sock.settimeout(0.25)
        for _ in range(16):
            if not sock.recv(65536):
                return


def _busy_api_response(limit: int) -> api_module.Response:
    return api_module.error(
        503,
        f"too many connections (limit {limit}); retry shortly",
        (("Retry-After", "1"),),
    )


def _busy_response(limit: int) -> bytes:
    body = api_module.error(503, f"too many connections (limit {limit}); retry shortly").body
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class _HeadBudget:
    """The handler's `rfile`, counting what `readline` returns against `MAX_HEAD_BYTES` per
    request (`renew` at each request): past the budget it raises `http.client.LineTooLong`,
    which http.server answers with 431 and a closed connection."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._left = MAX_HEAD_BYTES

    def renew(self) -> None:
        self._left = MAX_HEAD_BYTES

    def readline(self, size: int = -1) -> bytes:
        limit = self._left + 1 if size < 0 else min(size, self._left + 1)
        line: bytes = self._raw.readline(limit)
        self._left -= len(line)
        if self._left < 0:
            raise http.client.LineTooLong(f"request line and headers over {MAX_HEAD_BYTES} bytes")
        return line

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._raw.read(size)
        return data

    def close(self) -> None:
        self._raw.close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = f"gpuwatch/{__version__}"
    sys_version = ""
    rfile: Any

    def setup(self) -> None:
        super().setup()
        self.rfile = _HeadBudget(self.rfile)

    def handle_one_request(self) -> None:
        self.server.owner.arm("head")
        self.rfile.renew()
        try:
            super().handle_one_request()
        except http.client.LineTooLong:  # the request line itself ran over (headers are caught inside)
            self.requestline, self.request_version, self.command = "", "HTTP/1.0", ""
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, f"request line over {MAX_HEAD_BYTES} bytes")

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _not_allowed(self) -> None:
        # Authentication first, as for GET: an unauthenticated client learns nothing, not even
        # which methods there are.
        if not self._authorized():
            return
        self._send(
            api_module.error(405, f"method {self.command} is not allowed: use GET", (("Allow", "GET, HEAD"),))
        )

    def __getattr__(self, name: str) -> Any:
        # http.server answers 501 for a method without a do_ handler; docs/api.md says 405.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _authorized(self, head: bool = False) -> bool:
        owner = self.server.owner
        if owner.auth is None or owner.auth.allows(self.headers.get("Authorization")):
            return True
        owner.count("unauthorized")
        challenge = (("WWW-Authenticate", owner.auth.challenge()),)
        self._send(api_module.error(401, "authentication required", challenge), head)
        return False

    def _respond(self, head: bool) -> None:
        owner = self.server.owner
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") or self.headers.get(
            "Transfer-Encoding"
        ):
            self.close_connection = True
            self._send(api_module.error(400, "a GET request carries no body"), head)
            return
        if not self._authorized(head):
            return
        parts = urlsplit(self.path)
        conn: _Connection | None = getattr(owner.local, "conn", None)
        if conn is not None and conn.mode == "reserved":
            self.close_connection = True  # a reserved slot serves one request
            if parts.path not in RESERVED_PATHS:
                owner.count("rejected_503")
                self._send(_busy_api_response(owner.max_connections), head)
                return
            owner.count("served_reserved")
        try:
            response = owner.route(parts.path, parts.query, self.client_address[0])
        except Exception:
            log.exception("answering %s failed", self.path)
            response = api_module.error(500, "internal error: see the daemon's log")
        self._send(response, head)

    def _send(self, response: api_module.Response, head: bool = False) -> None:
        self.server.owner.arm("write")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in response.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own errors (bad request line, header too long, unsupported method) as JSON.
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # unparsable request line: still answer with headers
            self.request_version = "HTTP/1.0"
        status = HTTPStatus(code)
        self._send(api_module.error(code, message or status.phrase), head=self.command == "HEAD")

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class HttpServer:
    """Serves /metrics (from `exporter`) and /api/v1/ (from `api`) until `stop()`."""

    def __init__(
        self,
        address: ListenAddress,
        exporter: MetricsExporter,
        api: api_module.Api,
        *,
        auth: Authenticator | None = None,
        tls: ssl.SSLContext | None = None,
        max_connections: int = 64,
        timeout_seconds: float = 10.0,
        overflow: int | None = None,
        reserved: int = RESERVED_SLOTS,
        max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT,
        head_timeout_seconds: float = HEAD_DEADLINE_SECONDS,
        write_timeout_seconds: float = WRITE_DEADLINE_SECONDS,
    ) -> None:
        self.exporter = exporter
        self.api = api
        self.auth = auth
        self.tls = tls
        self.max_connections = max_connections
        self.timeout_seconds = timeout_seconds
        self.head_timeout_seconds = min(head_timeout_seconds, timeout_seconds)
        self.write_timeout_seconds = min(write_timeout_seconds, timeout_seconds)
        self.max_connections_per_client = max_connections_per_client
        self.slots = threading.BoundedSemaphore(max_connections)
        self.reserve = threading.BoundedSemaphore(max(1, reserved))
        self.local = threading.local()
        """The connection this thread serves (`conn`), for the handler's deadlines and routing."""
        self._per_client: dict[str, int] = {}
        self.overflow = threading.BoundedSemaphore(
            overflow if overflow is not None else max(4, max_connections // 4)
        )
        self.counts: dict[str, int] = {
            "rejected_503": 0,
            "closed_unanswered": 0,
            "closed_per_client": 0,
            "served_reserved": 0,
            "unauthorized": 0,
            "reaped": 0,
        }
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._busy = threading.Event()
        """Set while any connection is open: the reaper sleeps otherwise."""
        self._stop = threading.Event()
        self._server = _Server(self, address)  # binds now: errors surface before start()
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> ListenAddress:
        host, port = self._server.server_address[:2]
        return ListenAddress(str(host), int(port))

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.address}"

    def start(self) -> None:
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever,
                # The poll only notices stop(), which wakes it by connecting: no idle wake-ups.
                kwargs={"poll_interval": ACCEPT_POLL_SECONDS},
                name="http-accept",
                daemon=True,
            ),
            threading.Thread(target=self._reap, name="http-reaper", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._busy.set()  # wakes the idle reaper to see the stop
        if self._threads:  # shutdown() waits for serve_forever(), which only start() runs
            stopping = threading.Thread(target=self._server.shutdown, name="http-stop", daemon=True)
            stopping.start()
            while stopping.is_alive():  # the accept loop sleeps in select(): a connection wakes it
                _knock(self.address)
                stopping.join(0.05)
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            _cut(conn.sock)

    # -- routing ----------------------------------------------------------------------------

    def route(self, path: str, query: str, client: str = "") -> api_module.Response:
        if path == "/metrics":  # parameters (Prometheus's `params`) are ignored
            self.exporter.note_scrape(client)
            if not self.exporter.state.has_snapshot:
                # Only build_info would show: a scrape that looks whole and says nothing. As
                # /api/v1/snapshot does, say plainly that the first tick has not completed.
                return api_module.Response(
                    503, NOT_READY_TEXT, "text/plain; charset=utf-8", (("Retry-After", "1"),)
                )
            return api_module.Response(200, self.exporter.render(), CONTENT_TYPE)
        if path.startswith(api_module.PREFIX):
            return self.api.handle(path, query)
        if path == "/":
            return api_module.Response(200, _INDEX, "text/plain; charset=utf-8")
        return api_module.error(
            404, f"no such path {path!r}: see /metrics and {api_module.PREFIX}openapi.json"
        )

    # -- connection bookkeeping -------------------------------------------------------------------

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def admit(self, client: str) -> bool:
        """Count a new connection from `client`, unless it already holds its limit."""
        with self._lock:
            held = self._per_client.get(client, 0)
            if held >= self.max_connections_per_client:
                return False
            self._per_client[client] = held + 1
            return True

    def release_client(self, client: str) -> None:
        with self._lock:
            held = self._per_client.get(client, 0) - 1
            if held > 0:
                self._per_client[client] = held
            else:
                self._per_client.pop(client, None)

    def register(self, sock: socket.socket, limit: float, mode: str = "serve") -> _Connection:
        conn = _Connection(sock, time.monotonic() + limit, mode)
        with self._lock:
            self._connections.add(conn)
            self._busy.set()
        return conn

    def unregister(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)
            if not self._connections:
                self._busy.clear()

    def arm(self, phase: str) -> None:
        """The connection on this thread starts reading a request head ("head": a new request
        or the keep-alive wait) or writing an answer ("write"): its deadline starts again."""
        conn = getattr(self.local, "conn", None)
        if conn is None:
            return
        if phase == "write":
            seconds = self.write_timeout_seconds
        elif conn.mode == "serve":
            seconds = self.head_timeout_seconds
        else:
            seconds = min(self.head_timeout_seconds, OVERFLOW_DEADLINE_SECONDS)
        with self._lock:
            if conn.deadline != float("inf"):  # already cut: stays cut
                conn.deadline = time.monotonic() + seconds

    def _reap(self) -> None:
        period = min(0.25, self.head_timeout_seconds / 4, self.write_timeout_seconds / 4)
        while not self._stop.wait(period):
            if not self._busy.is_set():  # nothing to watch: sleep until a connection opens (or stop)
                self._busy.wait()
                continue
            now = time.monotonic()
            with self._lock:
                expired = [c for c in self._connections if c.deadline < now]
                for conn in expired:
                    conn.deadline = float("inf")  # cut once
                    self.counts["reaped"] += 1
            for conn in expired:
                _cut(conn.sock)


def _knock(address: ListenAddress) -> None:
    """Connect to our own listening socket and go: wakes the accept loop's select()."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(address.host, address.host)
    with contextlib.suppress(OSError), socket.create_connection((host.strip("[]"), address.port), 0.2):
        pass


def _cut(sock: socket.socket) -> None:
    """Unblock whatever thread is reading or writing `sock` (plain or TLS) by shutting it down."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_INDEX = (
    f"gpuwatch {__version__}\n\n"
    "/metrics              Prometheus metrics (docs/metrics.md)\n"
    "/api/v1/snapshot      the latest snapshot\n"
    "/api/v1/history       ?series=NAME&from=-1h&to=now&points=200[&gpu=&uuid=&server=&model=&version=]\n"
    "/api/v1/events        ?from=-1h&to=now&kinds=xid,gpu_lost&limit=1000\n"
    "/api/v1/health        collectors, store and NVML status\n"
    "/api/v1/series        the series catalog\n"
    "/api/v1/openapi.json  all of the above, described\n"
).encode()
