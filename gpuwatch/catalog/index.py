"""Every figure, in the order /metrics exports them, and the views the faces read.

Place in the flow: the declarations (`catalog.daemon`, `.gpu`, `.mig`, `.processes`, `.triton`) are
collected here; `serve.metrics` renders `ALL`, `series` and the store read `HISTORY` (the
figures the history keeps) by entity kind, and `catalog.doc` writes docs/metrics.md from `ALL`.
A new figure is one declaration in its entity group's module: nothing here names a figure.
"""

from __future__ import annotations

from typing import Any

from gpuwatch.catalog import daemon, findings, gpu, mig, nvlink, processes, triton
from gpuwatch.catalog.entities import EntityKind
from gpuwatch.catalog.figures import AnyFigure, Figure

ALL: tuple[AnyFigure, ...] = (
    daemon.FIGURES
    + findings.FIGURES
    + gpu.FIGURES
    + mig.FIGURES
    + nvlink.FIGURES
    + processes.FIGURES
    + triton.FIGURES
)
BY_NAME: dict[str, AnyFigure] = {f.name: f for f in ALL}
BY_METRIC: dict[str, AnyFigure] = {f.metric: f for f in ALL}

_KEPT: tuple[Figure[Any], ...] = tuple(f for f in ALL if isinstance(f, Figure) and f.stored_scale is not None)

HISTORY_KINDS: tuple[EntityKind[Any], ...] = tuple(
    sorted({f.entity.name: f.entity for f in _KEPT}.values(), key=lambda kind: kind.name)
)
"""The entity kinds the history keeps (gpu, mig, model, server), in name order: each has its own
tables, and moving a declaration must not reorder them."""

HISTORY_BY_KIND: dict[str, tuple[Figure[Any], ...]] = {
    kind.name: tuple(f for f in _KEPT if f.entity is kind) for kind in HISTORY_KINDS
}
"""Per kind, its kept figures in catalog order: the order of its table's columns."""

HISTORY: tuple[Figure[Any], ...] = tuple(f for kind in HISTORY_KINDS for f in HISTORY_BY_KIND[kind.name])
"""The figures the history keeps, by kind: each is a series (`gpuwatch query NAME`) and a store column."""
