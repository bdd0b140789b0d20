from __future__ import annotations

import datetime
import re

from saga_orchestrator.times import format_time, normalize_time, utc_now_iso


def test_times_are_utc_with_milliseconds_and_a_z():
    moment = datetime.datetime(
        2026, 1, 31, 10, 30, 0, 250999, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
    )
    assert format_time(moment) == "2026-01-31T09:30:00.250Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_now_iso())


def test_a_pubsub_publish_time_is_normalized_to_the_contract_form():
    assert normalize_time("2026-01-31T09:30:00.123456789Z") == "2026-01-31T09:30:00.123Z"
    assert normalize_time("2026-01-31T10:30:00+01:00") == "2026-01-31T09:30:00.000Z"
    # Without an offset the time is UTC, not the machine's local time.
    assert normalize_time("2026-01-31T09:30:00") == "2026-01-31T09:30:00.000Z"


def test_a_time_that_is_not_iso_8601_is_kept_as_sent():
    assert normalize_time("yesterday") == "yesterday"
