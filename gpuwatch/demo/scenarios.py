"""Demo fault scenarios: what goes wrong in `--demo`, on which GPU or model, and when.

Place in the flow: `assemble` builds the recorded sources for `--demo`, then hands them here
with the scenario named by `--scenario` or `[demo] scenario` (`apply_to_gpus`, and
`apply_to_triton` for the recorded Triton source). A scenario only schedules faults on those
sources, relative to their start; the collectors, the engine and /metrics then run exactly as
they do on a real node, so the shipped alert rules (prometheus/gpuwatch.rules.yml) can be shown
firing against a real daemon.

Timing: every fault starts `FAULT_START_SECONDS` after the start, so that a Prometheus
scraping every 15 s has recorded the healthy node (and the XID counters at 0) first; each fault
then lasts until the daemon stops, so every alert the scenario is meant to raise passes its
`for:` (the longest, 5 min, is reached about 5.5 min after the start).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gpuwatch.catalog import nvml_codes
from gpuwatch.config import ConfigError
from gpuwatch.demo.nvlink import RecordedNvlinkNode
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.model import ModelState

FAULT_START_SECONDS = 30.0

SecondsToTick = Callable[[float], int]
"""Seconds after the fault start → the recorded NVML source's tick."""


class RecordedTritonFaults(Protocol):
    """What `model-failing` needs of the recorded Triton source (`demo/triton.py`).
    Times are seconds after the source was built (the daemon's start); a fault lasts to the end."""

    def model_names(self) -> tuple[str, ...]:
        """The model names the source serves."""
        ...

    def heal(self, model: str, *, from_seconds: float) -> None:
        """The recording's own failures of `model` are not served from then on."""
        ...

    def fail_requests(self, model: str, failure_ratio: float, *, from_seconds: float) -> None:
        """That share of the model's requests fails (reason BACKEND); the rest succeed."""
        ...

    def stall(self, model: str, *, from_seconds: float) -> None:
        """Requests keep arriving and wait in the queue (pending grows); none completes."""
        ...

    def set_state(self, model: str, state: str, *, from_seconds: float) -> None:
        """The model version reports `state` (e.g. UNAVAILABLE) in the repository index."""
        ...

    def queue_share(self, model: str, queue_share_ratio: float, *, from_seconds: float) -> None:
        """That share of each request's latency is spent in the queue (the rest computing)."""
        ...

    def configure(self, model: str, changes: dict[str, Any], *, from_seconds: float) -> None:
        """The model's served config has these keys replaced (None removes one; an object is
        merged into the config's object of that name)."""
        ...


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    min_gpus: int = 1
    gpus: Callable[[RecordedNvml, SecondsToTick], None] | None = None
    triton: Callable[[RecordedTritonFaults], None] | None = None


def _bits(*names: str) -> int:
    by_name = {r.name: r.bit for r in nvml_codes.CLOCK_EVENT_REASONS}
    return sum(by_name[n] for n in names)


def _gpu_lost(nvml: RecordedNvml, at: SecondsToTick) -> None:
    nvml.inject_xid(1, 79, at_tick=at(0))
    nvml.inject("GPU_IS_LOST", gpu=1, from_tick=at(2))


def _xid_burst(nvml: RecordedNvml, at: SecondsToTick) -> None:
    # GPU 0: the workload faults; the driver reports it, nothing is wrong with the GPU.
    for i, xid in enumerate(nvml_codes.APPLICATION_XIDS):
        nvml.inject_xid(0, xid, at_tick=at(i))
    # GPU 1: a context-switch timeout, neither critical nor the application's doing.
    nvml.inject_xid(1, 109, at_tick=at(1))
    # GPU 2: a double-bit ECC error; a row is remapped and waits for a GPU reset.
    nvml.inject_xid(2, 48, at_tick=at(0))
    nvml.inject_ecc(2, uncorrected=True, at_tick=at(0))
    nvml.override(2, {"ecc_uncorr": 2}, from_tick=at(0))
    nvml.inject_xid(2, 63, at_tick=at(1))
    nvml.override(2, {"remapped_rows": [0, 1, 1, 0]}, from_tick=at(1))
    nvml.inject_xid(2, 94, at_tick=at(2))
    # GPU 3: the row remapper could not record a remap: the GPU needs service.
    nvml.inject_xid(3, 64, at_tick=at(3))
    nvml.override(3, {"remapped_rows": [0, 8, 0, 1]}, from_tick=at(3))


def _thermal(nvml: RecordedNvml, at: SecondsToTick) -> None:
    # Past its slowdown temperature (89 °C on the recorded H100) the GPU halves its clocks.
    hot = {
        "temp_c": 92,
        "throttle": _bits("hw_slowdown", "hw_thermal_slowdown", "sw_thermal_slowdown"),
        "clock_sm_mhz": 900,
    }
    nvml.override(0, hot, from_tick=at(0))


def _nvlink_degraded(nvml: RecordedNvml, at: SecondsToTick) -> None:
    # Link 3 between the two H200s drops out; link 5 of GPU 1 starts taking CRC errors and
    # replaying what they spoiled, 40 and 4 a tick.
    if not isinstance(nvml, RecordedNvlinkNode):
        raise ConfigError(
            "scenario 'nvlink-degraded' plays on the NVLinked pair: set [demo] node = \"h200x2\""
        )
    nvml.link_down(0, 3, from_tick=at(0))
    nvml.link_errors(1, 5, "crc", 40, from_tick=at(0))
    nvml.link_errors(1, 5, "replay", 4, from_tick=at(0))


