"""One poll as a record (`poll.PollFetcher` → `PollResult`) and the model bookkeeping's say over
which configs a poll reads (`models.ModelBook.config_due`), apart from the poller around them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest

from gpuwatch.collect.triton.models import CONFIG_RETRY_SECONDS, ModelBook
from gpuwatch.collect.triton.parse_config import ModelConfig
from gpuwatch.collect.triton.parse_index import IndexEntry
from gpuwatch.collect.triton.poll import ConfigRead, PollFetcher, PollResult
from gpuwatch.config import TritonServerSettings, TritonSettings
from tests.triton.fake_triton import FakeTriton, Fault

SETTINGS = TritonSettings(timeout_seconds=0.5, config_refresh_seconds=60.0)
RESNET = ("resnet_stub", "1")
BERT = ("bert_stub", "1")


@pytest.fixture
def fake() -> Iterator[FakeTriton]:
    with FakeTriton() as server:
        yield server


def fetcher(fake: FakeTriton) -> PollFetcher:
    server = TritonServerSettings(name="fake", url=fake.url, metrics_url=fake.metrics_url)
    return PollFetcher(server, SETTINGS)


def paths(fake: FakeTriton) -> list[str]:
    return [path for _, path, _ in fake.requests]


def test_a_poll_is_a_frozen_record_of_every_endpoint(fake: FakeTriton) -> None:
    f = fetcher(fake)
    try:
        p = f.fetch(time.monotonic(), lambda key: True)
    finally:
        f.close()
    assert dataclasses.is_dataclass(p) and isinstance(p, PollResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.version = "0"  # type: ignore[misc]
    assert p.unreachable is None and p.usable and not p.only_unreachable
    assert (p.version, p.problems, p.failure_kinds) == ("2.51.0", (), ())
    assert p.index is not None and {(e.name, e.version) for e in p.index} == {
        ("bert_stub", "1"),
        ("resnet_stub", "1"),
    }
    assert p.stats is not None and set(p.stats.models) == {RESNET, BERT}
    assert p.metrics is not None and RESNET in p.metrics.models
    assert p.started <= (p.stats_at or 0) and p.started <= (p.metrics_at or 0)
    assert set(p.configs) == {RESNET, BERT}
    resnet = p.configs[RESNET].config
    assert resnet is not None and resnet.max_batch_size == 32 and p.configs[RESNET].error is None


def test_only_the_configs_the_bookkeeping_asks_for_are_read(fake: FakeTriton) -> None:
    f = fetcher(fake)
    try:
        p = f.fetch(time.monotonic(), lambda key: key == BERT)
        assert set(p.configs) == {BERT}
        assert [q for q in paths(fake) if q.endswith("/config")] == ["/v2/models/bert_stub/versions/1/config"]
        fake.requests.clear()
        again = f.fetch(time.monotonic(), lambda key: False)
    finally:
        f.close()
    assert again.configs == {}
    assert not [q for q in paths(fake) if q.endswith("/config")]
    assert "/v2" not in paths(fake)  # the version is read once per contact


def test_a_config_that_fails_is_a_reason_for_that_model(fake: FakeTriton) -> None:
    fake.faults["/v2/models/bert_stub/versions/1/config"] = Fault(
        "status", status=500, body=b'{"error":"no"}'
    )
    f = fetcher(fake)
    try:
        p = f.fetch(time.monotonic(), lambda key: True)
    finally:
        f.close()
    assert p.configs[BERT].config is None
    assert p.configs[BERT].error is not None and p.configs[BERT].error.startswith("config: HTTP 500")
    assert p.configs[RESNET].config is not None
    assert p.problems == ()  # a model's config is that model's trouble, not the server's


def test_a_refused_health_check_asks_nothing_else_and_forgets_the_version() -> None:
    with FakeTriton() as fake:
        port = fake.port
        f = fetcher(fake)
        assert f.fetch(time.monotonic(), lambda key: False).version == "2.51.0"
    try:
        down = f.fetch(time.monotonic(), lambda key: False)
        assert down.unreachable is not None and down.unreachable.kind == "refused"
        assert (down.version, down.index, down.stats, down.metrics) == (None, None, None, None)
        with FakeTriton(port) as back:
            assert f.fetch(time.monotonic(), lambda key: False).version == "2.51.0"
            assert "/v2" in paths(back)  # a new contact: the version is read again
    finally:
        f.close()


def test_the_book_says_when_a_config_is_due() -> None:
    book = ModelBook("s", config_refresh_seconds=60.0)
    assert book.config_due(RESNET, 0.0)  # a model never seen
    index = (IndexEntry("resnet_stub", "1", "READY", None), IndexEntry("bert_stub", "1", "READY", None))
    read = {RESNET: ConfigRead(ModelConfig(max_batch_size=8)), BERT: ConfigRead(None, "config: HTTP 500")}
    update = book.update(PollResult(started=100.0, wall=0.0, index=index, configs=read), recovering=False)
    assert not book.config_due(RESNET, 159.0) and book.config_due(RESNET, 160.0)
    assert not book.config_due(BERT, 100.0 + CONFIG_RETRY_SECONDS - 1) and book.config_due(
        BERT, 100.0 + CONFIG_RETRY_SECONDS
    )
    models = {(m.name, m.version): m for m in update.models}
    assert models[RESNET].max_batch_size == 8 and models[RESNET].state_reason is None
    assert models[BERT].max_batch_size is None and models[BERT].state_reason == "config: HTTP 500"
    assert update.events == ()  # the first sight of a model is no state change
