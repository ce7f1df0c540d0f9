"""Each shipped alert rule that judges a condition a finding judges shares its threshold and its
severity (docs/findings.md): the two judges of one condition cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpuwatch.assess import RULES
from gpuwatch.model import FindingKind as K

RULES_FILE = Path(__file__).resolve().parent.parent / "prometheus" / "gpuwatch.rules.yml"

NUMBER = r"([0-9.]+)"
PAIRS: dict[tuple[K, str], str] = {
    # (kind, threshold) → a regular expression over the alert's expression (and the recording
    # rules it reads) whose group is the alert's threshold
    (K.GPU_MEMORY_NEARLY_FULL, "memory_used_ratio"): rf"gpu:gpuwatch_gpu_memory_used:ratio > {NUMBER}",
    (K.MODEL_FAILING, "failure_ratio"): rf"failures_per_requests:ratio_rate5m > {NUMBER}",
    (K.MODEL_FAILING, "requests_per_second"): rf"request_failure:rate5m > {NUMBER}",
    (K.MODEL_STALLED, "pending_requests"): rf"gpuwatch_model_pending_requests > {NUMBER}",
    (K.MODEL_QUEUE_BOUND, "queue_share_ratio"): rf"queue_share:ratio_rate1m > {NUMBER}",
    (K.MODEL_BATCHER_OFF, "queue_share_ratio"): rf"queue_share:ratio_rate1m > {NUMBER}",
    (K.GPU_XID_CRITICAL, "xid_window_seconds"): r"xid_errors_total\[([0-9]+m)\]",
    (K.GPU_ECC_UNCORRECTED, "ecc_window_seconds"): r"ecc_uncorrected_volatile_total\[([0-9]+m)\]",
    (K.GPU_NVLINK_ERRORS, "nvlink_errors_window_seconds"): r"nvlink_crc_errors_total\[([0-9]+m)\]",
}
FINDING_ONLY = {(K.MODEL_QUEUE_BOUND, "gpu_activity_ratio")}
"""Thresholds no alert rule has: the GPU's activity is what tells the two queue-bound verdicts apart."""


def _rules() -> tuple[dict[str, dict[str, Any]], str]:
    doc = yaml.safe_load(RULES_FILE.read_text())
    alerts = {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}
    records = "\n".join(r["expr"] for g in doc["groups"] for r in g["rules"] if "record" in r)
    return alerts, records


def _value(text: str) -> float:
    return float(text[:-1]) * 60 if text.endswith("m") else float(text)


def test_every_pair_is_declared_both_ways() -> None:
    declared = {(r.kind, name) for r in RULES.values() if r.alert for name in r.thresholds}
    assert declared == set(PAIRS) | FINDING_ONLY
    assert all(RULES[k].thresholds.get(n) is not None for k, n in PAIRS)


@pytest.mark.parametrize("kind", [k for k, r in RULES.items() if r.alert], ids=str)
def test_a_finding_and_its_alert_share_severity_and_thresholds(kind: K) -> None:
    alerts, records = _rules()
    rule = RULES[kind]
    assert rule.alert in alerts, f"{kind}: no alert {rule.alert} in {RULES_FILE.name}"
    alert = alerts[rule.alert]
    assert alert["labels"]["severity"] == rule.severity.value, f"{kind} vs {rule.alert}"
    for name, ours in rule.thresholds.items():
        if (kind, name) in FINDING_ONLY:
            continue
        pattern = PAIRS[(kind, name)]
        found = re.findall(pattern, alert["expr"]) or re.findall(pattern, records)
        assert found, f"{rule.alert}: no {pattern!r} in its expression or its records"
        assert {_value(v) for v in found} == {ours}, f"{kind}.{name} = {ours}, {rule.alert} says {found}"
