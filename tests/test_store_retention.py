"""Retention tiers are data, validated once at start with one line naming what is wrong."""

from __future__ import annotations

import pytest

from gpuwatch.config import ConfigError, StoreSettings
from gpuwatch.store import Tier, parse_retention


def test_the_default_retention() -> None:
    assert parse_retention(StoreSettings().retention) == (
        Tier(1, 86_400),
        Tier(60, 30 * 86_400),
        Tier(3600, 365 * 86_400),
    )
    assert [t.label for t in parse_retention("10s:2d, 5m:8w")] == ["10s:2d", "5m:8w"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "RESOLUTION:KEEP separated by commas"),
        ("1s:24h,,1h:1y", "RESOLUTION:KEEP separated by commas"),
        ("1s", "'1s' is not RESOLUTION:KEEP"),
        ("1x:24h", "'1x' is not a duration"),
        ("0.5s:1h", "whole number of seconds"),
        ("1h:1m", "KEEP must be at least the resolution"),
        ("1m:24h,1s:30d", "must be coarser than 1m:1d"),
        ("1m:24h,90s:30d", "whole multiple of 1m:1d"),
        ("1s:24h,1m:12h", "must keep longer than 1s:1d"),
        ("1s:90s,1m:30d", "at least two buckets of 1m:30d"),
        ("1s:1h,2s:2h,4s:4h,8s:8h,16s:16h,32s:32h,64s:64h", "at most 6 tiers"),
    ],
)
def test_bad_retention_is_one_line_naming_key_value_and_rule(text: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_retention(text)
    message = str(caught.value)
    assert message.startswith(f"[store] retention = {text!r}: ")
    assert why in message
    assert "\n" not in message
