"""The MIG devices of a GPU in MIG mode: found each tick, read, and their GPM per GPU instance.

Place in the flow: the collector's fast job calls `read_mig` after a GPU's fast read when the
GPU's facts say MIG is on, and its slow job calls `read_mig_gpm` where the GPU has GPM; both go
through the gateway with the GPU's live handle. `view` joins the readings into
`model.MigDevice` rows and tags each process with the MIG device it runs on.

What NVML gives (see demo/nvml_mig.py for the documented behaviour this follows): MIG device
handles by index under the parent (`NotFound` for an empty index), each answering its UUID
(`MIG-…`), GPU and compute instance ids, name ("… MIG 1g.10gb", which carries the profile),
memory and processes; GPM per GPU instance through `nvmlGpmMigSampleGet` on the parent. Handles
are looked up again every tick: NVML says a destroyed instance's handle stays invalid and
handles may be reused, so a reconfiguration (instances created or destroyed while running) is
seen at the next tick, like a GPU plugged in or out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pynvml

from gpuwatch import model
from gpuwatch.collect.nvml.gateway import NvmlGateway
from gpuwatch.collect.nvml.readers import gpm_between
from gpuwatch.collect.nvml.readings import GpuProcess
from gpuwatch.collect.nvml.values import uint_or_none

_NOT_FOUND = frozenset({pynvml.NVML_ERROR_NOT_FOUND})
_PROFILE = re.compile(r"\bMIG\s+(\S+)\s*$")
NO_INSTANCE = 0xFFFFFFFF
"""What NVML puts in a process's instance ids off MIG."""


@dataclass(frozen=True, slots=True)
class MigReading:
    """One MIG device as one fast read saw it."""

    mig_index: int
    uuid: str
    gpu_instance_id: int | None
    compute_instance_id: int | None
    profile: str | None
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    memory_free_bytes: int | None
    processes: tuple[GpuProcess, ...] = ()


@dataclass(slots=True)
class MigGpmCursor:
    """Two GPM sample buffers of one GPU instance, used in turn, and the previous sample."""

    samples: list[Any]
    previous: tuple[Any, float] | None = None


@dataclass(slots=True)
class MigState:
    """What a GPU's MIG reads carry from one read to the next (kept on its `TrackedGpu`)."""

    devices: tuple[MigReading, ...] = ()
    profiles: dict[tuple[int, int], str] | None = None
    """The parent's GPU instance profiles by (slices, memory MiB), read at the first MIG read."""
    seen_once: bool = False
    """A first read has happened: a change after it is a reconfiguration."""
    gpm: dict[int, model.GpmActivity] = field(default_factory=dict)
    """The latest GPM activity by GPU instance id."""
    cursors: dict[int, MigGpmCursor] = field(default_factory=dict)


def instance_id(value: Any) -> int | None:
    """A process's or device's instance id; None for NVML's 0xFFFFFFFF (not on MIG)."""
    number = uint_or_none(value)
    return None if number is None or number == NO_INSTANCE else number


def profile_from_name(name: Any) -> str | None:
    """ "NVIDIA H100 80GB HBM3 MIG 1g.10gb" → "1g.10gb"."""
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    match = _PROFILE.search(name) if isinstance(name, str) else None
    return match.group(1) if match else None


def read_profiles(gateway: NvmlGateway, parent_uuid: str, h: Any) -> dict[tuple[int, int], str]:
    """The parent's GPU instance profiles, (slices, memory MiB) → name ("1g.18gb"); read once
    per GPU (unprivileged, and answered with MIG off too: bench/device/mig_check.py)."""
    out: dict[tuple[int, int], str] = {}
    for profile in range(int(getattr(pynvml, "NVML_GPU_INSTANCE_PROFILE_COUNT", 0))):
        info = gateway.call(
            parent_uuid, f"mig_profile_{profile}", "nvmlDeviceGetGpuInstanceProfileInfo", h, profile
        )
        name = profile_from_name(getattr(info, "name", None)) if info is not None else None
        slices = uint_or_none(getattr(info, "sliceCount", None))
        memory = uint_or_none(getattr(info, "memorySizeMB", None))
        if name and slices is not None and memory is not None:
            out.setdefault((slices, memory), name)
    return out


