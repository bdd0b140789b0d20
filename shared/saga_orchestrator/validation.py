"""Validation and normalization of saga requests, at the door (start_saga, ``SagaOrchestrator``).

Every problem is collected and reported at once as ``InvalidRequestError.errors`` with field paths such
as ``steps[1].execute.url``. Two request forms are accepted per step and may be mixed in one request:

- the seed's flat form: ``name, execute_url, execute_payload, compensate_url, compensate_payload``;
- the rich form: ``name``, ``execute: {url, method, payload, headers, secret_headers, auth,
  timeout_seconds, retry: {max_attempts}}`` and ``compensate: {...}`` (same shape, own retry policy) or null.

A step uses one form or the other, never both. Backoff between attempts is the task queue's (Cloud Tasks
retry settings are per queue); a step chooses only how many attempts it gets.

``$ref`` objects (``{"$ref": "steps.<name>.output[.<key or index>]..."}``) may appear anywhere in a
payload and as a header value. An ``execute`` may reference steps before it; a ``compensate`` may also
reference its own step (to undo exactly what its execute created). URLs may not be references: they
are checked against the allowlist (``egress``) here. The checks of one action are ``checks``'; the
bounds of each action's wait are ``budget``'s.

Decoding and validation are total: any bytes, and any value, end in a ``SagaRequest`` or an
``InvalidRequestError`` naming the field, never in another exception. Message data is at most
``MAX_REQUEST_BYTES`` and nests at most ``checks.MAX_NESTING_DEPTH`` arrays and objects (both checked
before the JSON is parsed). A value that is not JSON text (too deep, a lone surrogate, a number that is
not finite or not 64-bit) is reported alone: nothing else is checked on such a value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from itertools import accumulate
from typing import Any, NoReturn

from saga_orchestrator.budget import wait_seconds
from saga_orchestrator.checks import (
    MAX_NESTING_DEPTH,
    TOO_DEEP,
    FieldChecks,
    field_path,
    is_int,
    json_problems,
    readable,
)
from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.model import (
    ACTIONS,
    MAX_ARGUMENT_BYTES,
    Action,
    ActionSpec,
    OnFailure,
    SagaRequest,
    StepSpec,
    derive_saga_id,
    is_saga_id,
    new_saga_id,
)
from saga_orchestrator.settings import MAX_DECISION_SECONDS, Settings
from saga_orchestrator.times import utc_now_iso

# Matched with fullmatch; a step name is sent as the X-Saga-Step header.
STEP_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,63}")
MAX_DEADLINE_SECONDS = 365 * 24 * 3600
# Message data beyond this is refused unparsed: a request normalizes to at most MAX_ARGUMENT_BYTES, and
# the normalized form is never smaller than the compact request, so this leaves room for whitespace and
# escapes only.
MAX_REQUEST_BYTES = 2 * MAX_ARGUMENT_BYTES
# Strings in JSON text (possessive: linear time) and everything but brackets.
_JSON_STRING_RE = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]++")
_JSON_TOKEN_RE = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{},]', re.DOTALL)

# What a step may say in either form besides its calls.
STEP_OPTION_KEYS = frozenset({"on_failure", "park_seconds"})
FLAT_KEYS = frozenset(
    {"name", "execute_url", "execute_payload", "compensate_url", "compensate_payload"} | STEP_OPTION_KEYS
)
RICH_KEYS = frozenset({"name", "execute", "compensate"} | STEP_OPTION_KEYS)
ON_FAILURE = ("compensate", "park")
TOP_KEYS = frozenset({"saga_id", "steps", "deadline_seconds", "metadata"})


def validate_request(
    data: Any,
    settings: Settings,
    *,
    message_id: str | None = None,
    requested_at: str | None = None,
    saga_id: str | None = None,
) -> SagaRequest:
    """Check a decoded request and normalize it into the workflow argument.

    ``saga_id`` (when given) overrides the request's; otherwise the request's, else one derived from
    ``message_id`` (stable across redeliveries), else a random one. Raises ``InvalidRequestError``.
    """
    if not isinstance(data, dict):
        raise InvalidRequestError([FieldError("", "the request must be a JSON object")])
    problems = json_problems(data)
    if problems:  # nothing else can be checked safely
        raise InvalidRequestError(problems)
    checks = _RequestChecks(settings)
    checks.unknown_keys(data, TOP_KEYS, "")
    chosen = checks.saga_id(saga_id if saga_id is not None else data.get("saga_id"), message_id)
    deadline = checks.deadline(data.get("deadline_seconds", settings.default_deadline_seconds))
    metadata = checks.metadata(data.get("metadata", {}))
    steps = checks.steps(data.get("steps"), deadline)
    checks.raise_if_any()
    request = SagaRequest(
        saga_id=chosen,
        steps=tuple(steps),
        deadline_seconds=deadline,
        metadata=metadata,
        requested_at=requested_at or utc_now_iso(),
        event_id=message_id,
        state_budget_bytes=settings.state_budget_bytes,
        stuck_decision_seconds=settings.stuck_decision_seconds,
    )
    size = len(request.argument_json().encode("utf-8"))
    if size > MAX_ARGUMENT_BYTES:
        message = (
            f"the normalized request is {size} bytes; the Workflows argument limit is {MAX_ARGUMENT_BYTES}"
        )
        raise InvalidRequestError([FieldError("", message)])
    return request


def decode_request(raw: bytes) -> Any:
    """UTF-8 JSON bytes → value; raises ``InvalidRequestError`` for anything else: more than
    ``MAX_REQUEST_BYTES``, not UTF-8, nested deeper than ``MAX_NESTING_DEPTH``, not JSON (``NaN`` and
    ``Infinity`` included), or a number Python will not read (over 4,300 digits)."""
    if len(raw) > MAX_REQUEST_BYTES:
        _refuse(
            f"the message data is {len(raw)} bytes; at most {MAX_REQUEST_BYTES} are read "
            f"(the normalized request must fit the Workflows argument limit of {MAX_ARGUMENT_BYTES})"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        _refuse(f"the message data is not UTF-8 ({error.reason})")
    # Fewer brackets than the limit cannot nest past it (the usual case, counted at C speed).
    brackets = text.count("[") + text.count("{")
    if brackets > MAX_NESTING_DEPTH and json_text_depth(text) > MAX_NESTING_DEPTH:
        raise InvalidRequestError([FieldError(readable(_too_deep_at(text)), TOO_DEEP)])
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        _refuse(f"the message data is not JSON: {error.msg} at line {error.lineno} column {error.colno}")
    except ValueError as error:  # _no_constant, or an integer of over 4,300 digits
        _refuse(f"the message data is not JSON this service reads: {error}")


def json_text_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text``, counted without parsing it (linear time, no
    recursion); brackets in strings do not count. Meaningful for JSON text; a number for any text."""
    brackets = _NOT_BRACKET_RE.sub("", _JSON_STRING_RE.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def _too_deep_at(text: str) -> str:
    """The path of the first array or object in JSON ``text`` that sits deeper than
    ``MAX_NESTING_DEPTH``, found by reading tokens, not by parsing (which would recurse that deep)."""
    kinds: list[str] = []  # "[" or "{" of each open array or object
    # Where in each open one the reader is: an index, a key, or None between a "," and the next key.
    at: list[str | int | None] = []
    for match in _JSON_TOKEN_RE.finditer(text):
        token = match.group()
        if token in "[{":
            if len(kinds) == MAX_NESTING_DEPTH:
                return field_path("", ["?" if part is None else part for part in at])
            kinds.append(token)
            at.append(0 if token == "[" else None)
        elif token in "]}":
            del kinds[-1:], at[-1:]
        elif token == "," and kinds:
            at[-1] = at[-1] + 1 if isinstance(at[-1], int) else None
        elif token.startswith('"') and kinds and kinds[-1] == "{" and at[-1] is None:
            at[-1] = _key_text(token)
    return ""


def _key_text(token: str) -> str:
    try:
        key = json.loads(token)
    except ValueError:
        return token[1:-1]
    return key if isinstance(key, str) else token[1:-1]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _refuse(message: str) -> NoReturn:
    raise InvalidRequestError([FieldError("", message)])


class _RequestChecks(FieldChecks):
    """The checks of a whole request: its top-level fields and its steps, each step's actions through
    ``ActionSpec.read``."""

    def saga_id(self, chosen: Any, message_id: str | None) -> str:
        if chosen is None:
            return derive_saga_id(message_id) if message_id else new_saga_id()
        if not is_saga_id(chosen):
            self.add(
                "saga_id", "must be 1-63 lowercase letters, digits, '_' or '-' (a Workflows label value)"
            )
        return str(chosen)

    def deadline(self, deadline: Any) -> int:
        if is_int(deadline) and 1 <= deadline <= MAX_DEADLINE_SECONDS:
            return int(deadline)
        self.add("deadline_seconds", f"must be an integer from 1 to {MAX_DEADLINE_SECONDS}")
        return self.settings.default_deadline_seconds

    def metadata(self, metadata: Any) -> dict[str, Any]:
        if isinstance(metadata, dict):
            return metadata
        self.add("metadata", "must be an object")
        return {}

    def steps(self, steps_raw: Any, deadline: int) -> list[StepSpec]:
        if not isinstance(steps_raw, list) or not steps_raw:
            self.add("steps", "is required: a non-empty list")
            return []
        limit = self.settings.max_steps
        if len(steps_raw) > limit:
            self.add("steps", f"has {len(steps_raw)} steps; at most {limit} are allowed (SAGA_MAX_STEPS)")
        names: list[str] = []
        steps: list[StepSpec] = []
        for index, raw in enumerate(steps_raw):
            step = self.step(raw, index, names, deadline)
            raw_name = raw.get("name") if isinstance(raw, dict) else None
            # A step without a usable name still takes its place, under a name no step can have.
            names.append(raw_name if isinstance(raw_name, str) else f"\0{index}")
            if step:
                steps.append(step)
        return steps

    def step(self, raw: Any, index: int, earlier: list[str], deadline: int) -> StepSpec | None:
        path = f"steps[{index}]"
        if not isinstance(raw, dict):
            self.add(path, "must be an object")
            return None
        name = self._step_name(raw.get("name"), f"{path}.name", earlier)
        forms = self._step_actions(raw, path)
        if forms is None:
            return None
        execute_raw, compensate_raw, flat = forms
        flat_errors_start = len(self.errors)
        execute = self._action(execute_raw, f"{path}.execute", "execute", set(earlier))
        own = {name} if name else set()
        compensate = self._action(compensate_raw, f"{path}.compensate", "compensate", set(earlier) | own)
        if flat:
            self._rename_flat(flat_errors_start, path)
        on_failure, park_seconds = self._on_failure(raw, path)
        if name is None or execute is None:
            return None
        return StepSpec(
            name=name,
            execute=execute,
            compensate=compensate,
            execute_wait_seconds=self._wait(execute, deadline),
            compensate_wait_seconds=self._wait(compensate, deadline) if compensate else 0,
            on_failure=on_failure,
            park_seconds=park_seconds,
        )

    def _on_failure(self, raw: dict[str, Any], path: str) -> tuple[OnFailure, int]:
        """``on_failure`` and, for ``park``, ``park_seconds`` (default SAGA_PARK_SECONDS)."""
        on_failure = raw.get("on_failure", "compensate")
        if on_failure not in ON_FAILURE:
            self.add(f"{path}.on_failure", "must be 'compensate' or 'park'")
            on_failure = "compensate"
        if on_failure != "park":
            if "park_seconds" in raw:
                self.add(f"{path}.park_seconds", "is allowed only with on_failure 'park'")
            return "compensate", 0
        seconds = raw.get("park_seconds", self.settings.park_seconds)
        if not is_int(seconds) or not 1 <= seconds <= MAX_DECISION_SECONDS:
            self.add(f"{path}.park_seconds", f"must be an integer from 1 to {MAX_DECISION_SECONDS}")
            return "park", self.settings.park_seconds
        return "park", int(seconds)

    def _step_name(self, name: Any, path: str, earlier: list[str]) -> str | None:
        if not isinstance(name, str) or not STEP_NAME_RE.fullmatch(name):
            self.add(path, "is required: 1-63 letters, digits, '_' or '-'")
            return None
        if name in earlier:
            self.add(path, f"duplicates the name of steps[{earlier.index(name)}]")
        return name

    def _step_actions(self, raw: dict[str, Any], path: str) -> tuple[Any, Any, bool] | None:
        """The raw execute and compensate of a step in either form, and whether it is the flat form;
        None when it mixes the two."""
        flat = bool(set(raw) & (FLAT_KEYS - {"name"} - STEP_OPTION_KEYS))
        rich = bool(set(raw) & (RICH_KEYS - {"name"} - STEP_OPTION_KEYS))
        if flat and rich:
            self.add(path, "mixes the flat form (execute_url, ...) and the rich form (execute, ...)")
            return None
        if flat:
            self.unknown_keys(raw, FLAT_KEYS, path)
            return _flat_action(raw, "execute"), _flat_action(raw, "compensate"), True
        self.unknown_keys(raw, RICH_KEYS, path)
        if raw.get("execute") is None:
            self.add(f"{path}.execute", "is required")
        return raw.get("execute"), raw.get("compensate"), False

    def _action(self, raw: Any, path: str, action: Action, referable: Collection[str]) -> ActionSpec | None:
        if raw is None:
            return None
        s = self.settings
        default = s.default_execute_max_attempts if action == "execute" else s.default_compensate_max_attempts
        return ActionSpec.read(self, raw, path, form="request", default_attempts=default, referable=referable)

    def _wait(self, action: ActionSpec, deadline: int) -> int:
        return wait_seconds(action.max_attempts, action.timeout_seconds, self.settings, deadline)

    def _rename_flat(self, start: int, path: str) -> None:
        """Report flat-form problems under the flat field names the user wrote."""
        renames = {f"{path}.{a}.{f}": f"{path}.{a}_{f}" for a in ACTIONS for f in ("url", "payload")}
        for i in range(start, len(self.errors)):
            error = self.errors[i]
            for old, new in renames.items():
                if error.field == old or error.field.startswith((old + ".", old + "[")):
                    self.errors[i] = FieldError(new + error.field[len(old) :], error.message)
                    break


def _flat_action(raw: dict[str, Any], action: Action) -> dict[str, Any] | None:
    """A flat step's ``<action>_url`` and ``<action>_payload`` as a rich action (no compensate when the
    step names neither)."""
    url, payload = f"{action}_url", f"{action}_payload"
    if action == "compensate" and raw.get(url) is None and payload not in raw:
        return None
    spec: dict[str, Any] = {"url": raw.get(url)}
    if payload in raw:
        spec["payload"] = raw[payload]
    return spec
