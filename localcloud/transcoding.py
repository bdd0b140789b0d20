"""REST ↔ gRPC transcoding from the ``google.api.http`` annotations of Google's APIs.

Every method of a Google API carries an ``HttpRule`` (https://cloud.google.com/apis/design/custom_methods,
https://github.com/googleapis/googleapis/blob/master/google/api/http.proto): an HTTP verb, a path
template whose variables name request fields (``/v2/{parent=projects/*/locations/*/queues/*}/tasks``),
and which part of the request travels as the body (``*``: every field the path does not bind; a field
name: that field; none: nothing). Request fields bound by neither the path nor the body are query
parameters (dotted for nested fields, repeated for repeated fields). A rule's ``response_body`` picks one
field of the response as the HTTP body. JSON is the ProtoJSON mapping (https://protobuf.dev/programming-guides/json/):
lowerCamel names, 64-bit integers as strings, bytes as base64, enums by name, Timestamp/Duration as text.

Where the rules come from: the ``google-cloud-*`` wheels do not register their service descriptors in the
protobuf pool (their messages are proto-plus types), but each GAPIC REST transport carries every rule of its
service verbatim, generated from the protos (``transports/rest_base.py``: ``_get_http_options``), and its
gRPC transport names each RPC's full path; ``methods_from_gapic`` reads both. An API whose package has no
REST transport (Workflows Executions) gives its rules as data (``rules_from_options``).

The conversion to and from messages is a ``Codec`` (``json_format`` by default), so a caller with a faster
exact equivalent can pass it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from google.protobuf import empty_pb2, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

__all__ = [
    "Codec",
    "HttpRule",
    "PathTemplate",
    "RestRequest",
    "RpcMethod",
    "TranscodingError",
    "methods_from_gapic",
    "query_from_text",
    "request_from_rest",
    "response_to_rest",
    "rest_from_request",
    "rules_from_options",
]


class TranscodingError(ValueError):
    """A REST request that does not fit the method's rule; the REST API answers 400 INVALID_ARGUMENT."""


@dataclass(frozen=True)
class Codec:
    parse: Callable[[Mapping[str, Any], type[Message]], Message]
    to_json: Callable[[Message], dict[str, Any]]


def _parse(document: Mapping[str, Any], message_type: type[Message]) -> Message:
    message = message_type()
    json_format.ParseDict(dict(document), message)
    return message


JSON_FORMAT = Codec(parse=_parse, to_json=json_format.MessageToDict)


# -- path templates (https://github.com/googleapis/googleapis/blob/master/google/api/http.proto, "Path
#    template syntax": Template = "/" Segments [ Verb ]; Variable = "{" FieldPath [ "=" Segments ] "}")


@dataclass(frozen=True)
class Variable:
    field_path: str  # dotted proto field names: ``topic.name``
    pattern: tuple[str, ...]  # ``("projects", "*", "topics", "*")``; ``("*",)`` when the template gives none

    @property
    def arg_name(self) -> str:
        """The name Google's discovery documents (and so Workflows connectors) give the parameter:
        the last field of the path (``{topic.name=...}`` is ``name``)."""
        return self.field_path.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class PathTemplate:
    text: str
    segments: tuple[str | Variable, ...]
    verb: str | None
    _regex: re.Pattern[str] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> PathTemplate:
        if not text.startswith("/"):
            raise ValueError(f"a path template starts with '/': {text!r}")
        body, verb = text, None
        colon = body.rfind(":")
        if colon > max(body.rfind("}"), body.rfind("/")):
            body, verb = body[:colon], body[colon + 1 :]
        segments: list[str | Variable] = []
        for match in re.finditer(r"\{([^}=]+)(?:=([^}]*))?\}|([^/{}]+)", body):
            if match.group(3) is not None:
                segments.append(match.group(3))
            else:
                pattern = tuple((match.group(2) or "*").split("/"))
                segments.append(Variable(match.group(1), pattern))
        return cls(text, tuple(segments), verb, _compile(segments, verb))

    @property
    def variables(self) -> tuple[Variable, ...]:
        return tuple(s for s in self.segments if isinstance(s, Variable))

    def flat_segments(self) -> tuple[str, ...]:
        """The literal segments and wildcards with each variable's pattern spelled out."""
        flat: list[str] = []
        for segment in self.segments:
            flat.extend(segment.pattern if isinstance(segment, Variable) else (segment,))
        return tuple(flat)

    def match(self, path: str) -> dict[str, str] | None:
        """The variables' values (field path → value, percent-decoded) if ``path`` fits, else None."""
        found = self._regex.fullmatch(path)
        if found is None:
            return None
        return {v.field_path: unquote(found.group(f"v{i}")) for i, v in enumerate(self.variables)}

    def expand(self, values: Mapping[str, str]) -> str:
        """The path with each variable's value; raises ``TranscodingError`` when one is missing or does
        not fit its pattern (``projects/p/topics`` where ``projects/*/topics/*`` is expected)."""
        parts: list[str] = []
        for segment in self.segments:
            if isinstance(segment, Variable):
                value = values.get(segment.field_path)
                if not value:
                    raise TranscodingError(f"missing the path parameter '{segment.arg_name}'")
                if not _segments_regex(segment.pattern).fullmatch(value):
                    expected = "/".join(segment.pattern)
                    raise TranscodingError(f"'{segment.arg_name}' must look like '{expected}', got {value!r}")
                parts.append(value)
            else:
                parts.append(segment)
        return "/" + "/".join(parts) + (f":{self.verb}" if self.verb else "")