def _profile(
    gateway: NvmlGateway, uuid: str, mh: Any, profiles: dict[tuple[int, int], str] | None
) -> str | None:
    """The MIG device's profile: from its name ("… MIG 1g.10gb"), else its slices and memory
    (`nvmlDeviceGetAttributes_v2`) matched to the parent's profiles."""
    named = profile_from_name(gateway.call(uuid, "name", "nvmlDeviceGetName", mh))
    if named is not None or not profiles:
        return named
    attrs = gateway.call(uuid, "attributes", "nvmlDeviceGetAttributes_v2", mh)
    slices = uint_or_none(getattr(attrs, "gpuInstanceSliceCount", None))
    memory = uint_or_none(getattr(attrs, "memorySizeMB", None))
    return profiles.get((slices, memory)) if slices is not None and memory is not None else None


def read_mig(
    gateway: NvmlGateway, parent_uuid: str, h: Any, profiles: dict[tuple[int, int], str] | None = None
) -> tuple[MigReading, ...]:
    """Every MIG device under the parent handle `h` now, in index order; `profiles` (from
    `read_profiles`) names a device whose name does not carry its profile."""
    c = gateway.call
    count = uint_or_none(c(parent_uuid, "mig_device_count", "nvmlDeviceGetMaxMigDeviceCount", h)) or 0
    out = []
    for index in range(count):
        mh = c(
            parent_uuid,
            f"mig_handle_{index}",
            "nvmlDeviceGetMigDeviceHandleByIndex",
            h,
            index,
            none_on=_NOT_FOUND,
        )
        if mh is None:
            continue
        uuid = c(parent_uuid, f"mig_uuid_{index}", "nvmlDeviceGetUUID", mh, none_on=_NOT_FOUND)
        if not isinstance(uuid, str | bytes):
            continue  # destroyed between the two calls
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        mem = c(uuid, "memory_v2", "nvmlDeviceGetMemoryInfo", mh, pynvml.nvmlMemory_v2)
        if mem is None:
            mem = c(uuid, "memory_v1", "nvmlDeviceGetMemoryInfo", mh)
        procs = c(uuid, "processes_compute", "nvmlDeviceGetComputeRunningProcesses", mh) or ()
        out.append(
            MigReading(
                mig_index=index,
                uuid=uuid,
                gpu_instance_id=instance_id(c(uuid, "gpu_instance_id", "nvmlDeviceGetGpuInstanceId", mh)),
                compute_instance_id=instance_id(
                    c(uuid, "compute_instance_id", "nvmlDeviceGetComputeInstanceId", mh)
                ),
                profile=_profile(gateway, uuid, mh, profiles),
                memory_total_bytes=uint_or_none(getattr(mem, "total", None)),
                memory_used_bytes=uint_or_none(getattr(mem, "used", None)),
                memory_free_bytes=uint_or_none(getattr(mem, "free", None)),
                processes=tuple(
                    GpuProcess(
                        int(p.pid),
                        "compute",
                        uint_or_none(p.usedGpuMemory),
                        instance_id(getattr(p, "gpuInstanceId", None)),
                        instance_id(getattr(p, "computeInstanceId", None)),
                    )
                    for p in procs
                ),
            )
        )
    return tuple(out)


def changes(before: tuple[MigReading, ...], after: tuple[MigReading, ...]) -> str | None:
    """In words, which MIG devices appeared and vanished; None when the set is the same."""
    old = {d.uuid: d for d in before}
    new = {d.uuid: d for d in after}
    gone = [f"−{d.profile or '?'} {u}" for u, d in old.items() if u not in new]
    came = [f"+{d.profile or '?'} {u}" for u, d in new.items() if u not in old]
    if not gone and not came:
        return None
    return ", ".join(came + gone)


