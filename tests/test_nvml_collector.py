"""The real NVML collector over the recorded, fault-injecting pynvml stand-in.

The clock that drives the recorded trace is manual, so every value is known. Hang detection
uses real time (a thread stuck in a call cannot be faked), so those tests wait for conditions
with short deadlines from `fast_nvml_settings`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable

import pytest

from gpuwatch import model
from gpuwatch.collect.nvml.collector import NvmlCollector
from gpuwatch.config import NvmlSettings
from gpuwatch.demo.nvml import RecordedNvml
from gpuwatch.demo.processes import RecordedProcesses
from tests.conftest import ManualClock, make_collector

OK = model.GpuState.OK


def states(collector: NvmlCollector) -> dict[int, model.GpuState]:
    return {g.index: g.state for g in collector.view().gpus}


def sample(collector: NvmlCollector, index: int) -> model.GpuSample:
    return next(g for g in collector.view().gpus if g.index == index)


def wait_for(condition: Callable[[], bool], poll: Callable[[], None], timeout: float = 5.0) -> None:
    """Poll until `condition` holds; fail with a clear message after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll()
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached within the deadline")


@pytest.fixture
def collector(recorded4: RecordedNvml, fast_nvml_settings: NvmlSettings, clock: ManualClock) -> NvmlCollector:
    c = make_collector(recorded4, fast_nvml_settings, clock)
    yield c
    recorded4.close()
    c.close()


# --------------------------------------------------------------------------- values


def test_fast_fields_match_the_recorded_trace(
    collector: NvmlCollector, recorded4: RecordedNvml, clock: ManualClock
) -> None:
    clock.advance(12)  # GPU 0 is in the matmul phase of the trace: power-capped, tensor-bound
    collector.poll_fast()
    for index in range(4):
        line = recorded4.current_line(index)
        g = sample(collector, index)
        assert g.state == OK
        assert g.power_watts == line["power_mw"] / 1000
        assert g.memory_used_bytes == line["mem"]["used"]
        assert g.memory_reserved_bytes == line["mem"]["reserved"]
        assert g.utilization_ratio == pytest.approx(line["util"]["gpu"] / 100)
        assert g.temperature_celsius == line["temp_c"]
        assert g.sm_clock_mhz == line["clock_sm_mhz"]
        assert g.clock_event_reasons_mask == line["throttle"]
    g0 = sample(collector, 0)
    assert g0.clock_event_reasons == ("sw_power_cap",)
    assert g0.sm_clock_mhz is not None and g0.sm_clock_mhz < 1980


def test_unsupported_fields_are_none_never_zero(collector: NvmlCollector) -> None:
    collector.poll_fast()
    g = sample(collector, 0)
    assert g.fan_speed_ratio is None  # NotSupported on an H100 SXM, as recorded


def test_static_facts(collector: NvmlCollector) -> None:
    collector.poll_fast()
    info = collector.view().devices[0]
    assert info.name == "NVIDIA H100 80GB HBM3"
    assert info.architecture == "hopper"
    assert info.cuda_compute_capability == "9.0"
    assert info.memory_total_bytes == 85520809984
    assert info.ecc_enabled is True and info.mig_enabled is False
    assert info.gpm_supported is True
    assert info.max_sm_clock_mhz == 1980
    # nvmlDeviceGetPowerManagementLimitConstraints answers [min, max] in mW.
    assert (info.power_limit_min_watts, info.power_limit_max_watts) == (200.0, 700.0)
    assert len({d.uuid for d in collector.view().devices}) == 4
    node = collector.view().node
    assert node.driver_version == "580.159.04" and node.cuda_driver_version == "13.0"


def test_gpm_from_two_samples_tells_matmul_from_copy(collector: NvmlCollector, clock: ManualClock) -> None:
    # GPU 0 at t=10..16 s of the trace: bf16 matmul; t=30..36 s: device-to-device copy.
    clock.advance(10)
    collector.poll_slow()
    assert sample(collector, 0).gpm is None  # one GPM sample is not a measurement
    clock.advance(5)
    collector.poll_slow()
    gpm = sample(collector, 0).gpm
    assert gpm is not None and gpm.interval_seconds == pytest.approx(5.0)
    assert gpm.tensor_activity_ratio is not None and gpm.tensor_activity_ratio > 0.7
    assert gpm.dram_bandwidth_ratio is not None and gpm.dram_bandwidth_ratio < 0.4
    clock.advance(17)
    collector.poll_slow()
    clock.advance(4)
    collector.poll_slow()
    gpm = sample(collector, 0).gpm
    assert gpm is not None
    assert gpm.tensor_activity_ratio == pytest.approx(0.0)
    assert gpm.dram_bandwidth_ratio is not None and gpm.dram_bandwidth_ratio > 0.7
    # PCIe comes from GPM when GPM has it: the 21 ms PcieThroughput call is never made.
    assert sample(collector, 0).pcie_rx_bytes_per_second is not None


