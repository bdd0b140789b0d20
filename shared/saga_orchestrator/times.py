"""Timestamps as the saga contracts write them: RFC 3339 in UTC with millisecond precision and a ``Z``
(``2026-01-31T09:30:00.250Z``), for ``requested_at``, ``finished_at`` and ``ce-time``."""

from __future__ import annotations

import datetime
from typing import Any


def format_time(moment: datetime.datetime) -> str:
    """A timezone-aware moment in the contract's form (a naive one is taken as local time)."""
    moment = moment.astimezone(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def utc_now_iso() -> str:
    return format_time(datetime.datetime.now(datetime.UTC))


def parse_time(value: Any) -> datetime.datetime | None:
    """An ISO 8601 / RFC 3339 time as a timezone-aware moment (without an offset: UTC); None when
    ``value`` is not such a string."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def normalize_time(value: str) -> str:
    """An ISO 8601 time (such as a Pub/Sub ``publishTime``) in the contract's form; without an offset it
    is taken as UTC. A value that is not ISO 8601 is returned unchanged."""
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return format_time(moment)
