"""Durations and moments as people write them (retention tiers, --since/--until, the API's from/to)."""

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


@pytest.mark.parametrize("text", ["1h", "-1h", " -1h ", "60m", "-3600s", "1 h", "-0.5d"])
def test_a_span_before_now_is_written_with_or_without_a_minus(text: str) -> None:
    now = 1_795_558_200.0
    expected = now - (43200 if "d" in text else 3600)
    assert timespec.parse_moment(text, now) == expected


def test_unix_seconds_and_their_range() -> None:
    now = 1_795_558_200.0
    assert timespec.parse_moment("1767225600", now) == 1767225600.0
    assert timespec.parse_moment("1767225600.5", now) == 1767225600.5
    assert timespec.parse_moment("20261124", now) == 20261124.0  # a bare number is never a date
    for text in ("-1", "1e300", "nan", "inf", "0001-01-01T00:00Z", "9999-12-31T23:59Z"):
        with pytest.raises(ValueError, match=r"^expected Unix seconds between 0 and 100000000000 "):
            timespec.parse_moment(text, now)


@pytest.mark.parametrize("text", ["", "-", "1x", "-1x", "+1h", "1h30m", "--1h", "9" * 400 + "y"])
def test_what_is_not_a_moment_says_every_spelling(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        timespec.parse_moment(text, 1_795_558_200.0)
    assert str(caught.value) == f"expected {timespec.MOMENT_HINT}"
    for spelling in ("Unix seconds", "now", "15m or -15m", "2026-11-24T03:12"):
        assert spelling in timespec.MOMENT_HINT


@pytest.mark.parametrize("text", ["99999999999d", "-99999999999w", "-60y"])
def test_a_span_reaching_before_1970_is_refused(text: str) -> None:
    """It used to reach the store as a negative key and overflow there (a traceback per request)."""
    with pytest.raises(ValueError, match="before 1970: expected a shorter span"):
        timespec.parse_moment(text, 1.7e9)
    assert timespec.parse_moment("50y", 1.7e9) == 1.7e9 - 50 * 365 * 86400
