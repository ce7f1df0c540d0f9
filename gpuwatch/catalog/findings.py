"""The findings' figure: one `gpuwatch_finding` series per active finding.

Place in the flow: the snapshot's findings (judged by gpuwatch/assess/) → this declaration →
/metrics and docs/metrics.md. A dashboard or alert can count and list what gpuwatch found
(`count by (severity) (gpuwatch_finding)`) without judging the figures again.
"""

from __future__ import annotations

from collections.abc import Iterator

from gpuwatch import model
from gpuwatch.catalog import entities as e
from gpuwatch.catalog.figures import Labels, labelled


def _rows(s: model.Snapshot) -> Iterator[tuple[Labels, int]]:
    for f in s.findings:
        sub = f.subject
        gpu = "" if sub.gpu_index is None else str(sub.gpu_index)
        yield (
            (
                f.kind.value,
                f.severity.value,
                sub.kind.value,
                gpu,
                sub.server or "",
                sub.model or "",
                sub.version or "",
                sub.collector or "",
            ),
            1,
        )


FIGURES = (
    labelled(
        "finding",
        e.NODE,
        ("kind", "severity", "subject", "gpu", "server", "model", "version", "collector"),
        _rows,
        "1 per active finding (docs/findings.md): its kind, severity (critical, warning, info) "
        "and subject (node, gpu, server, model, collector, store), with the subject's own labels.",
    ),
)
