"""The wiring: engines from settings, and the faces that run them.

Place in the flow: the CLI parses arguments and asks this module for what runs: an engine
(`build_engine`: the real sources on a GPU node, recorded ones for --demo), the one-shot snapshot
of `gpuwatch snapshot`, the clients of `gpuwatch top` (one per daemon, or this node's engine
started here with an in-memory history), and `gpuwatch daemon`'s daemon. The only module that
knows every concrete real collector; the demo's half lives in `gpuwatch.demo.assemble`. The
daemon, `snapshot` and the in-process TUI all run the engine `build_engine` returns, so there is
one copy of the collection logic however gpuwatch is started.

What only some faces need is imported inside the function that builds it: `gpuwatch snapshot`
never loads Textual, SQLAlchemy or the HTTP server, and a dashboard of remote daemons never
loads pynvml or the collectors.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from gpuwatch import config, model
from gpuwatch.config import Settings, TritonServerSettings, triton_server_from_url
from gpuwatch.engine import Engine

if TYPE_CHECKING:
    from gpuwatch.client.connect import Plan, PrometheusPlan
    from gpuwatch.client.inprocess import InProcessClient
    from gpuwatch.client.prometheus import PrometheusFleet
    from gpuwatch.client.protocol import Client
    from gpuwatch.collect.contract import GpuSource, KubernetesSource, TritonSource
    from gpuwatch.daemon import Daemon

IN_PROCESS_HISTORY_SECONDS = 900.0
"""History an in-process `top` keeps in memory (a daemon's store keeps days)."""
FIRST_SNAPSHOT_WAIT_SECONDS = 2.0


def build_engine(
    settings: Settings,
    *,
    demo: bool,
    triton_urls: list[str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Engine:
    """An engine over this node's GPUs and Triton servers, or (`demo`) the recorded ones with
    `[demo] scenario`'s faults; `triton_urls` as `build_triton` takes them. Starts nothing."""
    if demo:
        from gpuwatch.demo.assemble import build_demo_sources
        from gpuwatch.demo.processes import RecordedHost

        gpus, recorded_triton = build_demo_sources(settings, clock)
        return Engine(
            gpus,
            recorded_triton,
            tick_seconds=settings.nvml.interval_seconds,
            clock=clock,
            kubernetes=build_kubernetes(settings, gpus, demo=True),
            host=RecordedHost(),
        )
    from gpuwatch.collect.host import HostProcesses, HostUsage
    from gpuwatch.collect.nvml.collector import open_real_nvml

    real_gpus = open_real_nvml(settings.nvml, HostProcesses())
    triton = build_triton(settings, urls=triton_urls, clock=clock)
    return Engine(
        real_gpus,
        triton,
        tick_seconds=settings.nvml.interval_seconds,
        clock=clock,
        kubernetes=build_kubernetes(settings, real_gpus, demo=False),
        host=HostUsage(settings.nvml.interval_seconds),
    )


def build_kubernetes(settings: Settings, gpus: GpuSource, *, demo: bool) -> KubernetesSource | None:
    """The Kubernetes collector, or None when neither socket is to be used: the kubelet's when
    it exists or is named, the runtime's when named or one of the known ones exists (in
    --demo only named ones, so the demo can show pods from test servers)."""
    import os

    k8s = settings.kubernetes
    pod_resources = k8s.pod_resources_path(demo=demo)
    if pod_resources == config.DEFAULT_POD_RESOURCES_SOCKET and not os.path.exists(pod_resources):
        pod_resources = None  # not a Kubernetes node: nothing to say
    cri_socket = k8s.cri_path(demo=demo)
    if pod_resources is None and cri_socket is None:
        return None
    from gpuwatch.collect.kubernetes.collector import KubernetesCollector

    return KubernetesCollector(
        k8s,
        pod_resources_socket=pod_resources,
        cri_socket=cri_socket,
        processes=lambda: gpus.view().processes,
    )


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
    from gpuwatch.collect.triton.collector import TritonCollector

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
        out.append(s if n == 1 else dataclasses.replace(s, name=f"{s.name}-{n}"))
    return out


# --------------------------------------------------------------------------- the faces


def collect_snapshot(
    settings: Settings, *, demo: bool, triton_urls: list[str] | None, window_seconds: float
) -> model.Snapshot:
    """`gpuwatch snapshot`: one snapshot from an engine built for it, read twice
    `window_seconds` apart (rates and GPM need two readings), then stopped."""
    engine = build_engine(settings, demo=demo, triton_urls=triton_urls)
    try:
        return engine.collect_once(window_seconds)
    finally:
        engine.stop()


def top_clients(plan: Plan, settings: Settings, *, demo: bool) -> list[Client]:
    """`gpuwatch top`'s nodes: one `HttpClient` per daemon of `plan`, else this node's engine
    started here (`in_process_client`). The caller closes them."""
    if plan.urls:
        from gpuwatch.client.http import HttpClient

        return [HttpClient(url, token=plan.token, verify=plan.verify) for url in plan.urls]
    return [in_process_client(settings, demo=demo)]


def top_fleet(plan: PrometheusPlan) -> PrometheusFleet:
    """`gpuwatch top --prometheus`: the fleet through that Prometheus; nodes opened from it
    read their daemons' APIs. The caller closes it."""
    from gpuwatch.client.prometheus import PrometheusFleet

    return PrometheusFleet(plan)


def in_process_client(settings: Settings, *, demo: bool) -> InProcessClient:
    """This node's engine, started here, with the last `IN_PROCESS_HISTORY_SECONDS` in memory;
    closing the client stops the engine."""
    import socket

    from gpuwatch.client.inprocess import InProcessClient
    from gpuwatch.series import MemoryHistory

    engine = build_engine(settings, demo=demo)
    history = MemoryHistory(keep_seconds=IN_PROCESS_HISTORY_SECONDS)
    engine.subscribe(history.add)
    engine.start()
    threading.Thread(target=_publish_first_snapshot, args=(engine,), name="first-tick", daemon=True).start()
    tick = settings.nvml.interval_seconds
    return InProcessClient(
        engine,
        history,
        name=socket.gethostname(),
        stale_after_seconds=max(5.0, 3 * tick),
        on_close=engine.stop,
    )


def _publish_first_snapshot(engine: Engine, wait_seconds: float = FIRST_SNAPSHOT_WAIT_SECONDS) -> None:
    """Publish a first snapshot as soon as the GPUs' first fast read lands, instead of at the
    next aligned tick (up to 1.3 s later): the dashboard shows data within its first second."""
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline and engine.latest() is None:
        if any(h.name == "nvml" and h.runs_count > 0 for h in engine.health()):
            engine.tick()
            return
        time.sleep(0.02)


def with_scenario(settings: Settings, name: str, *, demo: bool) -> Settings:
    """`--scenario NAME` over `[demo] scenario`. Raises `config.ConfigError` (one line naming
    the option) for a scenario without --demo or one gpuwatch does not have."""
    if not demo:
        raise config.ConfigError(f"--scenario {name}: fault scenarios play on recorded GPUs only; add --demo")
    if name not in config.DEMO_SCENARIOS:
        raise config.ConfigError(f"--scenario {name!r}: expected one of {', '.join(config.DEMO_SCENARIOS)}")
    return dataclasses.replace(settings, demo=dataclasses.replace(settings.demo, scenario=name))


def build_daemon(settings: Settings, *, demo: bool, announce: Callable[[str], None]) -> Daemon:
    """`gpuwatch daemon`: engines from `build_engine`, systemd's notify socket from the
    environment (NOTIFY_SOCKET). Raises what `Daemon()` raises: `ExposureError`,
    `AuthConfigError` (a setting to fix), `StartError` (cannot serve), `StoreError`."""
    from gpuwatch.daemon import Daemon
    from gpuwatch.serve.notify import Notifier

    return Daemon(
        settings,
        lambda s: build_engine(s, demo=demo),
        notifier=Notifier.from_environment(),
        announce=announce,
    )
