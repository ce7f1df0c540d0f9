"""Durations and moments as people write them (retention tiers, --since/--until)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gpuwatch import timespec


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("24h", 86400), ("30d", 2_592_000), ("2w", 1_209_600), ("1y", 31_536_000)],
)
def test_durations(text: str, seconds: float) -> None:
    assert timespec.parse_duration(text) == seconds
    assert timespec.parse_duration(timespec.format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "1x", "-1h", "0s", "1h30m"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="duration") as caught:
        timespec.parse_duration(text)
    assert "\n" not in str(caught.value)


def test_moments() -> None:
    now = 1_795_558_200.0
    assert timespec.parse_moment("now", now) == now
    assert timespec.parse_moment("1h", now) == now - 3600
    utc = datetime(2026, 11, 24, 3, 12, tzinfo=UTC).timestamp()
    assert timespec.parse_moment("2026-11-24T03:12Z", now) == utc
    assert timespec.parse_moment("2026-11-24 03:12:00+00:00", now) == utc
    with pytest.raises(ValueError, match="2026-11-24T03:12"):
        timespec.parse_moment("yesterday", now)
