"""The collector's mutable record of one GPU.

Place in the flow: `lifecycle` creates one per GPU index and renews its handle, facts and read
cursors when the GPU is (re)opened; `readers` read through its handle and advance its cursors;
the GPU's workers store whole frozen readings in it; `view` reads it under the collector's lock.
Readings are replaced, never changed in place, so a view never sees half of a read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pynvml

from gpuwatch import model
from gpuwatch.collect.nvml.links import LinkCursors
from gpuwatch.collect.nvml.readings import FastReading, ProcessUtilization, SlowReading
from gpuwatch.collect.nvml.values import NvlinkCounters
from gpuwatch.collect.nvml.workers import GpuWorker

if TYPE_CHECKING:
    from gpuwatch.collect.nvml.mig import MigState

SLOW_FIELD_IDS = (pynvml.NVML_FI_DEV_MEMORY_TEMP, pynvml.NVML_FI_DEV_PCIE_REPLAY_COUNTER)
"""The field values every slow read asks for (NVLink counters are added when needed)."""


@dataclass(slots=True)
class ReadCursors:
    """What a GPU's slow reads carry from one read to the next. Renewed with the GPU's handle."""

    gpm_samples: list[Any] = field(default_factory=list)
    """Two GPM sample buffers, used in turn; empty when GPM is off or unsupported."""
    gpm_previous: tuple[Any, float] | None = None
    """The buffer holding the last GPM sample, and when it was taken (the collector's interval clock)."""
    process_utilization_seen_us: int = 0
    """The newest per-process sample timestamp seen: NVML answers with what came after it."""
    nvlink_previous: NvlinkCounters | None = None
    links: LinkCursors = field(default_factory=LinkCursors)
    """Each NVLink link's facts (read once per handle) and traffic counters at the previous read."""
    energy_due_at: float = 0.0
    """When the total energy counter is next read (the collector's interval clock)."""


class TrackedGpu:
    """One GPU index as the collector knows it. Workers replace whole values, under the lock."""

    def __init__(self, index: int, uuid: str, handle: Any) -> None:
        self.index = index
        self.uuid = uuid
        """"index-N" until NVML has told the real UUID."""
        self.handle: Any = handle
        """None while the GPU is lost (or not yet opened): a lost handle is never used again."""
        self.info = model.GpuInfo(index=index, uuid=uuid)
        # lifecycle
        self.lost_reason: str | None = None
        """Why it is lost; None with no handle means its first open is still running."""
        self.retry_at = 0.0
        """`time.monotonic()` of the next lookup while lost; the delay doubles after each miss."""
        self.retry_delay = 1.0
        self.hung_reported = False
        """A GPU_HUNG event was recorded for this hang (cleared by the next fast read that returns)."""
        self.fast_worker: GpuWorker | None = None
        self.slow_worker: GpuWorker | None = None
        # the latest readings
        self.fast = FastReading()
        self.slow = SlowReading()
        self.gpm: model.GpmActivity | None = None
        self.process_utilization: Mapping[int, ProcessUtilization] = {}
        self.process_utilization_known = False
        """NVML has answered for per-process utilization: a process missing from it ran nothing."""
        self.remap_failed = False
        self.mig: MigState | None = None
        """Its MIG devices and their GPM, while the GPU is in MIG mode (`mig`)."""
        # what reads carry
        self.cursors = ReadCursors()
        self.slow_field_ids: list[int] = list(SLOW_FIELD_IDS)
        """Field ids still asked for: one NVML refuses is dropped for good (kept across handles)."""

    @property
    def lost(self) -> bool:
        return self.handle is None
