"""Checks of the fields of one participant call, shared by request validation (``validation``) and the
step executor's reading of a task's call (``model.ActionSpec.from_dict``), so both hold one rule.

Each check reads one field, records every problem as a ``FieldError`` under the field's path and returns
a value to go on with (the default when the field is bad), so one pass reports every problem at once.

Every check is total: whatever value it is given, it records a problem or accepts it, never raises.
Patterns are matched with ``fullmatch`` (``$`` would also match before a final newline). A recorded
problem is always publishable text: lone surrogates from the input are escaped, long text is cut short,
and at most ``MAX_ERRORS`` problems are listed. ``json_problems`` is the first check of anything decoded
from outside: it bounds nesting (``MAX_NESTING_DEPTH``) and refuses what is not JSON text, so the other
checks, the JSON encoders and the step executor never meet a value they cannot handle.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from saga_orchestrator.budget import MIN_TIMEOUT_SECONDS, max_timeout_seconds
from saga_orchestrator.egress import host_error
from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.refs import HEADER_VALUE_RE, REF_RE
from saga_orchestrator.settings import Settings

Auth = Literal["oidc", "none"]

METHODS: tuple[str, ...] = ("POST", "PUT", "PATCH", "DELETE", "GET")
MAX_URL_LENGTH = 2083
# Matched with fullmatch. A header name is an RFC 9110 token.
HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
SECRET_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")
SECRET_VERSION_RE = re.compile(r"latest|[1-9][0-9]{0,18}")
# What http.client refuses in a request target (``http.client._contains_disallowed_url_pchar_re``).
URL_FORBIDDEN_RE = re.compile(r"[\x00-\x20\x7f]")
# Arrays and objects inside one another, the request itself counted: a bound far below Python's
# recursion limit, so no encoder, checker or resolver on the way recurses out of stack.
MAX_NESTING_DEPTH = 64
TOO_DEEP = f"nests arrays and objects more than {MAX_NESTING_DEPTH} levels deep"
# Workflows integers are 64-bit.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
# A rejected result lists at most this many problems, each field and message cut at MAX_TEXT_CHARS.
MAX_ERRORS = 100
MAX_TEXT_CHARS = 500
# Headers the step executor sets itself; a request may not supply them.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Authorization",
        "Idempotency-Key",
        "X-Saga-Id",
        "X-Saga-Step",
        "X-Saga-Action",
        "traceparent",
        "Host",
        "Content-Length",
        "Content-Type",
        "Transfer-Encoding",
        "Connection",
    )
)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def readable(text: str) -> str:
    """``text`` as publishable UTF-8 (a lone surrogate becomes ``\\udXXX``), at most ``MAX_TEXT_CHARS``."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"


def field_path(base: str, parts: Sequence[str | int]) -> str:
    """``base`` followed by ``.key`` for each key and ``[i]`` for each index."""
    path = base
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else part
    return path


def json_problems(value: Any, path: str = "", *, depth: int = 0) -> list[FieldError]:
    """What keeps ``value`` from being JSON text that every part of the saga can carry: nesting deeper
    than ``MAX_NESTING_DEPTH`` arrays and objects (``depth``: how deep ``value`` already sits), keys that
    are not strings, strings that are not Unicode text (lone surrogates), numbers that are not finite or
    not 64-bit integers, and values of any other type. At most ``MAX_ERRORS`` problems, in document order;
    iterative, so any depth is safe to look at."""
    problems: list[FieldError] = []
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while pending and len(problems) < MAX_ERRORS:
        item, where = pending.pop()
        children: list[tuple[Any, tuple[str | int, ...]]] = []
        if isinstance(item, dict | list) and depth + len(where) >= MAX_NESTING_DEPTH:
            problems.append(FieldError(readable(field_path(path, where)), TOO_DEEP))
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = _key_problem(key)
                if problem:
                    problems.append(FieldError(readable(field_path(path, (*where, str(key)))), problem))
                else:
                    children.append((child, (*where, key)))
        elif isinstance(item, list):
            children = [(child, (*where, index)) for index, child in enumerate(item)]
        else:
            problem = _scalar_problem(item)
            if problem:
                problems.append(FieldError(readable(field_path(path, where)), problem))
        pending.extend(reversed(children))
    return problems[:MAX_ERRORS]


