"""The assessment: one judgement of what needs a look, shown by every face.

Place in the flow: engine builds a snapshot → **assess** → the snapshot's `findings` → store
(events), /metrics, JSON API, `snapshot`, TUI. `kinds` declares every kind of finding with its
severity, thresholds and hold times (docs/findings.md), `rules` turns one snapshot into the
conditions that hold now, `stage` applies the hold times against the previous state.
"""

from gpuwatch.assess.kinds import RULES, KindRule, rule
from gpuwatch.assess.stage import AssessState, assess

__all__ = ["RULES", "AssessState", "KindRule", "assess", "rule"]
