"""MIG for the recorded NVML source: a GPU split into MIG devices, as NVML shows one.

Place in the flow: `demo/nvml.py`'s `RecordedNvml` holds one `MigGpu` per GPU it shows in MIG
mode and hands it every call made with a MIG device handle (and the MIG calls made with a
parent's handle). The collector then runs unchanged over what NVML would answer.

Modelled on NVML's documented behaviour (nvml.h, the NVML API reference, and how nvitop reads
MIG through nvidia-ml-py), and on what an H200 with MIG off answered (driver 580.159.04, read
by bench/device/mig_check.py; marked "H200" below):

- `nvmlDeviceGetMigMode(parent)` answers [current, pending], 1 = enabled ([0, 0] on the H200);
  `nvmlDeviceGetMaxMigDeviceCount(parent)` answers 0 when MIG is off (H200), else the most MIG
  devices the GPU can hold (7 on an H100/H200);
- `nvmlDeviceGetMigDeviceHandleByIndex(parent, i)` gives the handle of the i-th MIG device (one
  per compute instance), `NotFound` for an index with none — and for every index when MIG is
  off (H200). A handle of a destroyed instance stays invalid (`InvalidArgument` here), and
  handles may be reused for other instances later;
- a MIG handle answers `nvmlDeviceGetUUID` (`MIG-<uuid>`, the R470+ form), `nvmlDeviceGetName`
  ("<parent name> MIG 1g.10gb"), `nvmlDeviceGetMemoryInfo` (the instance's own memory),
  `nvmlDeviceGetComputeRunningProcesses` (its processes, with their GPU and compute instance
  ids), `nvmlDeviceGetGpuInstanceId`, `nvmlDeviceGetComputeInstanceId`,
  `nvmlDeviceIsMigDeviceHandle`, `nvmlDeviceGetDeviceHandleFromMigDeviceHandle` and
  `nvmlDeviceGetAttributes_v2`; utilization rates, per-process utilization, encoder/decoder,
  clocks, power, temperature, ECC and GPM sampling on a MIG handle are `NotSupported`;
- on the parent in MIG mode, `nvmlDeviceGetUtilizationRates` and per-process utilization are
  `NotSupported` ("On MIG-enabled GPUs, querying device utilization rates is not currently
  supported"); memory info and the process list are the aggregate of every instance, each
  process carrying its `gpuInstanceId` / `computeInstanceId` (0xFFFFFFFF off MIG);
- GPM per GPU instance is `nvmlGpmMigSampleGet(parent, gpuInstanceId, sample)`; metrics
  between two such samples come from `nvmlGpmMetricsGet` as for a whole GPU;
- on a whole GPU's handle (H200): `nvmlDeviceIsMigDeviceHandle` is 0,
  `nvmlDeviceGetGpuInstanceId`, `nvmlDeviceGetComputeInstanceId` and
  `nvmlDeviceGetDeviceHandleFromMigDeviceHandle` are `InvalidArgument`,
  `nvmlDeviceGetAttributes_v2` is `NotSupported`, and with MIG off `nvmlGpmMigSampleGet` is
  `InvalidArgument`; processes carry 0xFFFFFFFF for both instance ids.

The H200's GPU instance profiles (`nvmlDeviceGetGpuInstanceProfileInfo`, readable with MIG
off): 1g.18gb (id 19, 16384 MiB, 16 SMs, 7 of them), 1g.18gb+me (20), 1g.35gb (15, 33280 MiB),
2g.35gb (14), 3g.71gb (9, 71424 MiB, 60 SMs), 4g.71gb (5, 64 SMs), 7g.141gb (0, 143360 MiB,
132 SMs). The recorded GPU is an H100 80GB, so its layout uses the H100's profiles below.

`RecordedNvml.reconfigure_mig` replaces a GPU's layout while it runs (instances destroyed and
created), as `nvidia-smi mig -dci/-dgi/-cgi/-cci` does.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import pynvml

MIB = 1024 * 1024
NO_INSTANCE = 0xFFFFFFFF
"""What NVML puts in a process's gpuInstanceId/computeInstanceId off MIG."""
MAX_MIG_DEVICES = 7
"""An H100 or H200 holds up to seven MIG devices (seven 1g instances)."""

# H100 80GB HBM3 GPU instance profiles (the recorded GPU): slices, memory, SMs.
PROFILES: dict[str, tuple[int, int, int]] = {
    "1g.10gb": (1, 9984, 16),
    "1g.20gb": (1, 19968, 26),
    "2g.20gb": (2, 19968, 32),
    "3g.40gb": (3, 40192, 60),
    "4g.40gb": (4, 40192, 64),
    "7g.80gb": (7, 80896, 132),
}


PROFILE_INFO: dict[int, tuple[str, int, int]] = {
    pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE: ("1g.10gb", 19, 7),
    pynvml.NVML_GPU_INSTANCE_PROFILE_2_SLICE: ("2g.20gb", 14, 3),
    pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE: ("3g.40gb", 9, 2),
    pynvml.NVML_GPU_INSTANCE_PROFILE_4_SLICE: ("4g.40gb", 5, 1),
    pynvml.NVML_GPU_INSTANCE_PROFILE_7_SLICE: ("7g.80gb", 0, 1),
    pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1: ("1g.10gb+me", 20, 1),
    pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2: ("1g.20gb", 15, 4),
}
"""`nvmlDeviceGetGpuInstanceProfileInfo(parent, profile)`: profile → (name, profile id, how many
fit); the other profiles are `NotSupported`, as on the H200."""


