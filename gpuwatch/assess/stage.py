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

from gpuwatch import model
from gpuwatch.assess.kinds import RULES
from gpuwatch.assess.rules import Observation, observe

Key = tuple[model.FindingKind, model.Subject]

_ORDER = {model.Severity.CRITICAL: 0, model.Severity.WARNING: 1, model.Severity.INFO: 2}


@dataclass(frozen=True, slots=True)
class Track:
    """One condition being watched: pending onset (`active` false) or a finding."""

    first_seen: float
    last_seen: float
    active: bool
    observation: Observation


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
    began: list[model.Finding] = []
    ended: list[model.Finding] = []
    held: set[Key] = set()
    for obs in observe(snapshot):
        key = (obs.kind, obs.subject)
        if key in held:  # the same condition twice in one snapshot (two XIDs): one finding
            continue
        held.add(key)
        rule = RULES[obs.kind]
        before = old.get(key)
        first = before.first_seen if before is not None else now
        active = immediate or (before is not None and before.active) or now - first >= rule.onset_seconds
        track = Track(first, now, active, obs)
        tracks[key] = track
        if active and not (before is not None and before.active):
            began.append(_finding(track))
    for key, before in old.items():
        if key in held or not before.active:
            continue  # held again, or pending onset and broken off: forgotten
        if now - before.last_seen < RULES[key[0]].clear_seconds:
            tracks[key] = before
        else:
            ended.append(_finding(before))
    findings = sorted(
        (_finding(t) for t in tracks.values() if t.active),
        key=lambda f: (_ORDER[f.severity], f.since, f.kind.value),
    )
    return AssessState(tracks, tuple(findings), tuple(began), tuple(ended))


def _finding(track: Track) -> model.Finding:
    obs = track.observation
    return model.Finding(
        kind=obs.kind,
        severity=RULES[obs.kind].severity,
        subject=obs.subject,
        since=track.first_seen,
        words=obs.words,
        message=obs.message,
        evidence=obs.evidence,
        advice=obs.advice,
    )
