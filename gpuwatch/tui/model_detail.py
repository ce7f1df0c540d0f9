"""`ModelDetail`: everything about the model under the cursor that its row has no room for.

Place in the flow: the node screen sets `stats` (from `ModelPanel.Highlighted` and each
refresh) and `history` (the model's recent figures, fetched in a worker). Left: the config
that shapes batching (max batch, preferred sizes, max queue delay, instances and their GPUs),
where the latency goes (queue against compute; Triton's own p50/p90/p99 where it serves its
latency summaries, else how to turn them on), failures by reason (not an ensemble's: Triton
counts each failed step in it twice, so its steps' rows have them), the assessment's diagnosis
(each finding of the model with its evidence and advice, `found`) and sparklines of the last
minutes. Right: the batch sizes executed in the last interval, as bars.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static

from gpuwatch import model
from gpuwatch.text import fmt
from gpuwatch.tui.palette import Palette

MODEL_SPARK_FIGURES: tuple[tuple[str, str], ...] = (
    ("model_requests_per_second", "req/s"),
    ("model_failures_per_second", "fail/s"),
    ("model_average_queue_seconds", "queue"),
)
"""Series shown as sparklines in the detail pane: (series name, label)."""

HISTOGRAM_BAR_WIDTH = 18


def describe(
    m: model.ModelStats,
    pal: Palette,
    found: tuple[model.Finding, ...] = (),
    processes: tuple[model.ProcessSample, ...] = (),
) -> Text:
    """Config, the processes doing its GPU work, latency split, failures and diagnosis of one
    model version, as wrapped lines."""
    text = Text()
    text.append(f"{m.name} v{m.version}", style="bold")
    text.append(f" on {m.server} · {m.state or fmt.MISSING} · {m.backend or m.platform or fmt.MISSING}")
    if m.state_reason:
        text.append(f"\n! {m.state_reason}", style=pal.warn)
    preferred = ", ".join(str(b) for b in m.preferred_batch_sizes) or fmt.MISSING
    gpus = ", ".join(str(g) for g in m.gpu_indexes) or fmt.MISSING
    batching = "no batching" if m.max_batch_size == 0 else f"max batch {fmt.number(m.max_batch_size)}"
    if m.max_batch_size and m.dynamic_batching is False:
        batching += " · no dynamic batching"
    text.append(
        f"\n{batching} · preferred {preferred} · max queue delay "
        f"{fmt.seconds(m.max_queue_delay_seconds)} · {fmt.number(m.instance_count)} × "
        f"{m.instance_kind or 'instance'} on GPU {gpus}"
    )
    if m.ensemble_steps:
        text.append(f"\nensemble: {' → '.join(m.ensemble_steps)}")
    served = serving(m, processes)
    if served:
        on = sorted({p.gpu_index for p in served})
        memory = sum(p.used_memory_bytes or 0 for p in served)
        pids = ", ".join(str(p) for p in sorted({p.pid for p in served}))
        text.append(f"\nprocesses {pids} · GPU memory {fmt.size(memory)} on GPU {', '.join(map(str, on))}")
    i = m.interval
    if i is None:
        text.append("\nno rates yet: they need two polls", style=pal.dim)
        return text
    if i.reset:
        text.append(
            f"\ncounters reset ({i.reset_reason or 'reload'}): no rates this interval", style=pal.warn
        )
        return text
    text.append(
        f"\nrequest {fmt.seconds(i.average_request_seconds)} = queue "
        f"{fmt.seconds(i.average_queue_seconds)} + compute {fmt.seconds(i.average_compute_infer_seconds)}"
        f" · queue share {fmt.percent(i.queue_share_ratio)} · mean depth {fmt.number(i.mean_queue_depth, 1)}"
    )
    if m.latency_percentiles is not None:
        percentiles(text, m.latency_percentiles, pal)
    if i.failures_per_second and m.ensemble_steps:
        # Triton counts each failed step in the ensemble's own statistics too (docs/triton.md):
        # its figure is not the ensemble's failures, so it is not shown, here as in the table.
        text.append(
            "\nfailures — : Triton counts each failed step twice in an ensemble; see its steps",
            style=pal.dim,
        )
    elif i.failures_per_second:
        reasons = ", ".join(
            f"{reason} {fmt.per_second(rate)}/s"
            for reason, rate in sorted(i.failures_per_second_by_reason.items())
            if rate
        )
        text.append(f"\nfailures {fmt.per_second(i.failures_per_second)}/s")
        if reasons:
            text.append(f": {reasons}")
    diagnose(text, found, pal)
    if m.latency_percentiles is None:
        percentiles(text, None, pal)  # last: how to turn them on matters least
    return text


def serving(m: model.ModelStats, processes: tuple[model.ProcessSample, ...]) -> list[model.ProcessSample]:
    """The processes of the model's server that run its instances (python backend stubs), one
    sample per process and GPU."""
    return [p for p in processes if p.triton_server == m.server and p.triton_model == m.name]


PERCENTILES_OFF = "p50/p90/p99: tritonserver --metrics-config summary_latencies=true"


def percentiles(text: Text, p: model.LatencyPercentiles | None, pal: Palette) -> None:
    """ "p50/p90/p99 request 3.5 ms/6.1 ms/12 ms · queue … · compute …" from Triton's summaries
    (its sliding window, a minute by default); where the server serves none, how to get them."""
    if p is None:
        text.append(f"\n{PERCENTILES_OFF}", style=pal.dim)
        return
    stages = (
        ("request", (p.request_p50_seconds, p.request_p90_seconds, p.request_p99_seconds)),
        ("queue", (p.queue_p50_seconds, p.queue_p90_seconds, p.queue_p99_seconds)),
        ("compute", (p.compute_infer_p50_seconds, p.compute_infer_p90_seconds, p.compute_infer_p99_seconds)),
    )
    parts = [f"{stage} {'/'.join(fmt.seconds(v) for v in values)}" for stage, values in stages]
    text.append(f"\np50/p90/p99 {' · '.join(parts)}")


def diagnose(text: Text, found: tuple[model.Finding, ...], pal: Palette) -> None:
    """The model's findings: "! stalled: 5 requests pending, none finishing → advice"; or that
    the model batches well and does not queue when there are none."""
    if not found:
        text.append("\ndiagnosis: nothing needs a look", style=pal.dim)
        return
    for f in found:
        style = pal.fault if f.severity is model.Severity.CRITICAL else pal.warn
        said = f.message if f.message.startswith(f.words) else f"{f.words}: {f.message}"
        text.append(f"\n! {f.severity.value}", style=style)
        text.append(f" {said}")
        if f.advice:
            text.append(f"\n  → {f.advice}")


def histogram(m: model.ModelStats, pal: Palette) -> Text:
    """Executions per batch size in the last interval; preferred sizes starred."""
    counts = m.interval.batch_size_histogram if m.interval else {}
    text = Text("batch sizes run (* preferred)\n", style="bold")
    if not counts:
        text.append("none this interval", style=pal.dim)
        return text
    peak = max(counts.values()) or 1
    preferred = set(m.preferred_batch_sizes)
    for n, size in enumerate(sorted(counts)):
        count = counts[size]
        width = max(1 if count else 0, round(count / peak * HISTOGRAM_BAR_WIDTH))
        if n:
            text.append("\n")
        text.append(f"{size:>4}{'*' if size in preferred else ' '} ")
        text.append("█" * width, style=pal.bar)
        text.append(f" {count}")
    return text


def sparks(history: dict[str, list[float | None]], pal: Palette) -> Text:
    """One line per figure: label, sparkline, latest value."""
    text = Text()
    for series, label in MODEL_SPARK_FIGURES:
        values = history.get(series)
        if not values:
            continue
        known = [v for v in values if v is not None]
        text.append(f"\n{label:<6} ")
        text.append(fmt.spark(values, 0.0, max(known) if known else 1.0), style=pal.bar)
        text.append(f" {fmt.series_value(series, known[-1]) if known else fmt.MISSING}")
    return text


class ModelDetail(Horizontal):
    DEFAULT_CSS = """
    ModelDetail {
        height: auto;
        max-height: 13;
        border-top: solid $primary;
    }
    ModelDetail > #model-info {
        width: 1fr;
        padding: 0 1;
    }
    ModelDetail > #model-histogram {
        width: 32;
        padding: 0 1;
    }
    """

    stats: reactive[model.ModelStats | None] = reactive(None, init=False)
    found: reactive[tuple[model.Finding, ...]] = reactive((), init=False)
    """The findings of `stats` (set before it by the node screen)."""
    processes: reactive[tuple[model.ProcessSample, ...]] = reactive((), init=False)
    """The snapshot's processes (set before `stats`): those running the model's instances."""
    history: reactive[dict[str, list[float | None]]] = reactive(dict, init=False)

    def __init__(self, palette: Palette, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette

    def compose(self) -> ComposeResult:
        yield Static(id="model-info")
        yield Static(id="model-histogram")

    def on_mount(self) -> None:
        self._draw()

    def watch_stats(self) -> None:
        self._draw()

    def watch_history(self) -> None:
        self._draw()

    def watch_found(self) -> None:
        self._draw()

    def _draw(self) -> None:
        info = self.query_one("#model-info", Static)
        bars = self.query_one("#model-histogram", Static)
        m = self.stats
        if m is None:
            info.update("Select a model to see its config, batch sizes and history.")
            bars.update("")
            return
        text = describe(m, self.palette, self.found, self.processes)
        if self.history:
            text.append_text(sparks(self.history, self.palette))
        info.update(text)
        bars.update(histogram(m, self.palette))
