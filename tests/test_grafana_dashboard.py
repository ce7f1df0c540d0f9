"""grafana/gpuwatch.json: current with its generator, valid for grafana-foundation-sdk's model,
naming only families gpuwatch serves, and every panel, annotation and variable query answering
from a real Prometheus that scrapes demo daemons playing fault scenarios."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from gpuwatch.catalog.index import BY_METRIC
from tests.conftest import REPO
from tests.daemons import Daemon
from tests.promserver import RULES, prometheus, query, wait_for_data

pytest.importorskip("grafana_foundation_sdk", reason="the dashboard is written with grafana-foundation-sdk")

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from tools import grafana_dashboard

SHIPPED = REPO / "grafana" / "gpuwatch.json"
LABEL_VALUES = re.compile(r"^label_values\((?P<match>.+), (?P<label>\w+)\)$")
VARIABLES = ("node", "gpu", "server", "model")
RATE_INTERVAL = "1m"
"""What Grafana puts for $__rate_interval at a 15 s scrape (4 × the interval); the test's 1 s
scrape has 60 samples in it."""


def _shipped() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SHIPPED.read_text())
    return loaded


def _targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            yield panel["title"], target


def _annotations(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = dashboard["annotations"]["list"]
    return result


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def test_the_shipped_file_is_what_the_generator_writes() -> None:
    assert SHIPPED.read_text() == grafana_dashboard.render(), (
        "regenerate: python -m tools.grafana_dashboard > grafana/gpuwatch.json"
    )


def test_the_json_is_valid_for_the_sdks_model() -> None:
    shipped = _shipped()
    decoded = Dashboard.from_json(shipped)
    assert json.loads(json.dumps(decoded, cls=JSONEncoder)) == shipped
    ids = [p["id"] for p in shipped["panels"]]
    assert len(set(ids)) == len(ids)
    for _title, target in _targets(shipped):
        assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert _variables(shipped)["datasource"]["type"] == "datasource"
    assert set(VARIABLES) <= set(_variables(shipped))


def test_it_names_only_families_gpuwatch_serves_and_rules_it_ships() -> None:
    rules = yaml.safe_load(RULES.read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    shipped = SHIPPED.read_text()
    names = set(re.findall(r"\b(gpuwatch_[a-z_]+|[a-z]+:gpuwatch_[a-z_:0-9]+)", shipped))
    assert names, "no gpuwatch family in the dashboard"
    for name in names:
        if ":" in name:
            assert name in recorded, name
        elif name.endswith("_"):  # a __name__ regex: it must match some family
            assert any(metric.startswith(name) for metric in BY_METRIC), name
        else:
            assert name in BY_METRIC or name.removesuffix("_bucket") in BY_METRIC, name


# --------------------------------------------------------------------------- a real Prometheus


def _expand(expr: str, values: dict[str, str]) -> str:
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${name}", values[name])
    return expr.replace("$__rate_interval", RATE_INTERVAL)


def _one(value: str) -> str:
    """One value picked, as Grafana writes it into a regex matcher (escaped, then string-escaped)."""
    return re.escape(value).replace("\\", "\\\\")


def _label_values(url: str, spec: str, values: dict[str, str]) -> list[str]:
    """What Grafana asks Prometheus for `label_values(MATCH, LABEL)`."""
    found = LABEL_VALUES.match(_expand(spec, values))
    assert found, spec
    now = time.time()
    body = httpx.get(
        f"{url}/api/v1/label/{found['label']}/values",
        params={"match[]": found["match"], "start": repr(now - 300), "end": repr(now)},
        timeout=10,
    ).json()
    assert body["status"] == "success", body
    result: list[str] = body["data"]
    return result


def _has_data(url: str, expr: str) -> bool:
    now = time.time()
    body = httpx.get(
        f"{url}/api/v1/query_range",
        params={"query": expr, "start": repr(now - 60), "end": repr(now), "step": "2"},
        timeout=10,
    ).json()
    assert body["status"] == "success", f"{expr}: {body}"
    return any(v[1] != "NaN" for series in body["data"]["result"] for v in series["values"])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """Prometheus scraping three demo daemons: failing models, a hot GPU, an XID burst."""
    tmp = tmp_path_factory.mktemp("grafana")
    scenarios = {
        "failing": '[demo]\nscenario = "model-failing"\n',
        "hot": '[demo]\nscenario = "thermal"\ntriton = false\n',
        "xids": '[demo]\nscenario = "xid-burst"\ntriton = false\n',
    }
    daemons: dict[str, Daemon] = {}
    try:
        for name, text in scenarios.items():
            (tmp / f"{name}.toml").write_text(text)
            daemons[name] = Daemon(config=tmp / f"{name}.toml")
        targets = {name: d.url.removeprefix("http://") for name, d in daemons.items()}
        with prometheus(tmp, targets) as url:
            # The scenarios' faults start 30 s in; findings and XIDs follow.
            wait_for_data(url, 'gpuwatch_finding{kind="model_failing"} == 1', timeout=150)
            wait_for_data(url, "increase(gpuwatch_gpu_xid_errors_total[2m]) > 0", timeout=150)
            wait_for_data(url, "gpuwatch_gpu_clock_event_hw_thermal_slowdown == 1", timeout=150)
            yield url, targets
    finally:
        for d in daemons.values():
            d.stop()


@pytest.mark.prometheus
def test_the_variables_list_the_fleet_and_narrow_down(fleet: tuple[str, dict[str, str]]) -> None:
    url, targets = fleet
    variables = _variables(_shipped())
    everything = dict.fromkeys(VARIABLES, ".*")
    nodes = _label_values(url, variables["node"]["query"], everything)
    assert sorted(nodes) == sorted(targets.values())
    assert _label_values(url, variables["gpu"]["query"], everything) == ["0", "1", "2", "3"]
    servers = _label_values(url, variables["server"]["query"], everything)
    assert servers, "no Triton server"
    models = _label_values(url, variables["model"]["query"], everything)
    assert len(models) >= 4
    # One node picked: a node without Triton has no server, the failing one has its models.
    hot = {**everything, "node": _one(targets["hot"])}
    assert _label_values(url, variables["server"]["query"], hot) == []
    failing = {**everything, "node": _one(targets["failing"]), "server": _one(servers[0])}
    assert _label_values(url, variables["model"]["query"], failing) == models


@pytest.mark.prometheus
def test_every_panel_and_annotation_query_returns_data(fleet: tuple[str, dict[str, str]]) -> None:
    url = fleet[0]
    shipped = _shipped()
    everything = dict.fromkeys(VARIABLES, ".*")
    queries = [(title, t["expr"]) for title, t in _targets(shipped)]
    queries += [(f"annotation {a['name']}", a["expr"]) for a in _annotations(shipped) if "expr" in a]
    assert len(queries) >= 30
    empty = [
        (title, _expand(expr, everything))
        for title, expr in queries
        if not _has_data(url, _expand(expr, everything))
    ]
    assert not empty, "\n".join(f"{title}: {expr}" for title, expr in empty)


@pytest.mark.prometheus
def test_findings_by_severity_and_xids_say_what_the_scenarios_did(fleet: tuple[str, dict[str, str]]) -> None:
    url, targets = fleet
    severities = {r["metric"]["severity"] for r in query(url, "sum by (severity) (gpuwatch_finding)")}
    assert {"critical", "warning"} <= severities
    xid_nodes = {
        r["metric"]["instance"]
        for r in query(url, "sum by (instance, gpu, xid) (increase(gpuwatch_gpu_xid_errors_total[2m])) > 0")
    }
    assert xid_nodes == {targets["xids"]}