def test_pcie_throughput_call_is_skipped_when_gpm_has_it(
    collector: NvmlCollector, recorded4: RecordedNvml, clock: ManualClock
) -> None:
    collector.poll_slow()
    clock.advance(5)
    collector.poll_slow()
    assert recorded4.calls[(0, "nvmlDeviceGetPcieThroughput")] == 2  # only before GPM had two samples
    clock.advance(5)
    collector.poll_slow()
    assert recorded4.calls[(0, "nvmlDeviceGetPcieThroughput")] == 2


def test_energy_is_read_on_its_own_slower_cadence(recorded4: RecordedNvml, clock: ManualClock) -> None:
    settings = NvmlSettings(slow_interval_seconds=5, energy_interval_seconds=30)
    collector = make_collector(recorded4, settings, clock)
    for _ in range(13):  # 60 s of slow reads every 5 s
        collector.poll_slow()
        assert sample(collector, 0).energy_joules is not None  # carried between reads
        clock.advance(5)
    assert recorded4.calls[(0, "nvmlDeviceGetTotalEnergyConsumption")] == 3  # at 0, 30 and 60 s
    collector.close()


def test_energy_keeps_rising_across_the_trace_loop(recorded4: RecordedNvml, clock: ManualClock) -> None:
    collector = make_collector(recorded4, NvmlSettings(energy_interval_seconds=1), clock)
    readings = []
    for _ in range(20):
        collector.poll_slow()
        readings.append(sample(collector, 0).energy_joules)
        clock.advance(9)  # 180 s: more than two passes over the 72 s trace
    collector.close()
    assert all(b is not None and a is not None and b > a for a, b in itertools.pairwise(readings))


def test_nvlink_rates_come_from_the_cumulative_counters_when_gpm_has_none(
    recorded4: RecordedNvml, clock: ManualClock
) -> None:
    # The recorded H100 has no NVLink (field 91 NotSupported): give GPU 0 links and counters.
    def fields(tx_kib: int, rx_kib: int) -> list[list[int]]:
        return [[82, 0, 35], [94, 0, 0], [91, 0, 18], [138, 0, tx_kib], [139, 0, rx_kib]]

    recorded4.override(0, {"fields": fields(1000, 500)}, until_tick=5)
    recorded4.override(0, {"fields": fields(3000, 500)}, from_tick=5, until_tick=10)
    recorded4.override(0, {"fields": fields(2000, 600)}, from_tick=10)  # the counters were reset
    collector = make_collector(recorded4, NvmlSettings(gpm=False), clock)
    collector.poll_slow()
    assert collector.view().devices[0].nvlink_link_count == 18
    assert sample(collector, 0).nvlink_tx_bytes_per_second is None  # one reading is not a rate
    clock.advance(5)
    collector.poll_slow()
    g0 = sample(collector, 0)
    assert g0.nvlink_tx_bytes_per_second == 2000 * 1024 / 5
    assert g0.nvlink_rx_bytes_per_second == 0.0
    assert sample(collector, 1).nvlink_tx_bytes_per_second is None  # no links: not 0
    clock.advance(5)
    collector.poll_slow()
    assert sample(collector, 0).nvlink_tx_bytes_per_second is None
    assert sample(collector, 0).nvlink_rx_bytes_per_second is None
    collector.close()