def _model_failing(triton: RecordedTritonFaults) -> None:
    names = sorted(triton.model_names())
    if len(names) < 4:
        raise ConfigError(
            f"scenario 'model-failing' needs 4 recorded Triton models; the source has {len(names)}"
        )
    failing, stalled, unavailable, queued = names[:4]
    # The recording has failures of its own (it was captured with a model that raises) that
    # rise and fall as it loops: without them, each alert below has exactly one cause.
    for name in names:
        triton.heal(name, from_seconds=0.0)
    start = FAULT_START_SECONDS
    triton.fail_requests(failing, 0.3, from_seconds=start)
    triton.stall(stalled, from_seconds=start)
    triton.set_state(unavailable, ModelState.UNAVAILABLE, from_seconds=start)
    triton.queue_share(queued, 0.8, from_seconds=start)


def _recorded(triton: RecordedTritonFaults, scenario: str, *needed: str) -> None:
    missing = sorted(set(needed) - set(triton.model_names()))
    if missing:
        raise ConfigError(f"scenario {scenario!r} needs the recorded Triton models {', '.join(missing)}")


ADVISED_BATCHING = {"dynamic_batching": {"preferred_batch_size": [], "max_queue_delay_microseconds": 0}}
"""Dynamic batching as Triton's batcher.md advises for most models: no preferred sizes, no delay."""


def _batching(triton: RecordedTritonFaults) -> None:
    _recorded(triton, "batching", "bert_base", "resnet50")
    for name in triton.model_names():
        triton.heal(name, from_seconds=0.0)
    # bert_base is served without its dynamic_batching block (max_batch_size 8 stays) and, from
    # the fault start, queues 80 % of its latency: "batcher off", stated by its config.
    triton.configure("bert_base", {"dynamic_batching": None}, from_seconds=0.0)
    triton.queue_share("bert_base", 0.8, from_seconds=FAULT_START_SECONDS)
    # resnet50 as recorded: requests wait about its whole 2000 µs delay for batches of 2-3 of
    # 16 ("delay wasted"), and its preferred sizes 8 and 16 are rarely formed ("preferred
    # sizes unused", once the load forms batches of 2 or more on average for a minute).


def _healthy(triton: RecordedTritonFaults) -> None:
    # The recorded models, without the recording's own failures, batching as Triton advises:
    # nothing should need a look (bench/healthy_run.py counts what is raised anyway).
    for name in triton.model_names():
        triton.heal(name, from_seconds=0.0)
    for name in ("bert_base", "resnet50", "tokenizer"):
        if name in triton.model_names():
            triton.configure(name, ADVISED_BATCHING, from_seconds=0.0)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("gpu-lost", "GPU 1 reports XID 79 and falls off the bus", 2, gpus=_gpu_lost),
        Scenario(
            "xid-burst",
            "application XIDs on GPU 0, XID 109 on GPU 1, a double-bit ECC error on GPU 2, "
            "a failed row remap on GPU 3",
            4,
            gpus=_xid_burst,
        ),
        Scenario("thermal", "GPU 0 runs at 92 °C, slowed down by HW and SW thermal, 900 MHz", gpus=_thermal),
        Scenario(
            "model-failing",
            "one model fails 30 % of requests, one stalls, one is UNAVAILABLE, one queues",
            triton=_model_failing,
        ),
        Scenario(
            "batching",
            "one model runs without its dynamic batcher and queues, one waits out its queue delay "
            "for small batches and rarely forms its preferred sizes",
            triton=_batching,
        ),
        Scenario(
            "healthy",
            "the recorded models without their failures, batching as Triton advises: no model "
            "finding (GPU 0 keeps its demo role, a matmul at the power cap: one info finding)",
            triton=_healthy,
        ),
        Scenario(
            "nvlink-degraded",
            'on the NVLinked H200 pair ([demo] node = "h200x2"): link 3 goes down, link 5 of GPU 1 '
            "takes CRC errors and replays",
            2,
            gpus=_nvlink_degraded,
        ),
    )
}


def get(name: str) -> Scenario | None:
    """The scenario called `name`; None for "" (no scenario). Raises ConfigError if unknown."""
    if not name:
        return None
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise ConfigError(f"unknown scenario {name!r}: expected one of {', '.join(SCENARIOS)}")
    return scenario


def apply_to_gpus(scenario: Scenario, nvml: RecordedNvml, *, tick_seconds: float) -> None:
    """Schedule the scenario's GPU faults on a freshly built recorded source."""
    if nvml.gpu_count < scenario.min_gpus:
        raise ConfigError(
            f"scenario {scenario.name!r} needs [demo] gpus = {scenario.min_gpus} or more "
            f"(it is {nvml.gpu_count})"
        )
    if scenario.gpus is None:
        return
    start_tick = nvml.tick()

    def at(seconds: float) -> int:
        return start_tick + math.ceil((FAULT_START_SECONDS + seconds) / tick_seconds - 1e-9)

    scenario.gpus(nvml, at)


def apply_to_triton(scenario: Scenario, triton: RecordedTritonFaults | None) -> None:
    """Schedule the scenario's model faults; `triton` is the recorded Triton source, or None
    when the demo runs without one (then a scenario that needs it cannot run)."""
    if scenario.triton is None:
        return
    if triton is None:
        others = ", ".join(s.name for s in SCENARIOS.values() if s.triton is None)
        raise ConfigError(
            f"scenario {scenario.name!r} needs the recorded Triton models: set [demo] triton = true "
            f"(scenarios that run without them: {others})"
        )
    scenario.triton(triton)
