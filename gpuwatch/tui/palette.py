"""The few text styles the panels' cells use, taken from the app's theme or monochrome.

Place in the flow: the app builds one `Palette` from its theme; panels pass it to the cell
builders (`cells.py`). Colour only ever adds to a mark that is already there in text or in a
text attribute: a warning is bold and starts with "!", a fault is in reverse video and says
LOST/HUNG/DOWN. So the monochrome palette (NO_COLOR, --no-color) loses no meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from textual.theme import Theme


@dataclass(frozen=True, slots=True)
class Palette:
    warn: Style
    """Needs a look: power-capped, failing requests, queue dominating latency."""
    fault: Style
    """Broken: a lost or hung GPU, a node down, an unavailable model."""
    dim: Style
    """Secondary: units, idle rows, labels."""
    good: Style
    """Working and busy: a live source, a ready model."""
    bar: Style
    """The filled part of fill bars and sparklines."""
    monochrome: bool = False


def palette_for(theme: Theme, monochrome: bool) -> Palette:
    if monochrome:
        return Palette(
            warn=Style(bold=True),
            fault=Style(bold=True, reverse=True),
            dim=Style(dim=True),
            good=Style(),
            bar=Style(),
            monochrome=True,
        )
    return Palette(
        warn=Style(color=theme.warning or "yellow", bold=True),
        fault=Style(color=theme.error or "red", bold=True, reverse=True),
        dim=Style(dim=True),
        good=Style(color=theme.success or "green"),
        bar=Style(color=theme.accent or theme.primary),
    )