def test_processes_joined_with_host_facts(
    collector: NvmlCollector, recorded4: RecordedNvml, clock: ManualClock
) -> None:
    clock.advance(30)  # GPU 0 during the copy: two processes, one busy
    collector.poll_fast()
    collector.poll_slow()
    procs = {p.pid: p for p in collector.view().processes if p.gpu_index == 0}
    server = procs[recorded4.recorded_pid(0, 428)]
    assert server.user == "svc-infer"
    assert server.command is not None and "serve.py" in server.command
    assert server.container_id is not None and len(server.container_id) == 64
    assert server.used_memory_bytes == 9774825472
    assert server.sm_utilization_ratio == pytest.approx(0.99)
    idle = procs[recorded4.recorded_pid(0, 430)]
    assert idle.container_id is None
    assert idle.sm_utilization_ratio == 0.0  # NVML answered and it ran nothing


def test_process_utilization_not_found_means_no_new_samples(
    collector: NvmlCollector, recorded4: RecordedNvml, clock: ManualClock
) -> None:
    clock.advance(52)  # GPU 0 holds memory idle: a process, but NotFound for utilization
    collector.poll_fast()
    collector.poll_slow()
    procs = [p for p in collector.view().processes if p.gpu_index == 0]
    assert procs, "the trace holds memory in this phase"
    assert all(p.sm_utilization_ratio == 0.0 for p in procs)
    assert collector.gateway.stats().transient_errors_count == 0


# --------------------------------------------------------------------------- the fault matrix


def test_one_lost_gpu_is_isolated_and_recovers(
    collector: NvmlCollector, recorded4: RecordedNvml, clock: ManualClock
) -> None:
    collector.poll_fast()
    assert set(states(collector).values()) == {OK}
    fault = recorded4.inject("GPU_IS_LOST", gpu=1)
    for _ in range(6):
        clock.advance(1)
        collector.poll_fast()
        collector.poll_slow()
        assert states(collector) == {0: OK, 1: model.GpuState.LOST, 2: OK, 3: OK}
        for index in (0, 2, 3):  # the others keep every tick, with this tick's values
            assert sample(collector, index).power_watts == recorded4.current_line(index)["power_mw"] / 1000
    lost = sample(collector, 1)
    assert lost.power_watts is None
    assert lost.state_reason is not None and "GPU is lost" in lost.state_reason
    events = collector.drain_events()
    assert [e.kind for e in events].count(model.EventKind.GPU_LOST) == 1
    assert next(e for e in events if e.kind == model.EventKind.GPU_LOST).gpu_index == 1

    recorded4.clear(fault)
    wait_for(lambda: states(collector)[1] == OK, collector.poll_fast)
    assert sample(collector, 1).power_watts == recorded4.current_line(1)["power_mw"] / 1000
    assert [e.kind for e in collector.drain_events()] == [model.EventKind.GPU_BACK]
    assert recorded4.stale_handle_uses == 0, "the lost GPU's old handle was used again"


def test_unknown_error_isolates_like_gpu_lost(collector: NvmlCollector, recorded4: RecordedNvml) -> None:
    recorded4.inject("UNKNOWN", gpu=2, calls={"nvmlDeviceGetPowerUsage"})
    collector.poll_fast()
    assert states(collector) == {0: OK, 1: OK, 2: model.GpuState.LOST, 3: OK}


