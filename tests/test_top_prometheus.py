"""`gpuwatch top --prometheus URL`: the fleet through a real Prometheus scraping demo daemons
playing fault scenarios, and a dead target: the rows and their order, a fixed number of queries,
Prometheus down or refusing a query, the settings, and the screen in a real terminal (tmux)
with enter opening a node's own dashboard."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from gpuwatch import config
from gpuwatch.client import connect
from gpuwatch.client.http import HttpClient
from gpuwatch.client.prometheus import (
    QUERIES,
    TIMEOUT_SECONDS,
    PrometheusFleet,
    PrometheusNodeClient,
    needs_a_look,
)
from gpuwatch.client.protocol import SourceUnavailableError
from gpuwatch.tui.app import TopApp
from gpuwatch.tui.gpu_panel import GpuPanel
from gpuwatch.tui.node_header import NodeHeader
from gpuwatch.tui.node_screen import NodeScreen
from gpuwatch.tui.table import SyncTable
from tests.conftest import REPO
from tests.daemons import Daemon, unused_port
from tests.promserver import prometheus, wait_for_data
from tests.tui.test_terminal import Tmux

pytestmark = pytest.mark.prometheus


@contextlib.contextmanager
def _refusing_port() -> Iterator[int]:
    """A port bound but not listening: a scrape of it is refused, and no one else gets it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _plan(url: str, **top: str) -> connect.PrometheusPlan:
    settings = config.Settings(top=replace(config.TopSettings(), prometheus=url, **top))
    plan = connect.prometheus_plan(None, settings)
    assert plan is not None
    return plan


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """(Prometheus URL, node → instance): failing models, an XID burst, and a dead target."""
    tmp = tmp_path_factory.mktemp("fleet")
    (tmp / "failing.toml").write_text('[demo]\nscenario = "model-failing"\n')
    (tmp / "xids.toml").write_text('[demo]\nscenario = "xid-burst"\ntriton = false\n')
    daemons: list[Daemon] = []
    with _refusing_port() as dead_port:
        try:
            for name in ("failing", "xids"):
                daemons.append(Daemon(config=tmp / f"{name}.toml"))
            targets = {
                "failing": daemons[0].url.removeprefix("http://"),
                "xids": daemons[1].url.removeprefix("http://"),
                "dead": f"127.0.0.1:{dead_port}",
            }
            with prometheus(tmp, targets, dead=1) as url:
                # The scenarios' faults start 30 s in.
                wait_for_data(url, 'gpuwatch_finding{kind="model_failing"} == 1', timeout=150)
                wait_for_data(url, 'gpuwatch_finding{severity="critical"} == 1', timeout=150)
                yield url, targets
        finally:
            for d in daemons:
                d.stop()


def test_one_row_per_node_the_dead_and_faulty_first(fleet: tuple[str, dict[str, str]]) -> None:
    url, targets = fleet
    source = PrometheusFleet(_plan(url))
    try:
        view = source.view()
        assert view.queries == len(QUERIES) <= 10
        assert source.queries_sent == len(QUERIES)
        rows = {n.instance: n for n in view.nodes}
        assert set(rows) == set(targets.values())
        assert list(view.nodes) == sorted(view.nodes, key=needs_a_look)
        assert view.nodes[0].instance == targets["dead"] and not view.nodes[0].scraped
        assert view.nodes[0].gpus is None
        xids, failing = rows[targets["xids"]], rows[targets["failing"]]
        assert xids.scraped and xids.gpus == 4 and xids.critical >= 1
        assert failing.gpus == 4 and failing.models_ready is not None and failing.models_ready >= 1
        assert failing.warning + failing.critical >= 1
        assert failing.power_watts and failing.power_limit_watts and failing.hottest_celsius
        assert xids.models_ready is None  # no Triton there
        # A second refresh costs the same number of queries, whatever the fleet's size.
        source.view()
        assert source.queries_sent == 2 * len(QUERIES)
    finally:
        source.close()


def test_the_selector_picks_the_targets(fleet: tuple[str, dict[str, str]]) -> None:
    url, targets = fleet
    source = PrometheusFleet(_plan(url, prometheus_selector='job="gpuwatch",node="xids"'))
    try:
        assert [n.instance for n in source.view().nodes] == [targets["xids"]]
    finally:
        source.close()


