"""Vendor record details: Java LocalDateTime objects, timestamps, windows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from archiver.errors import BadVendorResponse
from archiver.sources.records import parse_timestamp, time_windows
from archiver.sources.testobject import java_local_datetime

SAMPLE = {
    "second": 57,
    "hour": 10,
    "minute": 53,
    "nano": 0,
    "dayOfYear": 84,
    "dayOfWeek": "THURSDAY",
    "month": "MARCH",
    "dayOfMonth": 24,
    "year": 2016,
    "monthValue": 3,
    "chronology": {"calendarType": "iso8601", "id": "ISO"},
}


def test_java_local_datetime_read_as_utc() -> None:
    assert java_local_datetime(SAMPLE) == datetime(2016, 3, 24, 10, 53, 57, tzinfo=UTC)
    assert java_local_datetime({**SAMPLE, "nano": 123_456_789}) == datetime(
        2016, 3, 24, 10, 53, 57, 123_456, tzinfo=UTC
    )
    assert java_local_datetime(None) is None


def test_broken_java_date_is_a_bad_response() -> None:
    with pytest.raises(BadVendorResponse):
        java_local_datetime({"year": 2016, "monthValue": 13, "dayOfMonth": 1})


def test_parse_timestamp_variants() -> None:
    expected = datetime(2023, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_timestamp("2023-01-01T12:00:00.000Z", vendor="X") == expected
    assert parse_timestamp("2023-01-01T12:00:00", vendor="X") == expected
    assert parse_timestamp(None, vendor="X") is None
    with pytest.raises(BadVendorResponse, match="X: unreadable"):
        parse_timestamp("yesterday", vendor="X")


def test_time_windows_cover_the_range_without_gaps() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    windows = list(time_windows(start, start + timedelta(hours=50), timedelta(hours=24)))
    assert windows[0][0] == start and windows[-1][1] == start + timedelta(hours=50)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert all(end - begin <= timedelta(hours=24) for begin, end in windows)
    assert list(time_windows(start, start, timedelta(hours=1))) == []
