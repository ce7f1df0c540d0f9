"""Durations and moments as people write them: `90s`, `15m`, `24h`, `30d`, `1y`, `2026-11-24T03:12`.

Used where a person names a span of time: the store's retention tiers (`1s:24h,1m:30d`) and
the `--since`/`--until` options of `gpuwatch query` and `gpuwatch events`. Parsers raise
`ValueError` with a one-line message; callers add which setting or option it was.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
"""A year is 365 days: retention is about disk space, not calendars."""

DURATION_HINT = "a number and a unit: s, m, h, d, w or y (90s, 15m, 24h, 30d, 1y)"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdwy])\s*$")


def parse_duration(text: str) -> float:
    """`"15m"` → 900.0 seconds. Zero and negative spans are refused."""
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a duration: expected {DURATION_HINT}")
    seconds = float(found.group(1)) * UNIT_SECONDS[found.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a duration: expected more than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling in the largest unit: 86400 → "1d", 90 → "90s", 0.5 → "0.5s"."""
    for unit in ("y", "w", "d", "h", "m"):
        size = UNIT_SECONDS[unit]
        if seconds >= size and math.isclose(seconds % size, 0, abs_tol=1e-9):
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_moment(text: str, now: float) -> float:
    """A point in time: `now`, a duration ago (`1h`), or a date and time (ISO 8601; local time
    unless it names a zone: `2026-11-24T03:12`, `2026-11-24 03:12:00Z`). Unix seconds."""
    cleaned = text.strip()
    if cleaned == "now":
        return now
    if _DURATION.match(cleaned):
        return now - parse_duration(cleaned)
    try:
        moment = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration ago ({DURATION_HINT}), `now`, "
            "nor a date and time like 2026-11-24T03:12"
        ) from None
    return moment.timestamp()  # a naive time is local, as the user reads their clock
