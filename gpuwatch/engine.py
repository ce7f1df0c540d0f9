"""The engine: runs the collectors on their cadences and builds one immutable snapshot per tick.

Place in the flow: collectors → **engine** → store, /metrics, JSON API, TUI. Every collector
job runs on a thread of its own, so a job stuck in a driver call or a stalled HTTP request
delays nothing else; the engine notices (the job's health turns stale within two cadences) and
the job resumes when its call returns. The tick thread never calls a collector: it reads their
latest immutable views, joins them (`collect/joins.py`: which process is which Triton server,
GPU UUIDs → indexes), adds health, publishes the snapshot as `latest()` and hands it to each
subscriber (the store writer queues it; it never blocks the tick).

`collect_once` is the same assembly for one-shot commands (`gpuwatch snapshot`): it runs every
job twice, `window_seconds` apart, because rates and GPM need two readings.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable

from gpuwatch import model
from gpuwatch.assess import AssessState, assess
from gpuwatch.collect.contract import GpuSource, HostSource, Job, KubernetesSource, TritonSource
from gpuwatch.collect.joins import join

log = logging.getLogger("gpuwatch.engine")

CLOCK_STEP_SECONDS = 5.0
"""A wall clock that moves this much more (or less) than the monotonic one between two ticks has
stepped (NTP after a bad RTC, a VM restored from a snapshot): a `clock_step` event says so."""


class _JobRunner:
    """Runs one job on its cadence, on its own thread, and keeps its health."""

    def __init__(
        self,
        job: Job,
        clock: Callable[[], float],
        stop: threading.Event,
        on_change: Callable[[str, str | None, str | None], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self._clock = clock
        self._monotonic = monotonic
        self._stop = stop
        self._on_change = on_change
        self._lock = threading.Lock()
        self.running_since: float | None = None
        self.last_success_at: float | None = None
        self.last_finished_monotonic: float | None = None
        self.last_duration: float | None = None
        self.last_error: str | None = None
        self.runs = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._loop, name=f"job-{job.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run_once(self) -> None:
        started = self._monotonic()
        with self._lock:
            self.running_since = started
        error: str | None
        try:
            error = self.job.run()
        except Exception as exc:  # a collector bug must not kill its thread
            log.exception("job %s failed", self.job.name)
            error = f"{type(exc).__name__}: {exc}"
        finished = self._monotonic()
        with self._lock:
            previous = self.last_error if self.runs else None
            self.running_since = None
            self.runs += 1
            self.last_duration = finished - started
            self.last_finished_monotonic = finished
            if error is None:
                self.last_success_at = self._clock()
                self.last_error = None
            else:
                self.errors += 1
                self.last_error = error
        if (previous is None) != (error is None) or (error and error != previous):
            self._on_change(self.job.name, previous, error)

    def health(self, now_monotonic: float) -> model.CollectorHealth:
        cadence = self.job.cadence_seconds
        with self._lock:
            limit = 2 * cadence + 0.5
            if self.running_since is not None:
                stale = now_monotonic - self.running_since > limit
            else:
                stale = (
                    self.last_finished_monotonic is None
                    or now_monotonic - self.last_finished_monotonic > limit + cadence
                )
            error = self.last_error
            if stale and self.running_since is not None:
                error = f"running for {now_monotonic - self.running_since:.1f} s (cadence {cadence:g} s)"
            return model.CollectorHealth(
                name=self.job.name,
                ok=self.runs > 0 and self.last_error is None and not stale,
                stale=stale,
                cadence_seconds=cadence,
                last_success_at=self.last_success_at,
                last_duration_seconds=self.last_duration,
                last_error=error,
                runs_count=self.runs,
                errors_count=self.errors,
            )

    def _loop(self) -> None:
        cadence = self.job.cadence_seconds
        while not self._stop.is_set():
            self.run_once()
            now = self._clock()
            offset = self.job.offset_seconds
            next_at = math.floor((now - offset) / cadence + 1) * cadence + offset  # wall-aligned
            self._stop.wait(max(0.0, next_at - now))


class Engine:
    """One engine per process. Thread-safe readers: `latest()`, `health()`."""

    def __init__(
        self,
        gpus: GpuSource,
        triton: TritonSource | None = None,
        *,
        tick_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
        store_health: Callable[[], model.StoreHealth | None] | None = None,
        kubernetes: KubernetesSource | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        host: HostSource | None = None,
    ) -> None:
        """`monotonic` times the jobs' runs and their staleness: a test on a manual clock passes
        it, so every run lasts 0 s and nothing goes stale behind the clock's back."""
        self.gpus = gpus
        self.triton = triton
        self.kubernetes = kubernetes
        self.host = host
        self.tick_seconds = tick_seconds
        self._clock = clock
        self._store_health = store_health
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._latest: model.Snapshot | None = None
        self._subscribers: list[Callable[[model.Snapshot], None]] = []
        self._own_events: list[model.Event] = []
        jobs = list(gpus.jobs()) + (list(triton.jobs()) if triton else []) + (host.jobs() if host else [])
        jobs += list(kubernetes.jobs()) if kubernetes else []
        self._monotonic = monotonic
        self._runners = [_JobRunner(j, clock, self._stop, self._job_changed, monotonic) for j in jobs]
        self._tick_thread: threading.Thread | None = None
        self._assessed: AssessState | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        for runner in self._runners:
            runner.start()
        self._tick_thread = threading.Thread(target=self._tick_loop, name="engine-tick", daemon=True)
        self._tick_thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._tick_thread is not None:
            self._tick_thread.join(timeout=5)
        self.gpus.close()
        if self.triton is not None:
            self.triton.close()
        if self.kubernetes is not None:
            self.kubernetes.close()
        if self.host is not None:
            self.host.close()

    def subscribe(self, callback: Callable[[model.Snapshot], None]) -> None:
        """`callback(snapshot)` runs on the tick thread after each publish; keep it quick."""
        self._subscribers.append(callback)

    def set_store_health(self, provider: Callable[[], model.StoreHealth | None]) -> None:
        self._store_health = provider

    def record_event(self, event: model.Event) -> None:
        """For events the engine's owner knows of (daemon start/stop, store errors)."""
        with self._lock:
            self._own_events.append(event)

    # -- readers ---------------------------------------------------------------------------

    def latest(self) -> model.Snapshot | None:
        return self._latest

    def health(self) -> tuple[model.CollectorHealth, ...]:
        now = self._monotonic()
        return tuple(r.health(now) for r in self._runners)

    def run_job(self, name: str) -> None:
        """Run the job called `name` once, on the caller's thread, as its own thread would:
        for tests and tools that drive the collectors on a fixed clock by hand, so the job's
        health counts the run (a collector polled behind the engine's back reads stale)."""
        for runner in self._runners:
            if runner.job.name == name:
                runner.run_once()
                return
        raise KeyError(f"no job {name!r}: the jobs are {', '.join(r.job.name for r in self._runners)}")

    # -- one-shot ------------------------------------------------------------------------------

    def collect_once(self, window_seconds: float = 0.5) -> model.Snapshot:
        """Run every job twice, `window_seconds` apart, in parallel; build one snapshot."""
        for attempt in range(2):
            threads = [threading.Thread(target=r.run_once, daemon=True) for r in self._runners]
            for t in threads:
                t.start()
            deadline = time.monotonic() + max(2.0, 4 * window_seconds)
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            if attempt == 0:
                time.sleep(window_seconds)
        return self.build_snapshot(self._clock(), immediate=True)

    # -- assembly ------------------------------------------------------------------------------

    def build_snapshot(self, timestamp: float, *, immediate: bool = False) -> model.Snapshot:
        """One snapshot from the collectors' views, assessed (`gpuwatch.assess`): its findings
        are judged against the previous call's; `immediate` (one-shot commands) skips the
        onset hold times, as one window is all there is."""
        view = self.gpus.view()
        events = self.gpus.drain_events()
        servers: tuple[model.TritonServerStatus, ...] = ()
        if self.triton is not None:
            servers = self.triton.view()
            events += self.triton.drain_events()
        pods = self.kubernetes.view() if self.kubernetes is not None else None
        joined = join(view, servers, kubernetes=pods)  # processes ↔ servers, UUIDs → indexes, pods
        with self._lock:
            events += self._own_events
            self._own_events = []
        events.sort(key=lambda e: e.timestamp)
        snapshot = model.Snapshot(
            timestamp=timestamp,
            node=view.node,
            devices=view.devices,
            gpus=joined.gpus,
            processes=joined.processes,
            triton=joined.servers,
            events=tuple(events),
            collectors=self.health(),
            store=self._store_health() if self._store_health else None,
            nvml_status=view.status,
            topology=view.topology,
            mig_devices=view.mig_devices,
            host=self.host.view() if self.host is not None else None,
        )
        state = assess(snapshot, self._assessed, timestamp, immediate=immediate)
        self._assessed = state
        changes = [finding_event(f, timestamp, began=True) for f in state.began]
        changes += [finding_event(f, timestamp, began=False) for f in state.ended]
        return dataclasses.replace(snapshot, findings=state.findings, events=snapshot.events + tuple(changes))

    def _tick_loop(self) -> None:
        # Build each snapshot a little after the aligned boundary, when this tick's fast
        # reads have landed; stamp it with the boundary so every tier's buckets line up.
        offset = min(0.3, 0.3 * self.tick_seconds)
        wall_ahead = self._clock() - time.monotonic()  # constant while the wall clock keeps pace
        while not self._stop.is_set():
            now = self._clock()
            step = now - time.monotonic() - wall_ahead
            if abs(step) > CLOCK_STEP_SECONDS:
                wall_ahead += step
                self._clock_stepped(now, step)
            boundary = math.floor(now / self.tick_seconds + 1) * self.tick_seconds
            if self._stop.wait(max(0.0, boundary + offset - now)):
                return
            try:
                self.tick(boundary)
            except Exception:
                log.exception("building a snapshot failed")

    def tick(self, timestamp: float | None = None) -> model.Snapshot:
        """Build one snapshot, publish it as `latest()` and hand it to every subscriber.

        The tick thread calls this once per tick; a test or tool that drives the collectors by
        hand with a fixed clock calls it directly (`timestamp` defaults to the clock's now)."""
        snapshot = self.build_snapshot(self._clock() if timestamp is None else timestamp)
        self._latest = snapshot
        for callback in list(self._subscribers):
            try:
                callback(snapshot)
            except Exception:
                log.exception("snapshot subscriber %r failed", callback)
        return snapshot

    def _clock_stepped(self, now: float, step: float) -> None:
        message = (
            f"the wall clock stepped {step:+.0f} s ({'ahead' if step > 0 else 'back'}): snapshots are "
            "stamped by the new time; stored history is kept, and purges and rollups wait until the "
            "clock has kept its new time for an hour"
        )
        log.warning("%s", message)
        with self._lock:
            self._own_events.append(
                model.Event(now, model.EventKind.CLOCK_STEP, model.Severity.WARNING, message)
            )

    def _job_changed(self, name: str, previous: str | None, error: str | None) -> None:
        now = self._clock()
        if error is not None:
            event = model.Event(
                now, model.EventKind.COLLECTOR_FAILED, model.Severity.WARNING, f"collector {name}: {error}"
            )
        else:
            event = model.Event(
                now,
                model.EventKind.COLLECTOR_RECOVERED,
                model.Severity.INFO,
                f"collector {name} is working again",
            )
        with self._lock:
            self._own_events.append(event)


def finding_event(finding: model.Finding, timestamp: float, *, began: bool) -> model.Event:
    """A finding's beginning or end as an event, so the store and `gpuwatch events` keep it."""
    s = finding.subject
    if began:
        message = f"{s.label()} {finding.words}: {finding.message}"
        if finding.advice:
            message += f" → {finding.advice}"
    else:
        message = f"{s.label()} {finding.words}: over after {timestamp - finding.since:.0f} s"
    return model.Event(
        timestamp,
        model.EventKind.FINDING_BEGAN if began else model.EventKind.FINDING_ENDED,
        finding.severity if began else model.Severity.INFO,
        message,
        gpu_index=s.gpu_index,
        server=s.server,
        model=s.model,
        version=s.version,
    )
