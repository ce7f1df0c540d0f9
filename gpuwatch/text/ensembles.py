"""The order every face lists Triton models in: each ensemble followed by its steps, as a tree.

An ensemble's statistics already include what its steps did (and Triton counts a step's
failures in the ensemble too), so its steps are shown under it, never summed with it, and a
step that belongs to an ensemble is not listed again at the top level. Pure: data model in,
rows out; used by `gpuwatch snapshot` (report.py) and the dashboard's models panel.
"""

from __future__ import annotations

from gpuwatch import model


def model_tree(
    models: tuple[model.ModelStats, ...] | list[model.ModelStats],
) -> list[tuple[str, model.ModelStats]]:
    """(prefix, model) rows: top-level models by name, each ensemble followed by its steps,
    prefixed "├ " and "└ "."""
    ordered = sorted(models, key=lambda m: (m.name, _version_key(m.version)))
    by_name: dict[str, model.ModelStats] = {}
    for m in ordered:
        by_name[m.name] = m  # a step runs its newest version (version -1 in the ensemble)
    steps = {step for m in models for step in m.ensemble_steps if step in by_name}
    rows: list[tuple[str, model.ModelStats]] = []
    for m in ordered:
        if m.name in steps:
            continue
        rows.append(("", m))
        present = [by_name[step] for step in m.ensemble_steps if step in by_name]
        for i, step in enumerate(present):
            rows.append(("└ " if i == len(present) - 1 else "├ ", step))
    return rows


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)
