"""Findings as words: the "needs a look" block, a model's or a GPU's findings, their counts.

Place in the flow: the snapshot's findings (judged by gpuwatch/assess/) → **text** → every
face that prints them (`snapshot`, `events`, the TUI). Reads only the data model: no face here
decides what needs a look, it only says what the assessment found.
"""

from __future__ import annotations

from collections.abc import Iterable

from gpuwatch import model
from gpuwatch.model import SubjectKind


def of_model(findings: Iterable[model.Finding], m: model.ModelStats) -> list[model.Finding]:
    return [
        f
        for f in findings
        if f.subject.kind is SubjectKind.MODEL
        and f.subject.server == m.server
        and f.subject.model == m.name
        and f.subject.version == m.version
    ]


def of_gpu(findings: Iterable[model.Finding], index: int) -> list[model.Finding]:
    return [f for f in findings if f.subject.kind is SubjectKind.GPU and f.subject.gpu_index == index]


def counts(findings: Iterable[model.Finding]) -> dict[model.Severity, int]:
    """How many findings of each severity, every severity present (0 where none)."""
    out = dict.fromkeys(model.Severity, 0)
    for f in findings:
        out[f.severity] += 1
    return out


def needs_a_look(findings: Iterable[model.Finding], width: int) -> list[str]:
    """The "Needs a look" block: one line per finding, most severe first, its advice under it."""
    rows = list(findings)
    if not rows:
        return []
    out = [f"Needs a look ({len(rows)})"]
    for f in rows:
        out.append(_clip(f"! {f.severity.value:<8} {f.subject.label()}: {f.message}", width))
        if f.advice:
            out.append(_clip(f"  {'':<8} → {f.advice}", width))
    return out


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
