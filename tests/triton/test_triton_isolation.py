"""One bad model costs that model only (issue #15, finding 10), against the misbehaving fake
Triton of fake_triton.py: a model name with a lone surrogate, and `+Inf` in a count while the
statistics endpoint fails, each used to fail every poll of the whole server (a traceback a
second) while it kept showing its last good poll as up."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from gpuwatch import model
from gpuwatch.collect.triton.http import decode_json
from tests.triton.fake_triton import DATA, FakeTriton, Fault
from tests.triton.test_triton_faults import collector, poll


@pytest.fixture
def fake() -> Iterator[FakeTriton]:
    with FakeTriton() as server:
        yield server


def test_a_lone_surrogate_in_a_model_name_costs_that_model_only(fake: FakeTriton) -> None:
    index = json.loads((DATA / "repository_index.json").read_text())
    index.append({"name": "bad\ud800name", "version": "1", "state": "READY"})
    body = json.dumps(index).encode()  # json writes it as the escape "\ud800": valid JSON
    assert b"\\ud800" in body
    fake.faults["/v2/repository/index"] = Fault("status", status=200, body=body)
    result, status = poll(collector(fake))
    assert result is None and status.state == model.ServerState.UP
    models = {m.name: m for m in status.models}
    assert "bad\ufffdname" in models  # shown, with the replacement character
    assert models["bad\ufffdname"].state_reason is not None  # its config could not be read
    assert models["bert_stub"].state_reason is None and models["resnet_stub"].state_reason is None
    assert models["bert_stub"].totals.inference_count == 100
    "".join(models).encode("utf-8")  # every name can be written to /metrics and SQLite


def test_decode_json_replaces_only_lone_surrogates() -> None:
    assert decode_json(b'["a\\ud800", {"\\udfff": "\\ud83d\\ude00"}]') == [
        "a\ufffd",
        {"\ufffd": "\U0001f600"},
    ]
    assert decode_json(b'{"plain": "x"}') == {"plain": "x"}


def test_an_infinite_count_while_statistics_fail_costs_that_figure_only(fake: FakeTriton) -> None:
    text = (DATA / "metrics.txt").read_text()
    line = next(x for x in text.splitlines() if x.startswith("nv_inference_count{") and "resnet_stub" in x)
    fake.faults["/metrics"] = Fault(
        "status", status=200, body=text.replace(line, line.rsplit(" ", 1)[0] + " +Inf").encode()
    )
    fake.faults["/v2/models/stats"] = Fault("status", status=500, body=b'{"error": "boom"}')
    result, status = poll(collector(fake))
    assert result is not None and "statistics" in result  # the failing endpoint is named
    assert status.state == model.ServerState.UP
    models = {m.name: m for m in status.models}
    assert models["resnet_stub"].totals.inference_count is None  # +Inf is not a count
    assert models["bert_stub"].totals.inference_count == 100