def read_mig_gpm(
    gateway: NvmlGateway, parent_uuid: str, h: Any, state: MigState, now: float
) -> dict[int, model.GpmActivity]:
    """GPM of each GPU instance between its previous sample and one taken now (`now` on the
    collector's interval clock). An instance seen for the first time has none yet."""
    instances = {d.gpu_instance_id for d in state.devices if d.gpu_instance_id is not None}
    for gone in set(state.cursors) - instances:  # destroyed: release its buffers
        _free(gateway, parent_uuid, state.cursors.pop(gone))
    out: dict[int, model.GpmActivity] = {}
    for gi in sorted(instances):
        cursor = state.cursors.get(gi)
        if cursor is None:
            samples = [gateway.call(parent_uuid, "gpm_alloc", "nvmlGpmSampleAlloc") for _ in range(2)]
            if any(s is None for s in samples):
                return out
            cursor = state.cursors[gi] = MigGpmCursor(samples)
        activity = _gpm_once(gateway, parent_uuid, h, gi, cursor, now=now)
        if activity is not None:
            out[gi] = activity
    return out


def release_mig(gateway: NvmlGateway, parent_uuid: str, state: MigState) -> None:
    """Free every GPM buffer of a GPU's instances (host memory: no handle is needed)."""
    for gi in list(state.cursors):
        _free(gateway, parent_uuid, state.cursors.pop(gi))


def _free(gateway: NvmlGateway, parent_uuid: str, cursor: MigGpmCursor) -> None:
    for sample in cursor.samples:
        gateway.call(parent_uuid, "gpm_free", "nvmlGpmSampleFree", sample)


def _gpm_once(
    gateway: NvmlGateway, parent_uuid: str, h: Any, gi: int, cursor: MigGpmCursor, *, now: float
) -> model.GpmActivity | None:
    previous = cursor.previous
    sample = cursor.samples[0] if previous is None or previous[0] is cursor.samples[1] else cursor.samples[1]
    if (
        gateway.call(parent_uuid, "gpm_mig_sample", "nvmlGpmMigSampleGet", h, gi, sample, none_on=_NOT_FOUND)
        is None
    ):
        return None
    cursor.previous = (sample, now)
    if previous is None:
        return None
    return gpm_between(gateway, parent_uuid, "gpm_mig_metrics", previous, (sample, now), none_on=_NOT_FOUND)


def mig_devices(
    gpu_index: int, gpu_uuid: str, state: MigState, gpm_supported: bool | None
) -> list[model.MigDevice]:
    """The GPU's MIG devices as the data model's rows, with why each missing figure is missing."""
    out = []
    for d in state.devices:
        gpm = state.gpm.get(d.gpu_instance_id) if d.gpu_instance_id is not None else None
        why = dict(model.MIG_NOT_PER_DEVICE)
        if gpm is None:
            why["gpm"] = (
                "this GPU has no GPM (Hopper and later)"
                if gpm_supported is False
                else "no GPM sample of this GPU instance yet"
            )
        out.append(
            model.MigDevice(
                gpu_index=gpu_index,
                gpu_uuid=gpu_uuid,
                mig_index=d.mig_index,
                uuid=d.uuid,
                gpu_instance_id=d.gpu_instance_id,
                compute_instance_id=d.compute_instance_id,
                profile=d.profile,
                memory_total_bytes=d.memory_total_bytes,
                memory_used_bytes=d.memory_used_bytes,
                memory_free_bytes=d.memory_free_bytes,
                gpm=gpm,
                unavailable=why,
            )
        )
    return out


def device_of(state: MigState, process: GpuProcess) -> MigReading | None:
    """The MIG device a process runs on: by its instance ids, else the device that lists it."""
    for d in state.devices:
        if process.gpu_instance_id is not None and (d.gpu_instance_id, d.compute_instance_id) == (
            process.gpu_instance_id,
            process.compute_instance_id,
        ):
            return d
    for d in state.devices:
        if any(p.pid == process.pid for p in d.processes):
            return d
    return None
