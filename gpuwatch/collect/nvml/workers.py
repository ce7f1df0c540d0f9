"""The per-GPU worker threads, and telling when one is stuck in the driver.

Place in the flow: the collector's jobs hand each GPU's reads to that GPU's workers (one for
the fast fields, one for the slow ones) and wait for them up to a deadline; when the view is
built, a worker busy past `call_timeout_seconds` makes its GPU `hung`, naming the call.

A call stuck in the driver cannot be cancelled (a thread in C cannot be interrupted), so each
GPU gets its own threads: the stuck one stays stuck, the others go on. A worker takes a new job
only once the previous one returned, so a stuck GPU never piles up threads or calls.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger("gpuwatch.nvml")


class GpuWorker:
    """A thread that runs one job at a time for one GPU."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self.busy_since: float | None = None
        """`time.monotonic()` when the running job started; None while idle."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def thread_id(self) -> int | None:
        return self._thread.ident

    def submit(self, job: Callable[[], None]) -> bool:
        """Start `job` unless the previous one is still running."""
        if not self._idle.is_set():
            return False
        self._idle.clear()
        self.busy_since = time.monotonic()
        self._jobs.put(job)
        return True

    def wait(self, timeout: float) -> bool:
        return self._idle.wait(max(0.0, timeout))

    def retire(self) -> None:
        """Let the thread end after its current job (at once, if it is idle)."""
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # a bug in a job must not kill the GPU's thread
                log.exception("NVML worker %s failed", self._thread.name)
            finally:
                self.busy_since = None
                self._idle.set()


def wait_for_all(workers: Iterable[GpuWorker], deadline: float) -> None:
    """Wait for each worker's job until the `time.monotonic()` deadline, together, not each."""
    for worker in workers:
        worker.wait(deadline - time.monotonic())


def hung_reason(
    workers: Iterable[GpuWorker | None],
    now_monotonic: float,
    call_timeout_seconds: float,
    last_call: Callable[[int], str | None],
) -> str | None:
    """Why a GPU is hung, in words, when one of its workers has been busy past the timeout.

    `last_call(thread_id)` names the NVML function that thread called last (the gateway knows)."""
    for worker in workers:
        since = worker.busy_since if worker else None
        if worker is None or since is None:
            continue
        waited = now_monotonic - since
        if waited < call_timeout_seconds:
            continue
        what = last_call(worker.thread_id or 0) or "an NVML call"
        return f"{what} has not returned for {waited:.1f} s"
    return None
