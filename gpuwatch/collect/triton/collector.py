"""Triton Inference Servers → per-model statistics, server status and events.

Place in the flow: the engine runs one job per configured server (`jobs()`), each on its own
thread, so a stalled server never delays another server or an NVML tick; it reads `view()`
and `drain_events()` when it builds a snapshot. Nothing here formats, stores or serves, and
nothing here calls NVML or sees the process list: the engine joins the view with NVML's
(`gpuwatch.collect.joins`: which process is which server, GPU UUIDs → indexes).

Inside, per server: `poller.py` (the server's state across polls) asks `poll.py` for one poll's
requests and hands what came back to `models.py` (per-model bookkeeping: totals, resets,
intervals, events); the parsers are `parse_*.py`, the formulas `derive.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx

from gpuwatch import model
from gpuwatch.collect.contract import Job
from gpuwatch.collect.triton.poller import ServerPoller
from gpuwatch.config import TritonServerSettings, TritonSettings


class TritonCollector:
    """Every configured Triton server: the engine's `TritonSource`."""

    def __init__(
        self,
        settings: TritonSettings,
        servers: Sequence[TritonServerSettings],
        *,
        implicit: bool = False,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.pollers = [
            ServerPoller(
                s, settings, implicit=implicit, transport=transport, clock=clock, monotonic=monotonic
            )
            for s in servers
        ]

    def jobs(self) -> list[Job]:
        return [Job(f"triton-{p.name}", self.settings.interval_seconds, p.poll) for p in self.pollers]

    def view(self) -> tuple[model.TritonServerStatus, ...]:
        return tuple(p.status() for p in self.pollers)

    def drain_events(self) -> list[model.Event]:
        events: list[model.Event] = []
        for p in self.pollers:
            events += p.drain_events()
        return events

    def close(self) -> None:
        for p in self.pollers:
            p.close()