def profile_info(profile: int) -> SimpleNamespace:
    """What NVML's v2 profile info holds for one of `PROFILE_INFO`'s profiles."""
    if profile not in PROFILE_INFO:
        raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
    name, profile_id, count = PROFILE_INFO[profile]
    slices, memory_mib, sms = PROFILES[name.removesuffix("+me")]
    return SimpleNamespace(
        id=profile_id,
        sliceCount=slices,
        instanceCount=count,
        multiprocessorCount=sms,
        memorySizeMB=memory_mib,
        name=f"MIG {name}".encode(),
    )


@dataclass(frozen=True, slots=True)
class MigInstance:
    """One MIG device (a compute instance in its GPU instance) of a recorded GPU."""

    profile: str
    gpu_instance_id: int
    compute_instance_id: int = 0
    trace_pids: tuple[int, ...] = ()
    """The recorded trace's PIDs that run on this instance (their memory scaled to its size)."""


MIXED_LAYOUT: tuple[MigInstance, ...] = (
    MigInstance("3g.40gb", 2, 0, (428,)),
    MigInstance("2g.20gb", 3, 0),
    MigInstance("1g.10gb", 9, 0, (430,)),
    MigInstance("1g.10gb", 10, 0),
)
"""3 + 2 + 1 + 1 of 7 slices, the serving process on the 3g instance and two instances idle:
what the tests and the dashboard's snapshots split a GPU into."""
DEMO_LAYOUT: tuple[MigInstance, ...] = (
    MigInstance("4g.40gb", 1, 0, (428,)),
    MigInstance("3g.40gb", 2, 0, (430,)),
)
"""The `--demo` MIG GPU: 4 + 3 slices, a serving process on each; two rows, so that `top
--demo` at 80×24 still shows every model in its overview."""


class MigHandle:
    """A MIG device handle: NVML's overloaded device handle for one compute instance."""

    __slots__ = ("gpu", "layout_generation", "slot")

    def __init__(self, gpu: int, slot: int, layout_generation: int) -> None:
        self.gpu = gpu
        self.slot = slot
        self.layout_generation = layout_generation

    def __repr__(self) -> str:
        return f"<recorded MIG device {self.gpu}:{self.slot}, layout {self.layout_generation}>"


def _error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class MigGpu:
    """The MIG state of one recorded GPU: its layout, handles and per-instance replies."""

    def __init__(self, gpu: int, parent_uuid: str, layout: Sequence[MigInstance]) -> None:
        self.gpu = gpu
        self.parent_uuid = parent_uuid
        self.generation = 0
        self.layout: tuple[MigInstance, ...] = ()
        self._handles: dict[tuple[int, int], MigHandle] = {}
        self.set_layout(layout)

    def set_layout(self, layout: Sequence[MigInstance]) -> None:
        slices = sum(PROFILES[i.profile][0] for i in layout)
        if slices > 7 or len(layout) > MAX_MIG_DEVICES:
            raise ValueError(f"a MIG layout of {slices} slices does not fit a 7-slice GPU")
        self.layout = tuple(layout)
        self.generation += 1

    # -- handles ---------------------------------------------------------------------------

    def handle(self, index: int) -> MigHandle:
        if not 0 <= index < MAX_MIG_DEVICES:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if index >= len(self.layout):
            raise _error(pynvml.NVML_ERROR_NOT_FOUND)
        key = (index, self.generation)
        handle = self._handles.get(key)
        if handle is None:
            handle = self._handles[key] = MigHandle(self.gpu, index, self.generation)
        return handle

    def instance(self, handle: MigHandle) -> MigInstance:
        """The instance a handle stands for; a handle from before a reconfiguration is invalid."""
        if handle.layout_generation != self.generation or handle.slot >= len(self.layout):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.layout[handle.slot]

    def by_gpu_instance(self, gpu_instance_id: int) -> MigInstance:
        for instance in self.layout:
            if instance.gpu_instance_id == gpu_instance_id:
                return instance
        raise _error(pynvml.NVML_ERROR_NOT_FOUND)

    # -- what a MIG handle answers -----------------------------------------------------------

    def uuid(self, instance: MigInstance) -> str:
        base = uuid_module.UUID(self.parent_uuid[4:])
        # A created instance has a new UUID: the layout's generation is part of it.
        name = (
            f"{self.generation}/{instance.gpu_instance_id}/{instance.compute_instance_id}/{instance.profile}"
        )
        return "MIG-" + str(uuid_module.uuid5(base, name))

    def memory_total_bytes(self, instance: MigInstance) -> int:
        return PROFILES[instance.profile][1] * MIB

    def process_bytes(self, instance: MigInstance, trace_bytes: int, parent_total: int) -> int:
        """A trace process's memory, scaled from the whole GPU to this instance's share."""
        return int(trace_bytes * self.memory_total_bytes(instance) / max(1, parent_total))

    def attributes(self, instance: MigInstance) -> SimpleNamespace:
        slices, memory_mib, sms = PROFILES[instance.profile]
        return SimpleNamespace(
            multiprocessorCount=sms,
            sharedCopyEngineCount=slices,
            sharedDecoderCount=slices // 2,
            sharedEncoderCount=0,
            sharedJpegCount=slices // 7,
            sharedOfaCount=slices // 7,
            gpuInstanceSliceCount=slices,
            computeInstanceSliceCount=slices,
            memorySizeMB=memory_mib,
        )

    def instance_of_pid(self, trace_pid: int) -> MigInstance | None:
        for instance in self.layout:
            if trace_pid in instance.trace_pids:
                return instance
        return None
