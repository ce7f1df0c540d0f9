"""The Kubernetes collector: the kubelet's and the container runtime's answers, kept between ticks.

Place in the flow: assemble builds it when a socket is there (`[kubernetes]`); the engine runs
its two jobs — `pod-resources` (kubelet PodResources v1 `List`) and `cri` (CRI v1
`ListContainers`) — each on a thread of its own, so a stalled socket never delays a tick; the
engine's join reads `view()`.

Each job wakes every second but calls its socket only when due: at the first run, every
`refresh_seconds`, and at once on a change — a GPU process in a pod UID the last `List` did not
see (pod-resources) or in a container the last `ListContainers` did not name (cri). A container
that stays unknown after a re-list (a container outside Kubernetes) asks for nothing more until
the next refresh. A failed call keeps the last good answer (a pod that ends leaves at the next
good answer), reports one line of health, and is retried after `RETRY_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gpuwatch import model
from gpuwatch.collect.contract import Job, KubernetesView, RunResult
from gpuwatch.collect.kubernetes import cri, podresources
from gpuwatch.collect.kubernetes.grpc_unix import CallFailed, UnixChannel
from gpuwatch.config import KubernetesSettings

WAKE_SECONDS = 1.0
RETRY_SECONDS = 5.0

Processes = Callable[[], tuple[model.ProcessSample, ...]]


class _Poll:
    """When one socket is due, and what its last call said."""

    def __init__(self, refresh_seconds: float, clock: Callable[[], float]) -> None:
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self.last_attempt: float | None = None
        self.error: str | None = None

    def due(self, changed: bool) -> bool:
        if self.last_attempt is None:
            return True
        waited = self._clock() - self.last_attempt
        if self.error is not None:
            return waited >= min(RETRY_SECONDS, self.refresh_seconds)
        return changed or waited >= self.refresh_seconds

    def attempted(self, error: str | None) -> RunResult:
        self.last_attempt = self._clock()
        self.error = error
        return error


class KubernetesCollector:
    def __init__(
        self,
        settings: KubernetesSettings,
        *,
        pod_resources_socket: str | None,
        cri_socket: str | None,
        processes: Processes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        def channel(path: str) -> UnixChannel:
            return UnixChannel(
                path, timeout_seconds=settings.timeout_seconds, max_reply_bytes=settings.max_reply_bytes
            )

        self._kubelet = channel(pod_resources_socket) if pod_resources_socket else None
        self._runtime = channel(cri_socket) if cri_socket else None
        self._processes = processes
        self._lock = threading.Lock()
        self._devices: dict[str, tuple[model.PodRef, ...]] = {}
        self._containers = cri.Containers({}, {})
        self._kubelet_poll = _Poll(settings.refresh_seconds, clock)
        self._runtime_poll = _Poll(settings.refresh_seconds, clock)
        self._listed_uids: frozenset[str] = frozenset()
        self._unknown_asked: set[str] = set()

    @property
    def sockets(self) -> tuple[str, ...]:
        return tuple(c.path for c in (self._kubelet, self._runtime) if c is not None)

    def jobs(self) -> list[Job]:
        jobs = []
        if self._kubelet is not None:
            jobs.append(Job("pod-resources", WAKE_SECONDS, self.run_pod_resources, offset_seconds=0.5))
        if self._runtime is not None:
            jobs.append(Job("cri", WAKE_SECONDS, self.run_cri, offset_seconds=0.5))
        return jobs

    def view(self) -> KubernetesView:
        with self._lock:
            return KubernetesView(self._devices, self._containers.by_id, self._containers.pods)

    def close(self) -> None:
        for channel in (self._kubelet, self._runtime):
            if channel is not None:
                channel.close()

    # -- the jobs ---------------------------------------------------------------------------

    def run_pod_resources(self) -> RunResult:
        assert self._kubelet is not None
        uids = frozenset(p.pod_uid for p in self._processes() if p.pod_uid)
        poll = self._kubelet_poll
        if not poll.due(changed=not uids <= self._listed_uids):
            return poll.error
        try:
            devices = podresources.list_devices(self._kubelet)
        except CallFailed as exc:
            return poll.attempted(str(exc))
        with self._lock:
            self._devices = devices
        self._listed_uids = uids
        return poll.attempted(None)

    def run_cri(self) -> RunResult:
        assert self._runtime is not None
        wanted = {p.container_id for p in self._processes() if p.container_id and p.pod_uid}
        with self._lock:
            known = self._containers.by_id
        unknown = {c for c in wanted if c not in known} - self._unknown_asked
        poll = self._runtime_poll
        if not poll.due(changed=bool(unknown)):
            return poll.error
        try:
            containers = cri.list_containers(self._runtime)
        except CallFailed as exc:
            return poll.attempted(str(exc))
        with self._lock:
            self._containers = containers
        # what is still not listed is not asked for again before the next refresh
        self._unknown_asked = {c for c in wanted if c not in containers.by_id}
        return poll.attempted(None)
