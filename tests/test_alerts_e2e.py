"""End to end: a real Prometheus scrapes `gpuwatch daemon --demo --scenario NAME` and fires the
shipped alerts, and only those.

One Prometheus (Debian's binary) on loopback scrapes, every second, one daemon per GPU fault
scenario, one daemon with no scenario, and a port where nothing answers (also job "gpuwatch":
GpuwatchDown). It loads prometheus/gpuwatch.rules.yml as shipped, every `for:` unchanged; the
scenarios start their faults 30 s after the daemons start, so the longest `for:` among the
expected alerts (GpuThermalSlowdown's and GpuwatchDown's 5 min) sets the runtime: about 6 min.
The test polls /api/v1/alerts until every expected alert is firing (deadline 9 min); at every
poll, any other alert, even pending, fails it at once. Prometheus sends its alerts to a real
Alertmanager (Debian's `prometheus-alertmanager`) routing on `severity` as the README suggests
— critical to a pager, warning to tickets, info to no one — whose webhooks land on a local HTTP
server: each firing alert must reach the receiver of its severity, and no application XID may
reach any.

model-failing joins once the recorded Triton source is merged (gpuwatch/collect/scenarios.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from gpuwatch.catalog import nvml_codes
from tests.conftest import REPO

RULES = REPO / "prometheus" / "gpuwatch.rules.yml"
SERVING = re.compile(r"serving (http://127\.0\.0\.1:\d+)/metrics")
DEADLINE_SECONDS = 540.0
NO_SCENARIO = "none"
DOWN = "down"


@dataclass(frozen=True)
class Expected:
    alertname: str
    scenario: str
    labels: tuple[tuple[str, str], ...] = ()

    def matches(self, alert: dict[str, str]) -> bool:
        return (
            alert.get("alertname") == self.alertname
            and alert.get("scenario") == self.scenario
            and all(alert.get(k) == v for k, v in self.labels)
        )

    def __str__(self) -> str:
        extra = "".join(f",{k}={v}" for k, v in self.labels)
        return f"{self.alertname}{{scenario={self.scenario}{extra}}}"


def _xid(alertname: str, scenario: str, gpu: int, xid: int) -> Expected:
    return Expected(alertname, scenario, (("gpu", str(gpu)), ("xid", str(xid))))


def _gpu(alertname: str, scenario: str, gpu: int) -> Expected:
    return Expected(alertname, scenario, (("gpu", str(gpu)),))


def _model(alertname: str, scenario: str, model: str) -> Expected:
    return Expected(alertname, scenario, (("model", model),))


EXPECTED: tuple[Expected, ...] = (
    # gpu-lost: GPU 1 reports XID 79, then answers GPU_IS_LOST to every call.
    _xid("GpuXidCritical", "gpu-lost", 1, 79),
    _gpu("GpuLost", "gpu-lost", 1),
    # xid-burst: application XIDs (info only), XID 109, a double-bit ECC error and a failed remap.
    *(_xid("GpuXidApplication", "xid-burst", 0, xid) for xid in nvml_codes.APPLICATION_XIDS),
    _xid("GpuXidOther", "xid-burst", 1, 109),
    *(_xid("GpuXidCritical", "xid-burst", 2, xid) for xid in (48, 63, 94)),
    _gpu("GpuEccUncorrectedErrors", "xid-burst", 2),
    _gpu("GpuRowRemapPending", "xid-burst", 2),
    _xid("GpuXidCritical", "xid-burst", 3, 64),
    _gpu("GpuRowRemapFailed", "xid-burst", 3),
    # thermal: GPU 0 at 92 °C in HW and SW thermal slowdown (and HW slowdown: no second alert).
    _gpu("GpuThermalSlowdown", "thermal", 0),
    # model-failing: the four models named in order get one fault each (collect/scenarios.py).
    _model("TritonModelFailureRatioHigh", "model-failing", "bert_base"),
    _model("TritonModelNoSuccessfulInferences", "model-failing", "bert_pipeline"),
    _model("TritonModelNotReady", "model-failing", "embedder"),
    _model("TritonModelQueueShareHigh", "model-failing", "resnet50"),
    # nvlink-degraded, on the recorded NVLinked H200 pair: link 3 down at both ends, link 5 of
    # GPU 1 taking CRC errors and replays.
    _gpu("GpuNvlinkDown", "nvlink-degraded", 0),
    _gpu("GpuNvlinkDown", "nvlink-degraded", 1),
    _gpu("GpuNvlinkErrors", "nvlink-degraded", 1),
    # nothing answers the scrapes.
    Expected("GpuwatchDown", DOWN),
)
MODEL_SCENARIOS = ("model-failing",)
PAIR_SCENARIOS = ("nvlink-degraded",)
"""Played on the recorded NVLinked H200 pair (`[demo] node = "h200x2"`)."""
SCENARIOS = ("gpu-lost", "xid-burst", "thermal", *MODEL_SCENARIOS, *PAIR_SCENARIOS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _refusing_port() -> Iterator[int]:
    """A port bound but not listening: connections to it are refused, and no one else gets it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _daemons(tmp: Path) -> Iterator[dict[str, str]]:
    """Scenario → the address of a running demo daemon playing it (and one playing none)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("GPUWATCH_CONFIG", None)
    # The GPU scenarios (and the quiet daemon) run without the recorded Triton models: the
    # recording has a failing model of its own, which would raise Triton alerts there too.
    gpus_only = tmp / "gpus-only.toml"
    gpus_only.write_text("[demo]\ntriton = false\n")
    pair = tmp / "h200x2.toml"
    pair.write_text('[demo]\nnode = "h200x2"\ntriton = false\n')
    with_models = tmp / "with-models.toml"
    with_models.write_text("")  # the defaults, whatever /etc/gpuwatch holds
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for name in (NO_SCENARIO, *SCENARIOS):
            log = tmp / f"daemon-{name}.log"
            scenario = [] if name == NO_SCENARIO else ["--scenario", name]
            command = [sys.executable, "-m", "gpuwatch", "daemon", "--demo", *scenario]
            config = with_models if name in MODEL_SCENARIOS else pair if name in PAIR_SCENARIOS else gpus_only
            command += ["--config", str(config), "--listen", "127.0.0.1:0", "--db", str(tmp / f"{name}.db")]
            with log.open("wb") as out:
                procs[name] = (subprocess.Popen(command, stdout=out, stderr=out, env=env, cwd=REPO), log)
        addresses = {}
        deadline = time.monotonic() + 60
        for name, (proc, log) in procs.items():
            while (found := SERVING.search(log.read_text(errors="replace"))) is None:
                assert proc.poll() is None, f"daemon {name} exited: {log.read_text(errors='replace')}"
                assert time.monotonic() < deadline, f"daemon {name} never served: {log.read_text()}"
                time.sleep(0.1)
            addresses[name] = found.group(1).removeprefix("http://")
        # Ready when NVML has answered: the first scrape must already see every GPU.
        for name, address in addresses.items():
            gpus = 2 if name in PAIR_SCENARIOS else 4
            while f"\ngpuwatch_gpus {gpus}\n" not in httpx.get(f"http://{address}/metrics").text:
                assert time.monotonic() < deadline, f"daemon {name} never saw its {gpus} GPUs"
                time.sleep(0.1)
        yield addresses
    finally:
        for proc, _log in procs.values():
            _stop(proc)


class Webhook:
    """What Alertmanager's webhook receivers POST: (receiver path, alert labels) per alert."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str]]] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    received.extend((self.path, a["labels"]) for a in body["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _serve(name: str, command: list[str], log: Path, ready: str) -> subprocess.Popen[bytes]:
    """Start a server and wait until `ready` (a URL) answers 200."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited: {log.read_text()}")
        if time.monotonic() > deadline:
            _stop(proc)
            raise AssertionError(f"{name} never became ready: {log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(ready).status_code == 200:
                return proc
        time.sleep(0.2)


@contextlib.contextmanager
def _alertmanager(tmp: Path, webhook: str) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip("prometheus-alertmanager is not installed (tests/run.sh installs it)")
    config = {
        "route": {
            "receiver": "tickets",
            "group_by": ["alertname", "scenario", "gpu", "xid"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "pager"},
                {"matchers": ['severity="info"'], "receiver": "nobody"},
            ],
        },
        "receivers": [
            {"name": "pager", "webhook_configs": [{"url": f"{webhook}/pager"}]},
            {"name": "tickets", "webhook_configs": [{"url": f"{webhook}/tickets"}]},
            {"name": "nobody"},
        ],
    }
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{_free_port()}"
    command = [
        binary,
        f"--config.file={tmp / 'alertmanager.yml'}",
        f"--storage.path={tmp / 'alertmanager'}",
        f"--web.listen-address={address}",
        "--cluster.listen-address=",  # no gossip port: a single Alertmanager
        "--log.level=warn",
    ]
    proc = _serve("alertmanager", command, tmp / "alertmanager.log", f"http://{address}/-/ready")
    try:
        yield address
    finally:
        _stop(proc)


@contextlib.contextmanager
def _prometheus(tmp: Path, targets: dict[str, str], alertmanager: str) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (tests/run.sh installs it)")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "gpuwatch",
                "static_configs": [
                    {"targets": [address], "labels": {"scenario": name}} for name, address in targets.items()
                ],
            }
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{_free_port()}"
    url = f"http://{address}"
    log = tmp / "prometheus.log"
    command = [
        binary,
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address={address}",
        "--log.level=warn",
    ]
    proc = _serve("prometheus", command, log, f"{url}/-/ready")
    try:
        deadline = time.monotonic() + 60
        while _rule_groups(url) != {"gpuwatch-gpu", "gpuwatch-triton", "gpuwatch-self"}:
            assert time.monotonic() < deadline, f"prometheus never loaded the rules: {log.read_text()}"
            time.sleep(0.2)
        # Rules run before the first scrapes land, when absent(up{job="gpuwatch"}) is true: the
        # test starts once every target has been scraped and that first evaluation is gone.
        while not _scraped(url, len(targets)) or _absent_pending(url):
            assert time.monotonic() < deadline, f"prometheus never scraped its targets: {log.read_text()}"
            time.sleep(0.2)
        yield url
    finally:
        _stop(proc)


def _rule_groups(prometheus: str) -> set[str]:
    return {g["name"] for g in httpx.get(f"{prometheus}/api/v1/rules").json()["data"]["groups"]}


def _absent_pending(prometheus: str) -> bool:
    return any(a["alertname"] == "GpuwatchAbsent" for a in _alerts(prometheus))


def _scraped(prometheus: str, targets: int) -> bool:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": 'count(up{job="gpuwatch"})'}).json()
    result = body["data"]["result"]
    return bool(result) and int(result[0]["value"][1]) == targets


def _alerts(prometheus: str) -> list[dict[str, str]]:
    """Every pending or firing alert: its labels plus `state`."""
    body = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()
    assert body["status"] == "success", body
    return [{**a["labels"], "state": a["state"]} for a in body["data"]["alerts"]]


def _severities() -> dict[str, str]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r["labels"]["severity"] for g in doc["groups"] for r in g["rules"] if "alert" in r}


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.mark.prometheus
@pytest.mark.timeout(DEADLINE_SECONDS + 180)
def test_each_scenario_fires_its_alerts_and_nothing_else(tmp_path: Path, webhook: Webhook) -> None:
    with (
        _refusing_port() as dead,
        _alertmanager(tmp_path, webhook.url) as alertmanager,
        _daemons(tmp_path) as daemons,
    ):
        targets = {**daemons, DOWN: f"127.0.0.1:{dead}"}
        # Timed from before Prometheus starts: its first scrape of the dead target can come
        # before it answers as ready, and each `for:` runs from that first scrape.
        started = time.monotonic()
        with _prometheus(tmp_path, targets, alertmanager) as prometheus:
            firing: dict[Expected, float] = {}
            while len(firing) < len(EXPECTED):
                elapsed = time.monotonic() - started
                assert elapsed < DEADLINE_SECONDS, (
                    f"after {elapsed:.0f} s, never firing: {[str(e) for e in EXPECTED if e not in firing]}"
                )
                for alert in _alerts(prometheus):
                    expected = [e for e in EXPECTED if e.matches(alert)]
                    assert expected, f"unexpected alert after {elapsed:.0f} s: {alert}"
                    if alert["state"] == "firing":
                        firing.setdefault(expected[0], elapsed)
                time.sleep(2)
            final = _alerts(prometheus)
            # Through Alertmanager: each alert reaches the receiver of its severity.
            receiver = {"critical": "/pager", "warning": "/tickets"}
            severities = _severities()
            routed = [e for e in EXPECTED if severities[e.alertname] in receiver]
            deadline = time.monotonic() + 60
            while missing := [
                e
                for e in routed
                if not any(
                    path == receiver[severities[e.alertname]] and e.matches(labels)
                    for path, labels in list(webhook.received)
                )
            ]:
                assert time.monotonic() < deadline, f"never notified: {[str(e) for e in missing]}"
                time.sleep(0.5)
    # Every expected alert was firing; application XIDs among them page no one.
    assert {str(e) for e in firing} == {str(e) for e in EXPECTED}
    paging = [a for a in final if a["severity"] == "critical"]
    assert not [a for a in paging if int(a.get("xid", "0")) in nvml_codes.APPLICATION_XIDS], paging
    assert all(a["severity"] == "info" for a in final if a["alertname"] == "GpuXidApplication")
    # Alertmanager sent every critical alert to the pager and nothing else; info reached no one.
    for path, labels in webhook.received:
        assert receiver.get(labels["severity"]) == path, (path, labels)
        assert labels["alertname"] != "GpuXidApplication", labels
    critical = {e.alertname for e in EXPECTED if severities[e.alertname] == "critical"}
    assert critical >= {"GpuXidCritical", "GpuLost", "TritonModelFailureRatioHigh", "TritonModelNotReady"}
    assert {labels["alertname"] for path, labels in webhook.received if path == "/pager"} == critical
    # Each waited for its `for:` (the faults start 30 s after the daemons, before Prometheus).
    assert firing[_gpu("GpuLost", "gpu-lost", 1)] > 60
    assert firing[_gpu("GpuThermalSlowdown", "thermal", 0)] > 300
    assert firing[Expected("GpuwatchDown", DOWN)] > 300
    assert firing[_model("TritonModelFailureRatioHigh", "model-failing", "bert_base")] > 300
    assert firing[_model("TritonModelNoSuccessfulInferences", "model-failing", "bert_pipeline")] > 180
