"""Value clean-up: every way NVML says "not available" becomes None, never 0."""

from __future__ import annotations

import pynvml
import pytest

from gpuwatch.collect.nvml.values import (
    NvlinkCounters,
    bool_or_none,
    bytes_from_kib,
    clock_event_reason_names,
    field_value,
    float_or_none,
    from_milli,
    int_or_none,
    nvlink_bytes_per_second,
    pstate_or_none,
    ratio_from_percent,
    text_or_none,
    uint_or_none,
)


def test_text_decodes_bytes_and_drops_empty_and_non_text() -> None:
    assert text_or_none("580.159.04") == "580.159.04"
    assert text_or_none(b"NVIDIA H100") == "NVIDIA H100"
    assert text_or_none(b"H\xff") == "H\ufffd"  # undecodable bytes are replaced, not fatal
    assert text_or_none("") is None
    assert text_or_none(b"") is None
    assert text_or_none(None) is None
    assert text_or_none(42) is None


@pytest.mark.parametrize("sentinel", [0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF])
def test_unsigned_sentinels_are_not_values(sentinel: int) -> None:
    assert uint_or_none(sentinel) is None
    assert from_milli(sentinel) is None
    assert bytes_from_kib(sentinel) is None
    assert pstate_or_none(sentinel) is None


def test_uint_takes_only_non_negative_ints() -> None:
    assert uint_or_none(0) == 0
    assert uint_or_none(0xFFFFFFFE) == 0xFFFFFFFE
    assert uint_or_none(-1) is None
    assert uint_or_none(True) is None  # a bool is not a count
    assert uint_or_none(3.0) is None
    assert uint_or_none(None) is None


def test_int_and_float_refuse_bools_and_non_numbers() -> None:
    assert int_or_none(7) == 7 and int_or_none(7.9) == 7
    assert float_or_none(35) == 35.0 and isinstance(float_or_none(35), float)
    for not_a_number in (True, False, None, "35"):
        assert int_or_none(not_a_number) is None
        assert float_or_none(not_a_number) is None


def test_bool_from_an_nvml_enable_state() -> None:
    assert bool_or_none(1) is True
    assert bool_or_none(0) is False
    assert bool_or_none(None) is None
    assert bool_or_none("1") is None


def test_percent_becomes_a_ratio_only_within_0_to_100() -> None:
    assert ratio_from_percent(0) == 0.0
    assert ratio_from_percent(100) == 1.0
    assert ratio_from_percent(37) == 0.37
    assert ratio_from_percent(50.5) == 0.505
    assert ratio_from_percent(99.99999999) == 1.0  # floats are rounded to 6 places
    assert ratio_from_percent(101) is None
    assert ratio_from_percent(-1) is None
    assert ratio_from_percent(100.5) is None
    assert ratio_from_percent(True) is None
    assert ratio_from_percent(None) is None


def test_milli_and_kib_to_base_units() -> None:
    assert from_milli(695_000) == 695.0
    assert from_milli(0) == 0.0  # a real zero stays zero
    assert from_milli(-5) is None
    assert bytes_from_kib(9919) == 9919 * 1024.0
    assert bytes_from_kib(None) is None


def test_pstate_unknown_is_none() -> None:
    assert pstate_or_none(0) == 0
    assert pstate_or_none(15) == 15
    assert pstate_or_none(16) is None
    assert pstate_or_none(32) is None  # NVML_PSTATE_UNKNOWN


def test_clock_event_reasons_are_decoded_once_per_mask() -> None:
    assert clock_event_reason_names(0x4) == ("sw_power_cap",)
    assert clock_event_reason_names(0x4) is clock_event_reason_names(0x4)


@pytest.mark.parametrize(
    ("value_type", "member", "raw", "expected"),
    [
        (pynvml.NVML_VALUE_TYPE_DOUBLE, "dVal", 35.5, 35.5),
        (pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, "uiVal", 18, 18),
        (pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG, "ulVal", 2**40, 2**40),
        (pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, "ullVal", 2**63, 2**63),
        (pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG, "sllVal", -3, -3),
        (pynvml.NVML_VALUE_TYPE_SIGNED_INT, "siVal", -7, -7),
    ],
)
def test_field_value_reads_the_union_member_its_type_names(
    value_type: int, member: str, raw: float, expected: float
) -> None:
    value = pynvml.c_nvmlFieldValue_t()
    value.valueType = value_type
    setattr(value.value, member, raw)
    got = field_value(value)
    assert got == expected
    assert type(got) is type(expected)


def test_nvlink_rate_needs_an_earlier_read() -> None:
    assert nvlink_bytes_per_second(None, NvlinkCounters(10.0, 100.0, 50.0)) is None


def test_nvlink_rate_from_two_reads_in_bytes_per_second() -> None:
    previous = NvlinkCounters(10.0, 100.0, 50.0)
    current = NvlinkCounters(12.0, 300.0, 50.0)
    assert nvlink_bytes_per_second(previous, current) == (200 * 1024 / 2, 0.0)


def test_nvlink_rate_is_none_when_time_stands_still_or_a_counter_resets() -> None:
    previous = NvlinkCounters(10.0, 100.0, 50.0)
    assert nvlink_bytes_per_second(previous, NvlinkCounters(10.0, 200.0, 60.0)) is None
    assert nvlink_bytes_per_second(previous, NvlinkCounters(9.0, 200.0, 60.0)) is None
    assert nvlink_bytes_per_second(previous, NvlinkCounters(11.0, 99.0, 60.0)) is None
    assert nvlink_bytes_per_second(previous, NvlinkCounters(11.0, 200.0, 49.0)) is None
