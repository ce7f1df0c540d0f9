"""The model detail's percentile line: Triton's own p50/p90/p99 where the server serves its
latency summaries, and how to turn them on where it does not."""

from __future__ import annotations

import dataclasses

from textual.theme import BUILTIN_THEMES

from gpuwatch import model
from gpuwatch.tui.model_detail import PERCENTILES_OFF, describe
from gpuwatch.tui.palette import palette_for
from tests.serve_support import model_stats


def _lines(m: model.ModelStats) -> list[str]:
    return describe(m, palette_for(BUILTIN_THEMES["textual-dark"], monochrome=True)).plain.splitlines()


def test_the_detail_shows_the_servers_percentiles() -> None:
    m = model_stats("local", "resnet", "1", polled_at=1_800_000_000.0)
    line = "p50/p90/p99 request 3.5 ms/6.1 ms/12.5 ms · queue 900 µs/2.1 ms/4.8 ms"
    assert f"{line} · compute 2.4 ms/3.1 ms/5.2 ms" in _lines(m)
    assert PERCENTILES_OFF not in _lines(m)


def test_without_summaries_the_detail_says_how_to_turn_them_on() -> None:
    m = dataclasses.replace(
        model_stats("local", "resnet", "1", polled_at=1_800_000_000.0), latency_percentiles=None
    )
    assert PERCENTILES_OFF in _lines(m)
    assert "--metrics-config summary_latencies=true" in PERCENTILES_OFF
