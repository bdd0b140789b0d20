"""``time.format`` / ``time.parse``: https://cloud.google.com/workflows/docs/reference/stdlib/time/format"""

from __future__ import annotations

import datetime
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from localcloud.workflows.engine.stdlib.registry import builtin
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import is_number, type_error, type_name

_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_time(text: str) -> float:
    match = _RFC3339.match(text)
    if not match:
        raise WorkflowError.tagged("ValueError", f"time.parse: not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = match.group(7) or ""
    zone = match.group(8)
    offset = datetime.timedelta(0)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        offset = sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.timezone(offset))
    except ValueError as error:
        raise WorkflowError.tagged("ValueError", f"time.parse: {error}") from None
    return moment.timestamp() + (float("0" + fraction) if fraction else 0.0)


@builtin("time.format")
def format_time(host: Any, seconds: Any, timezone: Any = None) -> str:
    if not is_number(seconds):
        raise type_error(f"time.format: seconds must be a number, got {type_name(seconds)}")
    whole = int(seconds // 1)
    micros = round((float(seconds) - whole) * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    utc = datetime.datetime.fromtimestamp(whole, datetime.UTC).replace(microsecond=micros)
    if timezone is None or timezone in ("UTC", "Etc/UTC"):
        text = utc.strftime("%Y-%m-%dT%H:%M:%S")
        return text + (f".{micros:06d}" if micros else "") + "Z"
    if not isinstance(timezone, str):
        raise type_error("time.format: timezone must be a string")
    try:
        local = utc.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise WorkflowError.tagged("ValueError", f"time.format: unknown time zone {timezone!r}") from None
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{micros:06d}" if micros else "")
    offset = local.strftime("%z")
    return text + offset[:3] + ":" + offset[3:]


@builtin("time.parse")
def parse(host: Any, value: Any) -> float:
    if not isinstance(value, str):
        raise type_error(f"time.parse: expected a string, got {type_name(value)}")
    return parse_time(value)
