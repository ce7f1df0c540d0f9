"""A real Prometheus scraping real demo daemons, for the dcgm-names and the dashboard's tests.

`prometheus(tmp, targets)` starts Debian's `prometheus` on a free port with a 1 s scrape of
each target (job `gpuwatch`, the shipped recording and alert rules loaded) and yields its URL
once every target has been scraped; `query` asks its HTTP API for an instant vector.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO
from tests.daemons import unused_port, wait_until

RULES = REPO / "prometheus" / "gpuwatch.rules.yml"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    return False


@contextlib.contextmanager
def prometheus(tmp: Path, targets: dict[str, str], *, dead: int = 0) -> Iterator[str]:
    """Prometheus scraping `targets` (node name → HOST:PORT, the name as label `node`), of
    which `dead` are expected not to answer."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (tests/run.sh installs it)")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "gpuwatch",
                "static_configs": [
                    {"targets": [address], "labels": {"node": name}} for name, address in targets.items()
                ],
            }
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{unused_port()}"
    log = tmp / "prometheus.log"
    command = [
        binary,
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address={url.removeprefix('http://')}",
        "--log.level=warn",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=out)
    try:
        wait_until(lambda: proc.poll() is not None or _ready(url), timeout=60, every=0.2)
        assert proc.poll() is None, f"prometheus exited: {log.read_text()}"
        wait_until(
            lambda: (
                len(query(url, 'up{job="gpuwatch"}')) == len(targets)
                and len(query(url, 'up{job="gpuwatch"} == 1')) == len(targets) - dead
            ),
            timeout=60,
            every=0.2,
        )
        yield url
    finally:
        _stop(proc)


def query(url: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """The instant vector `promql` evaluates to (now, or at `at`): [{metric, value}, …]."""
    params = {"query": promql}
    if at is not None:
        params["time"] = repr(at)
    body = httpx.get(f"{url}/api/v1/query", params=params, timeout=10).json()
    assert body["status"] == "success", f"{promql}: {body}"
    assert body["data"]["resultType"] == "vector", f"{promql}: {body['data']['resultType']}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for_data(url: str, promql: str, timeout: float = 60) -> list[dict[str, Any]]:
    """`query` once it returns something (a rate needs two scrapes, a finding its onset)."""
    return wait_until(lambda: query(url, promql), timeout=timeout, every=0.5)
