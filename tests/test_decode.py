"""Decoding NVML codes into names and words."""

from gpuwatch import decode


def test_power_cap_alone() -> None:
    assert decode.decode_clock_event_reasons(0x4) == ("sw_power_cap",)
    assert decode.clock_event_words(("sw_power_cap",)) == "power cap"


def test_thermal_and_hw_slowdown_together() -> None:
    names = decode.decode_clock_event_reasons(0x8 | 0x20 | 0x40)
    assert set(names) == {"hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown"}
    assert "thermal" in decode.clock_event_words(names)
    assert "HW slowdown" in decode.clock_event_words(names)


def test_idle_is_a_reason_but_not_a_slowdown() -> None:
    names = decode.decode_clock_event_reasons(0x1)
    assert names == ("gpu_idle",)
    assert decode.slowing_reasons(names) == ()
    assert decode.slowing_reasons(decode.decode_clock_event_reasons(0x5)) == ("sw_power_cap",)


def test_unknown_bits_are_kept_not_dropped() -> None:
    assert decode.decode_clock_event_reasons(0x4 | 0x10000) == ("sw_power_cap", "unknown_0x10000")
    assert decode.decode_clock_event_reasons(0) == ()


def test_xid_tables() -> None:
    assert 79 in decode.CRITICAL_XIDS and 48 in decode.CRITICAL_XIDS
    assert 13 in decode.APPLICATION_XIDS and 13 not in decode.CRITICAL_XIDS
    assert set(decode.CRITICAL_XIDS).isdisjoint(decode.APPLICATION_XIDS)
    assert decode.xid_words(79) == "GPU has fallen off the bus"
    assert "catalogue" in decode.xid_words(9999)


def test_architecture_names() -> None:
    assert decode.architecture_name(9) == "hopper"
    assert decode.architecture_name(0xFFFFFFFF) is None
