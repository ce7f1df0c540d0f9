"""Retention tiers: `1s:24h,1m:30d,1h:1y` parsed into data and checked once, at start.

Tier 0 keeps every snapshot as it came ("raw"); each further tier keeps one min/mean/max row
per bucket of its resolution, rolled up from the tier before it (`rollup.py`), and every tier
forgets what is older than its KEEP (`purge.py`). The rules checked here are what rollups and
queries rely on, so a bad string stops the daemon with one line instead of a store that
quietly loses data:

- resolutions are whole seconds, increasing, and each divides the next (a bucket of a coarse
  tier is made of whole buckets of the finer one);
- KEEP increases from tier to tier and each tier keeps at least two buckets of the next one
  (its rows live long enough to be rolled up).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from gpuwatch import timespec
from gpuwatch.config import ConfigError

SETTING = "[store] retention"
EXAMPLE = "1s:24h,1m:30d,1h:1y"
MAX_TIERS = 6


@dataclass(frozen=True, slots=True)
class Tier:
    resolution_seconds: int
    keep_seconds: int

    @property
    def label(self) -> str:
        """How people write it: "1m:30d"."""
        resolution = timespec.format_duration(self.resolution_seconds)
        return f"{resolution}:{timespec.format_duration(self.keep_seconds)}"

    @property
    def resolution_ms(self) -> int:
        return self.resolution_seconds * 1000


def parse_retention(text: str, setting: str = SETTING) -> tuple[Tier, ...]:
    """Parse and validate a retention string; `ConfigError` names the setting, the value and the
    rule that failed."""

    def fail(why: str) -> ConfigError:
        return ConfigError(f"{setting} = {text!r}: {why} (for example {EXAMPLE!r})")

    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise fail("expected tiers RESOLUTION:KEEP separated by commas, finest first")
    if len(parts) > MAX_TIERS:
        raise fail(f"at most {MAX_TIERS} tiers")
    tiers: list[Tier] = []
    for part in parts:
        resolution_text, sep, keep_text = part.partition(":")
        if not sep:
            raise fail(f"{part!r} is not RESOLUTION:KEEP")
        try:
            resolution = timespec.parse_duration(resolution_text)
            keep = timespec.parse_duration(keep_text)
        except ValueError as exc:
            raise fail(f"in {part!r}: {exc}") from None
        if not resolution.is_integer():
            raise fail(f"in {part!r}: the resolution must be a whole number of seconds")
        if keep < resolution:
            raise fail(f"in {part!r}: KEEP must be at least the resolution")
        tiers.append(Tier(int(resolution), int(keep)))
    for finer, coarser in itertools.pairwise(tiers):
        if coarser.resolution_seconds <= finer.resolution_seconds:
            raise fail(f"{coarser.label} must be coarser than {finer.label} (finest first)")
        if coarser.resolution_seconds % finer.resolution_seconds:
            raise fail(f"the resolution of {coarser.label} must be a whole multiple of {finer.label}'s")
        if coarser.keep_seconds <= finer.keep_seconds:
            raise fail(f"{coarser.label} must keep longer than {finer.label}")
        if finer.keep_seconds < 2 * coarser.resolution_seconds:
            raise fail(
                f"{finer.label} must keep at least two buckets of {coarser.label} "
                "so that its rows are rolled up before they are purged"
            )
    return tuple(tiers)