def test_a_refused_query_and_a_dead_prometheus_are_one_line(fleet: tuple[str, dict[str, str]]) -> None:
    url, _ = fleet
    bad = PrometheusFleet(_plan(url, prometheus_selector='job=~"('))
    with pytest.raises(SourceUnavailableError, match=r"the query failed: .*parse error") as refused:
        bad.view()
    assert "\n" not in str(refused.value)
    bad.close()
    gone = PrometheusFleet(_plan(f"http://127.0.0.1:{unused_port()}"))
    with pytest.raises(SourceUnavailableError, match=r"cannot connect \(refused\)"):
        gone.view()
    gone.close()


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        ({"prometheus": "ftp://p:9090"}, "[top] prometheus 'ftp://p:9090': the scheme is 'ftp'"),
        ({"prometheus": "http://u:pw@p:9090"}, "credentials in a URL"),
        ({"prometheus": "p:9090", "prometheus_selector": "{a}b{"}, "[top] prometheus_selector"),
        ({"prometheus": "p:9090", "prometheus_token_file": "/nonexistent"}, "no such file"),
    ],
)
def test_bad_settings_are_one_line(top: dict[str, str], expected: str) -> None:
    settings = config.Settings(top=replace(config.TopSettings(), **top))
    with pytest.raises(connect.DaemonUrlError) as raised:
        connect.prometheus_plan(None, settings)
    assert expected in str(raised.value)


def test_basic_auth_and_token_are_read_from_their_files(tmp_path: Path) -> None:
    (tmp_path / "auth").write_text("alice:s3cret word\n")
    (tmp_path / "token").write_text("abc123\n")
    plan = _plan(
        "https://prom.example:9090",
        prometheus_basic_auth_file=str(tmp_path / "auth"),
        prometheus_token_file=str(tmp_path / "token"),
    )
    assert plan.basic_auth == ("alice", "s3cret word") and plan.token == "abc123"
    assert plan.verify is not None and plan.selector == 'job="gpuwatch"'


@pytest.mark.tmux
def test_top_prometheus_in_a_real_terminal(fleet: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (tests/run.sh installs it)")
    url, targets = fleet
    tmux = Tmux(f"gpuwatch-fleet-{time.monotonic_ns()}")
    status = tmp_path / "status"
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    env = f"PYTHONPATH={shlex.quote(str(REPO))} TERM=xterm-256color"
    command = (
        f"cd {shlex.quote(str(REPO))} && env {env} {shlex.quote(sys.executable)} -m gpuwatch top "
        f"--config {empty} --prometheus {url}; echo $? > {shlex.quote(str(status))}; sleep 30"
    )
    try:
        tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", command)
        screen = tmux.wait_for(lambda s: all(t in s for t in targets.values()) and "crit" in s)
        lines = screen.splitlines()
        assert len(lines) == 24 and max(len(line) for line in lines) <= 80
        assert "3 nodes, 1 not scraped" in lines[0] and "critical" in lines[0]
        assert f"prometheus {url}" in screen
        order = [next(i for i, line in enumerate(lines) if t in line) for t in targets.values()]
        dead, xids = order[2], order[1]
        assert dead < xids and dead < order[0], screen  # the dead target first
        assert "DOWN" in lines[dead] and "not scraped" in lines[dead]
        assert "! " in lines[xids] and "crit" in lines[xids]  # its findings, by severity
        # enter on the second row (a live node): its own dashboard, from its daemon's API.
        tmux("send-keys", "-t", "top", "Down")
        tmux("send-keys", "-t", "top", "Enter")
        second = lines[sorted(order)[1]]
        opened = next(t for t in targets.values() if t in second)
        tmux.wait_for(lambda s: f"daemon http://{opened}" in s.splitlines()[0] and "LIVE" in s)
        tmux("send-keys", "-t", "top", "Escape")
        tmux.wait_for(lambda s: "gpuwatch · fleet" in s.splitlines()[0])
        tmux("send-keys", "-t", "top", "q")
        deadline = time.monotonic() + 15
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "-L", tmux.socket, "kill-server"], capture_output=True, check=False)