def test_not_supported_is_learned_once_and_never_asked_again(
    collector: NvmlCollector, recorded4: RecordedNvml, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gpuwatch.nvml")
    fault = recorded4.inject("NOT_SUPPORTED", gpu=2, calls={"nvmlDeviceGetPowerUsage"})
    for _ in range(5):
        collector.poll_fast()
        clock.advance(1)
    recorded4.clear(fault)  # even if the driver would answer now, it is not asked again
    for _ in range(3):
        collector.poll_fast()
        clock.advance(1)
    fast_reads = recorded4.calls[(2, "nvmlDeviceGetUtilizationRates")]
    assert fast_reads >= 8
    assert recorded4.calls[(2, "nvmlDeviceGetPowerUsage")] == 1
    assert recorded4.calls[(1, "nvmlDeviceGetPowerUsage")] == fast_reads
    assert sample(collector, 2).power_watts is None
    assert sample(collector, 2).state == OK
    assert recorded4.calls[(0, "nvmlDeviceGetFanSpeed")] == 1
    logged = [r for r in caplog.records if "power" in r.getMessage() and "not available" in r.getMessage()]
    assert len(logged) == 1


def test_a_hanging_call_on_one_gpu_does_not_stop_the_others(
    collector: NvmlCollector, recorded4: RecordedNvml, clock: ManualClock, fast_nvml_settings: NvmlSettings
) -> None:
    collector.poll_fast()
    fault = recorded4.inject("HANG", gpu=3, calls={"nvmlDeviceGetTemperature"})
    wait_for(lambda: states(collector)[3] == model.GpuState.HUNG, collector.poll_fast)
    hung = sample(collector, 3)
    assert hung.state_reason is not None and "nvmlDeviceGetTemperature has not returned" in hung.state_reason
    for _ in range(3):  # the other GPUs keep producing this tick's values
        clock.advance(1)
        started = time.monotonic()
        collector.poll_fast()
        assert time.monotonic() - started < fast_nvml_settings.call_timeout_seconds + 1.0
        for index in (0, 1, 2):
            assert sample(collector, index).state == OK
            assert sample(collector, index).power_watts == recorded4.current_line(index)["power_mw"] / 1000
    hung_events = [e for e in collector.drain_events() if e.kind == model.EventKind.GPU_HUNG]
    assert len(hung_events) == 1 and hung_events[0].gpu_index == 3
    recorded4.clear(fault)
    wait_for(lambda: states(collector)[3] == OK, collector.poll_fast)


def test_a_hanging_slow_call_does_not_delay_fast_fields(
    collector: NvmlCollector, recorded4: RecordedNvml, clock: ManualClock
) -> None:
    fault = recorded4.inject("HANG", gpu=0, calls={"nvmlDeviceGetTotalEnergyConsumption"})
    collector.poll_slow()  # returns at its deadline, leaving GPU 0's slow worker stuck
    clock.advance(1)
    collector.poll_fast()
    assert sample(collector, 1).power_watts == recorded4.current_line(1)["power_mw"] / 1000
    recorded4.clear(fault)


def test_library_failure_gives_one_line_and_retries_with_backoff(
    collector: NvmlCollector, recorded4: RecordedNvml, clock: ManualClock
) -> None:
    collector.poll_fast()
    fault = recorded4.inject("UNINITIALIZED")
    collector.poll_fast()
    view = collector.view()
    assert view.status is not None and view.status.startswith("NVML unavailable")
    assert "\n" not in view.status
    assert {g.state for g in view.gpus} == {model.GpuState.UNAVAILABLE}
    assert model.EventKind.NVML_UNAVAILABLE in [e.kind for e in collector.drain_events()]
    recorded4.clear(fault)
    wait_for(lambda: collector.view().status is None, collector.poll_fast)
    assert set(states(collector).values()) == {OK}
    assert model.EventKind.NVML_BACK in [e.kind for e in collector.drain_events()]


def test_no_driver_at_start_is_retried_with_growing_delays(clock: ManualClock) -> None:
    recorded = RecordedNvml(2, clock=clock)
    recorded.inject("DRIVER_NOT_LOADED")
    settings = NvmlSettings(interval_seconds=0.1, retry_max_seconds=1.0)
    collector = make_collector(recorded, settings, clock)
    deadline = time.monotonic() + 1.6
    polls = 0
    while time.monotonic() < deadline:
        collector.poll_fast()
        polls += 1
        time.sleep(0.01)
    tries = recorded.calls[(None, "nvmlInit")]
    assert (
        collector.view().status == "NVML unavailable: the NVIDIA driver is not loaded (is this a GPU node?)"
    )
    assert collector.view().gpus == ()
    assert 3 <= tries <= 6, f"{tries} init attempts in 1.6 s: backoff should double from 0.1 s"
    assert polls > 5 * tries
    collector.close()


def test_a_gpu_that_fails_at_start_is_reported_and_picked_up_later(
    clock: ManualClock, fast_nvml_settings: NvmlSettings
) -> None:
    recorded = RecordedNvml(3, clock=clock)
    fault = recorded.inject("GPU_IS_LOST", gpu=2)
    collector = make_collector(recorded, fast_nvml_settings, clock)
    collector.poll_fast()
    assert states(collector) == {0: OK, 1: OK, 2: model.GpuState.LOST}
    recorded.clear(fault)
    wait_for(lambda: states(collector)[2] == OK, collector.poll_fast)
    assert sample(collector, 2).uuid.startswith("GPU-")
    collector.close()


# --------------------------------------------------------------------------- events


def test_xid_events_are_decoded_with_severity(collector: NvmlCollector, recorded4: RecordedNvml) -> None:
    collector.poll_fast()
    recorded4.inject_xid(2, 79)
    recorded4.inject_xid(0, 13)
    collector.poll_events()
    events = {e.code: e for e in collector.drain_events() if e.kind == model.EventKind.XID}
    assert events[79].gpu_index == 2 and events[79].severity == model.Severity.CRITICAL
    assert "fallen off the bus" in events[79].message
    assert events[13].gpu_index == 0 and events[13].severity == model.Severity.INFO  # application-caused


def test_an_xid_neither_critical_nor_the_applications_is_a_warning(
    collector: NvmlCollector, recorded4: RecordedNvml
) -> None:
    collector.poll_fast()
    recorded4.inject_xid(1, 109)  # a context-switch timeout
    recorded4.inject_xid(3, 9999)  # an XID the catalog does not know
    collector.poll_events()
    events = {e.code: e for e in collector.drain_events() if e.kind == model.EventKind.XID}
    assert events[109].severity == model.Severity.WARNING and events[109].gpu_index == 1
    assert events[9999].severity == model.Severity.WARNING and events[9999].gpu_index == 3


def test_ecc_events(collector: NvmlCollector, recorded4: RecordedNvml) -> None:
    collector.poll_fast()
    recorded4.inject_ecc(1, uncorrected=True)
    recorded4.inject_ecc(3, uncorrected=False)
    collector.poll_events()
    events = collector.drain_events()
    kinds = {(e.kind, e.gpu_index, e.severity) for e in events}
    assert (model.EventKind.ECC_UNCORRECTED, 1, model.Severity.CRITICAL) in kinds
    assert (model.EventKind.ECC_CORRECTED, 3, model.Severity.INFO) in kinds


def test_events_scheduled_for_a_later_tick_wait_for_it(
    collector: NvmlCollector, recorded4: RecordedNvml, clock: ManualClock
) -> None:
    collector.poll_fast()
    recorded4.inject_xid(1, 48, at_tick=recorded4.tick() + 3)
    collector.poll_events()
    assert not [e for e in collector.drain_events() if e.kind == model.EventKind.XID]
    clock.advance(3)
    collector.poll_events()
    assert [e.code for e in collector.drain_events() if e.kind == model.EventKind.XID] == [48]


def test_a_gpu_wedged_at_start_does_not_hold_up_the_others(
    clock: ManualClock, fast_nvml_settings: NvmlSettings
) -> None:
    recorded = RecordedNvml(3, clock=clock)
    fault = recorded.inject("HANG", gpu=1, calls={"nvmlDeviceGetName"})
    collector = make_collector(recorded, fast_nvml_settings, clock)
    collector.poll_fast()
    wait_for(lambda: states(collector).get(1) == model.GpuState.HUNG, collector.poll_fast)
    assert states(collector) == {0: OK, 1: model.GpuState.HUNG, 2: OK}
    assert "nvmlDeviceGetName" in (sample(collector, 1).state_reason or "")
    recorded.clear(fault)
    wait_for(lambda: states(collector).get(1) == OK, collector.poll_fast)
    assert sample(collector, 1).power_watts == recorded.current_line(1)["power_mw"] / 1000
    collector.close()


def test_a_wall_clock_step_back_leaves_gpm_and_energy_intervals_right(recorded4: RecordedNvml) -> None:
    """The collector timed intervals on the wall clock: a step back of 1 h gave GPM a −3595 s
    interval and put the next energy read an hour off. They run on the interval clock now."""
    wall = ManualClock()
    mono = ManualClock(1000.0)
    collector = NvmlCollector(
        recorded4,
        NvmlSettings(energy_interval_seconds=30),
        RecordedProcesses(recorded4.host_processes()),
        source_name="recorded",
        clock=wall,
        interval_clock=mono,
    )
    try:
        collector.poll_slow()
        energy_reads = recorded4.calls[(0, "nvmlDeviceGetTotalEnergyConsumption")]
        wall.advance(-3600)  # the step
        mono.advance(5)
        collector.poll_slow()
        gpm = sample(collector, 0).gpm
        assert gpm is not None and gpm.interval_seconds == pytest.approx(5.0)
        mono.advance(25)
        wall.advance(25)
        collector.poll_slow()  # 30 s after the first read by the monotonic clock: energy is due
        assert recorded4.calls[(0, "nvmlDeviceGetTotalEnergyConsumption")] == energy_reads + 1
    finally:
        collector.close()
