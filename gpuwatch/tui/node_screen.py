"""`NodeScreen`: one node's dashboard, and the only place that talks to that node's client.

Place in the flow: Feed → **NodeScreen** → panels. The screen owns the node's `Client`. Its
`Feed` brings snapshots; the screen hands each to the panels that are showing (the others get
it when their tab opens) and fetches, in worker threads, what the panels ask for: sparkline
history, a chart's series and events, the selected model's recent figures, the event list.
Panels never see the client, and nothing here runs a network call on the UI thread.

History is asked for when it can have changed, not on every refresh: the sparklines once per
slot (`sparks.SparkLines` keeps the newest slot live from the snapshots in between), a model's
figures once per step, a chart when its range has moved by a column, events every 30 s or when
a snapshot carries new ones. Against a daemon that is a handful of requests a minute beside
the snapshot each refresh.

When the feed fails, the screen keeps the last snapshot on every panel and the header says
STALE with the reason; the feed keeps asking, and the first answer makes it live again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.lazy import Lazy
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, TabbedContent, TabPane

from gpuwatch import model, series
from gpuwatch.client.protocol import Client, ClientError
from gpuwatch.text import findings
from gpuwatch.tui.buckets import aligned_range, means, to_slots
from gpuwatch.tui.events_panel import EventsPanel
from gpuwatch.tui.feed import Feed
from gpuwatch.tui.gpu_panel import SPARK_SECONDS, Figure, GpuPanel
from gpuwatch.tui.history_view import HistoryRequest, HistoryView, gpu_subject, model_subject
from gpuwatch.tui.model_detail import MODEL_SPARK_FIGURES, ModelDetail
from gpuwatch.tui.model_panel import ModelPanel
from gpuwatch.tui.node_header import NodeHeader
from gpuwatch.tui.palette import Palette
from gpuwatch.tui.process_panel import ProcessPanel
from gpuwatch.tui.sparks import SparkLines, Window, tick_seconds

EVENTS_SECONDS = 86400.0
"""The events panel lists the last day."""
EVENTS_LIMIT = 200
EVENTS_REFETCH_SECONDS = 30.0
XID_FLAG_SECONDS = 3600.0
"""A GPU row says XID n for an hour after the XID."""
MODEL_HISTORY_SECONDS = 300.0
MODEL_HISTORY_POINTS = 20

W = TypeVar("W", bound=Widget)


class NodeScreen(Screen[None]):
    DEFAULT_CSS = """
    NodeScreen TabbedContent {
        height: 1fr;
    }
    NodeScreen TabPane {
        padding: 0;
    }
    NodeScreen #overview-processes {
        height: 1fr;
        min-height: 4;
    }
    NodeScreen #overview-models {
        height: auto;
        max-height: 45%;
    }
    NodeScreen #overview-models > SyncTable {
        height: auto;
    }
    NodeScreen #models-panel {
        height: 1fr;
        min-height: 5;
    }
    NodeScreen #models-box {
        height: 1fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "show_tab('overview')", "Overview", show=False),
        Binding("2", "show_tab('processes')", "Processes", show=False),
        Binding("3", "show_tab('models')", "Models", show=False),
        Binding("4", "show_tab('history')", "History", show=False),
        Binding("5", "show_tab('events')", "Events", show=False),
        Binding("escape", "back", "Cluster"),
    ]

    # repaint=False: the panels repaint what changed; a screen reactive that repaints would
    # redraw the whole screen on every snapshot (a full update each refresh, issue 14).
    snapshot: reactive[model.Snapshot | None] = reactive(None, init=False, repaint=False)
    problem: reactive[str | None] = reactive(None, init=False, repaint=False)

    class SparksFetched(Message):
        def __init__(
            self,
            window: Window,
            at: float,
            tick_seconds: float,
            slots: dict[int, list[series.Point | None]] | None,
        ) -> None:
            super().__init__()
            self.window = window
            self.at = at
            self.tick_seconds = tick_seconds
            self.slots = slots
            """None: the fetch failed."""

    class EventsFetched(Message):
        def __init__(self, events: list[model.Event]) -> None:
            super().__init__()
            self.events = events

    class ChartFetched(Message):
        def __init__(
            self,
            request: HistoryRequest,
            data: list[series.SeriesData],
            events: list[model.Event],
            error: str | None,
        ) -> None:
            super().__init__()
            self.request = request
            self.data = data
            self.events = events
            self.error = error

    class ModelHistoryFetched(Message):
        def __init__(self, key: tuple[tuple[str, str], ...], values: dict[str, list[float | None]]) -> None:
            super().__init__()
            self.key = key
            self.values = values

    def __init__(
        self,
        client: Client,
        palette: Palette,
        *,
        refresh_seconds: float = 1.0,
        from_cluster: bool = False,
    ) -> None:
        super().__init__()
        self.client = client
        self.palette = palette
        self.refresh_seconds = refresh_seconds
        self.from_cluster = from_cluster
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._events_at: float | None = None
        self._model_history_at: tuple[Any, float] | None = None
        self._xids: dict[int, model.Event] = {}
        self._sparks = SparkLines(SPARK_SECONDS)
        self._process_sort: tuple[str, bool] | None = None
        """The sort last chosen in either process list: the node's two lists share one, as
        they show the same processes (a sort picked in the overview holds in the tab)."""

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        pal = self.palette
        yield NodeHeader(self.client.name, pal, origin=self.client.origin, id="header")
        with TabbedContent(id="tabs", initial="overview"):
            with TabPane("1 Overview", id="overview"):
                yield GpuPanel(pal, id="gpus")
                yield ProcessPanel(pal, compact=True, id="overview-processes")
                yield ModelPanel(pal, id="overview-models")
            # The hidden tabs mount just after the first frame, so it comes sooner.
            with TabPane("2 Processes", id="processes"):
                yield Lazy(ProcessPanel(pal, id="processes-panel"))
            with TabPane("3 Models", id="models"):
                yield Lazy(
                    Vertical(
                        ModelPanel(pal, id="models-panel"),
                        ModelDetail(pal, id="model-detail"),
                        id="models-box",
                    )
                )
            with TabPane("4 History", id="history"):
                yield Lazy(HistoryView(pal, id="history-view"))
            with TabPane("5 Events", id="events"):
                yield Lazy(EventsPanel(pal, id="events-panel"))
        yield Footer()
        yield Feed(self.client, self.refresh_seconds, id="feed")

    def panel(self, cls: type[W], selector: str | None = None) -> W | None:
        """A panel of this screen, or None while its tab has not mounted yet (see Lazy)."""
        try:
            return self.query_one(selector or cls.__name__, cls)
        except NoMatches:
            return None

    @property
    def active_tab(self) -> str:
        return self.query_one(TabbedContent).active

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return self.from_cluster
        return True

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_back(self) -> None:
        if self.from_cluster:
            self.dismiss()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._push_snapshot()
        pane = event.pane
        focusable = [w for w in pane.query("SyncTable, OptionList") if w.focusable]
        if focusable:
            focusable[0].focus()
        if self.active_tab == "events" and self.snapshot is not None:
            self._fetch_events(self.snapshot.timestamp)

    # -- the feed ----------------------------------------------------------------------------

    def on_feed_updated(self, event: Feed.Updated) -> None:
        event.stop()
        self.problem = None
        self.snapshot = event.snapshot

    def on_feed_failed(self, event: Feed.Failed) -> None:
        event.stop()
        if event.not_ready and self.snapshot is None:
            self.query_one(NodeHeader).waiting = event.reason
            return
        self.problem = event.reason

    def watch_problem(self, problem: str | None) -> None:
        self.query_one(NodeHeader).problem = problem

    def watch_snapshot(self, snapshot: model.Snapshot | None) -> None:
        if snapshot is None:
            return
        self.query_one(NodeHeader).snapshot = snapshot
        self._push_snapshot()
        gpus = self.query_one(GpuPanel)
        if self._sparks.observe(snapshot, gpus.figure.series):
            gpus.sparks = self._sparks.values()
        if self.active_tab == "overview":
            self._fetch_sparks(gpus.figure, snapshot)
        due = self._events_at is None or snapshot.timestamp - self._events_at >= EVENTS_REFETCH_SECONDS
        if snapshot.events or due:
            self._fetch_events(snapshot.timestamp)
        if self.active_tab == "models":
            self._maybe_fetch_model_history()

    def _push_snapshot(self) -> None:
        """Hand the snapshot to the panels of the tab that shows; hidden ones wait for theirs."""
        snapshot = self.snapshot
        if snapshot is None:
            return
        shown: dict[str, list[Widget | None]] = {
            "overview": [
                self.panel(GpuPanel),
                self.panel(ProcessPanel, "#overview-processes"),
                self.panel(ModelPanel, "#overview-models"),
            ],
            "processes": [self.panel(ProcessPanel, "#processes-panel")],
            "models": [self.panel(ModelPanel, "#models-panel")],
            "history": [self.panel(HistoryView)],
            "events": [self.panel(EventsPanel)],
        }
        for widget in shown.get(self.active_tab, []):
            if widget is None:
                continue
            if isinstance(widget, ProcessPanel) and self._process_sort is not None:
                widget.set_sort(*self._process_sort)
            widget.snapshot = snapshot  # type: ignore[attr-defined]

    # -- what panels ask for -------------------------------------------------------------------

    def on_process_panel_sort_changed(self, event: ProcessPanel.SortChanged) -> None:
        event.stop()
        self._process_sort = (event.column, event.descending)
        for panel in self.query(ProcessPanel):
            panel.set_sort(event.column, event.descending)

    def on_gpu_panel_figure_changed(self, event: GpuPanel.FigureChanged) -> None:
        event.stop()
        if self.snapshot is not None:
            self._fetch_sparks(event.figure, self.snapshot)

    def on_gpu_panel_opened(self, event: GpuPanel.Opened) -> None:
        event.stop()
        self._open_history(lambda view: view.open(gpu_subject(event.gpu_index), event.series))

    def on_model_panel_opened(self, event: ModelPanel.Opened) -> None:
        event.stop()
        self._open_history(lambda view: view.open(model_subject(event.stats)))

    def on_model_panel_highlighted(self, event: ModelPanel.Highlighted) -> None:
        event.stop()
        detail = self.panel(ModelDetail)
        if event.panel.id == "models-panel" and detail is not None:
            snapshot = event.panel.snapshot
            found = findings.of_model(snapshot.findings, event.stats) if snapshot and event.stats else []
            detail.found = tuple(found)
            detail.processes = snapshot.processes if snapshot else ()
            detail.stats = event.stats
            self._maybe_fetch_model_history()

    def on_history_view_requested(self, event: HistoryView.Requested) -> None:
        event.stop()
        self._chart_worker(event.request)

    def _open_history(self, choose: Callable[[HistoryView], None]) -> None:
        view = self.panel(HistoryView)
        if view is None:
            return
        if view.snapshot is None:
            view.snapshot = self.snapshot
        choose(view)
        self.action_show_tab("history")

    # -- workers -----------------------------------------------------------------------------
    # Each kind of fetch has at most one request out: a slow node costs one waiting thread per
    # kind, and the next refresh asks again.

    def _claim(self, kind: str) -> bool:
        with self._busy_lock:
            if kind in self._busy:
                return False
            self._busy.add(kind)
            return True

    def _release(self, kind: str) -> None:
        with self._busy_lock:
            self._busy.discard(kind)

    def _fetch_sparks(self, figure: Figure, snapshot: model.Snapshot) -> None:
        window = self._sparks.want(figure.series, snapshot.timestamp, self.query_one(GpuPanel).spark_points)
        if window is None:
            return  # this slot's history is here (or on its way); snapshots keep it live
        if self._claim("sparks"):
            self._sparks_worker(window, snapshot.timestamp, tick_seconds(snapshot))
        else:
            self._sparks.failed(window)  # another figure's fetch is out: ask on the next snapshot

    @work(thread=True, group="sparks", exit_on_error=False)
    def _sparks_worker(self, window: Window, at: float, tick: float) -> None:
        slots: dict[int, list[series.Point | None]] | None = None
        try:
            data = self.client.history(window.series, {}, window.start, window.end, window.slots)
            slots = {}
            for s in data:
                gpu = s.key.label("gpu")
                if gpu is not None:
                    slots[int(gpu)] = to_slots(s.points, window.start, window.end, window.slots)
        except (ClientError, KeyError):
            pass  # the sparkline keeps its last values; the header says why the node is stale
        finally:
            self._release("sparks")
        self.post_message(self.SparksFetched(window, at, tick, slots))

    def on_node_screen_sparks_fetched(self, message: SparksFetched) -> None:
        if message.slots is None:
            self._sparks.failed(message.window)
            return
        self._sparks.fetched(message.window, message.at, message.tick_seconds, message.slots)
        gpus = self.query_one(GpuPanel)
        if message.window.series == gpus.figure.series:
            gpus.sparks = self._sparks.values()

    def _fetch_events(self, end: float) -> None:
        if self._claim("events"):
            self._events_at = end
            self._events_worker(end)

    @work(thread=True, group="events", exit_on_error=False)
    def _events_worker(self, end: float) -> None:
        try:
            events = self.client.events(end - EVENTS_SECONDS, end + 1, None, EVENTS_LIMIT)
            self.post_message(self.EventsFetched(events))
        except ClientError:
            self._events_at = None  # try again on the next snapshot
        finally:
            self._release("events")

    def on_node_screen_events_fetched(self, message: EventsFetched) -> None:
        events = message.events
        panel = self.panel(EventsPanel)
        if panel is not None:
            panel.events = tuple(events)
        else:
            self._events_at = None  # fetch again once the tab has mounted
        now = self.snapshot.timestamp if self.snapshot else 0.0
        xids: dict[int, model.Event] = {}
        for e in events:  # newest first: keep the first seen per GPU
            if (
                e.kind == model.EventKind.XID
                and e.gpu_index is not None
                and now - e.timestamp <= XID_FLAG_SECONDS
            ):
                xids.setdefault(e.gpu_index, e)
        self.query_one(GpuPanel).xids = xids

    # A newer request replaces an older one still out: exclusive cancels the old worker, and
    # HistoryView.show drops any answer that is not for its current request.
    @work(thread=True, group="chart", exclusive=True, exit_on_error=False)
    def _chart_worker(self, request: HistoryRequest) -> None:
        try:
            data = self.client.history(
                request.series, dict(request.subject.match), request.start, request.end, request.points
            )
            events = self.client.events(request.start, request.end, None, 500)
            self.post_message(self.ChartFetched(request, data, events, None))
        except ClientError as exc:
            self.post_message(self.ChartFetched(request, [], [], f"history unavailable: {exc}"))
        except KeyError as exc:
            self.post_message(self.ChartFetched(request, [], [], f"unknown series {exc}"))

    def on_node_screen_chart_fetched(self, message: ChartFetched) -> None:
        view = self.panel(HistoryView)
        if view is not None:
            view.show(message.request, message.data, message.events, message.error)

    def _maybe_fetch_model_history(self) -> None:
        detail = self.panel(ModelDetail)
        stats = detail.stats if detail is not None else None
        if stats is None or self.snapshot is None:
            return
        key = model_subject(stats).match
        now = self.snapshot.timestamp
        step = MODEL_HISTORY_SECONDS / MODEL_HISTORY_POINTS
        last = self._model_history_at
        if last is not None and last[0] == key and now - last[1] < step:
            return
        if self._claim("model"):
            self._model_history_at = (key, now)
            self._model_history_worker(key, now)

    @work(thread=True, group="model", exit_on_error=False)
    def _model_history_worker(self, key: tuple[tuple[str, str], ...], end: float) -> None:
        start, end, points = aligned_range(end, MODEL_HISTORY_SECONDS, MODEL_HISTORY_POINTS)
        values: dict[str, list[float | None]] = {}
        try:
            for name, _ in MODEL_SPARK_FIGURES:
                for s in self.client.history(name, dict(key), start, end, points):
                    values[name] = means(to_slots(s.points, start, end, points))
            self.post_message(self.ModelHistoryFetched(key, values))
        except (ClientError, KeyError):
            pass
        finally:
            self._release("model")

    def on_node_screen_model_history_fetched(self, message: ModelHistoryFetched) -> None:
        detail = self.panel(ModelDetail)
        if (
            detail is not None
            and detail.stats is not None
            and model_subject(detail.stats).match == message.key
        ):
            detail.history = message.values
