"""No interval is lost: a poll no snapshot took (it finished after one was assembled, and the
next poll finished before the next one) is measured again by the next poll, from where its
own interval began, so what snapshots show adds up to the change of Triton's counters."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gpuwatch import model
from gpuwatch.collect.triton.collector import TritonCollector
from gpuwatch.config import TritonServerSettings, TritonSettings
from tests.triton.fake_triton import DATA, FakeTriton


def collector(fake: FakeTriton) -> TritonCollector:
    server = TritonServerSettings(name="fake", url=fake.url, metrics_url=fake.metrics_url)
    return TritonCollector(TritonSettings(timeout_seconds=0.5), [server])


def with_more(doc: dict[str, Any], requests: int, batch: int) -> dict[str, Any]:
    """resnet_stub after `requests` more requests, run in batches of `batch`."""
    out = copy.deepcopy(doc)
    (entry,) = [e for e in out["model_stats"] if e["name"] == "resnet_stub"]
    entry["inference_count"] += requests
    entry["execution_count"] += requests // batch
    for name, leaf in entry["inference_stats"].items():
        if name in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
            leaf["count"] += requests
            leaf["ns"] += requests * 1_000_000
    for b in entry["batch_stats"]:
        if b["batch_size"] == batch:
            b["compute_infer"]["count"] += requests // batch
    return out


def resnet(c: TritonCollector) -> model.ModelStats:
    (status,) = c.view()
    return {m.name: m for m in status.models}["resnet_stub"]


def counted(m: model.ModelStats) -> int:
    i = m.interval
    assert i is not None and i.requests_per_second is not None and not i.reset
    return round(i.requests_per_second * i.interval_seconds)


def test_a_poll_no_snapshot_took_lands_in_the_next_one() -> None:
    stats = json.loads((DATA / "models_stats.json").read_text())
    with FakeTriton() as fake:
        c = collector(fake)
        poller = c.pollers[0]
        poller.poll()
        resnet(c)  # a snapshot took the first poll
        stats = with_more(stats, 40, 4)
        fake.set_body("GET", "/v2/models/stats", stats)
        poller.poll()
        first = resnet(c)
        assert counted(first) == 40
        stats = with_more(stats, 16, 4)
        fake.set_body("GET", "/v2/models/stats", stats)
        poller.poll()  # finished after the snapshot was assembled: no one took it
        stats = with_more(stats, 24, 8)
        fake.set_body("GET", "/v2/models/stats", stats)
        poller.poll()
        late = resnet(c)
        assert counted(late) == 16 + 24  # both polls' requests, in one interval
        assert late.interval is not None
        assert late.interval.batch_size_histogram == {4: 4, 8: 3}
        assert late.interval.average_queue_seconds == pytest.approx(1e-3)
        # taken again with no poll in between: the same interval (the same polled_at), and the
        # next poll measures from its end
        assert resnet(c).interval == late.interval
        stats = with_more(stats, 8, 8)
        fake.set_body("GET", "/v2/models/stats", stats)
        poller.poll()
        assert counted(resnet(c)) == 8


def test_counters_that_keep_going_backwards_are_one_restart_and_one_warning_not_one_per_poll() -> None:
    # A lying server (or a proxy in front of several) whose counters drop at every other poll
    # once logged a triton_restart per poll; the rates are still re-baselined at each drop.
    low = json.loads((DATA / "models_stats.json").read_text())
    high = copy.deepcopy(low)
    for entry in high["model_stats"]:
        entry["inference_count"] += 100
        entry["execution_count"] += 25
        entry["inference_stats"]["success"]["count"] += 100
    with FakeTriton() as fake:
        c = collector(fake)
        poller = c.pollers[0]
        resets = []
        for poll in range(12):
            fake.set_body("GET", "/v2/models/stats", high if poll % 2 else low)
            poller.poll()
            resets.append(resnet(c).interval is not None and resnet(c).interval.reset)  # type: ignore[union-attr]
        events = [e for e in c.drain_events() if e.kind == model.EventKind.TRITON_RESTART]
    assert resets[2::2] == [True] * 5  # every drop re-baselines: never a negative rate
    assert [e.message.split(":")[0] for e in events] == [
        "Triton fake restarted",
        "Triton fake's counters keep going backwards (twice within 60 s)",
    ]
