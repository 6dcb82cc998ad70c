"""Kubernetes quantities and durations: the table of valid forms, and garbage -> exit 4."""

from __future__ import annotations

from datetime import timedelta

import pytest

from capplan.errors import BadInputError
from capplan.quantity import (
    format_bytes,
    format_cpu,
    format_duration,
    parse_cpu_cores,
    parse_duration,
    parse_memory_bytes,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100m", 0.1),
        ("1", 1.0),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("1E-3", 0.001),
        ("1k", 1000.0),
        ("1Ki", 1024.0),
        ("512Mi", 512 * 1024 * 1024),
        ("1.5Gi", 1.5 * 1024**3),
        ("1G", 1e9),
        ("1T", 1e12),
        ("250u", 250e-6),
        ("+2", 2.0),
        (".5", 0.5),
        (3, 3.0),
        (2.5, 2.5),
    ],
)
def test_valid_quantities(text: str, expected: float) -> None:
    assert parse_quantity(text) == pytest.approx(expected)


def test_cpu_and_memory_units() -> None:
    assert parse_cpu_cores("250m") == pytest.approx(0.25)
    # 1.5 * 2**30 = 1,610,612,736 bytes exactly
    assert parse_memory_bytes("1.5Gi") == 1_610_612_736
    # a fractional byte count rounds up, as the apiserver does
    assert parse_memory_bytes("1.5") == 2
    assert parse_memory_bytes("1e9") == 1_000_000_000


@pytest.mark.parametrize("garbage", ["", "abc", "1.2.3", "10 Mi", "Mi", "1Zi", "1mi", "--1", "1e", "nan", "inf", "1KiB"])
def test_garbage_is_bad_input_naming_the_value(garbage: str) -> None:
    with pytest.raises(BadInputError) as err:
        parse_quantity(garbage)
    assert err.value.exit_code == 4
    assert repr(garbage.strip())[:10].strip("'") in str(err.value)


def test_negative_sizes_are_rejected() -> None:
    with pytest.raises(BadInputError):
        parse_cpu_cores("-1")
    with pytest.raises(BadInputError):
        parse_memory_bytes("-1Gi")


def test_formatting() -> None:
    assert format_cpu(0.25) == "250m"
    assert format_cpu(2.0) == "2"
    assert format_bytes(1_610_612_736) == "1.5Gi"
    assert format_bytes(512 * 2**20) == "512Mi"
    assert format_bytes(100) == "100"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("6h", 21600), ("14d", 14 * 86400), ("1h30m", 5400), ("2w", 14 * 86400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("garbage", ["", "14", "d", "-5m", "5 m", "0s", "5y", "1h-"])
def test_bad_durations(garbage: str) -> None:
    with pytest.raises(BadInputError):
        parse_duration(garbage)


def test_format_duration_uses_largest_exact_unit() -> None:
    assert format_duration(timedelta(days=14)) == "14d"
    assert format_duration(timedelta(minutes=90)) == "90m"
    assert format_duration(timedelta(seconds=45)) == "45s"
