"""Table schemas and the values of rows: what ``tables.insert`` accepts as a schema, what
``tabledata.insertAll`` accepts as a row, and how ``tabledata.list`` writes a row back.

- A schema is ``{"fields": [{"name", "type", "mode"?, "fields"?, "description"?}]}``
  (https://cloud.google.com/bigquery/docs/reference/rest/v2/tables#TableSchema): names of letters, digits
  and underscores, not starting with a digit, at most 300 characters, unique without regard to case
  (https://cloud.google.com/bigquery/docs/schemas#column_names); ``mode`` is ``NULLABLE`` (the default),
  ``REQUIRED`` or ``REPEATED``; a ``RECORD`` (``STRUCT``) has ``fields`` of its own.
- A row of ``insertAll`` is a JSON object keyed by column name
  (https://cloud.google.com/bigquery/docs/reference/rest/v2/tabledata/insertAll). A key that is not a column
  is an error unless ``ignoreUnknownValues`` (then it is dropped); a ``REQUIRED`` column that is missing or
  null is an error; a value that cannot be read as its column's type is an error. Values are read as the
  streaming API reads JSON: numbers may come as JSON numbers or strings, ``BYTES`` as base64, ``TIMESTAMP``
  as seconds since the epoch or a ``YYYY-MM-DD[ T]HH:MM:SS[.ffffff][Z|±HH:MM| UTC]`` string.
- ``tabledata.list`` writes each row as ``{"f": [{"v": ...}]}`` in schema order, every scalar as a string
  (https://cloud.google.com/bigquery/docs/reference/rest/v2/tabledata/list), a ``REPEATED`` value as a list
  of ``{"v": ...}`` and a ``RECORD`` as ``{"f": [...]}``; a ``TIMESTAMP`` is microseconds since the epoch
  with ``formatOptions.useInt64Timestamp=true`` (what google-cloud-bigquery asks for), else seconds as a
  floating-point string.

The column types not checked here (``DATE``, ``TIME``, ``DATETIME``, ``GEOGRAPHY``, ``INTERVAL``,
``RANGE``) are kept as the strings they came as.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import json
import re
from typing import Any

from google.api_core import exceptions as gexc

COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
INTEGER = re.compile(r"^[+-]?\d+$")
TYPES = frozenset(
    {
        *("STRING", "BYTES", "INTEGER", "INT64", "FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC", "BIGDECIMAL"),
        *("BOOLEAN", "BOOL", "TIMESTAMP", "DATE", "TIME", "DATETIME", "GEOGRAPHY", "JSON", "INTERVAL"),
        *("RANGE", "RECORD", "STRUCT"),
    }
)
MODES = frozenset({"NULLABLE", "REQUIRED", "REPEATED"})
RECORDS = frozenset({"RECORD", "STRUCT"})


class RowError(Exception):
    """One bad value of a row: ``location`` is the column, as insertAll's ``insertErrors`` name it."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(message)
        self.location = location
        self.message = message


def normalize_schema(schema: Any, where: str = "schema") -> list[dict[str, Any]]:
    """The fields of a ``TableSchema``, types and modes upper-cased; raises ``BadRequest`` (400 invalid)."""
    fields = (schema or {}).get("fields") if isinstance(schema, dict) else None
    if schema and not isinstance(fields, list):
        raise gexc.BadRequest(f"Invalid {where}: fields must be a list")
    seen: set[str] = set()
    normalized: list[dict[str, Any]] = []
    for field in fields or []:
        if not isinstance(field, dict):
            raise gexc.BadRequest(f"Invalid {where}: a field must be an object")
        name = str(field.get("name") or "")
        if not COLUMN_NAME.match(name):
            raise gexc.BadRequest(
                f'Invalid field name "{name}". Fields must contain only letters, numbers, '
                "and underscores, start with a letter or underscore, and be at most 300 "
                "characters long."
            )
        if name.lower() in seen:
            raise gexc.BadRequest(f"Field {name} already exists in schema")
        seen.add(name.lower())
        kind = str(field.get("type") or "").upper()
        mode = str(field.get("mode") or "NULLABLE").upper()
        if kind not in TYPES:
            raise gexc.BadRequest(f"Invalid value for type: {field.get('type')} is not a valid value")
        if mode not in MODES:
            raise gexc.BadRequest(f"Invalid value for mode: {field.get('mode')} is not a valid value")
        copy = {**field, "type": kind}
        if "mode" in field:
            copy["mode"] = mode
        if kind in RECORDS:
            if not field.get("fields"):
                raise gexc.BadRequest(f"Field {name} is type {kind} but has no schema")
            copy["fields"] = normalize_schema({"fields": field["fields"]}, f"{where}.{name}")
        normalized.append(copy)
    return normalized


