"""Durations and moments as people write them: `90s`, `15m`, `-1h`, `30d`, `1y`, `2026-11-24T03:12`.

Used where a person names a span or a point in time: the store's retention tiers
(`1s:24h,1m:30d`, `parse_duration`), and one grammar of moments (`parse_moment`) for the
`--since`/`--until` options of `gpuwatch query` and `gpuwatch events` and the `from`/`to`
parameters of the JSON API. Parsers raise `ValueError` with a one-line message; callers add
which setting, option or parameter it was.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
"""A year is 365 days: retention is about disk space, not calendars."""

DURATION_HINT = "a number and a unit: s, m, h, d, w or y (90s, 15m, 24h, 30d, 1y)"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdwy])\s*$")
_RELATIVE = re.compile(r"^-?(\d+(?:\.\d+)?)\s*([smhdwy])$")

MOMENT_HINT = (
    "Unix seconds, now, a relative time before now (15m or -15m; s, m, h, d, w or y) "
    "or a date and time like 2026-11-24T03:12"
)
EARLIEST = 0.0
LATEST = 1e11
"""Unix seconds of the year 5138."""


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
    """A point in time, in Unix seconds. One grammar for the CLI and the API:

    - `now`;
    - a span before now, with or without a minus: `15m` and `-15m` are both 15 minutes ago
      (the CLI's `--since 1h` and the API's `from=-1h` always meant the same);
    - Unix seconds: `1767225600`, `1767225600.5` (a bare number is never a date);
    - an ISO 8601 date and time: `2026-11-24T03:12`, `2026-11-24 03:12:00Z`; local time of the
      machine that reads it unless it names a zone.

    Absolute times outside 1970 to year 5138 are refused: past that a "timestamp" is a typo (or
    milliseconds); so is a span that reaches back before 1970."""
    cleaned = text.strip()
    if cleaned == "now":
        return now
    relative = _RELATIVE.match(cleaned)
    if relative:
        seconds = float(relative.group(1)) * UNIT_SECONDS[relative.group(2)]
        if not math.isfinite(seconds):
            raise ValueError(f"expected {MOMENT_HINT}")
        if now - seconds < EARLIEST:
            raise ValueError(f"{cleaned} before now is before 1970: expected a shorter span")
        return now - seconds
    try:
        moment = float(cleaned)
    except ValueError:
        moment = _iso_moment(cleaned)
    if not (math.isfinite(moment) and EARLIEST <= moment <= LATEST):
        raise ValueError(f"expected Unix seconds between {EARLIEST:.0f} and {LATEST:.0f} (1970 to 5138)")
    return moment


def _iso_moment(text: str) -> float:
    try:
        # A naive time is local, as the user reads their clock.
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):  # OverflowError, OSError: a year out of range
        raise ValueError(f"expected {MOMENT_HINT}") from None
