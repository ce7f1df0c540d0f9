"""Builds an engine from settings: the real sources on a GPU node, recorded ones for --demo.

Place in the flow: the wiring. The only module that knows every concrete real collector; the
demo's half lives in `gpuwatch.demo.assemble`. The CLI asks it for an engine; the daemon,
`snapshot` and the in-process TUI all run the engine it returns, so there is one copy of the
collection logic however gpuwatch is started.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from gpuwatch.collect.contract import TritonSource
from gpuwatch.collect.host import HostProcesses
from gpuwatch.collect.nvml.collector import open_real_nvml
from gpuwatch.collect.triton.collector import TritonCollector
from gpuwatch.config import Settings, TritonServerSettings, triton_server_from_url
from gpuwatch.engine import Engine


def build_engine(
    settings: Settings,
    *,
    demo: bool,
    triton_urls: list[str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Engine:
    if demo:
        from gpuwatch.demo.assemble import build_demo_sources

        gpus, recorded_triton = build_demo_sources(settings, clock)
        return Engine(gpus, recorded_triton, tick_seconds=settings.nvml.interval_seconds, clock=clock)
    real_gpus = open_real_nvml(settings.nvml, HostProcesses())
    triton = build_triton(settings, urls=triton_urls, clock=clock)
    return Engine(real_gpus, triton, tick_seconds=settings.nvml.interval_seconds, clock=clock)


def build_triton(
    settings: Settings,
    *,
    urls: list[str] | None,
    clock: Callable[[], float] = time.time,
) -> TritonSource | None:
    """The Triton collector over real servers, or None if disabled.

    `urls` (`--triton URL[,METRICS_URL]`, repeatable) replace the configured servers and are
    polled even when `[triton] enabled = false`; each is explicit, so nothing listening there
    is "down", not "absent"."""
    servers: Sequence[TritonServerSettings]
    if urls:
        servers, implicit = [triton_server_from_url(u) for u in urls], False
    elif settings.triton.enabled:
        servers, implicit = settings.triton_servers()
    else:
        return None
    return TritonCollector(settings.triton, _unique_names(servers), implicit=implicit, clock=clock)


def _unique_names(servers: Sequence[TritonServerSettings]) -> list[TritonServerSettings]:
    """Server names label series and name jobs: two servers never share one."""
    seen: dict[str, int] = {}
    out = []
    for s in servers:
        n = seen.get(s.name, 0) + 1
        seen[s.name] = n
        out.append(s if n == 1 else replace(s, name=f"{s.name}-{n}"))
    return out
