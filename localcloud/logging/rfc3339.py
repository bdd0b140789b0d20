"""RFC 3339 times as Cloud Logging reads and writes them: a ``LogEntry``'s ``timestamp`` is a protobuf
``Timestamp`` in its JSON form (https://protobuf.dev/reference/protobuf/google.protobuf/#timestamp,
https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry): ``YYYY-MM-DDTHH:MM:SS``, up to
nine fractional digits, then ``Z`` or an offset ``±HH:MM``.

``nanos`` reads the times RFC 3339 allows as protobuf's ``Timestamp.FromJsonString`` reads them (which
also takes one-digit fields, through ``strptime``, that RFC 3339 does not) and ``text`` writes what its
``ToJsonString`` writes (0, 3, 6 or 9 fractional digits, ``Z``), both checked against protobuf itself in
the tests. Protobuf's Python code is several times slower, and the logging agent and the Logging
emulator read a time for every entry.
"""

from __future__ import annotations

import datetime
import re

_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{0,9}))?(Z|[+-]\d{2}:\d{2})")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_NAIVE_EPOCH = _EPOCH.replace(tzinfo=None)
_SECOND = datetime.timedelta(seconds=1)
_BILLION = 1_000_000_000
# The range of a protobuf Timestamp, in seconds since the epoch.
_FIRST_SECOND, _LAST_SECOND = -62_135_596_800, 253_402_300_799


def nanos(value: str) -> int:
    """Nanoseconds since the Unix epoch; raises ``ValueError`` for anything but an RFC 3339 time."""
    match = _TIME.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.fraction]Z or ±HH:MM)")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    # datetime raises ValueError for a day, hour, minute or second out of range, as strptime does.
    moment = datetime.datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=datetime.UTC
    )
    seconds = (moment - _EPOCH) // _SECOND
    if zone != "Z":
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        seconds += -offset if zone[0] == "+" else offset
    if not _FIRST_SECOND <= seconds <= _LAST_SECOND:
        raise ValueError(f"{value!r} is outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59Z")
    return seconds * _BILLION + int((fraction or "").ljust(9, "0"))


def text(value: int) -> str:
    """The RFC 3339 form of ``value`` nanoseconds since the epoch, in UTC."""
    seconds, fraction = divmod(value, _BILLION)
    whole = (_NAIVE_EPOCH + datetime.timedelta(seconds=seconds)).isoformat(timespec="seconds")
    if fraction == 0:
        return f"{whole}Z"
    if fraction % 1_000_000 == 0:
        return f"{whole}.{fraction // 1_000_000:03d}Z"
    if fraction % 1_000 == 0:
        return f"{whole}.{fraction // 1_000:06d}Z"
    return f"{whole}.{fraction:09d}Z"