def _segments_regex(pattern: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("/".join(_segment_regex(s) for s in pattern))


def _segment_regex(segment: str) -> str:
    if segment == "**":
        return r"[^:]+"
    return r"[^/:]+" if segment == "*" else re.escape(segment)


def _compile(segments: Iterable[str | Variable], verb: str | None) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    for segment in segments:
        if isinstance(segment, Variable):
            inner = "/".join(_segment_regex(s) for s in segment.pattern)
            parts.append(f"(?P<v{index}>{inner})")
            index += 1
        else:
            parts.append(_segment_regex(segment))
    return re.compile("/" + "/".join(parts) + (re.escape(":" + verb) if verb else ""))


@dataclass(frozen=True)
class HttpRule:
    method: str  # GET, POST, PUT, PATCH, DELETE
    template: PathTemplate
    body: str = ""  # "", "*" or a request field name
    response_body: str = ""


@dataclass(frozen=True)
class RpcMethod:
    service: str  # ``google.cloud.tasks.v2.CloudTasks``
    name: str  # ``CreateTask``
    request_type: type[Message]
    response_type: type[Message]
    rules: tuple[HttpRule, ...]

    @property
    def path(self) -> str:
        """The gRPC method path: ``/google.cloud.tasks.v2.CloudTasks/CreateTask``."""
        return f"/{self.service}/{self.name}"


def rules_from_options(options: Iterable[Mapping[str, str]]) -> tuple[HttpRule, ...]:
    """Rules from the dicts GAPIC REST transports carry: ``{"method", "uri", "body"?, "response_body"?}``."""
    return tuple(
        HttpRule(
            method=option["method"].upper(),
            template=PathTemplate.parse(option["uri"]),
            body=option.get("body", ""),
            response_body=option.get("response_body", ""),
        )
        for option in options
    )


# -- REST -> gRPC


def request_from_rest(
    method: RpcMethod,
    rule: HttpRule,
    variables: Mapping[str, str],
    query: Mapping[str, Any],
    body: Any,
    codec: Codec = JSON_FORMAT,
) -> Message:
    """The request message of a REST call: ``variables`` (field path → value) from the path, ``query``
    (dotted JSON or proto field names → JSON values; a list for a repeated field) and the decoded JSON
    ``body`` (None when there is none). Raises ``TranscodingError`` (a 400 of the REST API) when the body
    does not fit the rule or a value does not fit its field."""
    descriptor = method.request_type.DESCRIPTOR
    document: dict[str, Any] = {}
    if rule.body == "*":
        if body is not None:
            if not isinstance(body, Mapping):
                raise TranscodingError("Invalid JSON payload received. The body must be a JSON object.")
            document.update(body)
    elif rule.body:
        if body is not None:
            document[_json_path(descriptor, rule.body)[0]] = body
    elif body not in (None, {}):
        raise TranscodingError(f"{method.name} takes no request body")
    for name, value in query.items():
        _set_path(document, _json_path(descriptor, name), value)
    for field_path, value in variables.items():
        _set_path(document, _json_path(descriptor, field_path), value)
    try:
        return codec.parse(document, method.request_type)
    except json_format.ParseError as error:
        raise TranscodingError(f"Invalid JSON payload received. {error}") from None


# -- query strings: every value arrives as text (``?pageSize=10&showDeleted=true&a.b=x&tag=1&tag=2``)

_TYPE_NAMES = {getattr(FieldDescriptor, n): n for n in dir(FieldDescriptor) if n.startswith("TYPE_")}
_INTEGER_TYPES = frozenset(
    getattr(FieldDescriptor, f"TYPE_{sign}{bits}")
    for sign in ("INT", "UINT", "SINT", "FIXED", "SFIXED")
    for bits in ("32", "64")
)
_FLOAT_WORDS = frozenset({"NaN", "Infinity", "-Infinity"})
# Well-known messages whose ProtoJSON is a string, so a query parameter can bind them.
_TEXT_MESSAGES = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)
_WRAPPERS = frozenset(
    f"google.protobuf.{kind}Value"
    for kind in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)


