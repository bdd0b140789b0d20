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
are checked against the allowlist here.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.model import (
    MAX_ARGUMENT_BYTES,
    METHODS,
    ActionSpec,
    SagaRequest,
    SecretRef,
    StepSpec,
)
from saga_orchestrator.settings import ALWAYS_DENIED_HOSTS, Settings

SAGA_ID_RE = re.compile(r"^[a-z0-9_-]{1,63}$")
STEP_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
SECRET_VERSION_RE = re.compile(r"^(latest|[1-9][0-9]{0,18})$")
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
REF_RE = re.compile(r"^steps\.([A-Za-z0-9_-]{1,63})\.output((?:\.[A-Za-z0-9_-]+)*)$")
MAX_URL_LENGTH = 2083
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
MAX_DEADLINE_SECONDS = 365 * 24 * 3600
# Time one attempt needs beyond the participant call (secret access, token, callback), seconds.
ATTEMPT_OVERHEAD_SECONDS = 20
# Extra margin on each callback wait (queue dispatch latency, clock skew), seconds.
WAIT_SLACK_SECONDS = 60
MIN_TIMEOUT_SECONDS = 1

FLAT_KEYS = frozenset({"name", "execute_url", "execute_payload", "compensate_url", "compensate_payload"})
RICH_KEYS = frozenset({"name", "execute", "compensate"})
ACTION_KEYS = frozenset(
    {"url", "method", "payload", "headers", "secret_headers", "auth", "timeout_seconds", "retry"}
)
TOP_KEYS = frozenset({"saga_id", "steps", "deadline_seconds", "metadata"})


def derive_saga_id(message_id: str) -> str:
    """The saga id of a request without one: stable per Pub/Sub message, so a redelivery dedupes."""
    return "saga-" + hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:20]


def new_saga_id() -> str:
    return "saga-" + uuid.uuid4().hex[:20]


def max_timeout_seconds(settings: Settings) -> float:
    """One attempt (call + overhead) must fit in the Cloud Tasks dispatch deadline."""
    return max(MIN_TIMEOUT_SECONDS, settings.dispatch_deadline_seconds - ATTEMPT_OVERHEAD_SECONDS)


def wait_seconds(max_attempts: int, timeout_seconds: float, settings: Settings, deadline_seconds: int) -> int:
    """Bound on the workflow's wait for one action's callback, in whole seconds.

    max_attempts × (timeout + overhead) + the queue's backoff before each retry + slack, never more than
    the saga deadline.
    """
    attempts = max_attempts * (timeout_seconds + ATTEMPT_OVERHEAD_SECONDS)
    backoff = sum(settings.retry_delay_seconds(k) for k in range(1, max_attempts))
    return int(min(math.ceil(attempts + backoff + WAIT_SLACK_SECONDS), deadline_seconds))


_LINK_LOCAL_V4 = ipaddress.ip_network("169.254.0.0/16")


