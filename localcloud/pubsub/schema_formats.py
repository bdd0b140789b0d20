"""The two kinds of Pub/Sub schema: a definition checked once, then messages checked against it.

- **Avro** (https://cloud.google.com/pubsub/docs/schemas): the definition is an Avro schema in JSON,
  parsed by ``fastavro``. A BINARY message is one datum in Avro binary encoding, read by ``fastavro``; it
  must take every byte. A JSON message is one datum in Avro's JSON encoding
  (https://avro.apache.org/docs/1.11.1/specification/#json-encoding): a union value other than null is
  ``{"<branch type name>": value}``, bytes and fixed are strings of code points 0-255; a record field may
  be left out only when it has a default, and a field the schema does not have is refused.
- **Protocol Buffer**: the definition is the text of a ``.proto`` file with one top-level message
  (``proto_text``), or a compiled ``FileDescriptorSet`` (``Schema.compiled_proto_schema``). A BINARY
  message must parse as that message with every proto2 ``required`` field set; a JSON message is
  ProtoJSON, where an unknown field is refused.

A bad definition raises ``InvalidSchemaError``, a message that does not conform ``InvalidMessageError``;
both carry the reason, which the API puts in its INVALID_ARGUMENT.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import Any, Protocol

import fastavro
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.pubsub_v1.types import schema as schema_types

from localcloud.pubsub import proto_text

AVRO = schema_types.Schema.Type.AVRO
PROTOCOL_BUFFER = schema_types.Schema.Type.PROTOCOL_BUFFER
JSON = schema_types.Encoding.JSON
BINARY = schema_types.Encoding.BINARY
AVRO_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
AVRO_NAMED = frozenset({"record", "error", "enum", "fixed"})
INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)


class InvalidSchemaError(ValueError):
    pass


class InvalidMessageError(ValueError):
    pass


class MessageChecker(Protocol):
    def check(self, data: bytes, encoding: int) -> None:
        """Raise ``InvalidMessageError`` unless ``data`` is one valid message in ``encoding``."""


def compile_schema(schema: Any) -> MessageChecker:
    """The checker for a raw ``Schema`` pb; ``InvalidSchemaError`` when its definition is not valid."""
    if schema.type_ == AVRO:
        if schema.HasField("compiled_proto_schema"):
            raise InvalidSchemaError("compiled_proto_schema is only for PROTOCOL_BUFFER schemas")
        return AvroChecker(schema.definition)
    if schema.type_ == PROTOCOL_BUFFER:
        if schema.HasField("compiled_proto_schema"):
            compiled = schema.compiled_proto_schema
            try:
                cls = proto_text.compiled_set_class(compiled.compiled_bytes, compiled.root_message)
            except (ValueError, DecodeError) as error:
                raise InvalidSchemaError(f"Invalid compiled_proto_schema: {error}") from None
            return ProtoChecker(cls)
        try:
            return ProtoChecker(proto_text.compile_proto(schema.definition))
        except ValueError as error:
            raise InvalidSchemaError(f"Invalid Protocol Buffer schema: {error}") from None
    raise InvalidSchemaError("Invalid [schema.type]: must be AVRO or PROTOCOL_BUFFER")


class ProtoChecker:
    def __init__(self, cls: type[Message]) -> None:
        self.cls = cls

    def check(self, data: bytes, encoding: int) -> None:
        message = self.cls()
        if encoding == BINARY:
            try:
                message.ParseFromString(data)
            except DecodeError as error:
                raise InvalidMessageError(f"not a binary {self.cls.DESCRIPTOR.full_name}: {error}") from None
            missing = message.FindInitializationErrors()
            if missing:
                raise InvalidMessageError(f"required fields are not set: {', '.join(missing)}")
            return
        try:
            json_format.Parse(data.decode(), message)
        except (json_format.ParseError, UnicodeDecodeError) as error:
            raise InvalidMessageError(f"not a JSON {self.cls.DESCRIPTOR.full_name}: {error}") from None


class AvroChecker:
    def __init__(self, definition: str) -> None:
        try:
            raw = json.loads(definition)
        except json.JSONDecodeError as error:
            raise InvalidSchemaError(f"Invalid Avro schema: the definition is not JSON: {error}") from None
        self.named: dict[str, Any] = {}  # fastavro fills it: each named type by its full name
        try:
            self.schema = fastavro.parse_schema(raw, named_schemas=self.named)
        except Exception as error:  # fastavro raises several unrelated types for a bad schema
            raise InvalidSchemaError(f"Invalid Avro schema: {error}") from None

    def check(self, data: bytes, encoding: int) -> None:
        if encoding == BINARY:
            stream = io.BytesIO(data)
            try:
                fastavro.schemaless_reader(stream, self.schema, None)
            except Exception as error:  # EOFError, UnicodeDecodeError, IndexError, ... from a bad datum
                raise InvalidMessageError(f"not a binary Avro datum of the schema: {error!r}") from None
            if stream.tell() != len(data):
                raise InvalidMessageError(f"{len(data) - stream.tell()} bytes left after the Avro datum")
            return
        try:
            value = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InvalidMessageError(f"not JSON: {error}") from None
        _check_json(self.schema, value, self.named, "$")


def _branch_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    kind = schema["type"]
    return (
        str(schema["name"]) if kind in AVRO_NAMED else _branch_name(kind) if isinstance(kind, dict) else kind
    )


def _check_json(schema: Any, value: Any, named: Mapping[str, Any], path: str) -> None:
    """Raise ``InvalidMessageError`` naming ``path`` unless ``value`` is ``schema`` in Avro's JSON encoding."""
    if isinstance(schema, str):
        if schema in AVRO_PRIMITIVES:
            _check_primitive(schema, value, path)
            return
        _check_json(named[schema], value, named, path)
        return
    if isinstance(schema, list):
        _check_union(schema, value, named, path)
        return
    kind = schema["type"]
    if kind in ("record", "error"):
        if not isinstance(value, dict):
            raise InvalidMessageError(f"{path}: expected an object for record {schema['name']}")
        fields = {field["name"]: field for field in schema["fields"]}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise InvalidMessageError(f"{path}: field {unknown[0]!r} is not in record {schema['name']}")
        for name, field in fields.items():
            if name in value:
                _check_json(field["type"], value[name], named, f"{path}.{name}")
            elif "default" not in field:
                raise InvalidMessageError(f"{path}: field {name!r} is missing and has no default")
    elif kind == "enum":
        if value not in schema["symbols"]:
            raise InvalidMessageError(f"{path}: {value!r} is not a symbol of enum {schema['name']}")
    elif kind == "fixed":
        if not _is_byte_string(value) or len(value) != schema["size"]:
            raise InvalidMessageError(f"{path}: expected {schema['size']} bytes for fixed {schema['name']}")
    elif kind == "array":
        if not isinstance(value, list):
            raise InvalidMessageError(f"{path}: expected an array")
        for index, item in enumerate(value):
            _check_json(schema["items"], item, named, f"{path}[{index}]")
    elif kind == "map":
        if not isinstance(value, dict):
            raise InvalidMessageError(f"{path}: expected an object for a map")
        for key, item in value.items():
            _check_json(schema["values"], item, named, f"{path}.{key}")
    else:  # a primitive with attributes, e.g. a logical type
        _check_json(kind, value, named, path)


def _check_union(branches: list[Any], value: Any, named: Mapping[str, Any], path: str) -> None:
    if value is None:
        if "null" not in branches:
            raise InvalidMessageError(f"{path}: null is not a branch of the union")
        return
    if not isinstance(value, dict) or len(value) != 1:
        raise InvalidMessageError(f'{path}: a union value must be {{"<type name>": value}} or null')
    ((name, inner),) = value.items()
    for branch in branches:
        if _branch_name(branch) == name:
            _check_json(branch, inner, named, path)
            return
    raise InvalidMessageError(f"{path}: {name!r} is not a branch of the union")


def _check_primitive(kind: str, value: Any, path: str) -> None:
    ok: bool
    if kind == "null":
        ok = value is None
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind in ("int", "long"):
        low, high = INT_RANGE if kind == "int" else LONG_RANGE
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    elif kind in ("float", "double"):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
    elif kind == "bytes":
        ok = _is_byte_string(value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise InvalidMessageError(f"{path}: {json.dumps(value)[:60]} is not a valid {kind}")


def _is_byte_string(value: Any) -> bool:
    return isinstance(value, str) and all(ord(char) < 256 for char in value)
