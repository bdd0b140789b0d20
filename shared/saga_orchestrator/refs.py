"""Resolution of ``{"$ref": "steps.<name>.output[.<key or index>]..."}`` against earlier outputs.

A reference object is replaced by the value it names, wherever it appears in a payload (any depth) or as
a header value (where the value must be a string, number or boolean; numbers and booleans are written
as JSON; a value that is not a valid header value, such as text with a line break, fails the call as
a business failure rather than on every attempt). ``outputs`` maps step names to the outputs of the steps that succeeded before this call.

``unknown`` names steps whose outcome is unknown (their wait ended before an answer): a reference into
such a step's output resolves to null, so its compensation still reaches the participant, which undoes
whatever the saga step did (found by ``X-Saga-Id`` / ``X-Saga-Step``) or nothing at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from saga_orchestrator.errors import ReferenceResolutionError

# Both matched with fullmatch.
REF_RE = re.compile(r"steps\.([A-Za-z0-9_-]{1,63})\.output((?:\.[A-Za-z0-9_-]+)*)")
# A header value http.client sends as given: printable ASCII, spaces and tabs, no line break.
HEADER_VALUE_RE = re.compile(r"[\t\x20-\x7e]*")


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$ref"} and isinstance(value["$ref"], str)


def lookup(ref: str, outputs: Mapping[str, Any], unknown: Collection[str] = ()) -> Any:
    match = REF_RE.fullmatch(ref)
    if not match:
        raise ReferenceResolutionError(ref, "must look like steps.<name>.output[.<key>...]")
    step, rest = match.group(1), match.group(2)
    if step not in outputs and step in unknown:
        return None
    if step not in outputs:
        raise ReferenceResolutionError(
            ref, f"step {step!r} has no output here (it has not succeeded before this call)"
        )
    value = outputs[step]
    walked = f"steps.{step}.output"
    for segment in [s for s in rest.split(".") if s]:
        if isinstance(value, dict):
            if segment not in value:
                raise ReferenceResolutionError(ref, f"{walked} has no key {segment!r}")
            value = value[segment]
        elif isinstance(value, list):
            if not segment.isdigit() or int(segment) >= len(value):
                raise ReferenceResolutionError(
                    ref, f"{walked} is a list of {len(value)}; {segment!r} is not an index in it"
                )
            value = value[int(segment)]
        else:
            raise ReferenceResolutionError(ref, f"{walked} is {type(value).__name__}, not an object or list")
        walked += "." + segment
    return value


def referenced_steps(value: Any) -> list[str]:
    """The step names whose outputs the reference objects in ``value`` (any depth) name, sorted, once
    each; a malformed reference names nothing (resolving it fails anyway)."""
    found: set[str] = set()

    def walk(item: Any) -> None:
        if is_ref(item):
            match = REF_RE.fullmatch(item["$ref"])
            if match:
                found.add(match.group(1))
        elif isinstance(item, dict):
            for nested in item.values():
                walk(nested)
        elif isinstance(item, list):
            for nested in item:
                walk(nested)

    walk(value)
    return sorted(found)


def resolve(value: Any, outputs: Mapping[str, Any], unknown: Collection[str] = ()) -> Any:
    """A copy of ``value`` with every reference object replaced; raises ``ReferenceResolutionError``."""
    if is_ref(value):
        return lookup(value["$ref"], outputs, unknown)
    if isinstance(value, dict):
        return {key: resolve(item, outputs, unknown) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, outputs, unknown) for item in value]
    return value


def resolve_header(value: Any, outputs: Mapping[str, Any], unknown: Collection[str] = ()) -> str:
    resolved = resolve(value, outputs, unknown)
    if resolved is None and unknown:
        return ""
    ref = value["$ref"] if is_ref(value) else "?"
    if isinstance(resolved, str):
        if not HEADER_VALUE_RE.fullmatch(resolved):
            raise ReferenceResolutionError(
                ref, "a header value must be printable ASCII, spaces and tabs (no line break or control)"
            )
        return resolved
    if isinstance(resolved, bool | int | float):
        return json.dumps(resolved)
    raise ReferenceResolutionError(
        ref, f"a header value must be a string, number or boolean, not {type(resolved).__name__}"
    )
