"""The hold times: this snapshot's conditions and the previous state → the findings now.

Place in the flow: `rules.observe` (what holds now) → **stage** → `Snapshot.findings`, and the
findings that began or ended at this tick, which the engine records as events. Pure: the
caller passes the clock's `now` and keeps the returned state for the next call.

A condition begins to be tracked the first time it holds; its finding begins once it has held
without a break for its kind's `onset_seconds` (at once with `immediate`, for one-shot
commands that see a single window), and ends once the condition has been clear for
`clear_seconds`, keeping its last evidence meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from gpuwatch import model
from gpuwatch.assess.kinds import RULES
from gpuwatch.assess.rules import Observation, observe

Key = tuple[model.FindingKind, model.SubjectKind, int | None, str | None, str | None, str | None, str | None]
"""The kind and the subject's fields, flat: a tuple of plain values hashes and compares in C,
where a `Subject` (a dataclass) would run its own `__hash__` and `__eq__` at every look-up."""

_ORDER = {model.Severity.CRITICAL: 0, model.Severity.WARNING: 1, model.Severity.INFO: 2}


class Track(NamedTuple):
    """One condition being watched: pending onset (`active` false) or a finding. A named
    tuple: one is made per condition at every tick, and a tuple is made in C."""

    first_seen: float
    last_seen: float
    active: bool
    observation: Observation
    finding: model.Finding | None = None
    """The finding it makes, while `active`: kept, and reused while the observation is the same."""


@dataclass(frozen=True, slots=True)
class AssessState:
    tracks: dict[Key, Track] = field(default_factory=dict)
    findings: tuple[model.Finding, ...] = ()
    """The active findings, most severe first, then oldest first."""
    began: tuple[model.Finding, ...] = ()
    """Findings that began at this call."""
    ended: tuple[model.Finding, ...] = ()
    """Findings that ended at this call (with the evidence they last had)."""


def assess(
    snapshot: model.Snapshot, previous: AssessState | None, now: float, *, immediate: bool = False
) -> AssessState:
    """The findings of `snapshot` given the state the previous call returned."""
    old = previous.tracks if previous is not None else {}
    tracks: dict[Key, Track] = {}
    current: list[model.Finding] = []
    began: list[model.Finding] = []
    ended: list[model.Finding] = []
    for obs in observe(snapshot):
        sub = obs.subject
        key = (obs.kind, sub.kind, sub.gpu_index, sub.server, sub.model, sub.version, sub.collector)
        if key in tracks:  # the same condition twice in one snapshot (two XIDs): one finding
            continue
        rule = RULES[obs.kind]
        before = old.get(key)
        was_active = before is not None and before.active
        first = before.first_seen if before is not None else now
        active = immediate or was_active or now - first >= rule.onset_seconds
        if not active:
            tracks[key] = Track(first, now, False, obs)
            continue
        if was_active and before is not None and before.finding is not None and before.observation == obs:
            finding = before.finding  # the same words and evidence since the last tick
        else:
            finding = _finding(obs, first)
        tracks[key] = Track(first, now, True, obs, finding)
        current.append(finding)
        if not was_active:
            began.append(finding)
    for key, before in old.items():
        if not before.active or key in tracks:
            continue  # held again, or pending onset and broken off: forgotten
        finding = before.finding or _finding(before.observation, before.first_seen)
        if now - before.last_seen < RULES[key[0]].clear_seconds:
            tracks[key] = before
            current.append(finding)
        else:
            ended.append(finding)
    # Stable, so equal keys keep the order of the tracks; a StrEnum sorts as its value.
    current.sort(key=lambda f: (_ORDER[f.severity], f.since, f.kind))
    return AssessState(tracks, tuple(current), tuple(began), tuple(ended))


def _finding(obs: Observation, since: float) -> model.Finding:
    return model.Finding(
        kind=obs.kind,
        severity=RULES[obs.kind].severity,
        subject=obs.subject,
        since=since,
        words=obs.words,
        message=obs.message,
        evidence=dict(obs.evidence),
        advice=obs.advice,
    )
