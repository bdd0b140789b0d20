"""The logging emulator's RFC 3339 times against protobuf's own Timestamp JSON form, the oracle."""

from __future__ import annotations

import random

import pytest
from google.protobuf import timestamp_pb2

from localcloud.logging import rfc3339

# 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, the range of a protobuf Timestamp.
FIRST, LAST = -62_135_596_800 * 10**9, 253_402_300_799 * 10**9 + 999_999_999


def protobuf_text(nanos: int) -> str:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(nanos)
    return str(stamp.ToJsonString())


def protobuf_nanos(text: str) -> int:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromJsonString(text)
    return int(stamp.ToNanoseconds())


def samples(count: int) -> list[int]:
    rng = random.Random(20261207)
    whole = [rng.randrange(FIRST // 10**9, LAST // 10**9) * 10**9 for _ in range(count)]
    # every precision protobuf distinguishes: none, milliseconds, microseconds, nanoseconds
    fractions = [0, 123_000_000, 120_000, 7, 999_999_999, 1_000, 500_000_000]
    return [FIRST, LAST, 0, -1] + [w + fractions[i % len(fractions)] for i, w in enumerate(whole)]


def test_text_is_what_protobuf_writes_and_nanos_reads_it_back() -> None:
    for value in samples(3000):
        written = rfc3339.text(value)
        assert written == protobuf_text(value)
        assert rfc3339.nanos(written) == value


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-07T04:05:06Z",
        "2026-12-07T04:05:06.Z",
        "2026-12-07T04:05:06.1Z",
        "2026-12-07T04:05:06.123456789Z",
        "2026-12-07T04:05:06.5+05:30",
        "2026-12-07T04:05:06-08:00",
        "1970-01-01T00:00:00+14:00",
        "2024-02-29T23:59:59.999-00:00",
    ],
)
def test_times_with_fractions_and_offsets_read_as_protobuf_reads_them(value: str) -> None:
    assert rfc3339.nanos(value) == protobuf_nanos(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "2026-12-07",
        "2026-12-07T04:05:06",  # no offset
        "2026-12-07 04:05:06Z",  # a space for the T
        "2026-12-07t04:05:06Z",
        "2026-12-07T04:05:06z",
        "2026-12-07T04:05:06.1234567890Z",  # ten fractional digits
        "2026-13-07T04:05:06Z",
        "2025-02-29T04:05:06Z",
        "2026-12-07T24:00:00Z",
        "2026-12-07T04:05:60Z",
        "2026-12-07T04:05:06+0530",
        "2026-12-07T04:05:06Z trailing",
        "0001-01-01T00:00:00+01:00",  # before the first second a Timestamp holds, once offset
        "9999-12-31T23:59:59-01:00",  # after its last
    ],
)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        rfc3339.nanos(value)
