"""`TopApp`: the `gpuwatch top` application: one node's dashboard, or the cluster view.

Place in the flow: the CLI hands the clients here (one per daemon, or the in-process engine's);
the app never builds an engine or opens a connection itself. With one client it opens that
node's dashboard; with several, the cluster view; with a fleet (Prometheus), the fleet view. It
owns what is the same on every screen: `q`, `?`, the monochrome mode, and the message for a
terminal too small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.filter import LineFilter, Monochrome
from textual.geometry import Size
from textual.screen import Screen

from gpuwatch.client.protocol import Client, Fleet
from gpuwatch.tui.cluster_screen import ClusterScreen
from gpuwatch.tui.fleet_screen import FleetScreen
from gpuwatch.tui.help_screen import HelpScreen
from gpuwatch.tui.node_screen import NodeScreen
from gpuwatch.tui.palette import palette_for
from gpuwatch.tui.too_small import MIN_SIZE, TooSmallScreen

SCREEN_WORKER_THREADS = 6
"""Threads beside one per node: an open dashboard's sparkline, event, chart and model fetches."""


class TopApp(App[None]):
    TITLE = "gpuwatch top"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Tabs {
        height: 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(
        self,
        clients: Sequence[Client],
        *,
        refresh_seconds: float = 1.0,
        monochrome: bool = False,
        fleet: Fleet | None = None,
    ) -> None:
        if not clients and fleet is None:
            raise ValueError("TopApp needs at least one client, or a fleet")
        super().__init__()
        self.clients = list(clients)
        self.fleet = fleet
        self.refresh_seconds = refresh_seconds
        self.monochrome = monochrome or self.no_color
        self._monochrome_filter = Monochrome()
        self.palette = palette_for(self.current_theme, self.monochrome)

    def on_load(self) -> None:
        # Thread workers run in the event loop's default executor: min(32, cores + 4) threads,
        # 6 on a 2-core node, fewer than a cluster of unreachable nodes can keep waiting on
        # their timeouts, and a live node's poll would queue behind them.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(
                max_workers=len(self.clients) + SCREEN_WORKER_THREADS, thread_name_prefix="top-worker"
            )
        )

    def get_line_filters(self) -> Sequence[LineFilter]:
        filters = list(super().get_line_filters())
        if self.monochrome and not any(isinstance(f, Monochrome) for f in filters):
            filters.append(self._monochrome_filter)
        return filters

    def get_default_screen(self) -> Screen[None]:
        if self.fleet is not None:
            return FleetScreen(self.fleet, self.palette, refresh_seconds=self.refresh_seconds)
        if len(self.clients) == 1:
            return NodeScreen(self.clients[0], self.palette, refresh_seconds=self.refresh_seconds)
        return ClusterScreen(self.clients, self.palette, refresh_seconds=self.refresh_seconds)

    def on_mount(self) -> None:
        self._fit(self.size.width, self.size.height)

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        # The size the event brings: `self.size` can still be the one before this resize.
        size = Size(width, height)
        small = width < MIN_SIZE.width or height < MIN_SIZE.height
        top = self.screen
        if small:
            if isinstance(top, TooSmallScreen):
                top.terminal_size = size
            else:
                self.push_screen(TooSmallScreen(size))
        elif isinstance(top, TooSmallScreen):
            self.pop_screen()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen | TooSmallScreen):
            self.push_screen(HelpScreen())