@pytest.mark.tmux
def test_a_prometheus_that_goes_away_reads_as_such_and_the_rows_stay(
    fleet: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (tests/run.sh installs it)")
    _, targets = fleet
    xids = {"xids": targets["xids"]}
    tmux = Tmux(f"gpuwatch-fleet-gone-{time.monotonic_ns()}")
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with prometheus(tmp_path, xids) as url:
        env = f"PYTHONPATH={shlex.quote(str(REPO))} TERM=xterm-256color"
        command = (
            f"cd {shlex.quote(str(REPO))} && env {env} {shlex.quote(sys.executable)} -m gpuwatch top "
            f"--config {empty} --prometheus {url}; sleep 30"
        )
        try:
            tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", command)
            tmux.wait_for(lambda s: targets["xids"] in s)
        except BaseException:
            subprocess.run(["tmux", "-L", tmux.socket, "kill-server"], capture_output=True, check=False)
            raise
    try:  # Prometheus has stopped
        screen = tmux.wait_for(lambda s: "PROMETHEUS NOT ANSWERING" in s)
        assert targets["xids"] in screen  # the last rows stay
        assert "PROMETHEUS NOT ANSWERING" in screen.splitlines()[0]
        assert "cannot connect (refused)" in screen and "rows as of" in screen
    finally:
        subprocess.run(["tmux", "-L", tmux.socket, "kill-server"], capture_output=True, check=False)


# --------------------------------------------------------------------------- a node from Prometheus alone


def test_open_reads_the_daemon_else_prometheus(fleet: tuple[str, dict[str, str]]) -> None:
    url, targets = fleet
    source = PrometheusFleet(_plan(url))
    try:
        assert isinstance(source.open(targets["failing"]), HttpClient)
        dead = source.open(targets["dead"])  # nothing answers there: the node view from Prometheus
        assert isinstance(dead, PrometheusNodeClient)
        with pytest.raises(SourceUnavailableError, match="no current series"):
            dead.snapshot()
    finally:
        source.close()


def test_a_node_rebuilt_from_prometheus_agrees_with_its_daemon(fleet: tuple[str, dict[str, str]]) -> None:
    url, targets = fleet
    source = PrometheusFleet(_plan(url))
    try:
        node = PrometheusNodeClient(source, targets["xids"])
        snapshot = node.snapshot()
        served = httpx.get(f"http://{targets['xids']}/api/v1/snapshot", timeout=10).json()
        assert [(d.index, d.uuid, d.name) for d in snapshot.devices] == [
            (d["index"], d["uuid"], d["name"]) for d in served["devices"]
        ]
        assert [g.memory_total_bytes for g in snapshot.gpus] == [
            g["memory_total_bytes"] for g in served["gpus"]
        ]
        assert all(g.power_watts and g.sm_clock_mhz and g.temperature_celsius for g in snapshot.gpus)
        assert any(g.gpm is not None and g.gpm.sm_activity_ratio is not None for g in snapshot.gpus)
        assert {f.kind.value for f in snapshot.findings} == {f["kind"] for f in served["findings"]}
        assert snapshot.node.driver_version == served["node"]["driver_version"]
        now = time.time()
        history = node.history("gpu_power_watts", {"gpu": "0"}, now - 60, now, 30)
        assert len(history) == 1 and history[0].key.label("gpu") == "0" and history[0].points
        assert all(100 < p.mean < 800 for p in history[0].points)
    finally:
        source.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_dashboard_draws_a_node_from_prometheus(fleet: tuple[str, dict[str, str]]) -> None:
    url, targets = fleet
    source = PrometheusFleet(_plan(url))
    try:
        node = PrometheusNodeClient(source, targets["xids"])
        async with TopApp([node], refresh_seconds=0.5).run_test(size=(100, 30)) as pilot:
            screen = pilot.app.screen
            assert isinstance(screen, NodeScreen)
            header, gpus = screen.query_one(NodeHeader), screen.query_one(GpuPanel)
            deadline = time.monotonic() + 20
            while header.snapshot is None and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert gpus.query_one(SyncTable).row_keys == ["0", "1", "2", "3"]
            assert f"prometheus {url}" in header.render().plain
    finally:
        source.close()


def test_a_slow_prometheus_is_said_to_be_slow() -> None:
    release = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(TIMEOUT_SECONDS + 2)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = PrometheusFleet(_plan(f"http://127.0.0.1:{server.server_address[1]}"))
    try:
        with pytest.raises(SourceUnavailableError, match=rf"did not answer within {TIMEOUT_SECONDS:g} s"):
            source.view()
    finally:
        release.set()
        source.close()
        server.shutdown()
        server.server_close()
