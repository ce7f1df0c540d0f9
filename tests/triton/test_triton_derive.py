"""The derivations over real Triton 2.51 captures: one interval from a freshly loaded model
(every counter at 0, as Triton starts them) to the capture, with every figure checked against
the capture's own numbers; resets; an older server; an ensemble; the cache."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gpuwatch.collect.triton import derive
from gpuwatch.collect.triton.parse_config import ModelConfig, parse_config
from gpuwatch.collect.triton.parse_metrics import parse_metrics
from gpuwatch.collect.triton.parse_stats import parse_stats

DATA = Path(__file__).resolve().parent.parent / "data" / "triton"
DT = 2.0


def doc(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def zeroed_stats(body: dict[str, Any]) -> dict[str, Any]:
    """The same models just after load: every count and ns 0, no batch run yet."""
    out = copy.deepcopy(body)
    for entry in out["model_stats"]:
        entry["last_inference"] = entry["inference_count"] = entry["execution_count"] = 0
        for leaf in entry["inference_stats"].values():
            leaf["count"] = leaf["ns"] = 0
        entry["batch_stats"] = []
    return out


def zeroed_metrics(body: str) -> str:
    return re.sub(r"(\} )\d+(\.\d+)?$", r"\g<1>0", body, flags=re.MULTILINE)


def reading(
    stats: Any = None,
    metrics: str | None = None,
    at: float = 0.0,
    key: tuple[str, str] = ("resnet_stub", "1"),
):
    s = parse_stats(stats).models[key] if stats is not None else None
    m = parse_metrics(metrics).models[key] if metrics is not None else None
    return derive.Reading(s, at if s else None, m, at if m else None)


RESNET_CONFIG = parse_config(doc("resnet_stub_config.json"))  # max 32, preferred 8 and 16, 2 ms delay


def test_an_interval_from_stats_matches_the_capture() -> None:
    stats = doc("models_stats.json")
    metrics = (DATA / "metrics.txt").read_text()
    prev = reading(zeroed_stats(stats), zeroed_metrics(metrics), 0.0)
    cur = reading(stats, metrics, DT)
    i = derive.interval(prev, cur, RESNET_CONFIG)
    assert i is not None and not i.reset
    assert i.interval_seconds == DT
    assert i.requests_per_second == 300 / DT
    assert i.inferences_per_second == 300 / DT
    assert i.executions_per_second == 58 / DT
    assert i.failures_per_second == 0
    assert i.failures_per_second_by_reason == {"OTHER": 0, "BACKEND": 0, "CANCELED": 0, "REJECTED": 0}
    # the executed batch-size histogram is the batch_stats of the interval
    assert i.batch_size_histogram == {1: 1, 2: 4, 3: 2, 4: 9, 5: 19, 6: 12, 7: 6, 8: 5}
    assert i.average_batch_size == pytest.approx(300 / 58)
    assert i.batch_fill_ratio == pytest.approx(300 / 58 / 32)
    assert i.preferred_batch_ratio == pytest.approx(5 / 58)  # only batch size 8 ran of the preferred 8, 16
    assert i.average_request_seconds == pytest.approx(5209363276e-9 / 300)
    assert i.average_queue_seconds == pytest.approx(1669316292e-9 / 300)
    assert i.average_compute_input_seconds == pytest.approx(30386873e-9 / 300)
    assert i.average_compute_infer_seconds == pytest.approx(3447836968e-9 / 300)
    assert i.average_compute_output_seconds == pytest.approx(59606409e-9 / 300)
    assert i.queue_share_ratio == pytest.approx(1669316292 / 5209363276)
    assert i.queue_to_compute_ratio == pytest.approx(1669316292 / 3447836968)
    assert i.queue_delay_ratio == pytest.approx(1669316292e-9 / 300 / 0.002)
    assert i.mean_queue_depth == pytest.approx(1669316292e-9 / DT)
    assert i.cache_hit_ratio is None  # the cache is off and never hit


def test_an_interval_from_metrics_alone_agrees() -> None:
    """When /v2/models/stats is not there (restricted API), /metrics gives the same rates; its
    durations are whole microseconds."""
    metrics = (DATA / "metrics.txt").read_text()
    i = derive.interval(
        reading(None, zeroed_metrics(metrics), 0.0), reading(None, metrics, DT), RESNET_CONFIG
    )
    assert i is not None
    assert i.requests_per_second == 300 / DT
    assert i.executions_per_second == 58 / DT
    assert i.average_batch_size == pytest.approx(300 / 58)
    assert i.batch_size_histogram == {}  # only batch_stats has it
    assert i.preferred_batch_ratio is None
    assert i.average_queue_seconds == pytest.approx(1669162e-6 / 300)
    assert i.queue_share_ratio == pytest.approx(1669162 / 5209213)


def test_cumulative_durations_in_seconds_from_either_source() -> None:
    stats = doc("models_stats.json")
    metrics = (DATA / "metrics.txt").read_text()
    t = derive.totals(reading(stats, metrics, DT))  # statistics first, in ns
    assert t.request_seconds == pytest.approx(5209363276e-9)
    assert t.queue_seconds == pytest.approx(1669316292e-9)
    assert t.compute_input_seconds == pytest.approx(30386873e-9)
    assert t.compute_infer_seconds == pytest.approx(3447836968e-9)
    assert t.compute_output_seconds == pytest.approx(59606409e-9)
    m = derive.totals(reading(None, metrics, DT))  # /metrics alone, in whole µs
    assert m.request_seconds == pytest.approx(5.209213)
    assert m.queue_seconds == pytest.approx(1.669162)
    assert m.compute_input_seconds == pytest.approx(0.030242)
    assert m.compute_infer_seconds == pytest.approx(3.447684)
    assert m.compute_output_seconds == pytest.approx(0.059470)
    # the two sources agree within the µs rounding of /metrics
    assert abs(m.queue_seconds - t.queue_seconds) < 1e-3  # type: ignore[operator]


def test_failures_by_reason_come_from_metrics() -> None:
    stats = doc("models_stats_failures.json")
    metrics = (DATA / "metrics_failures.txt").read_text()
    key = ("bert_raise", "1")
    prev = reading(zeroed_stats(stats), zeroed_metrics(metrics), 0.0, key)
    i = derive.interval(prev, reading(stats, metrics, DT, key), None)
    assert i is not None
    assert i.failures_per_second == 41 / DT
    assert i.failures_per_second_by_reason["BACKEND"] == 41 / DT
    assert i.requests_per_second == 159 / DT
    # 58 executions ran, failed ones included: the histogram counts them, inference_count not
    assert sum(i.batch_size_histogram.values()) == 58
    totals = derive.totals(reading(stats, metrics, DT, key))
    assert (totals.request_success_count, totals.request_failure_count) == (159, 41)
    assert totals.failure_count_by_reason["BACKEND"] == 41


def test_a_server_older_than_2_48_gives_a_failure_total_without_reasons() -> None:
    metrics = (DATA / "metrics_failures.txt").read_text()
    # 2.47 and older print one failure series per model version, with no reason label
    old = re.sub(
        r'nv_inference_request_failure\{model="\w+",reason="(?!BACKEND)\w+",version="1"\} 0\n', "", metrics
    )
    old = old.replace('reason="BACKEND",', "")
    assert old.count("nv_inference_request_failure{") == 2
    key = ("bert_raise", "1")
    i = derive.interval(reading(None, zeroed_metrics(old), 0.0, key), reading(None, old, DT, key), None)
    assert i is not None
    assert i.failures_per_second == 41 / DT
    assert i.failures_per_second_by_reason == {}
    totals = derive.totals(reading(None, old, DT, key))
    assert totals.request_failure_count == 41
    assert totals.failure_count_by_reason == {}


def test_a_server_older_than_2_38_has_no_pending_count() -> None:
    metrics = (DATA / "metrics.txt").read_text()
    old = "\n".join(line for line in metrics.splitlines() if "pending" not in line)
    assert derive.pending(reading(None, old).metrics) is None
    assert derive.pending(reading(None, metrics).metrics) == 0


def test_an_idle_interval_has_zero_rates_and_no_averages() -> None:
    stats = doc("models_stats.json")
    i = derive.interval(reading(stats, None, 0.0), reading(stats, None, DT), RESNET_CONFIG)
    assert i is not None
    assert (i.requests_per_second, i.executions_per_second, i.mean_queue_depth) == (0, 0, 0)
    assert i.average_request_seconds is None
    assert i.average_batch_size is None
    assert i.queue_share_ratio is None
    assert i.batch_size_histogram == {}


def test_an_ensemble_has_no_batch_figures_of_its_own() -> None:
    stats = doc("models_stats.json")
    ensemble = ModelConfig(max_batch_size=8, platform="ensemble", ensemble_steps=("prep", "resnet_stub"))
    i = derive.interval(
        reading(zeroed_stats(stats), None, 0.0), reading(stats, None, DT), ensemble, ensemble=True
    )
    assert i is not None
    assert i.requests_per_second == 300 / DT
    assert i.average_batch_size is None and i.batch_fill_ratio is None and i.batch_size_histogram == {}


def test_cache_hit_ratio_is_the_share_of_requests_answered_from_the_cache() -> None:
    stats = doc("models_stats.json")
    cached = copy.deepcopy(stats)
    for entry in cached["model_stats"]:
        entry["inference_stats"]["cache_hit"] = {"count": 120, "ns": 1000}
        entry["inference_stats"]["cache_miss"] = {"count": 180, "ns": 1000}
    cfg = ModelConfig(max_batch_size=32, response_cache=True)
    i = derive.interval(reading(zeroed_stats(stats), None, 0.0), reading(cached, None, DT), cfg)
    assert i is not None and i.cache_hit_ratio == pytest.approx(120 / 300)
    totals = derive.totals(reading(stats, None, DT), cache_enabled=False)
    assert (totals.cache_hit_count, totals.cache_miss_count) == (None, None)


def test_resets_are_detected_per_source() -> None:
    stats = doc("models_stats.json")
    metrics = (DATA / "metrics.txt").read_text()
    full, empty = reading(stats, metrics), reading(zeroed_stats(stats), zeroed_metrics(metrics))
    assert full.stats is not None and empty.stats is not None and full.metrics and empty.metrics
    assert derive.stats_restarted(full.stats, empty.stats)
    assert not derive.stats_restarted(empty.stats, full.stats)
    assert derive.metrics_restarted(full.metrics, empty.metrics)
    assert not derive.metrics_restarted(empty.metrics, full.metrics)
    # the pending gauge going down is not a reset
    busy = metrics.replace(
        'pending_request_count{model="resnet_stub",version="1"} 0',
        'pending_request_count{model="resnet_stub",version="1"} 7',
    )
    assert not derive.metrics_restarted(reading(None, busy).metrics, full.metrics)  # type: ignore[arg-type]


def test_a_reset_interval_carries_no_rates() -> None:
    i = derive.reset_interval(1.5, "unload/load")
    assert i.reset and i.reset_reason == "unload/load" and i.interval_seconds == 1.5
    assert i.requests_per_second is None and i.average_batch_size is None


def test_readings_too_close_give_no_interval() -> None:
    stats = doc("models_stats.json")
    assert derive.interval(reading(stats, None, 5.0), reading(stats, None, 5.0), None) is None


@pytest.mark.parametrize("ensemble", [False, True])
def test_the_idle_shortcut_gives_what_the_full_derivation_gives(ensemble: bool) -> None:
    """The collector gets the very same statistics object back for an unchanged entry, and the
    derivation then builds the idle interval directly: it must equal the long way round."""
    stats = doc("models_stats.json")
    metrics = (DATA / "metrics.txt").read_text()
    prev = reading(stats, metrics, 0.0)
    same_objects = derive.Reading(prev.stats, DT, prev.metrics, DT)
    equal_copies = reading(stats, metrics, DT)
    assert equal_copies.stats is not prev.stats and equal_copies.stats == prev.stats
    shortcut = derive.interval(prev, same_objects, RESNET_CONFIG, ensemble=ensemble)
    full = derive.interval(prev, equal_copies, RESNET_CONFIG, ensemble=ensemble)
    assert shortcut == full
    assert shortcut is not None and shortcut.requests_per_second == 0 and shortcut.average_batch_size is None
