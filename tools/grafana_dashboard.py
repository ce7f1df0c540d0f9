"""The Grafana dashboard shipped in grafana/gpuwatch.json, written with grafana-foundation-sdk.

    python -m tools.grafana_dashboard > grafana/gpuwatch.json

Place in the flow: a tool beside the project, not part of the daemon. It reads nothing at run
time: every panel's PromQL is written here over the families of docs/metrics.md and the
recording rules of prometheus/gpuwatch.rules.yml, and tests/test_grafana_dashboard.py holds the
shipped file equal to what this prints, checks it against the SDK's model and runs every panel
and variable query against a real Prometheus scraping demo daemons.

Rows: the fleet (nodes, GPUs, power against cap, findings by severity and a node table), one
GPU (utilization, GPM tensor/DRAM/SM, memory, temperature, power, clocks and clock-event
reasons), Triton per model (requests and failures, queue:compute, batch fill, batch-size
percentiles, latency), with XIDs and findings as annotations. Variables: the Prometheus data
source, `node` (the scrape target's `instance`), `gpu`, `server`, `model`, chained in that order.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

UID = "gpuwatch-overview"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

NODE = 'instance=~"$node"'
GPU = f'{NODE}, gpu=~"$gpu"'
MODEL = f'{NODE}, server=~"$server", model=~"$model"'
RATE = "$__rate_interval"
BY_MODEL = "instance, server, model"


def _query(expr: str, legend: str = "", *, ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    if instant:
        q = q.instant().format(PromQueryFormat.TABLE)
    return q


def _targets(panel: Any, queries: list[tuple[str, str]]) -> Any:
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, ref=chr(ord("A") + i)))
    return panel


def _series(title: str, unit: str, queries: list[tuple[str, str]], *, width: int = 12) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(width)
    result: timeseries.Panel = _targets(panel, queries)
    return result


def _stat(title: str, expr: str, unit: str = "none", *, width: int = 4) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .height(4)
        .span(width)
        .with_target(_query(expr, instant=False))
    )


def _variable(name: str, label: str, query: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def _fleet(d: db.Dashboard) -> db.Dashboard:
    d = d.with_row(db.Row("Fleet"))
    d = d.with_panel(_stat("Nodes", f"count(gpuwatch_build_info{{{NODE}}})"))
    d = d.with_panel(_stat("Nodes not scraped", f"count(up{{{NODE}}} == 0) or vector(0)"))
    d = d.with_panel(_stat("GPUs", f"sum(gpuwatch_gpus{{{NODE}}})"))
    d = d.with_panel(_stat("GPUs up", f"sum(instance:gpuwatch_gpus_up:sum{{{NODE}}})"))
    d = d.with_panel(
        _stat(
            "Power against cap",
            f"sum(gpuwatch_gpu_power_watts{{{NODE}}}) / sum(gpuwatch_gpu_power_limit_watts{{{NODE}}})",
            "percentunit",
        )
    )
    d = d.with_panel(_stat("Findings", f"count(gpuwatch_finding{{{NODE}}} == 1) or vector(0)"))
    d = d.with_panel(
        _series(
            "Findings by severity",
            "none",
            [(f"sum by (severity) (gpuwatch_finding{{{NODE}}})", "{{severity}}")],
        )
    )
    d = d.with_panel(
        _series(
            "Power against cap, by node",
            "watt",
            [
                (f"sum by (instance) (gpuwatch_gpu_power_watts{{{NODE}}})", "{{instance}} draw"),
                (f"sum by (instance) (gpuwatch_gpu_power_limit_watts{{{NODE}}})", "{{instance}} cap"),
            ],
        )
    )
    nodes = (
        table.Panel()
        .title("Nodes")
        .datasource(DATASOURCE)
        .height(8)
        .span(24)
        .with_target(_query(f"sum by (instance) (gpuwatch_gpus{{{NODE}}})", ref="GPUs", instant=True))
        .with_target(
            _query(
                f"max by (instance) (gpuwatch_gpu_utilization_ratio{{{NODE}}})", ref="Busiest", instant=True
            )
        )
        .with_target(
            _query(
                f"max by (instance) (gpuwatch_gpu_temperature_celsius{{{NODE}}})", ref="Hottest", instant=True
            )
        )
        .with_target(
            _query(
                f"sum by (instance) (gpuwatch_gpu_power_watts{{{NODE}}})"
                f" / sum by (instance) (gpuwatch_gpu_power_limit_watts{{{NODE}}})",
                ref="Power",
                instant=True,
            )
        )
        .with_target(
            _query(f"sum by (instance) (gpuwatch_model_up{{{NODE}}})", ref="Models ready", instant=True)
        )
        .with_target(
            _query(
                f"sum by (instance) (gpuwatch_finding{{{NODE}}})"
                f" or sum by (instance) (gpuwatch_build_info{{{NODE}}}) * 0",
                ref="Findings",
                instant=True,
            )
        )
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
    )
    d = d.with_panel(nodes)
    findings = (
        table.Panel()
        .title("Findings now")
        .datasource(DATASOURCE)
        .height(8)
        .span(24)
        .with_target(_query(f"gpuwatch_finding{{{NODE}}} == 1", instant=True))
    )
    return d.with_panel(findings)


def _gpu(d: db.Dashboard) -> db.Dashboard:
    d = d.with_row(db.Row("GPU"))
    legend = "{{instance}} GPU {{gpu}}"
    d = d.with_panel(
        _series("Utilization (NVML)", "percentunit", [(f"gpuwatch_gpu_utilization_ratio{{{GPU}}}", legend)])
    )
    d = d.with_panel(
        _series(
            "GPM activity",
            "percentunit",
            [
                (f"gpuwatch_gpu_tensor_activity_ratio{{{GPU}}}", legend + " tensor"),
                (f"gpuwatch_gpu_dram_bandwidth_ratio{{{GPU}}}", legend + " DRAM"),
                (f"gpuwatch_gpu_sm_activity_ratio{{{GPU}}}", legend + " SM active"),
                (f"gpuwatch_gpu_sm_occupancy_ratio{{{GPU}}}", legend + " SM occupancy"),
            ],
        )
    )
    d = d.with_panel(
        _series(
            "Memory",
            "bytes",
            [
                (f"gpuwatch_gpu_memory_used_bytes{{{GPU}}}", legend + " used"),
                (f"gpuwatch_gpu_memory_total_bytes{{{GPU}}}", legend + " total"),
            ],
        )
    )
    d = d.with_panel(
        _series(
            "Temperature",
            "celsius",
            [
                (f"gpuwatch_gpu_temperature_celsius{{{GPU}}}", legend),
                (f"gpuwatch_gpu_memory_temperature_celsius{{{GPU}}}", legend + " HBM"),
            ],
        )
    )
    d = d.with_panel(
        _series(
            "Power",
            "watt",
            [
                (f"gpuwatch_gpu_power_watts{{{GPU}}}", legend),
                (f"gpuwatch_gpu_power_limit_watts{{{GPU}}}", legend + " limit"),
            ],
        )
    )
    d = d.with_panel(_series("SM clock", "hertz", [(f"gpuwatch_gpu_sm_clock_hertz{{{GPU}}}", legend)]))
    reasons = (
        statetimeline.Panel()
        .title("Clock-event reasons")
        .datasource(DATASOURCE)
        .height(8)
        .span(24)
        .with_target(
            _query(
                'label_replace({__name__=~"gpuwatch_gpu_clock_event_(sw|hw|sync)_.+", '
                f'{GPU}}}, "reason", "$1", "__name__", "gpuwatch_gpu_clock_event_(.+)")',
                "{{instance}} GPU {{gpu}} {{reason}}",
            )
        )
    )
    return d.with_panel(reasons)


def _triton(d: db.Dashboard) -> db.Dashboard:
    d = d.with_row(db.Row("Triton models"))
    legend = "{{instance}} {{server}} {{model}}"

    def rate(family: str) -> str:
        return f"sum by ({BY_MODEL}) (rate({family}{{{MODEL}}}[{RATE}]))"

    d = d.with_panel(
        _series(
            "Requests and failures",
            "reqps",
            [
                (rate("gpuwatch_model_request_success_total"), legend + " ok"),
                (rate("gpuwatch_model_request_failure_total"), legend + " failed"),
            ],
        )
    )
    d = d.with_panel(
        _series(
            "Failure share (5 min)",
            "percentunit",
            [
                (
                    f"sum by ({BY_MODEL}) "
                    f"(model:gpuwatch_model_request_failures_per_requests:ratio_rate5m{{{MODEL}}})",
                    legend,
                )
            ],
        )
    )
    compute = " + ".join(
        rate(f"gpuwatch_model_compute_{part}_seconds_total") for part in ("input", "infer", "output")
    )
    d = d.with_panel(
        _series(
            "Queue : compute",
            "none",
            [(f"{rate('gpuwatch_model_queue_seconds_total')} / ({compute})", legend)],
        )
    )
    d = d.with_panel(
        _series(
            "Batch fill",
            "percentunit",
            [
                (
                    f"{rate('gpuwatch_model_inference_total')} / {rate('gpuwatch_model_execution_total')}"
                    f" / max by ({BY_MODEL}) (gpuwatch_model_max_batch_size{{{MODEL}}} > 0)",
                    legend,
                )
            ],
        )
    )
    d = d.with_panel(
        _series(
            "Executed batch size percentiles",
            "none",
            [
                (
                    f"histogram_quantile({q}, sum by ({BY_MODEL}, le) "
                    f"(rate(gpuwatch_model_batch_size_bucket{{{MODEL}}}[{RATE}])))",
                    f"{legend} p{int(q * 100)}",
                )
                for q in (0.5, 0.9, 0.99)
            ],
        )
    )
    ok = rate("gpuwatch_model_request_success_total")
    d = d.with_panel(
        _series(
            "Latency per request (mean: Triton serves no percentiles of it)",
            "s",
            [
                (
                    f"{rate('gpuwatch_model_request_seconds_total')} / {ok}",
                    legend + " request",
                ),
                (
                    f"{rate('gpuwatch_model_queue_seconds_total')} / {ok}",
                    legend + " queue",
                ),
            ],
        )
    )
    d = d.with_panel(
        _series("Pending requests", "none", [(f"gpuwatch_model_pending_requests{{{MODEL}}}", legend)])
    )
    d = d.with_panel(_series("Ready", "none", [(f"gpuwatch_model_up{{{MODEL}}}", legend)]))
    return d


def build() -> dm.Dashboard:
    d = (
        db.Dashboard("gpuwatch")
        .uid(UID)
        .description("GPUs, findings and Triton models of the nodes gpuwatch daemons serve")
        .tags(["gpuwatch", "gpu", "triton"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(_variable("node", "Node", "label_values(gpuwatch_build_info, instance)"))
        .with_variable(_variable("gpu", "GPU", f"label_values(gpuwatch_gpu_info{{{NODE}}}, gpu)"))
        .with_variable(_variable("server", "Server", f"label_values(gpuwatch_triton_up{{{NODE}}}, server)"))
        .with_variable(
            _variable(
                "model", "Model", f'label_values(gpuwatch_model_up{{{NODE}, server=~"$server"}}, model)'
            )
        )
        .annotation(
            db.AnnotationQuery()
            .name("XIDs")
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color("red")
            .expr(f"sum by (instance, gpu, xid) (increase(gpuwatch_gpu_xid_errors_total{{{NODE}}}[2m])) > 0")
        )
        .annotation(
            db.AnnotationQuery()
            .name("Findings")
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color("orange")
            .expr(f"gpuwatch_finding{{{NODE}}} == 1")
        )
    )
    model = _triton(_gpu(_fleet(d))).build()
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number  # Grafana keys a panel's links, state and edits by its id
    return model


def render() -> str:
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m tools.grafana_dashboard > grafana/gpuwatch.json
    sys.stdout.write(render())