def _key_problem(key: Any) -> str | None:
    if not isinstance(key, str):
        return f"has a key of type {type(key).__name__}; object keys must be strings"
    problem = _text_problem(key)
    return f"is a key that {problem}" if problem else None


def _scalar_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        problem = _text_problem(value)
        return f"is a string that {problem}" if problem else None
    if isinstance(value, int):
        return None if MIN_INT <= value <= MAX_INT else "is an integer beyond 64 bits (Workflows integers)"
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number (NaN and Infinity are not JSON)"
    return f"is a {type(value).__name__}, not a JSON value"


def _text_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        return f"is not Unicode text: a lone surrogate U+{code:04X} at character {error.start}"
    return None


class FieldChecks:
    """The problems found so far (``errors``, in the order found, at most ``MAX_ERRORS``) and the checks
    that find them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.errors: list[FieldError] = []
        self.unlisted = 0

    def add(self, field: str, message: str) -> None:
        if len(self.errors) >= MAX_ERRORS:
            self.unlisted += 1
            return
        self.errors.append(FieldError(readable(field), readable(message)))

    def raise_if_any(self) -> None:
        if self.unlisted:
            more = f"{self.unlisted} more problem{'s' if self.unlisted != 1 else ''} not listed"
            raise InvalidRequestError([*self.errors, FieldError("", more)])
        if self.errors:
            raise InvalidRequestError(self.errors)

    def unknown_keys(
        self, value: Mapping[str, Any], allowed: frozenset[str], path: str, hint: str = ""
    ) -> None:
        for key in sorted(str(k) for k in set(value) - allowed):
            where = f"{path}.{key}" if path else key
            self.add(where, "is not a known field" + (f" ({hint})" if hint else ""))

    def url(self, url: Any, path: str) -> str | None:
        """Required; at most ``MAX_URL_LENGTH`` characters; a host the executor may call (``egress``)."""
        if not isinstance(url, str) or not url:
            self.add(path, "is required and must be a string")
        elif len(url) > MAX_URL_LENGTH:
            self.add(path, f"must be at most {MAX_URL_LENGTH} characters")
        elif URL_FORBIDDEN_RE.search(url):
            self.add(path, "must not contain spaces or control characters (percent-encode them)")
        else:
            problem = host_error(url, self.settings)
            if problem:
                self.add(path, problem)
        return url if isinstance(url, str) else None

    def method(self, method: Any, path: str) -> str:
        if isinstance(method, str) and method.upper() in METHODS:
            return method.upper()
        self.add(path, f"must be one of {', '.join(METHODS)}")
        return "POST"

    def refs(self, value: Any, path: str, referable: Collection[str] | None) -> None:
        """Every ``$ref`` object in ``value`` (any depth) is well formed and names a step in
        ``referable`` (None: any step name, for a call whose references were checked at the door)."""
        pending: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
        while pending:
            item, where = pending.pop()
            if isinstance(item, dict) and "$ref" in item:
                self._ref(item, field_path(path, where), referable)
            elif isinstance(item, dict):
                pending.extend(reversed([(child, (*where, str(key))) for key, child in item.items()]))
            elif isinstance(item, list):
                pending.extend(reversed([(child, (*where, index)) for index, child in enumerate(item)]))

    def _ref(self, value: dict[str, Any], path: str, referable: Collection[str] | None) -> None:
        ref = value["$ref"]
        if set(value) != {"$ref"}:
            self.add(path, "a $ref object must have no other keys")
        if not isinstance(ref, str):
            self.add(path, "$ref must be a string")
            return
        match = REF_RE.fullmatch(ref)
        if not match:
            self.add(path, f"$ref {ref!r} must look like steps.<name>.output[.<key>...]")
        elif referable is not None and match.group(1) not in referable:
            self.add(
                path,
                f"$ref {ref!r} names step {match.group(1)!r}, which does not run before this call",
            )

    def header_name(self, name: str, path: str) -> bool:
        """A valid header name that the step executor does not set itself."""
        if not isinstance(name, str) or not HEADER_NAME_RE.fullmatch(name):
            self.add(path, "is not a valid header name")
            return False
        if name.lower() in RESERVED_HEADERS:
            self.add(path, "is set by the step executor and may not be supplied")
            return False
        return True

    def headers(self, headers: Any, path: str, referable: Collection[str] | None) -> dict[str, Any]:
        """Header name → a string or a ``$ref``; a string is what http.client sends unchanged: printable
        ASCII, spaces and tabs (RFC 9110 field-value without obs-text), no line break."""
        if not isinstance(headers, dict):
            self.add(path, "must be an object of header name to string")
            return {}
        for name, value in headers.items():
            hpath = f"{path}.{name}"
            self.header_name(name, hpath)
            if isinstance(value, dict) and set(value) == {"$ref"}:
                self.refs(value, hpath, referable)
            elif not isinstance(value, str):
                self.add(hpath, "must be a string or a $ref")
            elif "\n" in value or "\r" in value:
                self.add(hpath, "must not contain line breaks")
            elif not HEADER_VALUE_RE.fullmatch(value):
                self.add(hpath, "must be printable ASCII, spaces and tabs (no control characters)")
        return dict(headers)

    def secret_headers(self, secrets: Any, path: str, headers: Collection[str]) -> dict[str, tuple[str, str]]:
        """Header name → ``(secret, version)`` of a Secret Manager secret (a name alone means ``latest``);
        a header may not be given both here and in ``headers``."""
        if not isinstance(secrets, dict):
            self.add(path, "must be an object of header name to secret")
            return {}
        plain = {h.lower() for h in headers}
        found: dict[str, tuple[str, str]] = {}
        for name, ref in secrets.items():
            spath = f"{path}.{name}"
            if self.header_name(name, spath) and name.lower() in plain:
                self.add(spath, "is also given in headers")
            secret = self.secret(ref, spath)
            if secret:
                found[name] = secret
        return found

    def secret(self, ref: Any, path: str) -> tuple[str, str] | None:
        if isinstance(ref, str):
            ref = {"secret": ref}
        if not isinstance(ref, dict):
            self.add(path, "must be a secret name or {secret, version}")
            return None
        self.unknown_keys(ref, frozenset({"secret", "version"}), path)
        name = ref.get("secret")
        version = ref.get("version", "latest")
        if is_int(version):
            version = str(version)
        ok = True
        if not isinstance(name, str) or not SECRET_NAME_RE.fullmatch(name):
            self.add(f"{path}.secret", "must be 1-255 letters, digits, '_' or '-'")
            ok = False
        if not isinstance(version, str) or not SECRET_VERSION_RE.fullmatch(version):
            self.add(f"{path}.version", "must be 'latest' or a positive integer")
            ok = False
        return (str(name), str(version)) if ok else None

    def auth(self, auth: Any, path: str) -> Auth:
        if auth in ("oidc", "none"):
            chosen: Auth = auth
            return chosen
        self.add(path, "must be 'oidc' or 'none'")
        return "oidc"

    def timeout(self, timeout: Any, path: str) -> float:
        """Seconds for one call, from ``MIN_TIMEOUT_SECONDS`` to ``budget.max_timeout_seconds``."""
        limit = max_timeout_seconds(self.settings)
        if is_number(timeout) and MIN_TIMEOUT_SECONDS <= timeout <= limit:
            seconds: float = timeout  # an int stays an int: the workflow argument keeps what was sent
            return seconds
        self.add(path, f"must be a number from {MIN_TIMEOUT_SECONDS} to {limit:g}")
        return self.settings.default_step_timeout_seconds

    def attempts(self, attempts: Any, path: str, default: int) -> int:
        """Attempts of one action, the first included: 1 to the queue's ``SAGA_QUEUE_MAX_ATTEMPTS``."""
        limit = self.settings.queue_max_attempts
        if is_int(attempts) and 1 <= attempts <= limit:
            return int(attempts)
        self.add(path, f"must be an integer from 1 to {limit}")
        return default

    def retry(self, retry: Any, path: str, default_attempts: int) -> int:
        """The request form's ``retry: {max_attempts}``; backoff is the task queue's, not a step's."""
        if not isinstance(retry, dict):
            self.add(path, "must be an object")
            return default_attempts
        self.unknown_keys(retry, frozenset({"max_attempts"}), path, "backoff is the task queue's")
        return self.attempts(
            retry.get("max_attempts", default_attempts), f"{path}.max_attempts", default_attempts
        )
