"""A recorded 2-GPU NVLinked node: two H200s joined by 18 NVLinks, replaying an NCCL all-reduce.

Place in the flow: `demo/assemble.py` builds it in place of `RecordedNvml` for `[demo] node =
"h200x2"`; the real NVML collector runs over it unchanged. It is `RecordedNvml` (the same
faults, events, GPM sample buffers and pynvml shapes) with the GPUs, the trace and the NVLink
and topology functions of the capture in `data/h200x2/` (from two real H200s, driver
580.159.04):

- `node.json`: per GPU its name, UUID, bus id, each link's state (`nvmlDeviceGetNvLinkState`),
  version (`nvmlDeviceGetNvLinkVersion`: 6, NVML's number for NVLink 4.0), far end
  (`nvmlDeviceGetNvLinkRemotePciInfo_v2`: FFFFFFFF:FF:FF.0 in that VM) and speed (26562 MB/s,
  `nvidia-smi nvlink -s`); fields NVLINK_LINK_COUNT = 18 and NVLINK_SPEED_MBPS_COMMON
  NotSupported; `nvmlDeviceGetNumaNodeId` NotSupported; per pair the common ancestor (30, a host
  bridge) and NVLink P2P status OK; CPU affinity 0-31 and NUMA affinity 0 (`topo.txt`);
- `trace.jsonl`: 76 ticks at 2 Hz of an NCCL all-reduce (256 MiB, ~16 s) then idle: per GPU
  GPM NVLink and PCIe rx/tx, SM and DRAM activity, utilization and the cumulative
  NVLINK_THROUGHPUT_DATA_TX/RX KiB counters of all links (scope 0xFFFFFFFF).

The capture holds NVLink traffic per GPU, not per link: a field-value read with one link as
its scope answers that link's share of the GPU's counter, split evenly over the links that are
up (the all-reduce drives all 18 alike). What the capture does not hold is not invented where
NVML can say "no": GPM metrics it did not record come back NaN (shown as —), field values it
did not record NotSupported. Where NVML must answer a number, it is the idle reading of
`nvidia-smi` at capture time (temperature 40/38 °C, 78/79 W, 0 MiB used of 143771 MiB), the
clocks of the recorded H100, memory utilization as the trace's DRAM activity, and NVLink
error counters 0 (the links were healthy; the `nvlink-degraded` scenario raises them).

`topo.txt` and `nvlink_status.txt` are kept as captured: tests hold `gpuwatch topo --demo`
and the link table equal to them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from types import SimpleNamespace
from typing import Any

import pynvml

from gpuwatch.collect.host import HostProcess
from gpuwatch.demo.nvml import TRACE_PERIOD_SECONDS, RecordedNvml, affinity_mask

NODE_NAME = "h200x2"
MIB = 1024 * 1024
_ALL_LINKS = 0xFFFFFFFF
_SPEED_FIELD = pynvml.NVML_FI_DEV_NVLINK_GET_SPEED
_TX_FIELD = pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX
_RX_FIELD = pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX
_ERROR_COUNTERS = {
    pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT: "crc",
    pynvml.NVML_NVLINK_ERROR_DL_REPLAY: "replay",
    pynvml.NVML_NVLINK_ERROR_DL_RECOVERY: "recovery",
    pynvml.NVML_NVLINK_ERROR_DL_CRC_DATA: "crc_data",
}


def _data(name: str) -> str:
    return resources.files("gpuwatch.demo").joinpath(f"data/h200x2/{name}").read_text()


def load_node() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_data("node.json"))
    return data


def load_trace() -> list[dict[str, Any]]:
    return [json.loads(line) for line in _data("trace.jsonl").splitlines() if line.strip()]


def captured_topo() -> str:
    """`nvidia-smi topo -m` as captured on the pair (ANSI underline and all)."""
    return _data("topo.txt")


def captured_nvlink_status() -> str:
    """`nvidia-smi nvlink -s` as captured on the pair."""
    return _data("nvlink_status.txt")


def split(total: int, parts: int, part: int) -> int:
    """Part `part` of `total` split into `parts` whole shares that add up to it."""
    share, rest = divmod(total, parts)
    return share + (1 if part < rest else 0)


@dataclass(frozen=True, slots=True)
class LinkFault:
    """From `from_tick` on, `link` of `gpu` is down, or its error counters rise by `per_tick`."""

    gpu: int
    link: int
    from_tick: int
    down: bool = False
    counter: str = ""
    per_tick: int = 0


class RecordedNvlinkNode(RecordedNvml):
    """The two H200s of `data/h200x2/` behind pynvml's function names."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        tick_seconds: float = 1.0,
        on_call: Callable[[str], None] | None = None,
        extra_processes: Iterable[tuple[int, int, int, HostProcess]] = (),
    ) -> None:
        self._node = load_node()
        self._h200 = load_trace()
        super().__init__(
            len(self._node["gpus"]),
            tick_seconds=tick_seconds,
            on_call=on_call,
            extra_processes=extra_processes,
            clock=clock,
        )
        self._traces = [
            [self._full_line(gpu, line, i) for i, line in enumerate(self._h200)]
            for gpu in range(self.gpu_count)
        ]
        self._trace = self._traces[0]
        self._link_faults: list[LinkFault] = []

    # -- the recording as RecordedNvml's lines --------------------------------------------

    def _full_line(self, gpu: int, line: dict[str, Any], i: int) -> dict[str, Any]:
        """One tick of one GPU in the shape `RecordedNvml` reads (see the module docstring)."""
        facts = self._node["gpus"][gpu]
        sample = line["gpus"][gpu]
        gpm = dict(sample["gpm"])
        total = facts["memory_total_mib"] * MIB
        (tx_ret, tx), (rx_ret, rx) = sample["nvlink_kib_total"]
        dram = gpm.get("dram_bw_util")
        return {
            "util": {"gpu": sample["util"], "memory": round(dram) if isinstance(dram, int | float) else 0},
            "mem": {"total": total, "reserved": 0, "free": total, "used": 0},
            "temp_c": facts["temp_c"],
            "power_mw": facts["power_mw"],
            "power_limit_mw": facts["power_limit_mw"],
            "energy_mj": int(facts["power_mw"] * TRACE_PERIOD_SECONDS * i),
            "clock_sm_mhz": 1980,
            "clock_mem_mhz": 2619,
            "pstate": 0,
            "throttle": 0 if sample["util"] else 1,
            "ecc_uncorr": 0,
            "pcie_tx_kbs": int(gpm["pcie_tx_mibs"] * 1024),
            "pcie_rx_kbs": int(gpm["pcie_rx_mibs"] * 1024),
            "procs": [],
            "fields": [list(f) for f in facts["fields"]],
            "nvlink_kib": (tx_ret, tx, rx_ret, rx),
            "proc_util": "ERR NVMLError_NotFound",
            "gpm": gpm,
        }

    def _position(self, gpu: int) -> int:
        """Both GPUs run the same all-reduce: no offset between them."""
        return int((self._clock() - self._t0) / TRACE_PERIOD_SECONDS + 1e-9)

    def _line(self, gpu: int, position: int | None = None) -> dict[str, Any]:
        pos = self._position(gpu) if position is None else position
        trace = self._traces[gpu]
        line = trace[pos % len(trace)]
        overridden = self._faults.overridden(gpu)
        if overridden:
            line = dict(line)
            for values in overridden:
                line.update(values)
        return line

    def _energy_mj(self, gpu: int) -> int:
        position = self._position(gpu)
        trace = self._traces[gpu]
        loop = trace[-1]["energy_mj"] + (trace[1]["energy_mj"] - trace[0]["energy_mj"])
        return int(self._line(gpu, position)["energy_mj"] + position // len(trace) * loop)

    def _nvlink_kib(self, gpu: int) -> tuple[int, int, int, int]:
        """The all-links KiB counters now (return, tx, return, rx); they keep rising when the trace loops."""
        position = self._position(gpu)
        trace = self._traces[gpu]
        tx_ret, tx, rx_ret, rx = self._line(gpu, position)["nvlink_kib"]
        _, tx_loop, _, rx_loop = trace[-1]["nvlink_kib"]
        loops = position // len(trace)
        return tx_ret, tx + loops * tx_loop, rx_ret, rx + loops * rx_loop

    def _uuid(self, gpu: int) -> str:
        return str(self._node["gpus"][gpu]["uuid"])

    def gpu_uuids(self) -> list[str]:
        return [self._uuid(gpu) for gpu in range(self.gpu_count)]

    # -- faults on links -----------------------------------------------------------------

    def link_down(self, gpu: int, link: int, from_tick: int | None = None) -> None:
        """`link` of `gpu` (and its far end) reads inactive from `from_tick` on."""
        start = self.tick() if from_tick is None else from_tick
        for g in range(self.gpu_count):
            self._link_faults.append(LinkFault(g, link, start, down=True))

    def link_errors(
        self, gpu: int, link: int, counter: str, per_tick: int, from_tick: int | None = None
    ) -> None:
        """`counter` ("crc", "replay", "recovery") of `link` rises by `per_tick` a tick from then on."""
        start = self.tick() if from_tick is None else from_tick
        self._link_faults.append(LinkFault(gpu, link, start, counter=counter, per_tick=per_tick))

    def _link_count(self, gpu: int) -> int:
        return len(self._node["gpus"][gpu]["link_states"])

    def _link_up(self, gpu: int, link: int) -> bool:
        tick = self.tick()
        if any(f.down and f.gpu == gpu and f.link == link and tick >= f.from_tick for f in self._link_faults):
            return False
        return bool(self._node["gpus"][gpu]["link_states"][link])

    def _links_up(self, gpu: int) -> list[int]:
        return [link for link in range(self._link_count(gpu)) if self._link_up(gpu, link)]

    def _link(self, fn: str, handle: Any, link: int) -> int:
        gpu = self._device(fn, handle)
        if not 0 <= link < self._link_count(gpu):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu

    # -- static facts ---------------------------------------------------------------------

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return str(self._node["gpus"][self._device("nvmlDeviceGetName", handle)]["name"])

    def nvmlDeviceGetPciInfo_v3(self, handle: Any) -> SimpleNamespace:
        gpu = self._device("nvmlDeviceGetPciInfo_v3", handle)
        return SimpleNamespace(busId=str(self._node["gpus"][gpu]["bus"]).encode())

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: Any) -> int:
        gpu = self._device("nvmlDeviceGetPowerManagementDefaultLimit", handle)
        return int(self._node["gpus"][gpu]["power_limit_mw"])

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: Any) -> list[int]:
        gpu = self._device("nvmlDeviceGetPowerManagementLimitConstraints", handle)
        return [200_000, int(self._node["gpus"][gpu]["power_limit_mw"])]

    # -- NVLink ----------------------------------------------------------------------------

    def nvmlDeviceGetNvLinkState(self, handle: Any, link: int) -> int:
        gpu = self._link("nvmlDeviceGetNvLinkState", handle, link)
        return int(pynvml.NVML_FEATURE_ENABLED if self._link_up(gpu, link) else pynvml.NVML_FEATURE_DISABLED)

    def nvmlDeviceGetNvLinkVersion(self, handle: Any, link: int) -> int:
        gpu = self._link("nvmlDeviceGetNvLinkVersion", handle, link)
        return int(self._node["gpus"][gpu]["link_versions"][link])

    def nvmlDeviceGetNvLinkRemotePciInfo(self, handle: Any, link: int) -> SimpleNamespace:
        gpu = self._link("nvmlDeviceGetNvLinkRemotePciInfo", handle, link)
        remote = self._node["gpus"][gpu]["link_remote_bus"]
        bus = remote[link] if isinstance(remote, list) else remote
        return SimpleNamespace(busId=str(bus).encode(), busIdLegacy=str(bus)[4:].encode())

    def nvmlDeviceGetNvLinkErrorCounter(self, handle: Any, link: int, counter: int) -> int:
        gpu = self._link("nvmlDeviceGetNvLinkErrorCounter", handle, link)
        name = _ERROR_COUNTERS.get(counter)
        if name is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        tick = self.tick()
        return sum(
            f.per_tick * (tick - f.from_tick)
            for f in self._link_faults
            if f.gpu == gpu and f.link == link and f.counter == name and tick >= f.from_tick
        )

    def nvmlDeviceGetFieldValues(self, handle: Any, field_ids: list[Any]) -> Any:
        values = super().nvmlDeviceGetFieldValues(handle, field_ids)
        gpu = handle.index
        facts = self._node["gpus"][gpu]
        tx_ret, tx, rx_ret, rx = self._nvlink_kib(gpu)
        up = self._links_up(gpu)
        for i, requested in enumerate(field_ids):
            field_id, scope = requested if isinstance(requested, tuple) else (requested, 0)
            got: tuple[int, int] | None = None
            if field_id in (_TX_FIELD, _RX_FIELD):
                ret, total = (tx_ret, tx) if field_id == _TX_FIELD else (rx_ret, rx)
                if scope == _ALL_LINKS:
                    got = (ret, total)
                elif 0 <= scope < self._link_count(gpu):
                    got = (ret, split(total, len(up), up.index(scope)) if scope in up else 0)
                else:
                    got = (pynvml.NVML_ERROR_INVALID_ARGUMENT, 0)
            elif field_id == _SPEED_FIELD:
                ok = 0 <= scope < self._link_count(gpu)
                got = (
                    (pynvml.NVML_SUCCESS, int(facts["link_speed_mbps"][scope]))
                    if ok
                    else (
                        pynvml.NVML_ERROR_INVALID_ARGUMENT,
                        0,
                    )
                )
            if got is not None:
                values[i].nvmlReturn, values[i].value.ullVal = got[0], int(got[1])
        return values

    # -- topology --------------------------------------------------------------------------

    def nvmlDeviceGetTopologyCommonAncestor(self, device1: Any, device2: Any) -> int:
        a = self._device("nvmlDeviceGetTopologyCommonAncestor", device1)
        b = self._device("nvmlDeviceGetTopologyCommonAncestor", device2)
        if a == b:
            return int(pynvml.NVML_TOPOLOGY_INTERNAL)
        return int(self._node["pairs"][f"{min(a, b)}-{max(a, b)}"])

    def nvmlDeviceGetP2PStatus(self, device1: Any, device2: Any, p2p_index: int) -> int:
        a = self._device("nvmlDeviceGetP2PStatus", device1)
        b = self._device("nvmlDeviceGetP2PStatus", device2)
        if p2p_index != pynvml.NVML_P2P_CAPS_INDEX_NVLINK or a == b:
            return int(pynvml.NVML_P2P_STATUS_UNKNOWN)  # not captured
        return int(self._node["pairs"][f"{min(a, b)}-{max(a, b)} p2p_nvlink"])

    def nvmlDeviceGetCpuAffinity(self, handle: Any, cpu_set_size: int) -> Any:
        gpu = self._device("nvmlDeviceGetCpuAffinity", handle)
        return affinity_mask(self._node["gpus"][gpu]["cpu_affinity"], cpu_set_size)

    def nvmlDeviceGetMemoryAffinity(self, handle: Any, node_set_size: int, scope: int) -> Any:
        gpu = self._device("nvmlDeviceGetMemoryAffinity", handle)
        return affinity_mask(self._node["gpus"][gpu]["numa_affinity"], node_set_size)

    def nvmlDeviceGetNumaNodeId(self, handle: Any) -> int:
        self._device("nvmlDeviceGetNumaNodeId", handle)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)  # as on the captured pair
