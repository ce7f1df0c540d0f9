"""What a figure is read from: one snapshot, and what only the stream of snapshots can count.

Place in the flow: engine → snapshot → **Reading** → the figures' readers (`catalog.entities`
picks the objects of each entity kind out of it). The history reads a snapshot alone
(`Reading(snapshot)`); /metrics also reads what `serve.metrics.MetricsState` counts over the
stream since the daemon started (events, XIDs, executed batch sizes), which no single snapshot
holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gpuwatch import model

BATCH_SIZE_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
"""Upper bounds of the executed-batch-size histogram's buckets (then +Inf)."""

ModelKey = tuple[str, str, str]
"""(server, model, version): one model version."""


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """Executions of one model version by executed batch size, since the daemon started."""

    buckets: tuple[int, ...]
    """Cumulative executions with batch size ≤ each of BATCH_SIZE_BUCKETS, then +Inf."""
    batch_size_sum: int
    """The inferences those executions carried (the sum of their batch sizes)."""


@dataclass(frozen=True, slots=True)
class Tally:
    """What only a stream of snapshots gives: counts since the daemon started."""

    events_by_kind: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    xids_by_gpu: Mapping[tuple[str, str], Mapping[int, int]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """(gpu index, uuid) → XID code → count."""
    batches_by_model: Mapping[ModelKey, BatchCounts] = field(default_factory=lambda: MappingProxyType({}))
    last_xid_by_gpu: Mapping[tuple[str, str], int] = field(default_factory=lambda: MappingProxyType({}))
    """(gpu index, uuid) → the code of the GPU's latest XID since the daemon started, 0 for none
    (dcgm-exporter's DCGM_FI_DEV_XID_ERRORS)."""


NO_TALLY = Tally()


@dataclass(frozen=True, slots=True)
class Reading:
    """One consistent reading for every figure: the latest snapshot and the tally beside it."""

    snapshot: model.Snapshot | None
    tally: Tally = NO_TALLY
    exporter_version: str = ""
    """The version of the gpuwatch serving the figures (`gpuwatch_build_info`)."""
