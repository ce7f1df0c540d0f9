"""`POST /v2/repository/index` → each model version's state and load-error reason.

Place in the flow: the poll (`poll.py`) fetches the index each poll and hands the decoded JSON
to `parse_index`; the model bookkeeping (`models.py`) takes each model's state and reason from
it. Pure, no I/O; a wrong shape is a `ShapeError`. This is where Triton's state words become
`model.ModelState` (`model_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpuwatch import model
from gpuwatch.collect.triton import parse_shape as shape
from gpuwatch.collect.triton.parse_shape import ShapeError


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One row of `POST /v2/repository/index`."""

    name: str
    version: str | None
    """None for a model in the repository that was never loaded (explicit model control)."""
    state: model.ModelState | str | None
    """A known state, or a newer Triton's word as it wrote it; None when the row has none."""
    reason: str | None


def parse_index(doc: Any) -> tuple[IndexEntry, ...]:
    if not isinstance(doc, list):
        raise ShapeError(f"expected a list of models, got {shape.kind(doc)}")
    out = []
    for i, row in enumerate(doc):
        if not isinstance(row, dict) or not isinstance(row.get("name"), str) or not row["name"]:
            raise ShapeError(f"[{i}]: expected an object with a name, got {shape.kind(row)}")
        version = row.get("version")
        state = row.get("state")
        reason = row.get("reason")
        out.append(
            IndexEntry(
                row["name"],
                version if isinstance(version, str) and version else None,
                model_state(state) if isinstance(state, str) and state else None,
                _one_line(reason) if isinstance(reason, str) and reason else None,
            )
        )
    return tuple(out)


def model_state(word: str) -> model.ModelState | str:
    """Triton's word for a model's state → the `ModelState` it names (in any case), or the
    word itself when it names none gpuwatch knows (a newer Triton's state is kept, not lost)."""
    try:
        return model.ModelState(word.upper())
    except ValueError:
        return word


def _one_line(text: str, width: int = 300) -> str:
    """Triton's load errors carry a Python traceback: keep the first line that says something."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    first = lines[0] if lines else text.strip()
    return first if len(first) <= width else first[: width - 1] + "…"
