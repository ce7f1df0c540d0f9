"""A small local HTTP server that answers like Triton from real captures — and misbehaves on
demand, one endpoint at a time, for the fault tests (the happy path is tested against the real
tritonserver, see test_triton_live.py).

Faults per path: an HTTP status with a body, a stall until released (or 10 s), garbage bytes,
a huge body (with or without Content-Length, counting what was actually written before the
client hung up), or any JSON document.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "data" / "triton"
CHUNK = 64 * 1024


@dataclass
class Fault:
    kind: str
    """"status", "stall", "garbage", "huge", "json"; "stall_kept_alive": a stall of a request
    on a connection that was opened before the fault began (as Triton 2.51 does while it loads
    a model), a request on a connection opened since is answered."""
    status: int = 200
    body: bytes = b""
    doc: Any = None
    size: int = 0
    chunked: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    stall_seconds: float = 10.0
    stalling: int = 0
    """Requests held in the stall right now."""
    written: int = 0
    """Bytes of a huge body actually written before the client stopped reading."""
    began: float = field(default_factory=time.monotonic)


def capture_routes() -> dict[tuple[str, str], tuple[int, str, bytes]]:
    """The endpoints of a Triton 2.51 with resnet_stub and bert_stub, from the captures."""
    resnet_config = json.loads((DATA / "resnet_stub_config.json").read_text())
    bert_config = dict(resnet_config, name="bert_stub", max_batch_size=8)
    js = "application/json"
    return {
        ("GET", "/v2/health/ready"): (200, js, b""),
        ("GET", "/v2"): (200, js, json.dumps({"name": "triton", "version": "2.51.0"}).encode()),
        ("POST", "/v2/repository/index"): (200, js, (DATA / "repository_index.json").read_bytes()),
        ("GET", "/v2/models/stats"): (200, js, (DATA / "models_stats.json").read_bytes()),
        ("GET", "/metrics"): (200, "text/plain", (DATA / "metrics.txt").read_bytes()),
        ("GET", "/v2/models/resnet_stub/versions/1/config"): (200, js, json.dumps(resnet_config).encode()),
        ("GET", "/v2/models/bert_stub/versions/1/config"): (200, js, json.dumps(bert_config).encode()),
    }


class FakeTriton:
    """`with FakeTriton() as fake:` serves on 127.0.0.1 at a free port; `fake.faults[path]`."""

    def __init__(self, port: int = 0) -> None:
        self.routes = capture_routes()
        self.faults: dict[str, Fault] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.stalled_kept_alive = 0
        """Requests held by a "stall_kept_alive" fault."""
        self._connections: set[socket.socket] = set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            opened = 0.0
            """When this connection was accepted (monotonic)."""

            def setup(self) -> None:
                super().setup()
                self.opened = time.monotonic()
                fake._connections.add(self.connection)

            def finish(self) -> None:
                fake._connections.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    def __enter__(self) -> FakeTriton:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for fault in self.faults.values():
            fault.release.set()
        self._server.shutdown()
        self._server.server_close()
        for conn in list(self._connections):  # a server that is gone closes its connections too
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def set_body(
        self, method: str, path: str, body: bytes | Any, content_type: str = "application/json"
    ) -> None:
        """Serve this instead of the capture (a new poll's worth of counters, a changed index)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.routes[(method, path)] = (200, content_type, data)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        self.requests.append((method, path, dict(h.headers)))
        fault = self.faults.get(path)
        if fault is not None and fault.kind == "stall_kept_alive":
            if getattr(h, "opened", 0.0) >= fault.began:
                fault = None
            else:
                fault = Fault("stall", release=fault.release, stall_seconds=fault.stall_seconds)
                self.stalled_kept_alive += 1
        try:
            if fault is None:
                route = self.routes.get((method, path))
                if route is None:
                    self._send(h, 404, "application/json", b'{"error":"Not Found"}')
                else:
                    self._send(h, *route)
            elif fault.kind == "status":
                self._send(h, fault.status, "application/json", fault.body)
            elif fault.kind == "json":
                self._send(h, 200, "application/json", json.dumps(fault.doc).encode())
            elif fault.kind == "garbage":
                self._send(h, 200, "text/plain", fault.body)
            elif fault.kind == "stall":
                fault.stalling += 1
                try:
                    fault.release.wait(fault.stall_seconds)
                finally:
                    fault.stalling -= 1
                route = self.routes.get((method, path), (200, "application/json", b"{}"))
                self._send(h, *route)
            elif fault.kind == "huge":
                self._huge(h, fault)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: that is what some of these tests want

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()

    @staticmethod
    def _huge(h: BaseHTTPRequestHandler, fault: Fault) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        if fault.chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(fault.size))
        h.end_headers()
        block = b'{"model_stats": [' + b" " * (CHUNK - 17)
        sent = 0
        while sent < fault.size:
            piece = block[: min(CHUNK, fault.size - sent)]
            if fault.chunked:
                h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            else:
                h.wfile.write(piece)
            sent += len(piece)
            fault.written = sent
        if fault.chunked:
            h.wfile.write(b"0\r\n\r\n")
