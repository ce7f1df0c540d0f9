"""One Triton server across polls: its state (up, down, absent, error), its events, its status.

Place in the flow: the collector (`collector.py`) runs `ServerPoller.poll` as the engine job
for this server, on a thread of its own, so a stalled server never delays another server or an
NVML tick. Each poll is fetched by `poll.py`; when it gave something usable its models go
through the bookkeeping (`models.py`); this module decides the server's state and reason and
publishes an immutable `TritonServerStatus` that `status()` reads from any thread.

The server is `up` when any of index, statistics and metrics could be used, `down` when they
all failed by timeout, refusal or HTTP 5xx (or the health check did), and `error` when what
came back was unusable. The implicit default server with nothing listening is `absent`,
quietly, and is looked for again only every ABSENT_RECHECK_SECONDS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from gpuwatch import model
from gpuwatch.collect.triton.models import ModelBook
from gpuwatch.collect.triton.poll import PollFetcher, PollResult, Unreachable
from gpuwatch.config import TritonServerSettings, TritonSettings

ABSENT_RECHECK_SECONDS = 15.0
"""How often the implicit local server is looked for while nothing listens there."""


class ServerPoller:
    """Polls one Triton server; `poll()` runs on the engine's job thread for this server."""

    def __init__(
        self,
        server: TritonServerSettings,
        settings: TritonSettings,
        *,
        implicit: bool = False,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = server.name
        self.url = server.url.rstrip("/")
        self.metrics_url = server.metrics_url
        self._implicit = implicit
        self._monotonic = monotonic
        self._fetcher = PollFetcher(server, settings, transport=transport, clock=clock, monotonic=monotonic)
        self._book = ModelBook(self.name, config_refresh_seconds=settings.config_refresh_seconds)
        self._ever_up = False
        self._absent_until: float | None = None
        self._outage = False
        self._polls = 0
        self._taken = True
        """The last status published was read: a poll's intervals start where it ended."""
        self._lock = threading.Lock()
        self._events: list[model.Event] = []
        self._status = model.TritonServerStatus(
            self.name, self.url, model.ServerState.ABSENT, "not polled yet"
        )

    # -- readers (any thread) --------------------------------------------------------------

    def status(self) -> model.TritonServerStatus:
        """The latest status; reading it takes its intervals (a snapshot now holds them)."""
        with self._lock:
            self._taken = True
            return self._status

    def drain_events(self) -> list[model.Event]:
        with self._lock:
            events, self._events = self._events, []
        return events

    @property
    def fresh_retries(self) -> int:
        """Requests of this server's polls sent again on a fresh connection (see `http.py`)."""
        return self._fetcher.fresh_retries

    def close(self) -> None:
        self._fetcher.close()

    # -- one poll ---------------------------------------------------------------------------

    def poll(self) -> str | None:
        """Poll once; None when the server is up and every endpoint answered (or absent)."""
        started = self._monotonic()
        if self._absent_until is not None and started < self._absent_until:
            return None  # the implicit local server was not there: look again later
        p = self._fetcher.fetch(started, lambda key: self._book.config_due(key, started))
        if p.unreachable is not None:
            return self._unreachable(p, p.unreachable)
        return self._finish(p)

    def _unreachable(self, p: PollResult, why: Unreachable) -> str | None:
        previous = self._status.state
        if self._implicit and why.kind == "refused" and not self._ever_up:
            # Nobody configured this server, and nothing listens there: a poll costs ~1 ms of
            # CPU for nothing, so look again every ABSENT_RECHECK_SECONDS, not every second.
            self._absent_until = p.started + ABSENT_RECHECK_SECONDS
            reason = f"nothing listens at {self.url} (looked again every {ABSENT_RECHECK_SECONDS:g} s)"
            self._publish(model.ServerState.ABSENT, reason, p, ())
            return None
        reason = f"{self.url}: {why.reason}"
        self._outage = True
        if previous not in (model.ServerState.DOWN, model.ServerState.ERROR):
            self._event(
                model.EventKind.TRITON_DOWN,
                model.Severity.CRITICAL,
                f"Triton {self.name} is down: {reason}",
                p,
            )
        self._publish(model.ServerState.DOWN, reason, p, ())
        return reason

    def _finish(self, p: PollResult) -> str | None:
        reason_parts = ([p.not_ready] if p.not_ready else []) + list(p.problems)
        reason = "; ".join(reason_parts) or None
        previous = self._status.state
        if not p.usable:
            down = p.only_unreachable
            state = model.ServerState.DOWN if down else model.ServerState.ERROR
            if previous not in (model.ServerState.DOWN, model.ServerState.ERROR):
                self._event(
                    model.EventKind.TRITON_DOWN,
                    model.Severity.CRITICAL if down else model.Severity.WARNING,
                    f"Triton {self.name} gives nothing usable: {reason}",
                    p,
                )
            self._outage = True
            self._publish(state, reason, p, ())
            return reason or "nothing usable"
        recovering = self._outage and self._ever_up
        if previous in (model.ServerState.DOWN, model.ServerState.ERROR) or (
            previous == model.ServerState.ABSENT and self._polls > 0
        ):
            self._event(
                model.EventKind.TRITON_UP,
                model.Severity.INFO,
                f"Triton {self.name} is up (Triton {p.version or 'version unknown'})",
                p,
            )
        # A poll that finished after a snapshot was assembled and before the next poll was not
        # in any snapshot: this poll's intervals reach back over it, so no interval is lost.
        update = self._book.update(p, recovering=recovering, extend=not self._taken)
        with self._lock:
            self._events += update.events
        self._outage = False
        self._ever_up = True
        self._publish(model.ServerState.UP, reason, p, update.models)
        return reason

    def _event(self, kind: model.EventKind, severity: model.Severity, message: str, p: PollResult) -> None:
        event = model.Event(p.wall, kind, severity, message, server=self.name)
        with self._lock:
            self._events.append(event)

    def _publish(
        self,
        state: model.ServerState,
        reason: str | None,
        p: PollResult,
        models: tuple[model.ModelStats, ...],
    ) -> None:
        self._polls += 1
        status = model.TritonServerStatus(
            name=self.name,
            url=self.url,
            state=state,
            reason=reason,
            version=p.version,
            polled_at=p.wall,
            poll_seconds=self._monotonic() - p.started,
            models=models,
        )
        with self._lock:
            self._taken = False
            self._status = status
