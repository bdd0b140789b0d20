"""One call to a saga participant (DESIGN §3.2) and the classification of its answer.

Headers sent: the step's own headers and secret headers, then ``Idempotency-Key`` (the same for every
attempt of one action of one step of one saga), ``X-Saga-Id``, ``X-Saga-Step``, ``X-Saga-Action``,
``traceparent`` (one trace per saga) and, unless the step's ``auth`` is ``none``, ``Authorization:
Bearer <OIDC ID token>`` whose audience is the URL's origin (``scheme://host[:port]``).

Every answer becomes a ``CallOutcome``; ``retryable`` is data on it:

| answer                                                 | kind        | retryable |
|--------------------------------------------------------|-------------|-----------|
| 2xx, JSON body                                         | success     | -         |
| 2xx, empty body                                        | success, output null |  |
| 2xx, body not JSON                                     | success, output = body text | |
| 2xx, body over MAX_OUTPUT_BYTES                        | business    | no (the saga compensates) |
| 3xx (redirects are never followed: the allowlist)      | business    | no        |
| not called: egress refused the host or its address    | business    | no        |
| 408, 425, 429, 5xx                                     | transient   | yes       |
| other 4xx (409, 422, ...)                              | business    | no        |
| timeout, connection failure, token fetch failure       | transient   | yes       |

Timeouts: ``timeout_seconds`` bounds connecting (at most ``CONNECT_TIMEOUT_SECONDS``) and each read of
the response. The HTTP transport and the token source are ports (``ports.HttpTransport``,
``ports.TokenSource``); the real ones are ``httpclient.HttpClient`` (pools, TLS, no proxies) and
``auth.GoogleTokenSource``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from saga_orchestrator.egress import EgressRefusedError
from saga_orchestrator.model import Action, ActionSpec
from saga_orchestrator.ports import HttpCallError, HttpTransport, TokenSource
from saga_orchestrator.refs import resolve, resolve_header
from saga_orchestrator.tracing import traceparent

OutcomeKind = Literal["success", "business", "transient"]
TRANSIENT_STATUSES = frozenset({408, 425, 429})
# Outputs feed later steps and the result; Workflows keeps at most 512 KB of variables per execution.
MAX_OUTPUT_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 500
CONNECT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class CallContext:
    saga_id: str
    step_name: str
    action: Action
    attempt: int = 1
    # 0 until an operator retries this action after the participant refused it (then 1, 2, ...).
    key_round: int = 0


@dataclass(frozen=True)
class CallOutcome:
    kind: OutcomeKind
    status_code: int | None = None
    output: Any = None
    message: str = ""

    @property
    def retryable(self) -> bool:
        return self.kind == "transient"

    @property
    def succeeded(self) -> bool:
        return self.kind == "success"


@dataclass(frozen=True)
class PreparedCall:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeout_seconds: float
    # Header names whose values must never be logged.
    sensitive: frozenset[str] = field(default_factory=frozenset)


def idempotency_key(saga_id: str, step_name: str, action: str, key_round: int = 0) -> str:
    """Stable per saga, step and action. An operator's retry of an action the participant refused
    (a business answer, which it keeps for the key) gets a new round, ``:<round>`` appended, so the
    participant decides again; a retry after a transient failure or an unknown outcome keeps the key."""
    key = f"{saga_id}:{step_name}:{action}"
    return f"{key}:{key_round}" if key_round else key


def origin(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port is not None else "")


def prepare(
    spec: ActionSpec,
    ctx: CallContext,
    *,
    outputs: Mapping[str, Any],
    secret_values: Mapping[str, str],
    tokens: TokenSource | None,
    unknown: Collection[str] = (),
) -> PreparedCall:
    """Resolve ``$ref``s and build the request (``unknown``: see ``refs``). Raises
    ``ReferenceResolutionError``; a failing token fetch propagates (the caller treats it as transient)."""
    headers: dict[str, str] = {
        name: resolve_header(value, outputs, unknown) for name, value in spec.headers.items()
    }
    headers.update(secret_values)
    headers.update(
        {
            "Idempotency-Key": idempotency_key(ctx.saga_id, ctx.step_name, ctx.action, ctx.key_round),
            "X-Saga-Id": ctx.saga_id,
            "X-Saga-Step": ctx.step_name,
            "X-Saga-Action": ctx.action,
            "traceparent": traceparent(ctx.saga_id),
        }
    )
    sensitive = set(secret_values)
    if spec.auth == "oidc":
        if tokens is None:
            raise RuntimeError("auth 'oidc' needs a token source")
        headers["Authorization"] = "Bearer " + tokens.id_token(origin(spec.url))
        sensitive.add("Authorization")
    payload = resolve(spec.payload, outputs, unknown)
    body = None
    if payload is not None:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers["Content-Type"] = "application/json"
    return PreparedCall(
        method=spec.method,
        url=spec.url,
        headers=headers,
        body=body,
        timeout_seconds=spec.timeout_seconds,
        sensitive=frozenset(sensitive),
    )


def send(call: PreparedCall, http: HttpTransport) -> CallOutcome:
    """Make the HTTP call once and classify the answer. Never raises for network trouble."""
    try:
        answer = http.request(
            call.method,
            call.url,
            headers=call.headers,
            body=call.body,
            connect_timeout=min(CONNECT_TIMEOUT_SECONDS, call.timeout_seconds),
            read_timeout=call.timeout_seconds,
            max_body=MAX_OUTPUT_BYTES,
        )
    except EgressRefusedError as refused:
        # Before any connection; the same answer on every try (the executor reports it as invalid).
        return CallOutcome("business", None, None, f"not called: {refused.message}")
    except HttpCallError as error:
        if error.kind == "timeout":
            return CallOutcome("transient", None, None, f"no answer within {call.timeout_seconds:g} s")
        what = "connection failed" if error.kind == "connection" else "request failed"
        return CallOutcome("transient", None, None, f"{what}: {_short(error.message)}")
    return classify(answer.status, answer.body, answer.content_type, truncated=answer.truncated)


def classify(status: int, body: bytes, content_type: str = "", *, truncated: bool = False) -> CallOutcome:
    """``truncated``: ``body`` is only the beginning of a longer answer."""
    if 200 <= status < 300:
        if truncated or len(body) > MAX_OUTPUT_BYTES:
            size = f"over {MAX_OUTPUT_BYTES}" if truncated else str(len(body))
            return CallOutcome(
                "business",
                status,
                None,
                f"the response body is {size} bytes; outputs are limited to {MAX_OUTPUT_BYTES}",
            )
        return CallOutcome("success", status, _output(body), "")
    message = f"HTTP {status}" + (f": {_short(_text(body))}" if body else "")
    if 300 <= status < 400:
        return CallOutcome("business", status, None, message + " (redirects are not followed)")
    if status in TRANSIENT_STATUSES or status >= 500:
        return CallOutcome("transient", status, None, message)
    return CallOutcome("business", status, None, message)


def _output(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _text(body)


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "…"
