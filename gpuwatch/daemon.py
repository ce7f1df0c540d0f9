"""`gpuwatch daemon`: one engine, its history, /metrics and the JSON API, under systemd.

Place in the flow: the CLI hands the settings here; this module wires the engine
(`assemble.build_engine`), the SQLite store (`store.open_store`: the history, written by its
own thread), the metrics state and the HTTP server, then runs until SIGTERM or SIGINT. It speaks the
systemd notify protocol (READY=1 once serving, STATUS= when the one-line status changes,
WATCHDOG=1 only while the engine is producing snapshots, STOPPING=1) and records
DAEMON_START and DAEMON_STOP events, waiting for the stop event to reach the history before
it exits.

What it cannot do it says and goes on: without NVML it serves `gpuwatch_nvml_up 0` and the
reason in /api/v1/health; with a full disk, running or at start, it keeps serving live data and
reports the store error (`gpuwatch_store_up 0`, /api/v1/health, the log); a database that
cannot be written at start (`store.NoSpaceError`) is retried until it can (`store.WaitingStore`)
while the last snapshots are held in memory. Only what makes serving impossible or unsafe stops
it at start: `StartError` (the address is taken), exposure rules, and a database it cannot use
(`store.StoreError`: an unwritable state directory, a newer schema, another daemon's file).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from gpuwatch import model
from gpuwatch.config import Settings
from gpuwatch.engine import Engine
from gpuwatch.serve.api import Api
from gpuwatch.serve.auth import AuthConfigError, Authenticator
from gpuwatch.serve.http import ExposureError, HttpServer, ListenAddress, check_exposure, tls_context
from gpuwatch.serve.metrics import MetricsExporter, MetricsState
from gpuwatch.serve.notify import Notifier
from gpuwatch.store import NoSpaceError, Store, WaitingStore, open_store, parse_retention
from gpuwatch.store.waiting import RETRY_SECONDS as STORE_RETRY_SECONDS

log = logging.getLogger("gpuwatch.daemon")

WAITING_HISTORY_SECONDS = 900.0
"""While the database cannot be written, the API serves this much history from memory."""

SWITCH_INTERVAL_SECONDS = 0.0005
"""How long a thread waits for the GIL before asking for it (CPython's default is 5 ms): a
request must not wait 5 ms behind a render or a collector's Python work on another thread."""


class StartError(RuntimeError):
    """The daemon cannot serve at all (e.g. the port is taken); str() is one line."""


# --------------------------------------------------------------------------- the one validation


@dataclass(frozen=True)
class Checked:
    """What the daemon derives from its settings before it touches anything."""

    address: ListenAddress
    auth: Authenticator | None
    tls: ssl.SSLContext | None


def check(settings: Settings) -> Checked:
    """Every check the daemon makes of its settings at start, and nothing that has effects
    (no bind, no database): `gpuwatch config check` runs this same function, so the two agree.
    Raises `ExposureError` (listen, exposure, TLS), `AuthConfigError` (token or users file) or
    `config.ConfigError` (retention); each str() is one line."""
    daemon = settings.daemon
    address = ListenAddress.parse(daemon.listen)
    auth = Authenticator.from_settings(daemon)
    check_exposure(address, daemon, auth)
    tls = tls_context(daemon)
    parse_retention(settings.store.retention)
    return Checked(address, auth, tls)


# --------------------------------------------------------------------------- the daemon


EngineFactory = Callable[[Settings], Engine]


class Daemon:
    def __init__(
        self,
        settings: Settings,
        engine_factory: EngineFactory,
        *,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        announce: Callable[[str], None] = lambda line: None,
    ) -> None:
        """Checks exposure, authentication and TLS, and binds the address; raises
        ExposureError / AuthConfigError (a setting to fix) or StartError (cannot serve)."""
        self.settings = settings
        self._clock = clock
        self._announce = announce
        self.notifier = notifier or Notifier(None)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        daemon = settings.daemon
        checked = check(settings)
        address, auth, tls = checked.address, checked.auth, checked.tls
        # The engine first: building one starts nothing, so a setting it refuses (a demo
        # scenario that cannot run) stops the daemon before the database is touched.
        self.engine = engine_factory(settings)
        try:
            # The monotonic clock beside the wall clock: a step of the wall clock is noticed
            # by the store and never purges or rolls up (store/clock.py).
            self.store: Store | WaitingStore = open_store(settings, clock=clock, monotonic=time.monotonic)
        except NoSpaceError as exc:
            log.error("%s; serving live data and trying again every %g s", exc, STORE_RETRY_SECONDS)
            self.store = WaitingStore(
                lambda: open_store(settings, clock=clock, monotonic=time.monotonic),
                settings.database_path,
                str(exc),
                hold_max=settings.store.write_queue_max,
                hold_max_bytes=settings.store.write_queue_max_bytes,
                keep_seconds=WAITING_HISTORY_SECONDS,
            )
        except BaseException:
            self.engine.stop()
            raise
        self.store.attach(self.engine)
        self.state = MetricsState()
        self.engine.subscribe(self.state.observe)
        exporter = MetricsExporter(
            self.state,
            tick_seconds=self.engine.tick_seconds,
            dcgm_names=settings.metrics.dcgm_exporter_names,
        )
        self.engine.subscribe(exporter.after_tick)
        self.engine.subscribe(self._saw)
        api = Api(self.engine.latest, self.store.history, self.engine.health, clock=clock)
        try:
            self.server = HttpServer(
                address,
                exporter,
                api,
                auth=auth,
                tls=tls,
                max_connections=daemon.max_connections,
                timeout_seconds=daemon.request_timeout_seconds,
            )
        except OSError as exc:
            self.engine.stop()
            self.store.close()
            raise StartError(f"cannot listen on {address}: {exc.strerror or exc}") from None
        self._stop_recorded = threading.Event()
        self._status_lock = threading.Lock()
        self._last_status = ""

    @property
    def url(self) -> str:
        return self.server.url

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        self._stop.set()

    def run(self, install_signals: bool = True) -> None:
        """Serve until `request_stop()` (SIGTERM, SIGINT); then stop cleanly."""
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        if install_signals:
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        self.engine.record_event(
            model.Event(
                self._clock(), model.EventKind.DAEMON_START, model.Severity.INFO, "gpuwatch daemon started"
            )
        )
        self.engine.start()
        self.server.start()
        self._announce(f"gpuwatch daemon: serving {self.url}/metrics and {self.url}/api/v1/")
        self.notifier.ready(f"serving {self.url}")
        try:
            self._supervise()
        finally:
            self._shutdown()

    def _supervise(self) -> None:
        """The watchdog's keep-alives, every half WATCHDOG_USEC, only while the engine ticks (the
        status line goes with each tick: `_saw`); without a watchdog, only wait for the stop."""
        watchdog = self.notifier.watchdog_seconds
        self._report_status()
        while not self._stop.wait(watchdog / 2 if watchdog else None):
            if self.ticking():
                self.notifier.watchdog()
            else:
                log.warning("engine has produced no snapshot lately: withholding the watchdog keep-alive")

    def _report_status(self) -> None:
        status = self.status_line()
        with self._status_lock:
            if status == self._last_status:
                return
            self._last_status = status
        self.notifier.status(status)

    def ticking(self) -> bool:
        """The latest snapshot is at most two ticks (plus slack) old."""
        latest = self.engine.latest()
        if latest is None:
            return False
        return self._clock() - latest.timestamp <= 2 * self.engine.tick_seconds + 2.0

    def status_line(self) -> str:
        latest = self.engine.latest()
        if latest is None:
            return f"starting; serving {self.url}"
        if latest.nvml_status:
            gpus = f"no GPU data: {latest.nvml_status}"
        else:
            up = sum(1 for g in latest.gpus if g.state == model.GpuState.OK)
            gpus = f"{up}/{len(latest.gpus)} GPUs ok"
        parts = [gpus]
        if latest.triton:
            up = sum(1 for s in latest.triton if s.state == model.ServerState.UP)
            parts.append(f"Triton {up}/{len(latest.triton)} up")
        failing = [c.name for c in latest.collectors if c.stale or (c.runs_count and not c.ok)]
        if failing:
            parts.append("failing: " + ", ".join(failing))
        parts.append(f"serving {self.url}")
        return "; ".join(parts)

    def _saw(self, snapshot: model.Snapshot) -> None:
        self._report_status()
        if any(e.kind == model.EventKind.DAEMON_STOP for e in snapshot.events):
            self._stop_recorded.set()

    def _shutdown(self) -> None:
        self.notifier.stopping("stopping")
        self.engine.record_event(
            model.Event(
                self._clock(), model.EventKind.DAEMON_STOP, model.Severity.INFO, "gpuwatch daemon stopping"
            )
        )
        # Keep serving until the stop event is in a snapshot the history has taken.
        if not self._stop_recorded.wait(2 * self.engine.tick_seconds + 1.0):
            log.warning("the daemon_stop event did not reach the history before exit")
        self.server.stop()
        self.engine.stop()
        self.store.close()  # writes what is still queued
        self.notifier.close()
        self._stopped.set()


def with_overrides(settings: Settings, *, listen: str | None, database: str | None) -> Settings:
    daemon = settings.daemon
    if listen is not None:
        daemon = dataclasses.replace(daemon, listen=listen)
    if database is not None:
        daemon = dataclasses.replace(daemon, database=database)
    return dataclasses.replace(settings, daemon=daemon)


__all__ = [
    "AuthConfigError",
    "Checked",
    "Daemon",
    "ExposureError",
    "StartError",
    "check",
    "with_overrides",
]
