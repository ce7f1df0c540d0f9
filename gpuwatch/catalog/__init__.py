"""The figure catalog: every figure gpuwatch reads, declared once, and the NVML code tables.

Place in the flow: beside the data model, below every face. `/metrics`, the store's columns,
history, the API's and the CLI's label checks and docs/metrics.md all derive from these
declarations:

- `figures`: what a declaration holds (reader, unit, help, Prometheus name/type/scale, stored
  scale) and the helpers declarations are written with;
- `entities`: the entity kinds (gpu, model, server, process, collector, …) and their labels;
- `reading`: what a figure is read from (a snapshot, and the counts /metrics keeps beside it);
- `daemon`, `gpu`, `processes`, `triton`: the declarations, one module per entity group;
- `index`: all of them in /metrics order, and the figures the history keeps by kind;
- `dcgm`: dcgm-exporter's names for the GPU figures, a table from figure to DCGM field;
- `doc`: docs/metrics.md and docs/dcgm.md; `nvml_codes`: NVML's clock-event reasons and XIDs in words.

It imports only `gpuwatch.model`, itself and the standard library (a test checks), so the TUI
and every face can read it.

Adding a figure is one declaration in its group's tuple, where its /metrics family should come:

    gauge("gpu_power_watts", e.GPU, lambda s: s.power_watts, "Power draw.", unit="watts", stored=THOUSANDTHS)

with `stored=` (one of the precisions in `figures`) only for a figure the history keeps. /metrics,
the store's columns (added to existing databases at start), `gpuwatch query`, `/api/v1/series`
and docs/metrics.md follow from it; regenerate the doc (`python -m gpuwatch.catalog.doc >
docs/metrics.md`) and, where the recorded source gives the value, the golden /metrics file.
tests/test_catalog.py checks that the new figure reached every face.
"""