def query_from_text(message_type: type[Message], pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The ``query`` of ``request_from_rest`` from a URL's query string, whose values are all text: each
    value becomes the JSON value of its field's type (``true``/``false`` for a bool, a number for an
    integer or a float, an enum by name or by number, a Timestamp/Duration/FieldMask as its text, a
    wrapper as its value); a repeated field's values (``tag=a&tag=b``) are gathered in order. Names are
    dotted field paths, proto or JSON names (``a.b``, ``pageSize``). Raises ``TranscodingError`` (400) for
    a name the request lacks, a message or map field, a value that does not fit, or a singular field
    given twice."""
    query: dict[str, Any] = {}
    for name, text in pairs:
        json_name, found = _query_field(message_type.DESCRIPTOR, name)
        value = _from_text(found, name, text)
        if found.is_repeated:
            query.setdefault(json_name, []).append(value)
        elif json_name in query:
            raise TranscodingError(f"Invalid query: the field '{name}' takes one value and was given more")
        else:
            query[json_name] = value
    return query


def _query_field(descriptor: Descriptor, name: str) -> tuple[str, FieldDescriptor]:
    """The dotted JSON name of a query parameter and its field; every field before the last must be a
    singular message."""
    parts = name.split(".")
    names: list[str] = []
    found: FieldDescriptor | None = None
    for index, part in enumerate(parts):
        found = _field(descriptor, part)
        if found is None:
            raise TranscodingError(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter. '
                f"Field '{part}' could not be found in request message."
            )
        names.append(found.json_name)
        is_last = index == len(parts) - 1
        if found.message_type is not None and (
            found.message_type.GetOptions().map_entry
            or (found.is_repeated and not is_last)
            or (is_last and found.message_type.full_name not in _TEXT_MESSAGES | _WRAPPERS)
        ):
            raise TranscodingError(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter. '
                f"'{part}' is a message type. Parameter can only be bound to primitive types."
            )
        if not is_last:
            if found.message_type is None:
                raise TranscodingError(f"Cannot bind query parameter '{name}': '{part}' has no fields")
            descriptor = found.message_type
    assert found is not None
    return ".".join(names), found


def _from_text(found: FieldDescriptor, name: str, text: str) -> Any:
    """``text`` as the JSON value of ``found``'s type (json_format checks ranges and enum names)."""
    if found.message_type is not None:
        if found.message_type.full_name in _WRAPPERS:
            return _from_text(found.message_type.fields_by_name["value"], name, text)
        return text
    kind = found.type
    try:
        if kind == FieldDescriptor.TYPE_BOOL:
            return {"true": True, "false": False, "1": True, "0": False}[text.lower()]
        if kind in _INTEGER_TYPES:
            if not re.fullmatch(r"-?[0-9]+", text):
                raise ValueError(text)
            return int(text)
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return text if text in _FLOAT_WORDS else float(text)
    except (KeyError, ValueError):
        invalid = f"Invalid value at '{name}' ({_TYPE_NAMES[kind]}), \"{text}\""
        raise TranscodingError(invalid) from None
    if kind == FieldDescriptor.TYPE_ENUM and re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    return text  # a string, bytes as base64, an enum by name


def response_to_rest(rule: HttpRule, response: Message, codec: Codec = JSON_FORMAT) -> Any:
    """The REST response body: the ProtoJSON of ``response``, or of its ``response_body`` field."""
    document = codec.to_json(response)
    if rule.response_body:
        return document.get(_json_path(response.DESCRIPTOR, rule.response_body)[0])
    return document


def _json_path(descriptor: Descriptor | None, dotted: str) -> list[str]:
    """``topic.message_retention_duration`` → ``["topic", "messageRetentionDuration"]`` (JSON names
    accepted as well). A name the message lacks is kept as written, so parsing reports it."""
    names: list[str] = []
    for part in dotted.split("."):
        found = _field(descriptor, part) if descriptor is not None else None
        names.append(found.json_name if found is not None else part)
        descriptor = found.message_type if found is not None else None
    return names


