"""Pure data functions: ``json``, ``base64``, ``text``, ``list``, ``map``, ``math``, ``uuid``.

https://cloud.google.com/workflows/docs/reference/stdlib/overview (one page per function, e.g.
https://cloud.google.com/workflows/docs/reference/stdlib/map/get).
"""

from __future__ import annotations

import base64 as b64
import binascii
import json as jsonlib
import math as mathlib
import re
import urllib.parse
import uuid as uuidlib
from typing import Any

from localcloud.workflows.engine.stdlib.registry import builtin
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import deep_copy, is_number, type_error, type_name


def _value_error(message: str) -> WorkflowError:
    return WorkflowError.tagged("ValueError", message)


def _need(name: str, value: Any, kind: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise type_error(f"{name}: expected {what}, got {type_name(value)}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        raise type_error("json.encode: bytes are not JSON encodable")
    if isinstance(value, float) and (mathlib.isnan(value) or mathlib.isinf(value)):
        raise _value_error("json.encode: NaN and Infinity are not JSON encodable")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise type_error(f"json.encode: a {type_name(value)} is not JSON encodable")


def _encode_json(data: Any, indent: Any) -> str:
    value = _jsonable(data)
    if indent is None:
        return jsonlib.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(indent, dict):
        prefix = indent.get("prefix", "")
        width = indent.get("indent", "  ")
        text = jsonlib.dumps(value, indent=width, ensure_ascii=False)
        return "\n".join(prefix + line for line in text.split("\n"))
    raise type_error("json.encode: indent must be a map")


@builtin("json.encode")
def json_encode(host: Any, data: Any, indent: Any = None) -> bytes:
    return _encode_json(data, indent).encode()


@builtin("json.encode_to_string")
def json_encode_to_string(host: Any, data: Any, indent: Any = None) -> str:
    return _encode_json(data, indent)


def decode_json_text(text: str) -> Any:
    def reject(constant: str) -> Any:
        raise ValueError(f"invalid constant {constant}")

    return jsonlib.loads(text, parse_constant=reject)


@builtin("json.decode")
def json_decode(host: Any, data: Any) -> Any:
    if isinstance(data, bytes):
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise _value_error("json.decode: bytes are not UTF-8") from None
    elif isinstance(data, str):
        text = data
    else:
        raise type_error(f"json.decode: expected bytes or a string, got {type_name(data)}")
    try:
        return decode_json_text(text)
    except ValueError as error:
        raise _value_error(f"json.decode: invalid JSON: {error}") from None


@builtin("base64.encode")
def base64_encode(host: Any, data: Any, padding: Any = True) -> str:
    _need("base64.encode", data, bytes, "bytes")
    text = b64.b64encode(data).decode()
    return text if padding else text.rstrip("=")


@builtin("base64.decode")
def base64_decode(host: Any, data: Any, padding: Any = True) -> bytes:
    _need("base64.decode", data, str, "a string")
    text = data if padding else data + "=" * (-len(data) % 4)
    try:
        return b64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _value_error("base64.decode: invalid base64 text") from None


_CHARSETS = {
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "US-ASCII": "ascii",
    "ASCII": "ascii",
    "ISO-8859-1": "latin-1",
    "LATIN1": "latin-1",
    "UTF-16": "utf-16",
}


def _charset(name: str, charset: Any) -> str:
    if not isinstance(charset, str) or charset.upper() not in _CHARSETS:
        raise _value_error(f"{name}: unsupported charset {charset!r}")
    return _CHARSETS[charset.upper()]


@builtin("text.encode")
def text_encode(host: Any, text: Any, charset: Any = "UTF-8") -> bytes:
    _need("text.encode", text, str, "a string")
    try:
        return text.encode(_charset("text.encode", charset))
    except UnicodeEncodeError:
        raise _value_error(f"text.encode: text cannot be encoded as {charset}") from None


@builtin("text.decode")
def text_decode(host: Any, data: Any, charset: Any = "UTF-8") -> str:
    _need("text.decode", data, bytes, "bytes")
    try:
        return data.decode(_charset("text.decode", charset))
    except UnicodeDecodeError:
        raise _value_error(f"text.decode: bytes are not valid {charset}") from None


@builtin("text.split")
def text_split(host: Any, source: Any, separator: Any) -> list[str]:
    _need("text.split", source, str, "a string")
    _need("text.split", separator, str, "a string")
    if separator == "":
        return list(source)
    return source.split(separator)


@builtin("text.replace_all")
def text_replace_all(host: Any, source: Any, substr: Any, repl: Any) -> str:
    for value in (source, substr, repl):
        _need("text.replace_all", value, str, "a string")
    return str(source).replace(substr, repl)


def _compile(name: str, pattern: Any) -> re.Pattern[str]:
    _need(name, pattern, str, "a string")
    try:
        return re.compile(pattern)
    except re.error as error:
        raise _value_error(f"{name}: invalid regular expression: {error}") from None


@builtin("text.replace_all_regex")
def text_replace_all_regex(host: Any, source: Any, regex: Any, repl: Any) -> str:
    _need("text.replace_all_regex", source, str, "a string")
    _need("text.replace_all_regex", repl, str, "a string")
    pattern = _compile("text.replace_all_regex", regex)
    # RE2-style group references \1 in the replacement, as the docs show.
    return pattern.sub(lambda m: re.sub(r"\\(\d)", lambda g: m.group(int(g.group(1))) or "", repl), source)


@builtin("text.substring")
def text_substring(host: Any, source: Any, start: Any, end: Any) -> str:
    _need("text.substring", source, str, "a string")
    _need("text.substring", start, int, "an integer")
    _need("text.substring", end, int, "an integer")
    start_i = max(0, min(start, len(source)))
    end_i = max(0, min(end, len(source)))
    return source[start_i:end_i] if start_i < end_i else ""


@builtin("text.to_upper")
def text_to_upper(host: Any, source: Any) -> str:
    _need("text.to_upper", source, str, "a string")
    return str(source).upper()


@builtin("text.to_lower")
def text_to_lower(host: Any, source: Any) -> str:
    _need("text.to_lower", source, str, "a string")
    return str(source).lower()


@builtin("text.find_all")
def text_find_all(host: Any, source: Any, substr: Any) -> list[dict[str, Any]]:
    _need("text.find_all", source, str, "a string")
    _need("text.find_all", substr, str, "a string")
    found: list[dict[str, Any]] = []
    if substr == "":
        return found
    start = source.find(substr)
    while start != -1:
        found.append({"index": start, "match": substr})
        start = source.find(substr, start + len(substr))
    return found


@builtin("text.find_all_regex")
def text_find_all_regex(host: Any, source: Any, regex: Any) -> list[dict[str, Any]]:
    _need("text.find_all_regex", source, str, "a string")
    pattern = _compile("text.find_all_regex", regex)
    return [{"index": m.start(), "match": m.group(0)} for m in pattern.finditer(source)]


@builtin("text.match_regex")
def text_match_regex(host: Any, source: Any, regex: Any) -> bool:
    _need("text.match_regex", source, str, "a string")
    return _compile("text.match_regex", regex).search(source) is not None


@builtin("text.url_encode")
def text_url_encode(host: Any, source: Any) -> str:
    _need("text.url_encode", source, str, "a string")
    return urllib.parse.quote(source, safe="-_.~")


@builtin("text.url_encode_plus")
def text_url_encode_plus(host: Any, source: Any) -> str:
    _need("text.url_encode_plus", source, str, "a string")
    return urllib.parse.quote_plus(source, safe="-_.~")


@builtin("text.url_decode")
def text_url_decode(host: Any, source: Any) -> str:
    _need("text.url_decode", source, str, "a string")
    return urllib.parse.unquote(source)


@builtin("list.concat")
def list_concat(host: Any, objs: Any, val: Any) -> list[Any]:
    _need("list.concat", objs, list, "a list")
    return [*deep_copy(objs), deep_copy(val)]


@builtin("list.prepend")
def list_prepend(host: Any, objs: Any, val: Any) -> list[Any]:
    _need("list.prepend", objs, list, "a list")
    return [deep_copy(val), *deep_copy(objs)]


@builtin("map.get")
def map_get(host: Any, map_: Any, keys: Any) -> Any:
    if isinstance(keys, str):
        path = [keys]
    elif isinstance(keys, list) and all(isinstance(k, str) for k in keys):
        path = list(keys)
    else:
        raise type_error("map.get: keys must be a string or a list of strings")
    current = map_
    for key in path:
        if not isinstance(current, dict) or key not in current:
            return None
        current = current[key]
    return current


@builtin("map.merge")
def map_merge(host: Any, first: Any, second: Any) -> dict[str, Any]:
    _need("map.merge", first, dict, "a map")
    _need("map.merge", second, dict, "a map")
    return {**deep_copy(first), **deep_copy(second)}


def _merge_nested(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    merged = deep_copy(first)
    for key, value in second.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = _merge_nested(merged[key], value)
        else:
            merged[key] = deep_copy(value)
    return merged


@builtin("map.merge_nested")
def map_merge_nested(host: Any, first: Any, second: Any) -> dict[str, Any]:
    _need("map.merge_nested", first, dict, "a map")
    _need("map.merge_nested", second, dict, "a map")
    return _merge_nested(first, second)


@builtin("map.delete")
def map_delete(host: Any, map_: Any, key: Any) -> dict[str, Any]:
    _need("map.delete", map_, dict, "a map")
    _need("map.delete", key, str, "a string")
    copy = deep_copy(map_)
    copy.pop(key, None)
    return copy


def _number(name: str, value: Any) -> int | float:
    if not is_number(value):
        raise type_error(f"{name}: expected a number, got {type_name(value)}")
    return value


@builtin("math.abs")
def math_abs(host: Any, x: Any) -> int | float:
    return abs(_number("math.abs", x))


@builtin("math.floor")
def math_floor(host: Any, x: Any) -> int:
    return mathlib.floor(_number("math.floor", x))


@builtin("math.max")
def math_max(host: Any, x: Any, y: Any) -> int | float:
    a, b = _number("math.max", x), _number("math.max", y)
    return a if a >= b else b


@builtin("math.min")
def math_min(host: Any, x: Any, y: Any) -> int | float:
    a, b = _number("math.min", x), _number("math.min", y)
    return a if a <= b else b


@builtin("math.sqrt")
def math_sqrt(host: Any, x: Any) -> float:
    value = _number("math.sqrt", x)
    if value < 0:
        raise _value_error("math.sqrt: negative argument")
    return mathlib.sqrt(value)


@builtin("uuid.generate")
def uuid_generate(host: Any) -> str:
    return str(uuidlib.uuid4())
