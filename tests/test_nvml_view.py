"""The typed join of a GPU's frozen readings into the data model."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from gpuwatch import model
from gpuwatch.collect.host import HostProcess, ProcessUsage
from gpuwatch.collect.nvml.readings import (
    FastReading,
    GpuProcess,
    ProcessUtilization,
    SlowReading,
)
from gpuwatch.collect.nvml.tracked import TrackedGpu
from gpuwatch.collect.nvml.view import gpu_sample, process_samples

_JOINED_APART = {"index", "uuid", "state", "state_reason", "gpm", "pods"}
"""GpuSample fields that do not come from a fast or slow reading's field of the same name
(`pods`: the engine's Kubernetes join)."""
_NOT_SAMPLE_FIELDS = {"processes", "gpm", "process_utilization"}
"""Reading fields that become something else than a GpuSample field."""


def names(record: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(record)}


def distinct_values(record: type[Any]) -> dict[str, Any]:
    """A value for each field of `record` that no other field has, of the field's kind."""
    counter = itertools.count(1)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        if f.name in _NOT_SAMPLE_FIELDS:
            continue
        n = next(counter)
        kind = str(f.type)
        if "tuple[str" in kind:
            values[f.name] = (f"reason_{n}",)
        elif "bool" in kind:
            values[f.name] = n % 2 == 0
        elif "float" in kind:
            values[f.name] = n + 0.5
        else:
            values[f.name] = 1000 + n
    return values


def test_every_sample_field_comes_from_exactly_one_reading() -> None:
    fast, slow = names(FastReading) - _NOT_SAMPLE_FIELDS, names(SlowReading) - _NOT_SAMPLE_FIELDS
    assert not fast & slow
    assert fast | slow | _JOINED_APART == names(model.GpuSample)


def test_gpu_sample_copies_each_field_from_its_reading() -> None:
    fast_values, slow_values = distinct_values(FastReading), distinct_values(SlowReading)
    gpu = TrackedGpu(3, "GPU-3", object())
    gpu.fast = FastReading(**fast_values)
    gpu.slow = SlowReading(**slow_values)
    gpu.gpm = model.GpmActivity(interval_seconds=1.0, tensor_activity_ratio=0.86)
    sample = gpu_sample(gpu)
    assert (sample.index, sample.uuid, sample.state, sample.state_reason) == (
        3,
        "GPU-3",
        model.GpuState.OK,
        None,
    )
    assert sample.gpm is gpu.gpm
    for name, value in {**fast_values, **slow_values}.items():
        assert getattr(sample, name) == value, name


def test_a_gpu_before_its_first_reads_is_all_none() -> None:
    sample = gpu_sample(TrackedGpu(0, "GPU-0", object()))
    assert sample == model.GpuSample(0, "GPU-0")


class Host:
    def describe(self, pid: int) -> HostProcess | None:
        if pid != 10:
            return None
        return HostProcess(
            user="alice", name="python3", command="python3 train.py", container_id=None, started_at=None
        )

    def forget_except(self, pids: set[int]) -> None:
        pass

    def sample_usage(self, pids: set[int]) -> None:
        pass

    def usage(self, pid: int) -> ProcessUsage | None:
        return ProcessUsage(0.5, 3 * 1024**3) if pid == 10 else None


def test_processes_joined_with_utilization_and_host_facts() -> None:
    gpu = TrackedGpu(1, "GPU-1", object())
    gpu.fast = FastReading(processes=(GpuProcess(10, "compute", 2048), GpuProcess(11, "graphics", None)))
    gpu.process_utilization = {10: ProcessUtilization(0.5, 0.25, 0.0, 0.125)}
    gpu.process_utilization_known = True
    busy, quiet = process_samples(gpu, Host())
    assert (busy.pid, busy.gpu_index, busy.gpu_uuid, busy.kind, busy.used_memory_bytes) == (
        10,
        1,
        "GPU-1",
        "compute",
        2048,
    )
    assert (busy.sm_utilization_ratio, busy.memory_utilization_ratio) == (0.5, 0.25)
    assert (busy.encoder_utilization_ratio, busy.decoder_utilization_ratio) == (0.0, 0.125)
    assert (busy.user, busy.command) == ("alice", "python3 train.py")
    assert (busy.cpu_ratio, busy.host_memory_bytes) == (0.5, 3 * 1024**3)  # the host's side
    assert quiet.kind == "graphics" and quiet.user is None
    assert (quiet.cpu_ratio, quiet.host_memory_bytes) == (None, None)
    assert quiet.sm_utilization_ratio == 0.0  # NVML answered for the GPU: this one ran nothing


def test_process_utilization_unknown_is_none_not_zero() -> None:
    gpu = TrackedGpu(1, "GPU-1", object())
    gpu.fast = FastReading(processes=(GpuProcess(10, "compute", 2048),))
    (process,) = process_samples(gpu, Host())
    assert process.sm_utilization_ratio is None
    assert process.decoder_utilization_ratio is None
