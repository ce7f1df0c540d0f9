"""The shipped alert rules (prometheus/gpuwatch.rules.yml): promtool's checks and unit tests, and
what every alert must carry — a known severity, its annotations, a runbook section, metric names
that /metrics really exports, XID codes that agree with gpuwatch/nvml_codes.py, and promtool cases
showing it both firing and silent."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpuwatch.catalog import index, nvml_codes
from tests.conftest import REPO

RULES = REPO / "prometheus" / "gpuwatch.rules.yml"
UNIT_TESTS = sorted((REPO / "tests" / "prometheus").glob("*.test.yml"))
RUNBOOKS = REPO / "docs" / "runbooks.md"
SEVERITIES = {"critical", "warning", "info"}


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (tests/run.sh installs it)")
    return promtool


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in _rules() if "alert" in r}


def _unit_cases() -> list[dict[str, Any]]:
    cases = []
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


@pytest.mark.prometheus
def test_promtool_check_rules_is_clean() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


@pytest.mark.prometheus
def test_promtool_unit_tests_pass() -> None:
    assert len(UNIT_TESTS) >= 3
    result = subprocess.run(
        [_promtool(), "test", "rules", *map(str, UNIT_TESTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_every_alert_is_shown_firing_and_silent_by_promtool_cases() -> None:
    cases = _unit_cases()
    for name in _alerts():
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name}: no promtool case where it fires"
        assert any(not c.get("exp_alerts") for c in mine), f"{name}: no promtool case where it is silent"
    unknown = {c["alertname"] for c in cases} - set(_alerts())
    assert not unknown, f"promtool cases name alerts the rules do not have: {unknown}"


def test_every_alert_has_a_severity_annotations_and_a_runbook_section() -> None:
    headings = set(re.findall(r"^## (\w+)$", RUNBOOKS.read_text(), flags=re.MULTILINE))
    for name, rule in _alerts().items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, name
        assert annotations["runbook"] == f"docs/runbooks.md#{name.lower()}", name
        assert name in headings, f"docs/runbooks.md has no '## {name}' section"
    assert headings <= set(_alerts()), f"runbook sections for no alert: {headings - set(_alerts())}"


def test_rules_name_only_metrics_the_daemon_exports() -> None:
    exported = set(index.BY_METRIC)
    for f in index.ALL:
        if f.metric_type == "histogram":
            exported |= {f.metric + suffix for suffix in ("_bucket", "_count", "_sum")}
    recorded = {r["record"] for r in _rules() if "record" in r}
    for rule in _rules():
        # gpuwatch_* names not inside a recorded series' name (level:gpuwatch_...:operation)
        for name in re.findall(r"(?<![\w:])gpuwatch_\w+", rule["expr"]):
            assert name in exported, f"{rule.get('alert') or rule.get('record')}: {name} is not exported"
        for name in re.findall(r"\b\w+:\w+:\w+\b", rule["expr"]):
            assert name in recorded, f"{rule.get('alert') or rule.get('record')}: {name} is not recorded"


def _codes(expr: str, op: str) -> set[int]:
    match = re.search(r"xid" + op + r'"([0-9|]+)"', expr)
    assert match, expr
    return {int(code) for code in match.group(1).split("|")}


def test_xid_alerts_agree_with_the_decode_catalogue() -> None:
    alerts = _alerts()
    critical = _codes(alerts["GpuXidCritical"]["expr"], "=~")
    application = _codes(alerts["GpuXidApplication"]["expr"], "=~")
    assert critical == set(nvml_codes.CRITICAL_XIDS)
    assert application == set(nvml_codes.APPLICATION_XIDS)
    assert _codes(alerts["GpuXidOther"]["expr"], "!~") == critical | application
    # Application XIDs never page.
    assert alerts["GpuXidApplication"]["labels"]["severity"] == "info"
    assert alerts["GpuXidCritical"]["labels"]["severity"] == "critical"


def test_every_recording_rule_is_used_by_an_alert_or_a_promql_test() -> None:
    used = " ".join(r["expr"] for r in _rules() if "alert" in r)
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            used += " ".join(t["expr"] for t in test.get("promql_expr_test", []))
    for rule in _rules():
        if "record" in rule:
            assert rule["record"] in used, f"{rule['record']} is neither alerted on nor tested"


def test_readme_says_how_to_load_the_rules() -> None:
    readme = (REPO / "README.md").read_text()
    assert "rule_files:" in readme
    assert "prometheus/gpuwatch.rules.yml" in readme
    assert "job_name: gpuwatch" in readme


def test_unit_test_files_load_the_shipped_rules(tmp_path: Path) -> None:
    for path in UNIT_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert [(path.parent / f).resolve() for f in doc["rule_files"]] == [RULES.resolve()], path