def host_error(url: str, settings: Settings) -> str | None:
    """Why ``url`` may not be called (scheme, credentials, denied or unlisted host), or None if it may."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        return f"is not a valid URL ({error})"
    if parts.scheme not in ("http", "https"):
        return f"scheme must be http or https, got {parts.scheme or 'none'!r}"
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    effective_port = port if port is not None else (443 if parts.scheme == "https" else 80)
    verdict = _host_verdict(host, effective_port, settings.allowed_hosts, settings.metadata_host)
    if verdict == "denied":
        return f"host {host!r} is the metadata server or link-local and is never called"
    if verdict == "unlisted":
        shown = host if port is None else f"{host}:{port}"
        return f"host {shown!r} is not on the allowlist (SAGA_ALLOWED_HOSTS)"
    return None


@functools.lru_cache(maxsize=1024)
def _host_verdict(
    host: str, port: int, allowed_hosts: tuple[str, ...], metadata_host: str | None
) -> str | None:
    """``denied``, ``unlisted`` or None (allowed); a pure function of its arguments, so remembered: a
    step_executor instance checks the same few hosts on every task."""
    if _denied(host, port, metadata_host):
        return "denied"
    if not any(_matches(entry, host, port) for entry in allowed_hosts):
        return "unlisted"
    return None


def _split_host_port(entry: str) -> tuple[str, int | None]:
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host.rstrip("."), int(port)
    return entry.rstrip("."), None


def _matches(entry: str, host: str, port: int) -> bool:
    entry_host, entry_port = _split_host_port(entry)
    if entry_port is not None and entry_port != port:
        return False
    if entry_host.startswith("*."):
        return host.endswith(entry_host[1:]) and len(host) > len(entry_host) - 1
    return host == entry_host


def _denied(host: str, port: int, metadata_host: str | None) -> bool:
    if host in ALWAYS_DENIED_HOSTS:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and (address.is_link_local or address in _LINK_LOCAL_V4):
        return True
    if metadata_host:
        meta_host, meta_port = _split_host_port(metadata_host)
        if host == meta_host and (meta_port is None or meta_port == port):
            return True
    return False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Collector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.errors: list[FieldError] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))

    def unknown_keys(
        self, value: Mapping[str, Any], allowed: frozenset[str], path: str, hint: str = ""
    ) -> None:
        for key in sorted(set(value) - allowed):
            where = f"{path}.{key}" if path else key
            self.add(where, "is not a known field" + (f" ({hint})" if hint else ""))

    # --- actions ----------------------------------------------------------------------------------------

    def action(
        self,
        raw: Any,
        path: str,
        *,
        default_attempts: int,
        referable: set[str],
    ) -> ActionSpec | None:
        s = self.settings
        if not isinstance(raw, dict):
            self.add(path, "must be an object")
            return None
        self.unknown_keys(raw, ACTION_KEYS, path)
        url = raw.get("url")
        if not isinstance(url, str) or not url:
            self.add(f"{path}.url", "is required and must be a string")
        elif len(url) > MAX_URL_LENGTH:
            self.add(f"{path}.url", f"must be at most {MAX_URL_LENGTH} characters")
        else:
            problem = host_error(url, s)
            if problem:
                self.add(f"{path}.url", problem)
        method = raw.get("method", "POST")
        if not isinstance(method, str) or method.upper() not in METHODS:
            self.add(f"{path}.method", f"must be one of {', '.join(METHODS)}")
            method = "POST"
        method = method.upper()
        payload = raw.get("payload", None if method in ("GET", "DELETE") else {})
        self.refs(payload, f"{path}.payload", referable)
        headers = raw.get("headers", {})
        if not isinstance(headers, dict):
            self.add(f"{path}.headers", "must be an object of header name to string")
            headers = {}
        for name, value in headers.items():
            hpath = f"{path}.headers.{name}"
            if not HEADER_NAME_RE.match(name):
                self.add(hpath, "is not a valid header name")
            elif name.lower() in RESERVED_HEADERS:
                self.add(hpath, "is set by the step executor and may not be supplied")
            if isinstance(value, dict) and set(value) == {"$ref"}:
                self.refs(value, hpath, referable)
            elif not isinstance(value, str):
                self.add(hpath, "must be a string or a $ref")
            elif "\n" in value or "\r" in value:
                self.add(hpath, "must not contain line breaks")
        secret_headers: dict[str, SecretRef] = {}
        raw_secrets = raw.get("secret_headers", {})
        if not isinstance(raw_secrets, dict):
            self.add(f"{path}.secret_headers", "must be an object of header name to secret")
            raw_secrets = {}
        for name, ref in raw_secrets.items():
            spath = f"{path}.secret_headers.{name}"
            if not HEADER_NAME_RE.match(name):
                self.add(spath, "is not a valid header name")
            elif name.lower() in RESERVED_HEADERS:
                self.add(spath, "is set by the step executor and may not be supplied")
            elif name.lower() in {h.lower() for h in headers}:
                self.add(spath, "is also given in headers")
            secret = self.secret(ref, spath)
            if secret:
                secret_headers[name] = secret
        auth = raw.get("auth", "oidc")
        if auth not in ("oidc", "none"):
            self.add(f"{path}.auth", "must be 'oidc' or 'none'")
            auth = "oidc"
        timeout = raw.get("timeout_seconds", s.default_step_timeout_seconds)
        limit = max_timeout_seconds(s)
        if not _is_number(timeout) or not MIN_TIMEOUT_SECONDS <= timeout <= limit:
            self.add(f"{path}.timeout_seconds", f"must be a number from {MIN_TIMEOUT_SECONDS} to {limit:g}")
            timeout = s.default_step_timeout_seconds
        attempts = default_attempts
        retry = raw.get("retry", {})
        if not isinstance(retry, dict):
            self.add(f"{path}.retry", "must be an object")
        else:
            self.unknown_keys(
                retry, frozenset({"max_attempts"}), f"{path}.retry", "backoff is the task queue's"
            )
            attempts = retry.get("max_attempts", default_attempts)
            if not _is_int(attempts) or not 1 <= attempts <= s.queue_max_attempts:
                self.add(f"{path}.retry.max_attempts", f"must be an integer from 1 to {s.queue_max_attempts}")
                attempts = default_attempts
        if not isinstance(url, str):
            return None
        return ActionSpec(
            url=url,
            method=method,
            payload=payload,
            headers=dict(headers),
            secret_headers=secret_headers,
            auth=auth,
            timeout_seconds=timeout,
            max_attempts=attempts,
        )

    def secret(self, ref: Any, path: str) -> SecretRef | None:
        if isinstance(ref, str):
            ref = {"secret": ref}
        if not isinstance(ref, dict):
            self.add(path, "must be a secret name or {secret, version}")
            return None
        self.unknown_keys(ref, frozenset({"secret", "version"}), path)
        name = ref.get("secret")
        version = ref.get("version", "latest")
        if _is_int(version):
            version = str(version)
        ok = True
        if not isinstance(name, str) or not SECRET_NAME_RE.match(name):
            self.add(f"{path}.secret", "must be 1-255 letters, digits, '_' or '-'")
            ok = False
        if not isinstance(version, str) or not SECRET_VERSION_RE.match(version):
            self.add(f"{path}.version", "must be 'latest' or a positive integer")
            ok = False
        return SecretRef(str(name), str(version)) if ok else None

    def refs(self, value: Any, path: str, referable: set[str]) -> None:
        if isinstance(value, dict):
            if "$ref" in value:
                ref = value["$ref"]
                if set(value) != {"$ref"}:
                    self.add(path, "a $ref object must have no other keys")
                if not isinstance(ref, str):
                    self.add(path, "$ref must be a string")
                    return
                match = REF_RE.match(ref)
                if not match:
                    self.add(path, f"$ref {ref!r} must look like steps.<name>.output[.<key>...]")
                elif match.group(1) not in referable:
                    self.add(
                        path,
                        f"$ref {ref!r} names step {match.group(1)!r}, which does not run before this call",
                    )
                return
            for key, item in value.items():
                self.refs(item, f"{path}.{key}", referable)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.refs(item, f"{path}[{index}]", referable)

    # --- steps ------------------------------------------------------------------------------------------

    def step(self, raw: Any, index: int, earlier: list[str], deadline: int) -> StepSpec | None:
        s = self.settings
        path = f"steps[{index}]"
        if not isinstance(raw, dict):
            self.add(path, "must be an object")
            return None
        name = raw.get("name")
        if not isinstance(name, str) or not STEP_NAME_RE.match(name):
            self.add(f"{path}.name", "is required: 1-63 letters, digits, '_' or '-'")
            name = None
        elif name in earlier:
            self.add(f"{path}.name", f"duplicates the name of steps[{earlier.index(name)}]")
        flat = bool(set(raw) & (FLAT_KEYS - {"name"}))
        rich = bool(set(raw) & (RICH_KEYS - {"name"}))
        if flat and rich:
            self.add(path, "mixes the flat form (execute_url, ...) and the rich form (execute, ...)")
            return None
        if flat:
            self.unknown_keys(raw, FLAT_KEYS, path)
            execute_raw: Any = {"url": raw.get("execute_url")}
            if "execute_payload" in raw:
                execute_raw["payload"] = raw["execute_payload"]
            compensate_raw: Any = None
            if raw.get("compensate_url") is not None or "compensate_payload" in raw:
                compensate_raw = {"url": raw.get("compensate_url")}
                if "compensate_payload" in raw:
                    compensate_raw["payload"] = raw["compensate_payload"]
            flat_errors_start = len(self.errors)
        else:
            self.unknown_keys(raw, RICH_KEYS, path)
            execute_raw = raw.get("execute")
            compensate_raw = raw.get("compensate")
            flat_errors_start = -1
            if execute_raw is None:
                self.add(f"{path}.execute", "is required")
        before = set(earlier)
        execute = None
        if execute_raw is not None:
            execute = self.action(
                execute_raw,
                f"{path}.execute",
                default_attempts=s.default_execute_max_attempts,
                referable=before,
            )
        compensate = None
        if compensate_raw is not None:
            compensate = self.action(
                compensate_raw,
                f"{path}.compensate",
                default_attempts=s.default_compensate_max_attempts,
                referable=before | ({name} if name else set()),
            )
        if flat_errors_start >= 0:
            self._rename_flat(flat_errors_start, path)
        if name is None or execute is None:
            return None
        return StepSpec(
            name=name,
            execute=execute,
            compensate=compensate,
            execute_wait_seconds=wait_seconds(execute.max_attempts, execute.timeout_seconds, s, deadline),
            compensate_wait_seconds=(
                wait_seconds(compensate.max_attempts, compensate.timeout_seconds, s, deadline)
                if compensate
                else 0
            ),
        )

    def _rename_flat(self, start: int, path: str) -> None:
        """Report flat-form problems under the flat field names the user wrote."""
        renames = {
            f"{path}.execute.url": f"{path}.execute_url",
            f"{path}.execute.payload": f"{path}.execute_payload",
            f"{path}.compensate.url": f"{path}.compensate_url",
            f"{path}.compensate.payload": f"{path}.compensate_payload",
        }
        for i in range(start, len(self.errors)):
            error = self.errors[i]
            for old, new in renames.items():
                if (
                    error.field == old
                    or error.field.startswith(old + ".")
                    or error.field.startswith(old + "[")
                ):
                    self.errors[i] = FieldError(new + error.field[len(old) :], error.message)
                    break


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
    c = _Collector(settings)
    if not isinstance(data, dict):
        raise InvalidRequestError([FieldError("", "the request must be a JSON object")])
    c.unknown_keys(data, TOP_KEYS, "")
    chosen = saga_id if saga_id is not None else data.get("saga_id")
    if chosen is None:
        chosen = derive_saga_id(message_id) if message_id else new_saga_id()
    elif not isinstance(chosen, str) or not SAGA_ID_RE.match(chosen):
        c.add("saga_id", "must be 1-63 lowercase letters, digits, '_' or '-' (a Workflows label value)")
    deadline = data.get("deadline_seconds", settings.default_deadline_seconds)
    if not _is_int(deadline) or not 1 <= deadline <= MAX_DEADLINE_SECONDS:
        c.add("deadline_seconds", f"must be an integer from 1 to {MAX_DEADLINE_SECONDS}")
        deadline = settings.default_deadline_seconds
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        c.add("metadata", "must be an object")
        metadata = {}
    steps_raw = data.get("steps")
    steps: list[StepSpec] = []
    if not isinstance(steps_raw, list) or not steps_raw:
        c.add("steps", "is required: a non-empty list")
    else:
        if len(steps_raw) > settings.max_steps:
            c.add(
                "steps",
                f"has {len(steps_raw)} steps; at most {settings.max_steps} are allowed (SAGA_MAX_STEPS)",
            )
        names: list[str] = []
        for index, raw in enumerate(steps_raw):
            step = c.step(raw, index, names, deadline)
            raw_name = raw.get("name") if isinstance(raw, dict) else None
            names.append(raw_name if isinstance(raw_name, str) else f"\0{index}")
            if step:
                steps.append(step)
    if c.errors:
        raise InvalidRequestError(c.errors)
    request = SagaRequest(
        saga_id=str(chosen),
        steps=tuple(steps),
        deadline_seconds=deadline,
        metadata=metadata,
        requested_at=requested_at or utc_now_iso(),
        event_id=message_id,
    )
    size = len(request.argument_json().encode("utf-8"))
    if size > MAX_ARGUMENT_BYTES:
        raise InvalidRequestError(
            [
                FieldError(
                    "",
                    f"the normalized request is {size} bytes; the Workflows argument limit is {MAX_ARGUMENT_BYTES}",
                )
            ]
        )
    return request


def decode_request(raw: bytes) -> Any:
    """UTF-8 JSON bytes → value; raises ``InvalidRequestError`` for anything else."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidRequestError(
            [FieldError("", f"the message data is not UTF-8 ({error.reason})")]
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidRequestError(
            [
                FieldError(
                    "",
                    f"the message data is not JSON: {error.msg} at line {error.lineno} column {error.colno}",
                )
            ]
        ) from None


def parse_call(call: Any, settings: Settings, *, path: str = "call") -> ActionSpec:
    """Re-check a normalized action (a Cloud Task's ``call``), including the allowlist.

    ``$ref`` targets were checked at the door; here any step name is accepted.
    """
    c = _Collector(settings)
    if isinstance(call, dict) and "max_attempts" in call:
        call = dict(call)
        call["retry"] = {"max_attempts": call.pop("max_attempts")}
    spec = c.action(call, path, default_attempts=settings.default_execute_max_attempts, referable=_AnyName())
    if c.errors or spec is None:
        raise InvalidRequestError(c.errors or [FieldError(path, "is not a valid call")])
    return spec


class _AnyName(set[str]):
    def __contains__(self, item: object) -> bool:
        return True


def utc_now_iso() -> str:
    return format_time(datetime.datetime.now(datetime.UTC))


def format_time(moment: datetime.datetime) -> str:
    """RFC 3339 UTC with millisecond precision and a ``Z``."""
    moment = moment.astimezone(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
