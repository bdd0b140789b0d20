"""REST JSON to protobuf and back for the connectors, fast for the plain shapes they carry.

``parse`` and ``to_json`` give exactly what ``google.protobuf.json_format.ParseDict`` and ``MessageToDict``
give (ProtoJSON: camelCase names, enums by name, bytes as base64, Timestamp and Duration as strings,
fields at their default left out), but walk only the fields present with a small type switch. Anything
outside that plain subset (repeated fields, 64-bit integers, floats, null values, proto field names,
unknown fields, bad values, ...) goes to ``json_format`` itself, so its results and its errors stay the
reference.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_TEXT_TIMES = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration"})
_SURROGATE = re.compile("[\ud800-\udfff]")
_STRING = FieldDescriptor.TYPE_STRING
_BYTES = FieldDescriptor.TYPE_BYTES
_ENUM = FieldDescriptor.TYPE_ENUM
_MESSAGE = FieldDescriptor.TYPE_MESSAGE
_INT32 = FieldDescriptor.TYPE_INT32
_BOOL = FieldDescriptor.TYPE_BOOL


class _Unsupported(Exception):
    pass


def parse(document: Mapping[str, Any], message_type: type[Message]) -> Message:
    """A new ``message_type`` from REST JSON; raises ``json_format.ParseError`` as ``ParseDict`` does."""
    message = message_type()
    try:
        _parse_into(document, message)
    except _Unsupported:
        message = message_type()
        json_format.ParseDict(dict(document), message)
    return message


def to_json(message: Message) -> dict[str, Any]:
    try:
        return _print(message)
    except _Unsupported:
        return json_format.MessageToDict(message)


_JSON_FIELDS: dict[str, dict[str, FieldDescriptor]] = {}


def _fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    fields = _JSON_FIELDS.get(descriptor.full_name)
    if fields is None:
        fields = _JSON_FIELDS[descriptor.full_name] = {f.json_name: f for f in descriptor.fields}
    return fields


def _text(value: Any) -> str:
    if type(value) is not str or (not value.isascii() and _SURROGATE.search(value)):
        raise _Unsupported
    return value


def _parse_into(document: Mapping[str, Any], message: Message) -> None:
    if not isinstance(document, Mapping):
        raise _Unsupported
    fields = _fields(message.DESCRIPTOR)
    oneofs: set[str] = set()
    for key, value in document.items():
        field = fields.get(key)
        if field is None or value is None:
            raise _Unsupported
        oneof = field.containing_oneof
        if oneof is not None:
            if oneof.name in oneofs:
                raise _Unsupported
            oneofs.add(oneof.name)
        kind = field.type
        name = field.name
        if field.is_repeated:
            if _print_kind(field) != _P_MAP or not isinstance(value, Mapping):
                raise _Unsupported
            getattr(message, name).update({_text(k): _text(v) for k, v in value.items()})
        elif kind == _STRING:
            setattr(message, name, _text(value))
        elif kind == _MESSAGE:
            child = getattr(message, name)
            if field.message_type.full_name in _TEXT_TIMES:
                try:
                    child.FromJsonString(_text(value))
                except ValueError:
                    raise _Unsupported from None
            else:
                child.SetInParent()
                _parse_into(value, child)
        elif kind == _ENUM:
            number = field.enum_type.values_by_name.get(_text(value))
            if number is None:
                raise _Unsupported
            setattr(message, name, number.number)
        elif kind == _BYTES:
            encoded = _text(value).encode()
            try:
                setattr(message, name, base64.urlsafe_b64decode(encoded + b"=" * (4 - len(encoded) % 4)))
            except ValueError:
                raise _Unsupported from None
        elif (kind == _INT32 and type(value) is int and -(2**31) <= value < 2**31) or (
            kind == _BOOL and type(value) is bool
        ):
            setattr(message, name, value)
        else:
            raise _Unsupported


# field full name -> how to print it: one of the _P* codes below
_PRINT_KIND: dict[str, int] = {}
_P_SAME, _P_MAP, _P_TIME, _P_MESSAGE, _P_ENUM, _P_BYTES, _P_NO = range(7)
_ENUM_NAMES: dict[str, dict[int, str]] = {}


def _print_kind(field: FieldDescriptor) -> int:
    kind = _PRINT_KIND.get(field.full_name)
    if kind is None:
        kind = _PRINT_KIND[field.full_name] = _classify(field)
    return kind


def _classify(field: FieldDescriptor) -> int:
    kind = field.type
    if field.is_repeated:
        return _P_MAP if _is_string_map(field) else _P_NO
    if kind in (_STRING, _INT32, _BOOL):
        return _P_SAME
    if kind == _BYTES:
        return _P_BYTES
    if kind == _ENUM:
        return _P_ENUM
    if kind == _MESSAGE:
        name = field.message_type.full_name
        if name in _TEXT_TIMES:
            return _P_TIME
        # Any, Struct, wrappers, ... have JSON forms of their own
        return _P_NO if name.startswith("google.protobuf.") else _P_MESSAGE
    return _P_NO


def _is_string_map(field: FieldDescriptor) -> bool:
    entry = field.message_type
    return (
        entry is not None
        and entry.GetOptions().map_entry
        and entry.fields_by_name["key"].type == _STRING
        and entry.fields_by_name["value"].type == _STRING
    )


def _enum_name(field: FieldDescriptor, number: int) -> str:
    names = _ENUM_NAMES.get(field.enum_type.full_name)
    if names is None:
        # values with options (a json_name of their own, ...) are left to json_format
        names = _ENUM_NAMES[field.enum_type.full_name] = {
            v.number: v.name for v in field.enum_type.values if not v.GetOptions().ListFields()
        }
    name = names.get(number)
    if name is None:
        raise _Unsupported
    return name


def _print(message: Message) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for field, value in message.ListFields():
        kind = _print_kind(field)
        if kind == _P_SAME:
            result[field.json_name] = value
        elif kind == _P_MESSAGE:
            result[field.json_name] = _print(value)
        elif kind == _P_TIME:
            result[field.json_name] = value.ToJsonString()
        elif kind == _P_ENUM:
            result[field.json_name] = _enum_name(field, value)
        elif kind == _P_BYTES:
            result[field.json_name] = base64.b64encode(value).decode("utf-8")
        elif kind == _P_MAP:
            result[field.json_name] = dict(value)
        else:
            raise _Unsupported
    return result
