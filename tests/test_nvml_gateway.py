"""The NVML choke point: how each kind of NVML answer is classified."""

import logging

import pytest

from gpuwatch.collect.nvml.gateway import GpuLostError, NvmlGateway, NvmlUnavailableError
from gpuwatch.demo.nvml import RecordedNvml
from tests.conftest import ManualClock


@pytest.fixture
def gateway(clock: ManualClock) -> tuple[NvmlGateway, RecordedNvml, object]:
    recorded = RecordedNvml(2, clock=clock)
    gw = NvmlGateway(recorded)
    gw.call_library("nvmlInit")
    handle = gw.call_library("nvmlDeviceGetHandleByIndex", 0)
    return gw, recorded, handle


def test_value(gateway: tuple[NvmlGateway, RecordedNvml, object]) -> None:
    gw, recorded, handle = gateway
    assert gw.call("u0", "power", "nvmlDeviceGetPowerUsage", handle) == recorded.current_line(0)["power_mw"]


@pytest.mark.parametrize("kind", ["NOT_SUPPORTED", "NO_PERMISSION"])
def test_unsupported_is_remembered(gateway: tuple[NvmlGateway, RecordedNvml, object], kind: str) -> None:
    gw, recorded, handle = gateway
    recorded.inject(kind, gpu=0, calls={"nvmlDeviceGetPowerUsage"})
    assert gw.call("u0", "power", "nvmlDeviceGetPowerUsage", handle) is None
    assert gw.is_unsupported("u0", "power")
    assert ("u0", "power") in gw.stats().unsupported


def test_transient_errors_are_counted_and_logged_once(
    gateway: tuple[NvmlGateway, RecordedNvml, object], caplog: pytest.LogCaptureFixture
) -> None:
    gw, recorded, handle = gateway
    recorded.inject("TIMEOUT", gpu=0, calls={"nvmlDeviceGetPowerUsage"})
    with caplog.at_level(logging.WARNING, logger="gpuwatch.nvml"):
        for _ in range(5):
            assert gw.call("u0", "power", "nvmlDeviceGetPowerUsage", handle) is None
    assert gw.stats().transient_errors_count == 5
    assert not gw.is_unsupported("u0", "power")  # a timeout is not "unsupported": ask again
    assert len([r for r in caplog.records if "Timeout" in r.getMessage()]) == 1


def test_lost_and_unknown_raise_gpu_lost(gateway: tuple[NvmlGateway, RecordedNvml, object]) -> None:
    gw, recorded, handle = gateway
    fault = recorded.inject("UNKNOWN", gpu=0)
    with pytest.raises(GpuLostError) as err:
        gw.call("u0", "power", "nvmlDeviceGetPowerUsage", handle)
    assert err.value.fn_name == "nvmlDeviceGetPowerUsage"
    recorded.clear(fault)


@pytest.mark.parametrize(
    ("kind", "words"),
    [("UNINITIALIZED", "not initialised"), ("LIB_RM_VERSION_MISMATCH", "version mismatch")],
)
def test_library_failures_raise_unavailable_with_a_hint(
    gateway: tuple[NvmlGateway, RecordedNvml, object], kind: str, words: str
) -> None:
    gw, recorded, handle = gateway
    recorded.inject(kind)
    with pytest.raises(NvmlUnavailableError) as err:
        gw.call("u0", "power", "nvmlDeviceGetPowerUsage", handle)
    assert words in str(err.value)


def test_a_missing_binding_counts_as_unsupported(gateway: tuple[NvmlGateway, RecordedNvml, object]) -> None:
    gw, _, handle = gateway
    assert gw.call("u0", "future", "nvmlDeviceGetSomethingFromTheFuture", handle) is None
    assert gw.is_unsupported("u0", "future")
