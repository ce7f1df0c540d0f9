"""docs/metrics.md, written from the catalog: every exported figure's name, type, labels, unit
and meaning.

Place in the flow: `catalog.index.ALL` → **render_doc** → docs/metrics.md; a test keeps the
file equal to what this writes, so the documentation cannot drift from the exporter.
Regenerate with `python -m gpuwatch.catalog.doc > docs/metrics.md`; docs/dcgm.md, the
dcgm-exporter names (`catalog.dcgm`), with `python -m gpuwatch.catalog.doc dcgm > docs/dcgm.md`.
"""

from __future__ import annotations

from gpuwatch.catalog import dcgm
from gpuwatch.catalog.index import ALL, BY_NAME


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


def render_dcgm_doc() -> str:
    labels = ", ".join(f"`{label}`" for label in dcgm.LABELS)
    lines = [
        "# dcgm-exporter's names",
        "",
        "With `[metrics] dcgm_exporter_names = true` in config.toml, `/metrics` also serves the GPU",
        "figures under the names, units, types and labels of NVIDIA's dcgm-exporter, so that",
        "dashboards and alerts written for it (Grafana dashboard 12239, for one) work against",
        f"gpuwatch unchanged. It is off by default: it adds up to {len(dcgm.FIELDS)} series per GPU.",
        "gpuwatch's own `gpuwatch_*` families are served either way and keep their base units.",
        "",
        f"Labels, in dcgm-exporter's order: {labels}. `device` is `nvidia` and the NVML index",
        "(the device node's minor number on every common setup); `Hostname` is the node's host name;",
        "`DCGM_FI_DRIVER_VERSION` the NVIDIA driver's version. dcgm-exporter adds `GPU_I_ID` and",
        "`GPU_I_PROFILE` to a MIG instance's series and `pod`, `namespace`, `container` from the",
        "kubelet: gpuwatch reads neither MIG instances nor pods yet, so those labels are absent, as",
        "they are from dcgm-exporter on a node without MIG or Kubernetes. A query that groups by",
        "them (`sum by (Hostname, gpu, UUID, GPU_I_ID, GPU_I_PROFILE)`) still works: absent labels",
        "group as empty.",
        "",
        "Units are dcgm-exporter's: MiB for memory, MHz for clocks, W for power, mJ for energy, °C,",
        "percent (0–100) for the `DEV` utilizations and a 0–1 ratio for the `PROF` fields.",
        "`DCGM_FI_DEV_XID_ERRORS` is, as in dcgm-exporter, a gauge holding the code of the GPU's",
        "latest XID (0 before the first since the daemon started); the counts by code are",
        "`gpuwatch_gpu_xid_errors_total`.",
        "",
        "*Closeness*: **same** — the same NVML reading DCGM makes, so the values agree;",
        "**close** — the same quantity read another way (another API or averaging);",
        "**stand-in** — DCGM's profiling (`PROF`) fields come from its profiling module, which",
        "gpuwatch does not use: the GPM metrics NVML gives on Hopper and later stand in for them.",
        "They count the same hardware activity over a different sampling window; the two have not",
        "been measured side by side. They are absent on GPUs without GPM (before Hopper).",
        "",
        "`promtool check metrics` finds nothing in gpuwatch's own families; about these it repeats",
        "what it says about dcgm-exporter itself (the camelCase `modelName` label, counters without",
        "`_total`, `DCGM_FI_DEV_PCIE_REPLAY_COUNTER`'s name), kept because dashboards match these",
        "names exactly.",
        "",
        "This file is generated from `gpuwatch/catalog/dcgm.py` (a test keeps them equal).",
        "",
        "| name | DCGM field | type | unit | from gpuwatch's | closeness | note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in dcgm.FIELDS:
        base = BY_NAME[row.figure].metric
        note = row.note.replace("|", "\\|") or "—"
        lines.append(
            f"| `{row.name}` | {row.field_id} | {row.metric_type} | {row.unit or '—'} | `{base}` "
            f"| {row.closeness} | {note} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m gpuwatch.catalog.doc [dcgm] > docs/metrics.md (docs/dcgm.md)
    import sys

    sys.stdout.write(render_dcgm_doc() if sys.argv[1:] == ["dcgm"] else render_doc())
