"""docs/metrics.md, written from the catalog: every exported figure's name, type, labels, unit
and meaning.

Place in the flow: `catalog.index.ALL` → **render_doc** → docs/metrics.md; a test keeps the
file equal to what this writes, so the documentation cannot drift from the exporter.
Regenerate with `python -m gpuwatch.catalog.doc > docs/metrics.md`.
"""

from __future__ import annotations

from gpuwatch.catalog.index import ALL


def render_doc() -> str:
    lines = [
        "# gpuwatch metrics",
        "",
        "`gpuwatch daemon` serves these at `/metrics` (Prometheus text format 0.0.4) on",
        "`127.0.0.1:9477` by default. Every figure comes from the engine's latest snapshot: a scrape",
        "never calls NVML or Triton. A figure the source cannot give is absent, never 0.",
        "",
        "Labels: `gpu` (NVML index) and `uuid` on GPU families; `server`, `model`, `version` on",
        "Triton families; `collector` names an engine job (`nvml`, `nvml_slow`, `nvml_events`,",
        "`triton:NAME`, …). No label carries a command line, a URL or a secret. On a Kubernetes",
        "node (`[kubernetes]`) the GPU families also carry `namespace`, `pod` and `container` (as",
        "dcgm-exporter names them) when exactly one container holds the GPU, and the process",
        "families `namespace` and `pod`; labels written *in italics* below are left out where not",
        "known, and are not part of a history series' key.",
        "",
        "Names match the history's series (`gpuwatch query SERIES`, `/api/v1/history`) with the",
        "`gpuwatch_` prefix, except that cumulative `_count` fields are `_total` counters, energy is",
        "`_joules_total` and clocks are in hertz; the *series* column names the history series.",
        "Counters whose comment says *since the daemon started* restart at 0 with the daemon;",
        "Prometheus's `rate()` and `increase()` handle that.",
        "",
        "This file is generated from the figure catalog, `gpuwatch/catalog/` (a test keeps them equal).",
        "",
        "| name | type | labels | unit | series | meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in ALL:
        context = [f"*`{label}`*" for label in f.entity.context_labels]
        labels = ", ".join([f"`{label}`" for label in f.labels] + context) or "—"
        series = f"`{f.name}`" if f.stored_scale is not None else "—"
        text = f.help.replace("|", "\\|")
        lines.append(f"| `{f.metric}` | {f.metric_type} | {labels} | {f.unit or '—'} | {series} | {text} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m gpuwatch.catalog.doc > docs/metrics.md
    import sys

    sys.stdout.write(render_doc())
