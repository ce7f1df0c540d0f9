"""A recorded, fault-injecting stand-in for the pynvml module.

It stands exactly where `pynvml` stands — the collector's NVML API object — so the real
collector code runs unchanged over it, in CI and in `--demo`. It replays the 72 s trace taken
on a real H100 under a PyTorch load (`data/nvml_trace_load.jsonl`: idle → bf16 matmul at the
power cap → device-to-device copy → FP32 → memory held idle) as any number of GPUs, each offset
in time so they differ, with static facts from the same GPU (`data/nvml_probe.json`). Values,
return shapes and errors are pynvml's own: errors are real `pynvml.NVMLError` subclasses, field
values and GPM requests are pynvml's ctypes structures.

On demand, per GPU, per call and from a given tick, it injects what a real driver does on a bad
day: `GPU_IS_LOST`, `UNKNOWN`, `NOT_SUPPORTED`, an uninitialised library (`UNINITIALIZED`,
`DRIVER_NOT_LOADED`, `LIB_RM_VERSION_MISMATCH`), a call that hangs (`HANG`), XID and ECC events,
and value overrides (a hot, slowed-down GPU). A tick is `tick_seconds` of the injected clock.
The schedule of those faults is `demo/nvml_faults.py`; this module is the replay and pynvml's
function names over it. It stays one module of ~580 lines on purpose: most of it is pynvml's
surface, one short method per NVML function the collector calls, and splitting one class's
methods across files would hide which functions the stand-in answers.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import threading
import time
import uuid as uuid_module
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from types import SimpleNamespace
from typing import Any

import pynvml

from gpuwatch.collect.host import HostProcess
from gpuwatch.demo.nvml_faults import LOSING_KINDS, Fault, NvmlFaults, Override
from gpuwatch.demo.nvml_mig import MAX_MIG_DEVICES, NO_INSTANCE, MigGpu, MigHandle, MigInstance, profile_info

TRACE_PERIOD_SECONDS = 0.5
"""The recorded trace was sampled at 2 Hz."""

PHASES: tuple[tuple[str, int, int], ...] = (
    ("bf16 matmul at the power cap", 17, 51),
    ("device-to-device copy", 53, 76),
    ("idle", 119, 144),
    ("FP32", 77, 95),
    ("memory held, idle", 99, 114),
)
"""The trace's steady stretches, [start, end) in samples (transitions left out), in the order a
GPU plays them when `hold_seconds` is set; GPU i starts at phase i × len(PHASES) / gpus."""

# GPM metric id → key in the trace's "gpm" object.
_GPM_KEYS = {
    pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL: "graphics_util",
    pynvml.NVML_GPM_METRIC_SM_UTIL: "sm_util",
    pynvml.NVML_GPM_METRIC_SM_OCCUPANCY: "sm_occupancy",
    pynvml.NVML_GPM_METRIC_INTEGER_UTIL: "integer_util",
    pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: "any_tensor_util",
    pynvml.NVML_GPM_METRIC_DFMA_TENSOR_UTIL: "dfma_tensor_util",
    pynvml.NVML_GPM_METRIC_HMMA_TENSOR_UTIL: "hmma_tensor_util",
    pynvml.NVML_GPM_METRIC_IMMA_TENSOR_UTIL: "imma_tensor_util",
    pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: "dram_bw_util",
    pynvml.NVML_GPM_METRIC_FP64_UTIL: "fp64_util",
    pynvml.NVML_GPM_METRIC_FP32_UTIL: "fp32_util",
    pynvml.NVML_GPM_METRIC_FP16_UTIL: "fp16_util",
    pynvml.NVML_GPM_METRIC_PCIE_TX_PER_SEC: "pcie_tx_mibs",
    pynvml.NVML_GPM_METRIC_PCIE_RX_PER_SEC: "pcie_rx_mibs",
    pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC: "nvlink_rx_mibs",
    pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC: "nvlink_tx_mibs",
}

# Who the recorded PIDs are, for the demo's process table (the trace has PIDs only).
_RECORDED_PROCESSES = {
    428: (
        "svc-infer",
        "python3",
        "python3 /srv/llm/serve.py --model llama-3.1-8b-instruct --port 9001",
        True,
    ),
    430: ("alice", "python3", "python3 embed_batch.py --input /data/shards/0042 --batch 256", False),
}


def load_trace() -> list[dict[str, Any]]:
    text = resources.files("gpuwatch.demo").joinpath("data/nvml_trace_load.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_probe() -> dict[str, Any]:
    text = resources.files("gpuwatch.demo").joinpath("data/nvml_probe.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def recorded_gpu_uuid(gpu: int, probe_values: dict[str, Any] | None = None) -> str:
    """The UUID the recorded source gives GPU `gpu` (the demo's Triton labels its series with it)."""
    values = probe_values if probe_values is not None else load_probe()["values"]
    base = uuid_module.UUID(values["uuid"][4:])
    return "GPU-" + str(uuid_module.uuid5(base, str(gpu)))


class _Handle:
    """An opaque device handle. Its generation changes when its GPU is lost."""

    __slots__ = ("generation", "index")

    def __init__(self, index: int, generation: int) -> None:
        self.index = index
        self.generation = generation

    def __repr__(self) -> str:
        return f"<recorded GPU {self.index} handle, generation {self.generation}>"


class RecordedNvml:
    """Replays the H100 trace as `gpus` GPUs behind pynvml's function names."""

    def __init__(
        self,
        gpus: int = 4,
        *,
        clock: Callable[[], float] = time.time,
        tick_seconds: float = 1.0,
        on_call: Callable[[str], None] | None = None,
        extra_processes: Iterable[tuple[int, int, int, HostProcess]] = (),
        mig: Mapping[int, Sequence[MigInstance]] | None = None,
        hold_seconds: float | None = None,
    ) -> None:
        """`on_call(function_name)` runs at the start of every call (bench/nvml_cost_model.py
        burns the driver's measured CPU cost there); `extra_processes` adds (gpu, pid, used_bytes,
        host facts) rows, e.g. a tritonserver; `mig` puts GPUs in MIG mode, each with its layout
        (`demo/nvml_mig.py`; an extra process on such a GPU runs on its first instance).
        `hold_seconds`: each GPU loops one phase of the trace (`PHASES`) that long before the
        next, so a GPU keeps its role long enough to be read (`--demo`); None replays the whole
        72 s trace straight (the tests' scenes)."""
        self.gpu_count = gpus
        self._clock = clock
        self._t0 = clock()
        self._tick_seconds = tick_seconds
        self._trace = load_trace()
        self._probe = load_probe()["values"]
        self._on_call = on_call
        self._extra = list(extra_processes)
        self._lock = threading.Lock()
        self._faults = NvmlFaults(self.tick)
        self._generation = [0] * gpus
        self._handles: dict[tuple[int, int], _Handle] = {}
        self._lost_seen = [False] * gpus
        self._initialised = False
        self._registered: dict[int, int] = {}
        self._gpm_samples: dict[int, tuple[int, int]] = {}
        self._gpm_buffers: dict[int, Any] = {}
        self._gpm_mig_samples: dict[int, tuple[int, int, int]] = {}
        self._mig: dict[int, MigGpu] = {
            gpu: MigGpu(gpu, recorded_gpu_uuid(gpu, self._probe), layout)
            for gpu, layout in (mig or {}).items()
        }
        self._hold = None if hold_seconds is None else max(1, round(hold_seconds / TRACE_PERIOD_SECONDS))
        """Samples each phase is held for, or None for a straight replay."""
        self._phase_energy_mj = (
            [
                self._hold * TRACE_PERIOD_SECONDS * sum(t["power_mw"] for t in self._trace[a:b]) / (b - a)
                for _, a, b in PHASES
            ]
            if self._hold
            else []
        )
        self._energy_loop_mj = (
            self._trace[-1]["energy_mj"]
            - self._trace[0]["energy_mj"]
            + (self._trace[1]["energy_mj"] - self._trace[0]["energy_mj"])
        )
        self.calls: Counter[tuple[int | None, str]] = Counter()
        """How often each (GPU, function) was called: tests use it to prove a call stops."""
        self.stale_handle_uses = 0
        """Calls made with a handle from before its GPU was lost, after it came back."""

    # -- time and faults -----------------------------------------------------------------

    def tick(self) -> int:
        return int((self._clock() - self._t0) / self._tick_seconds + 1e-9)

    def inject(
        self,
        kind: str,
        gpu: int | None = None,
        calls: Iterable[str] | None = None,
        from_tick: int | None = None,
        until_tick: int | None = None,
    ) -> Fault:
        """Start a fault (now, or at `from_tick`), one of `nvml_faults.FAULT_KINDS`. `HANG`
        blocks the call until cleared."""
        return self._faults.inject(kind, gpu, calls, from_tick, until_tick)

    def clear(self, fault: Fault | None = None) -> None:
        """End one fault (or all), releasing calls it holds."""
        self._faults.clear(fault)

    def override(
        self, gpu: int, values: dict[str, Any], from_tick: int | None = None, until_tick: int | None = None
    ) -> Override:
        """Replace trace keys (temp_c, throttle, clock_sm_mhz, power_mw, …) for one GPU."""
        return self._faults.override(gpu, values, from_tick, until_tick)

    def inject_xid(self, gpu: int, xid: int, at_tick: int | None = None) -> None:
        self._faults.schedule_event(gpu, pynvml.nvmlEventTypeXidCriticalError, xid, at_tick)

    def inject_ecc(self, gpu: int, *, uncorrected: bool, at_tick: int | None = None) -> None:
        kind = pynvml.nvmlEventTypeDoubleBitEccError if uncorrected else pynvml.nvmlEventTypeSingleBitEccError
        self._faults.schedule_event(gpu, kind, 0, at_tick)

    def reconfigure_mig(self, gpu: int, layout: Sequence[MigInstance]) -> None:
        """Destroy GPU `gpu`'s MIG instances and create `layout`'s (MIG mode stays on): the
        old MIG handles are invalid from now on, as NVML's are."""
        with self._lock:
            self._mig[gpu].set_layout(layout)

    def mig_device_uuids(self, gpu: int) -> list[str]:
        """The MIG UUIDs GPU `gpu` reports now, in MIG device index order."""
        mig = self._mig[gpu]
        return [mig.uuid(i) for i in mig.layout]

    def current_line(self, gpu: int) -> dict[str, Any]:
        """The trace values GPU `gpu` reports now (with overrides): what tests expect to see."""
        return self._line(gpu)

    def recorded_pid(self, gpu: int, trace_pid: int) -> int:
        """The PID this source reports on `gpu` for a PID of the trace."""
        return self._pid(gpu, trace_pid)

    def host_processes(self) -> dict[int, HostProcess]:
        """Host facts for every PID this source reports, for `RecordedProcesses`."""
        table = {}
        for gpu in range(self.gpu_count):
            for pid, (user, name, command, in_container) in _RECORDED_PROCESSES.items():
                container = hashlib.sha256(f"demo-{gpu}-{pid}".encode()).hexdigest() if in_container else None
                table[self._pid(gpu, pid)] = HostProcess(
                    user, name, command, container, self._t0 - 3600 + gpu
                )
        for _gpu, pid, _used, host in self._extra:
            table[pid] = host
        return table

    def close(self) -> None:
        """Release every hanging call (test teardown)."""
        self.clear()

    def _enter(self, fn: str, gpu: int | None) -> None:
        """Count the call, tell `on_call`, and apply any active fault."""
        self.calls[(gpu, fn)] += 1
        if self._on_call is not None:
            self._on_call(fn)
        fault = self._faults.failing(fn, gpu)
        if fault is not None:
            if fault.kind in LOSING_KINDS and gpu is not None:
                with self._lock:
                    if not self._lost_seen[gpu]:
                        self._lost_seen[gpu] = True
                        self._generation[gpu] += 1
            raise pynvml.NVMLError(fault.error_code(fn))
        if fn != "nvmlInit" and not self._initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _device(self, fn: str, handle: Any) -> int:
        if isinstance(handle, MigHandle) and 0 <= handle.gpu < self.gpu_count:
            self._enter(fn, handle.gpu)
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)  # not answered per MIG device
        if not isinstance(handle, _Handle) or not 0 <= handle.index < self.gpu_count:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._enter(fn, handle.index)
        if handle.generation != self._generation[handle.index]:
            self.stale_handle_uses += 1
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        with self._lock:
            self._lost_seen[handle.index] = False
        return handle.index

    def _mig_device(self, fn: str, handle: Any) -> tuple[MigGpu, MigInstance] | None:
        """For a MIG handle: its GPU's MIG state and its instance (None for a GPU's own handle)."""
        if not isinstance(handle, MigHandle):
            return None
        if not 0 <= handle.gpu < self.gpu_count:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._enter(fn, handle.gpu)
        mig = self._mig.get(handle.gpu)
        if mig is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        with self._lock:
            return mig, mig.instance(handle)

    def _mig_processes(self, gpu: int, only: MigInstance | None = None) -> list[SimpleNamespace]:
        """The processes on a MIG GPU (or one of its instances), with their instance ids."""
        mig = self._mig[gpu]
        total = int(self._line(gpu)["mem"]["total"])
        out = []
        for p in self._line(gpu)["procs"]:
            instance = mig.instance_of_pid(p["pid"])
            if instance is None or (only is not None and instance != only):
                continue
            used = mig.process_bytes(instance, p["used_bytes"], total)
            out.append(self._process_row(self._pid(gpu, p["pid"]), used, instance))
        first = mig.layout[0] if mig.layout else None
        for g, pid, used, _ in self._extra:
            if g == gpu and first is not None and (only is None or only == first):
                out.append(self._process_row(pid, used, first))
        return out

    @staticmethod
    def _process_row(pid: int, used: int, instance: MigInstance | None) -> SimpleNamespace:
        return SimpleNamespace(
            pid=pid,
            usedGpuMemory=used,
            gpuInstanceId=instance.gpu_instance_id if instance else NO_INSTANCE,
            computeInstanceId=instance.compute_instance_id if instance else NO_INSTANCE,
        )

    def _mig_memory(self, gpu: int, instance: MigInstance, version: int | None) -> SimpleNamespace:
        mig = self._mig[gpu]
        procs = self._mig_processes(gpu, instance)
        total = mig.memory_total_bytes(instance)
        reserved = 32 * 1024 * 1024
        used = min(total - reserved, sum(int(p.usedGpuMemory) for p in procs))
        free = total - reserved - used
        if version:
            return SimpleNamespace(version=version, total=total, reserved=reserved, free=free, used=used)
        return SimpleNamespace(total=total, free=free, used=used + reserved)

    # -- the trace -----------------------------------------------------------------------

    def _position(self, gpu: int) -> int:
        """Samples since the start, plus the GPU's offset: grows by one every 0.5 s."""
        if self._hold is not None:
            offset = (gpu * len(PHASES) // max(1, self.gpu_count)) * self._hold
        else:
            offset = gpu * len(self._trace) // max(1, self.gpu_count)
        return int((self._clock() - self._t0) / TRACE_PERIOD_SECONDS + 1e-9) + offset

    def _index(self, position: int) -> int:
        """The trace line a position reads."""
        if self._hold is None:
            return position % len(self._trace)
        _, start, end = PHASES[(position // self._hold) % len(PHASES)]
        return start + (position % self._hold) % (end - start)

    def _line(self, gpu: int, position: int | None = None) -> dict[str, Any]:
        pos = self._position(gpu) if position is None else position
        line = self._trace[self._index(pos)]
        overridden = self._faults.overridden(gpu)
        if overridden:
            line = dict(line)
            for values in overridden:
                line.update(values)
        return line

    def _handle(self, gpu: int) -> _Handle:
        """One handle object per GPU and generation, as NVML gives the same handle back."""
        key = (gpu, self._generation[gpu])
        handle = self._handles.get(key)
        if handle is None:
            handle = self._handles[key] = _Handle(gpu, key[1])
        return handle

    def _pid(self, gpu: int, pid: int) -> int:
        return 1000 * (gpu + 1) + pid

    def _uuid(self, gpu: int) -> str:
        return recorded_gpu_uuid(gpu, self._probe)

    # -- library ---------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._enter("nvmlInit", None)
        self._initialised = True

    def nvmlShutdown(self) -> None:
        self._initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion", None)
        return "580.159.04"

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion_v2", None)
        return 13000

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._enter("nvmlSystemGetNVMLVersion", None)
        return "13.580.159.04"

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount", None)
        return self.gpu_count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        if not 0 <= index < self.gpu_count:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._enter("nvmlDeviceGetHandleByIndex", index)
        return self._handle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> _Handle:
        for index in range(self.gpu_count):
            if self._uuid(index) == uuid:
                self._enter("nvmlDeviceGetHandleByUUID", index)
                return self._handle(index)
        self._enter("nvmlDeviceGetHandleByUUID", None)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    # -- static facts ----------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        on_mig = self._mig_device("nvmlDeviceGetUUID", handle)
        if on_mig is not None:
            return on_mig[0].uuid(on_mig[1])
        return self._uuid(self._device("nvmlDeviceGetUUID", handle))

    def nvmlDeviceGetName(self, handle: Any) -> str:
        on_mig = self._mig_device("nvmlDeviceGetName", handle)
        if on_mig is not None:
            return f"{self._probe['name']} MIG {on_mig[1].profile}"
        self._device("nvmlDeviceGetName", handle)
        return str(self._probe["name"])

    def nvmlDeviceGetSerial(self, handle: Any) -> str:
        gpu = self._device("nvmlDeviceGetSerial", handle)
        return str(int(self._probe["serial"]) + gpu)

    def nvmlDeviceGetPciInfo_v3(self, handle: Any) -> SimpleNamespace:
        gpu = self._device("nvmlDeviceGetPciInfo_v3", handle)
        return SimpleNamespace(busId=f"00000000:00:{6 + gpu:02X}.0".encode())

    def nvmlDeviceGetArchitecture(self, handle: Any) -> int:
        self._device("nvmlDeviceGetArchitecture", handle)
        return int(self._probe["arch"])

    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]:
        self._device("nvmlDeviceGetCudaComputeCapability", handle)
        major, minor = self._probe["cuda_cc"]
        return (major, minor)

    def nvmlDeviceGetEccMode(self, handle: Any) -> list[int]:
        self._device("nvmlDeviceGetEccMode", handle)
        return list(self._probe["ecc_mode"])

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        gpu = self._device("nvmlDeviceGetMigMode", handle)
        return [1, 1] if gpu in self._mig else list(self._probe["mig_mode"])

    # -- MIG (demo/nvml_mig.py says what NVML answers) ---------------------------------------

    def nvmlDeviceGetGpuInstanceProfileInfo(
        self, handle: Any, profile: int, version: int = 2
    ) -> SimpleNamespace:
        self._device("nvmlDeviceGetGpuInstanceProfileInfo", handle)  # answered with MIG off too
        return profile_info(profile)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        gpu = self._device("nvmlDeviceGetMaxMigDeviceCount", handle)
        return MAX_MIG_DEVICES if gpu in self._mig else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> MigHandle:
        gpu = self._device("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        mig = self._mig.get(gpu)
        if mig is None:  # as the H200 with MIG off answers (bench/device/mig_check.py)
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        with self._lock:
            return mig.handle(index)

    def nvmlDeviceIsMigDeviceHandle(self, handle: Any) -> int:
        if self._mig_device("nvmlDeviceIsMigDeviceHandle", handle) is not None:
            return 1
        self._device("nvmlDeviceIsMigDeviceHandle", handle)
        return 0

    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int:
        on_mig = self._mig_device("nvmlDeviceGetGpuInstanceId", handle)
        if on_mig is None:
            self._device("nvmlDeviceGetGpuInstanceId", handle)
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return on_mig[1].gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, handle: Any) -> int:
        on_mig = self._mig_device("nvmlDeviceGetComputeInstanceId", handle)
        if on_mig is None:
            self._device("nvmlDeviceGetComputeInstanceId", handle)
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return on_mig[1].compute_instance_id

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: Any) -> _Handle:
        on_mig = self._mig_device("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle)
        if on_mig is None:
            self._device("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle)
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._handle(on_mig[0].gpu)

    def nvmlDeviceGetAttributes_v2(self, handle: Any) -> SimpleNamespace:
        on_mig = self._mig_device("nvmlDeviceGetAttributes_v2", handle)
        if on_mig is None:
            self._device("nvmlDeviceGetAttributes_v2", handle)
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return on_mig[0].attributes(on_mig[1])

    def nvmlGpmMigSampleGet(self, handle: Any, gpu_instance_id: int, sample: Any) -> Any:
        gpu = self._device("nvmlGpmMigSampleGet", handle)
        mig = self._mig.get(gpu)
        if mig is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        with self._lock:
            mig.by_gpu_instance(gpu_instance_id)
        self._gpm_mig_samples[_address(sample)] = (gpu, gpu_instance_id, self._position(gpu))
        return sample

    def nvmlDeviceGetPersistenceMode(self, handle: Any) -> int:
        self._device("nvmlDeviceGetPersistenceMode", handle)
        return int(self._probe["persistence"])

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: Any) -> int:
        self._device("nvmlDeviceGetPowerManagementDefaultLimit", handle)
        return int(self._probe["power_limit_mw"])

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: Any) -> list[int]:
        self._device("nvmlDeviceGetPowerManagementLimitConstraints", handle)
        return [200_000, int(self._probe["power_limit_mw"])]

    def nvmlDeviceGetMaxClockInfo(self, handle: Any, clock_type: int) -> int:
        self._device("nvmlDeviceGetMaxClockInfo", handle)
        return {
            pynvml.NVML_CLOCK_SM: 1980,
            pynvml.NVML_CLOCK_GRAPHICS: 1980,
            pynvml.NVML_CLOCK_MEM: 2619,
        }.get(clock_type, 0)

    def nvmlDeviceGetTemperatureThreshold(self, handle: Any, threshold: int) -> int:
        self._device("nvmlDeviceGetTemperatureThreshold", handle)
        if threshold == pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN:
            return int(self._probe["temp_threshold_shutdown"])
        return int(self._probe["temp_threshold_slowdown"])

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle: Any) -> int:
        self._device("nvmlDeviceGetMaxPcieLinkGeneration", handle)
        return int(self._probe["pcie_gen"])

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle: Any) -> int:
        self._device("nvmlDeviceGetMaxPcieLinkWidth", handle)
        return int(self._probe["pcie_width"])

    def nvmlGpmQueryDeviceSupport(self, handle: Any) -> SimpleNamespace:
        self._device("nvmlGpmQueryDeviceSupport", handle)
        return SimpleNamespace(version=1, isSupportedDevice=1)

    # -- fast fields -----------------------------------------------------------------------

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> SimpleNamespace:
        gpu = self._device("nvmlDeviceGetUtilizationRates", handle)
        if gpu in self._mig:  # "not currently supported" on MIG-enabled GPUs
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        line = self._line(gpu)
        return SimpleNamespace(gpu=line["util"]["gpu"], memory=line["util"]["memory"])

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: int | None = None) -> SimpleNamespace:
        on_mig = self._mig_device("nvmlDeviceGetMemoryInfo", handle)
        if on_mig is not None:
            return self._mig_memory(on_mig[0].gpu, on_mig[1], version)
        gpu = self._device("nvmlDeviceGetMemoryInfo", handle)
        m = self._line(gpu)["mem"]
        if gpu in self._mig:  # the aggregate of the instances
            parts = [self._mig_memory(gpu, i, 1) for i in self._mig[gpu].layout]
            used = sum(int(p.used) for p in parts)
            reserved = int(m["reserved"]) + sum(int(p.reserved) for p in parts)
            m = {
                "total": m["total"],
                "reserved": reserved,
                "used": used,
                "free": m["total"] - reserved - used,
            }
        if version:
            return SimpleNamespace(
                version=version, total=m["total"], reserved=m["reserved"], free=m["free"], used=m["used"]
            )
        return SimpleNamespace(total=m["total"], free=m["free"], used=m["used"] + m["reserved"])

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        return int(self._line(self._device("nvmlDeviceGetTemperature", handle))["temp_c"])

    # -- topology: the recorded H100s as a 2-socket node, GPUs 0-1 on socket 0 and 2-3 on 1
    # (the capture is of one H100 in a VM, with no NVLink); the H200 pair overrides these.

    def nvmlDeviceGetTopologyCommonAncestor(self, device1: Any, device2: Any) -> int:
        a = self._device("nvmlDeviceGetTopologyCommonAncestor", device1)
        b = self._device("nvmlDeviceGetTopologyCommonAncestor", device2)
        if a == b:
            return int(pynvml.NVML_TOPOLOGY_INTERNAL)
        same_socket = a // 2 == b // 2
        return int(pynvml.NVML_TOPOLOGY_NODE if same_socket else pynvml.NVML_TOPOLOGY_SYSTEM)

    def nvmlDeviceGetP2PStatus(self, device1: Any, device2: Any, p2p_index: int) -> int:
        self._device("nvmlDeviceGetP2PStatus", device1)
        self._device("nvmlDeviceGetP2PStatus", device2)
        if p2p_index == pynvml.NVML_P2P_CAPS_INDEX_NVLINK:
            return int(pynvml.NVML_P2P_STATUS_NOT_SUPPORTED)  # no NVLink here
        return int(pynvml.NVML_P2P_STATUS_OK)

    def nvmlDeviceGetCpuAffinity(self, handle: Any, cpu_set_size: int) -> Any:
        socket = self._device("nvmlDeviceGetCpuAffinity", handle) // 2
        return affinity_mask(f"{socket * 32}-{socket * 32 + 31}", cpu_set_size)

    def nvmlDeviceGetMemoryAffinity(self, handle: Any, node_set_size: int, scope: int) -> Any:
        socket = self._device("nvmlDeviceGetMemoryAffinity", handle) // 2
        return affinity_mask(str(socket), node_set_size)

    def nvmlDeviceGetNumaNodeId(self, handle: Any) -> int:
        self._device("nvmlDeviceGetNumaNodeId", handle)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)  # HBM with no NUMA node of its own

    def nvmlDeviceGetFanSpeed(self, handle: Any) -> int:
        self._device("nvmlDeviceGetFanSpeed", handle)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)  # as on the real H100 SXM

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return int(self._line(self._device("nvmlDeviceGetPowerUsage", handle))["power_mw"])

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return int(self._line(self._device("nvmlDeviceGetEnforcedPowerLimit", handle))["power_limit_mw"])

    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int:
        line = self._line(self._device("nvmlDeviceGetClockInfo", handle))
        if clock_type == pynvml.NVML_CLOCK_MEM:
            return int(line["clock_mem_mhz"])
        return int(line["clock_sm_mhz"])

    def nvmlDeviceGetPerformanceState(self, handle: Any) -> int:
        return int(self._line(self._device("nvmlDeviceGetPerformanceState", handle))["pstate"])

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        return int(self._line(self._device("nvmlDeviceGetCurrentClocksEventReasons", handle))["throttle"])

    def nvmlDeviceGetTotalEccErrors(self, handle: Any, error_type: int, counter_type: int) -> int:
        line = self._line(self._device("nvmlDeviceGetTotalEccErrors", handle))
        if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED:
            return int(line["ecc_uncorr"])
        return int(line.get("ecc_corr", 0))

    def nvmlDeviceGetEncoderUtilization(self, handle: Any) -> list[int]:
        self._device("nvmlDeviceGetEncoderUtilization", handle)
        return list(self._probe["encoder_util"])

    def nvmlDeviceGetDecoderUtilization(self, handle: Any) -> list[int]:
        self._device("nvmlDeviceGetDecoderUtilization", handle)
        return list(self._probe["decoder_util"])

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[SimpleNamespace]:
        on_mig = self._mig_device("nvmlDeviceGetComputeRunningProcesses", handle)
        if on_mig is not None:
            return self._mig_processes(on_mig[0].gpu, on_mig[1])
        gpu = self._device("nvmlDeviceGetComputeRunningProcesses", handle)
        if gpu in self._mig:
            return self._mig_processes(gpu)
        procs = [
            SimpleNamespace(
                pid=self._pid(gpu, p["pid"]),
                usedGpuMemory=p["used_bytes"],
                gpuInstanceId=0xFFFFFFFF,
                computeInstanceId=0xFFFFFFFF,
            )
            for p in self._line(gpu)["procs"]
        ]
        procs += [
            SimpleNamespace(
                pid=pid, usedGpuMemory=used, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF
            )
            for g, pid, used, _ in self._extra
            if g == gpu
        ]
        return procs

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> list[SimpleNamespace]:
        if self._mig_device("nvmlDeviceGetGraphicsRunningProcesses", handle) is None:
            self._device("nvmlDeviceGetGraphicsRunningProcesses", handle)
        return []

    # -- slow fields -----------------------------------------------------------------------

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        return self._energy_mj(self._device("nvmlDeviceGetTotalEnergyConsumption", handle))

    def _energy_mj(self, gpu: int) -> int:
        """Energy keeps rising when the trace loops, as a real counter does."""
        position = self._position(gpu)
        if self._hold is not None:  # each held phase at its mean power
            held, into = divmod(position, self._hold)
            cycles, phase = divmod(held, len(PHASES))
            mj = self._trace[0]["energy_mj"] + cycles * sum(self._phase_energy_mj)
            mj += sum(self._phase_energy_mj[:phase]) + into / self._hold * self._phase_energy_mj[phase]
            return int(mj)
        loops = position // len(self._trace)
        return int(self._line(gpu, position)["energy_mj"] + loops * self._energy_loop_mj)

    def nvmlDeviceGetPcieThroughput(self, handle: Any, counter: int) -> int:
        line = self._line(self._device("nvmlDeviceGetPcieThroughput", handle))
        return int(line["pcie_tx_kbs"] if counter == pynvml.NVML_PCIE_UTIL_TX_BYTES else line["pcie_rx_kbs"])

    def nvmlDeviceGetFieldValues(self, handle: Any, field_ids: list[Any]) -> Any:
        gpu = self._device("nvmlDeviceGetFieldValues", handle)
        recorded = {f[0]: (f[1], f[2]) for f in self._line(gpu)["fields"]}
        recorded[pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION] = (0, self._energy_mj(gpu))
        values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        for i, requested in enumerate(field_ids):
            field_id, scope = requested if isinstance(requested, tuple) else (requested, 0)
            values[i].fieldId = field_id
            values[i].scopeId = scope
            values[i].timestamp = int(self._clock() * 1e6)
            ret, value = recorded.get(field_id, (pynvml.NVML_ERROR_NOT_SUPPORTED, 0))
            values[i].nvmlReturn = ret
            values[i].valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
            values[i].value.ullVal = int(value)
        return values

    def nvmlDeviceGetRemappedRows(self, handle: Any) -> tuple[int, int, int, int]:
        line = self._line(self._device("nvmlDeviceGetRemappedRows", handle))
        rows = line.get("remapped_rows", self._probe["remapped_rows"])
        return (int(rows[0]), int(rows[1]), int(rows[2]), int(rows[3]))

    def nvmlDeviceGetProcessesUtilizationInfo(self, handle: Any, last_seen_us: int) -> list[SimpleNamespace]:
        gpu = self._device("nvmlDeviceGetProcessesUtilizationInfo", handle)
        if gpu in self._mig:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        samples = self._line(gpu)["proc_util"]
        now_us = int(self._clock() * 1e6)
        if not isinstance(samples, list) or now_us <= last_seen_us:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return [
            SimpleNamespace(
                timeStamp=now_us,
                pid=self._pid(gpu, s["pid"]),
                smUtil=s["sm"],
                memUtil=s["mem"],
                encUtil=0,
                decUtil=0,
                jpgUtil=0,
                ofaUtil=0,
            )
            for s in samples
        ]

    # -- GPM -------------------------------------------------------------------------------

    def nvmlGpmSampleAlloc(self) -> Any:
        self._enter("nvmlGpmSampleAlloc", None)
        buffer = ctypes.c_uint64(0)
        pointer = ctypes.cast(ctypes.pointer(buffer), pynvml.c_nvmlGpmSample_t)
        key = ctypes.addressof(buffer)
        self._gpm_buffers[key] = buffer
        return pointer

    def nvmlGpmSampleFree(self, sample: Any) -> None:
        self._gpm_buffers.pop(_address(sample), None)

    def nvmlGpmSampleGet(self, handle: Any, sample: Any) -> Any:
        gpu = self._device("nvmlGpmSampleGet", handle)
        self._gpm_samples[_address(sample)] = (gpu, self._position(gpu))
        return sample

    def nvmlGpmMetricsGet(self, request: Any) -> Any:
        mig_first = self._gpm_mig_samples.get(_address(request.sample1))
        mig_second = self._gpm_mig_samples.get(_address(request.sample2))
        if mig_first is not None or mig_second is not None:
            return self._mig_gpm_metrics(request, mig_first, mig_second)
        first = self._gpm_samples.get(_address(request.sample1))
        second = self._gpm_samples.get(_address(request.sample2))
        self._enter("nvmlGpmMetricsGet", second[0] if second else None)
        if first is None or second is None or first[0] != second[0]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu = second[0]
        positions = range(first[1] + 1, second[1] + 1) if second[1] > first[1] else [second[1]]
        lines: list[dict[str, Any]] = [g for p in positions if (g := self._line(gpu, p).get("gpm"))] or [{}]
        return _fill_gpm(request, lines)

    def _mig_gpm_metrics(
        self, request: Any, first: tuple[int, int, int] | None, second: tuple[int, int, int] | None
    ) -> Any:
        """GPM of one GPU instance: the trace's activity (offset per instance) where the
        instance runs a recorded process, none where it runs nothing."""
        self._enter("nvmlGpmMetricsGet", second[0] if second else None)
        if first is None or second is None or first[:2] != second[:2]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu, gpu_instance_id, end = second
        mig = self._mig.get(gpu)
        if mig is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        with self._lock:
            instance = mig.by_gpu_instance(gpu_instance_id)
            first_instance = mig.layout[0] if mig.layout else None
        busy = bool(instance.trace_pids) or (
            instance == first_instance and any(g == gpu for g, *_ in self._extra)
        )
        shift = 7 * gpu_instance_id
        positions = range(first[2] + 1, end + 1) if end > first[2] else [end]
        lines: list[dict[str, Any]] = [
            {k: (v if busy else 0.0) for k, v in g.items()}
            for p in positions
            if (g := self._line(gpu, p + shift).get("gpm"))
        ] or [{}]
        return _fill_gpm(request, lines)

    # -- events ----------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> object:
        self._enter("nvmlEventSetCreate", None)
        return object()

    def nvmlEventSetFree(self, event_set: object) -> None:
        return None

    def nvmlDeviceGetSupportedEventTypes(self, handle: Any) -> int:
        self._device("nvmlDeviceGetSupportedEventTypes", handle)
        return int(pynvml.nvmlEventTypeAll)

    def nvmlDeviceRegisterEvents(self, handle: Any, event_types: int, event_set: object) -> None:
        gpu = self._device("nvmlDeviceRegisterEvents", handle)
        self._registered[gpu] = event_types

    def nvmlEventSetWait_v2(self, event_set: object, timeout_ms: int) -> SimpleNamespace:
        self._enter("nvmlEventSetWait_v2", None)
        event = self._faults.take_event(self._registered)
        if event is not None:
            return SimpleNamespace(
                device=self._handle(event.gpu),
                eventType=event.kind,
                eventData=event.data,
                gpuInstanceId=0xFFFFFFFF,
                computeInstanceId=0xFFFFFFFF,
            )
        if timeout_ms:
            time.sleep(min(timeout_ms, 50) / 1000.0)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT)


def _address(pointer: Any) -> int:
    return int(ctypes.cast(pointer, ctypes.c_void_p).value or 0)


def _fill_gpm(request: Any, lines: list[dict[str, Any]]) -> Any:
    """Each requested metric of `request` as the mean of `lines`' recorded values."""
    for i in range(request.numMetrics):
        metric = request.metrics[i]
        key = _GPM_KEYS.get(metric.metricId)
        values = [g.get(key) for g in lines if key]
        numbers = [v for v in values if isinstance(v, int | float)]
        if key is None:
            metric.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
            metric.value = 0.0
        else:
            metric.nvmlReturn = pynvml.NVML_SUCCESS
            metric.value = sum(numbers) / len(numbers) if numbers else float("nan")
    return request


def affinity_mask(ranges: str, words: int) -> Any:
    """ "0-31" → NVML's affinity mask: an array of `words` 64-bit words, lowest first."""
    out = (ctypes.c_ulonglong * max(1, words))()
    for part in ranges.split(","):
        first, _, last = part.partition("-")
        for bit in range(int(first), int(last or first) + 1):
            if bit // 64 < len(out):
                out[bit // 64] |= 1 << (bit % 64)
    return out
