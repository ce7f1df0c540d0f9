"""Decoding NVML codes into names and words."""

from gpuwatch.catalog import nvml_codes


def test_power_cap_alone() -> None:
    assert nvml_codes.decode_clock_event_reasons(0x4) == ("sw_power_cap",)
    assert nvml_codes.clock_event_words(("sw_power_cap",)) == "power cap"


def test_thermal_and_hw_slowdown_together() -> None:
    names = nvml_codes.decode_clock_event_reasons(0x8 | 0x20 | 0x40)
    assert set(names) == {"hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown"}
    assert "thermal" in nvml_codes.clock_event_words(names)
    assert "HW slowdown" in nvml_codes.clock_event_words(names)


def test_idle_is_a_reason_but_not_a_slowdown() -> None:
    names = nvml_codes.decode_clock_event_reasons(0x1)
    assert names == ("gpu_idle",)
    assert nvml_codes.slowing_reasons(names) == ()
    assert nvml_codes.slowing_reasons(nvml_codes.decode_clock_event_reasons(0x5)) == ("sw_power_cap",)


def test_unknown_bits_are_kept_not_dropped() -> None:
    assert nvml_codes.decode_clock_event_reasons(0x4 | 0x10000) == ("sw_power_cap", "unknown_0x10000")
    assert nvml_codes.decode_clock_event_reasons(0) == ()


def test_xid_tables() -> None:
    assert 79 in nvml_codes.CRITICAL_XIDS and 48 in nvml_codes.CRITICAL_XIDS
    assert 13 in nvml_codes.APPLICATION_XIDS and 13 not in nvml_codes.CRITICAL_XIDS
    assert set(nvml_codes.CRITICAL_XIDS).isdisjoint(nvml_codes.APPLICATION_XIDS)
    assert nvml_codes.xid_words(79) == "GPU has fallen off the bus"
    assert "catalogue" in nvml_codes.xid_words(9999)


def test_architecture_names() -> None:
    assert nvml_codes.architecture_name(9) == "hopper"
    assert nvml_codes.architecture_name(0xFFFFFFFF) is None
