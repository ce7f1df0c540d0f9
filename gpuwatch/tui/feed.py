"""`Feed`: polls one node's client for snapshots in a worker thread, on the refresh interval.

Place in the flow: client → **Feed** → screen → panels. The feed is the only thing that asks a
client for snapshots; it never blocks the UI thread (a daemon may take seconds to answer) and
never has more than one request in flight, so a node that hangs costs one waiting thread, not
one per refresh. It reports upward with `Feed.Updated` or `Feed.Failed` and keeps asking at the
same interval while the node fails: that is the reconnect.
"""

from __future__ import annotations

import threading
import time

from textual import work
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget

from gpuwatch import model
from gpuwatch.client.protocol import Client, ClientError, NotReadyError

NOT_READY_RETRIES = 40
NOT_READY_RETRY_SECONDS = 0.05
MIN_REFRESH_SECONDS = 0.1
MAX_REFRESH_SECONDS = 60.0


class Feed(Widget):
    DEFAULT_CSS = "Feed { display: none; }"

    refresh_seconds: reactive[float] = reactive(1.0, init=False)
    paused: reactive[bool] = reactive(False, init=False)
    """A screen that is not shown pauses its feeds (the cluster view under a node's view)."""

    class Updated(Message):
        def __init__(self, feed: Feed, snapshot: model.Snapshot) -> None:
            super().__init__()
            self.feed = feed
            self.snapshot = snapshot

    class Failed(Message):
        def __init__(self, feed: Feed, reason: str, *, not_ready: bool = False) -> None:
            super().__init__()
            self.feed = feed
            self.reason = reason
            self.not_ready = not_ready
            """The node answers but has nothing yet (it has just started): not a fault."""

    def __init__(self, client: Client, refresh_seconds: float = 1.0, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.client = client
        self._timer: Timer | None = None
        self._in_flight = threading.Event()
        self.set_reactive(Feed.refresh_seconds, self.validate_refresh_seconds(refresh_seconds))

    def validate_refresh_seconds(self, value: float) -> float:
        return max(MIN_REFRESH_SECONDS, min(MAX_REFRESH_SECONDS, value))

    def on_mount(self) -> None:
        self._timer = self.set_interval(self.refresh_seconds, self.poll)
        self.poll()

    def watch_refresh_seconds(self, value: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(value, self.poll)

    def watch_paused(self, paused: bool) -> None:
        if not paused:
            self.poll()

    def _first_ready(self) -> model.Snapshot:
        """The snapshot; while the source is still starting, ask again every 50 ms (for up to
        2 s) rather than a whole refresh interval later, so the first data is on screen as soon
        as it exists."""
        for _ in range(NOT_READY_RETRIES):
            try:
                return self.client.snapshot()
            except NotReadyError:
                time.sleep(NOT_READY_RETRY_SECONDS)
        return self.client.snapshot()

    def poll(self) -> None:
        """Ask for a snapshot now, unless paused or a request is still out."""
        if self.paused or self._in_flight.is_set():
            return
        self._in_flight.set()
        self._fetch()

    @work(thread=True, group="feed", exit_on_error=False)
    def _fetch(self) -> None:
        try:
            snapshot = self._first_ready()
        except NotReadyError as exc:
            self.post_message(self.Failed(self, str(exc), not_ready=True))
        except ClientError as exc:
            self.post_message(self.Failed(self, str(exc)))
        except Exception as exc:  # a client bug must show on screen, not kill the feed
            self.post_message(self.Failed(self, f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.Updated(self, snapshot))
        finally:
            self._in_flight.clear()