def _field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    found = descriptor.fields_by_name.get(name)
    if found is None:
        found = next((f for f in descriptor.fields if f.json_name == name), None)
    return found


def _set_path(document: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        child = document.get(part)
        if not isinstance(child, dict):
            child = document[part] = dict(child) if isinstance(child, Mapping) else {}
        document = child
    document[path[-1]] = value


# -- gRPC -> REST


@dataclass(frozen=True)
class RestRequest:
    method: str
    path: str
    query: dict[str, Any]  # dotted JSON names → a JSON scalar, or a list of them
    body: Any  # None when the rule sends no body


def rest_from_request(rule: HttpRule, request: Message, codec: Codec = JSON_FORMAT) -> RestRequest:
    """The REST call of a request message, as a GAPIC REST transport builds it."""
    document = codec.to_json(request)
    descriptor = request.DESCRIPTOR
    values: dict[str, str] = {}
    for variable in rule.template.variables:
        path = _json_path(descriptor, variable.field_path)
        value = _pop_path(document, path)
        values[variable.field_path] = "" if value is None else str(value)
    path_text = rule.template.expand(values)
    body: Any = None
    if rule.body == "*":
        body, document = document, {}
    elif rule.body:
        body = document.pop(_json_path(descriptor, rule.body)[0], {})
    query: dict[str, Any] = {}
    _flatten(document, "", query)
    return RestRequest(rule.method, path_text, query, body)


def _pop_path(document: dict[str, Any], path: list[str]) -> Any:
    for part in path[:-1]:
        child = document.get(part)
        if not isinstance(child, dict):
            return None
        document = child
    return document.pop(path[-1], None)


def _flatten(document: Mapping[str, Any], prefix: str, into: dict[str, Any]) -> None:
    for key, value in document.items():
        if isinstance(value, Mapping):
            _flatten(value, f"{prefix}{key}.", into)
        elif value != [] and value != {}:
            into[prefix + key] = value


# -- the rules of a GAPIC client package


def methods_from_gapic(transports: str, services: Iterable[str]) -> tuple[RpcMethod, ...]:
    """Every method with an HTTP rule of the GAPIC package whose transports are the module ``transports``
    (``google.cloud.tasks_v2.services.cloud_tasks.transports``), limited to the gRPC ``services`` given
    (the generated transports also carry mixins such as ``google.cloud.location.Locations``)."""
    rest_base = importlib.import_module(f"{transports}.rest_base")
    rest = importlib.import_module(f"{transports}.rest")
    grpc_source = inspect.getsource(importlib.import_module(f"{transports}.grpc"))
    paths = dict(
        (rpc, service) for service, rpc in re.findall(r'"/([A-Za-z0-9_.]+)/([A-Za-z0-9_]+)"', grpc_source)
    )
    wanted = frozenset(services)
    base = next(
        v for k, v in vars(rest_base).items() if k.startswith("_Base") and k.endswith("RestTransport")
    )
    transport = next(
        v for k, v in vars(rest).items() if k.endswith("RestTransport") and not k.startswith("_")
    )
    methods: list[RpcMethod] = []
    for attribute in sorted(vars(base)):
        rpc = attribute.removeprefix("_Base")
        options_of = getattr(getattr(base, attribute), "_get_http_options", None)
        if not attribute.startswith("_Base") or paths.get(rpc) not in wanted or options_of is None:
            continue  # not this API's, or no HTTP rule (StreamingPull)
        options = options_of()
        request_type, response_type = _types_of(getattr(transport, f"_{rpc}").__call__)
        methods.append(RpcMethod(paths[rpc], rpc, request_type, response_type, rules_from_options(options)))
    return tuple(methods)


def _types_of(call: Callable[..., Any]) -> tuple[type[Message], type[Message]]:
    signature = inspect.signature(call)
    request = _raw(signature.parameters["request"].annotation)
    returned = signature.return_annotation
    response = empty_pb2.Empty if returned in (inspect.Signature.empty, None) else _raw(returned)
    return request, response


def _raw(message_type: Any) -> type[Message]:
    """The protobuf class behind a proto-plus type (itself for a protobuf class)."""
    is_raw = isinstance(message_type, type) and issubclass(message_type, Message)
    raw = message_type if is_raw else getattr(message_type, "pb", lambda: None)()
    if not (isinstance(raw, type) and issubclass(raw, Message)):
        raise TypeError(f"not a protobuf message type: {message_type!r}")
    return raw