def mode_of(field: dict[str, Any]) -> str:
    return str(field.get("mode") or "NULLABLE")


def check_row(
    fields: list[dict[str, Any]], row: Any, ignore_unknown: bool, prefix: str = ""
) -> dict[str, Any]:
    """A row as stored (column name → stored value), or ``RowError`` for its first bad value."""
    if not isinstance(row, dict):
        raise RowError(prefix.rstrip("."), "The row is not a JSON object.")
    by_name = {str(field["name"]).lower(): field for field in fields}
    unknown = [key for key in row if str(key).lower() not in by_name]
    if unknown and not ignore_unknown:
        raise RowError(prefix + str(unknown[0]), "no such field.")
    given = {str(key).lower(): value for key, value in row.items()}
    stored: dict[str, Any] = {}
    for field in fields:
        name = str(field["name"])
        value = given.get(name.lower())
        mode = mode_of(field)
        if value is None:
            if mode == "REQUIRED":
                raise RowError(prefix + name, f"Missing required field: {prefix}{name}.")
            stored[name] = [] if mode == "REPEATED" else None
        elif mode == "REPEATED":
            if not isinstance(value, list):
                raise RowError(prefix + name, f"Field {prefix}{name} is repeated: an array is expected.")
            stored[name] = [_cell(field, item, ignore_unknown, prefix) for item in value if item is not None]
        else:
            stored[name] = _cell(field, value, ignore_unknown, prefix)
    return stored


def _cell(field: dict[str, Any], value: Any, ignore_unknown: bool, prefix: str) -> Any:
    name = prefix + str(field["name"])
    kind = str(field["type"])
    if kind in RECORDS:
        return check_row(field["fields"], value, ignore_unknown, name + ".")
    if isinstance(value, (dict, list)) and kind != "JSON":
        raise RowError(name, f"This field: {name} is not a record.")
    try:
        return _scalar(kind, value)
    except (ValueError, TypeError, ArithmeticError, binascii.Error):
        raise RowError(name, f"Cannot convert value to {kind.lower()}: {str(value)[:80]}") from None


def _scalar(kind: str, value: Any) -> Any:
    if kind in ("INTEGER", "INT64"):
        if isinstance(value, bool) or not (isinstance(value, int) or INTEGER.match(str(value))):
            raise ValueError(value)
        return str(int(value))
    if kind in ("FLOAT", "FLOAT64"):
        if isinstance(value, bool):
            raise ValueError(value)
        return repr(float(value))
    if kind in ("NUMERIC", "BIGNUMERIC", "BIGDECIMAL"):
        if isinstance(value, bool) or not decimal.Decimal(str(value)).is_finite():
            raise ValueError(value)
        return str(decimal.Decimal(str(value)))
    if kind in ("BOOLEAN", "BOOL"):
        text = str(value).lower()
        if text not in ("true", "false", "1", "0"):
            raise ValueError(value)
        return "true" if text in ("true", "1") else "false"
    if kind == "BYTES":
        base64.b64decode(str(value), validate=True)
        return str(value)
    if kind == "TIMESTAMP":
        return timestamp_micros(value)
    if kind == "JSON":
        return (
            value if isinstance(value, str) and _is_json(value) else json.dumps(value, separators=(",", ":"))
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def timestamp_micros(value: Any) -> int:
    """Microseconds since the epoch of a ``TIMESTAMP`` value: seconds (a number or a numeric string) or a
    date and time, UTC unless it names an offset."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        return round(value * 1_000_000)
    text = str(value).strip()
    try:
        return round(float(text) * 1_000_000)
    except ValueError:
        pass
    text = re.sub(r"\s*(UTC|Z)$", "+00:00", text, flags=re.IGNORECASE)
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    delta = moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def row_cells(fields: list[dict[str, Any]], row: dict[str, Any], int64_timestamps: bool) -> dict[str, Any]:
    """A stored row as ``tabledata.list`` writes it: ``{"f": [{"v": ...}, ...]}``."""
    return {"f": [{"v": _out(field, row.get(str(field["name"])), int64_timestamps)} for field in fields]}


def _out(field: dict[str, Any], value: Any, int64_timestamps: bool) -> Any:
    if mode_of(field) == "REPEATED":
        return [{"v": _one(field, item, int64_timestamps)} for item in value or []]
    return _one(field, value, int64_timestamps)


def _one(field: dict[str, Any], value: Any, int64_timestamps: bool) -> Any:
    if value is None:
        return None
    if field["type"] in RECORDS:
        return row_cells(field["fields"], value, int64_timestamps)
    if field["type"] == "TIMESTAMP":
        return str(value) if int64_timestamps else repr(value / 1_000_000)
    return value
