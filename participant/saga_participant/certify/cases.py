"""The participant protocol's hard cases, each a function of a fresh ``Run`` (its own saga id) that
returns the broken rule's explanation, or None when the participant kept the rule.

What each case reads from ``GET <origin>/_saga/effects?saga_id=ID``: the business effects the
participant really applied, in order, replays and no-ops left out."""

from __future__ import annotations

import secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from threading import Barrier
from typing import Any, Literal

from saga_participant.certify.client import Exchange, Tokens, origin, send, tampered

Action = Literal["execute", "compensate"]
TokenChoice = Literal["good", "none", "tampered", "wrong-audience"]
TRANSIENT = frozenset({408, 425, 429})
MAX_RETRY_WAIT_SECONDS = 5.0


class Skip(Exception):
    """The case cannot run with what was given (the reason says what is missing)."""


@dataclass(frozen=True)
class Target:
    execute_url: str
    compensate_url: str
    payload: Any = field(default_factory=dict)
    failing_payload: Any = None
    compensate_payload: Any = None  # None: the execute's output (what a $ref usually passes on)
    headers: Mapping[str, str] = field(default_factory=dict)  # extra headers; values never reported
    step: str = "certify"
    concurrency: int = 20
    timeout: float = 30.0
    check_effects: bool = True


def is_final(status: int | None) -> bool:
    return status is not None and status < 500 and status not in TRANSIENT


def is_business_failure(status: int | None) -> bool:
    return is_final(status) and status is not None and status >= 400


def ok(exchange: Exchange) -> bool:
    return exchange.status is not None and 200 <= exchange.status < 300


def said(exchange: Exchange) -> str:
    if exchange.status is None:
        return f"no answer ({exchange.error})"
    return f"HTTP {exchange.status}"


class Run:
    """One case's conversation with the participant, recorded."""

    def __init__(self, target: Target, tokens: Tokens, case: str) -> None:
        self.target = target
        self.tokens = tokens
        self.saga_id = f"certify-{case}-{secrets.token_hex(4)}"
        self.exchanges: list[Exchange] = []

    def call(
        self, action: Action, payload: Any, *, token: TokenChoice = "good", record: bool = True
    ) -> Exchange:
        url = self.target.execute_url if action == "execute" else self.target.compensate_url
        headers = {
            **self.target.headers,
            "Idempotency-Key": f"{self.saga_id}:{self.target.step}:{action}",
            "X-Saga-Id": self.saga_id,
            "X-Saga-Step": self.target.step,
            "X-Saga-Action": action,
            "traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01",
        }
        bearer = self._token(token)
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        exchange = send(
            "POST",
            url,
            headers=headers,
            body=payload,
            secret=frozenset(self.target.headers),
            timeout=self.target.timeout,
        )
        if record:
            self.exchanges.append(exchange)
        return exchange

    def _token(self, choice: TokenChoice) -> str | None:
        if choice == "none":
            return None
        if choice == "tampered":
            return tampered(self.tokens.good())
        if choice == "wrong-audience":
            return self.tokens.wrong_audience()
        return self.tokens.good()

    def until_final(self, action: Action, payload: Any, first: Exchange) -> Exchange:
        """Call again (same key) while the answer is transient, honouring ``Retry-After``, for up to
        ten tries, as the orchestrator would."""
        exchange = first
        for _ in range(10):
            if is_final(exchange.status):
                break
            wait = exchange.response_headers.get("Retry-After", "1")
            time.sleep(min(float(wait) if wait.isdigit() else 1.0, MAX_RETRY_WAIT_SECONDS))
            exchange = self.call(action, payload)
        return exchange

    def effects(self) -> list[tuple[str, str]] | str:
        """``(step, action)`` of each effect applied for this saga, or why they cannot be read."""
        query = urllib.parse.urlencode({"saga_id": self.saga_id})
        url = f"{origin(self.target.execute_url)}/_saga/effects?{query}"
        headers = {**self.target.headers, "Authorization": f"Bearer {self.tokens.good()}"}
        exchange = send("GET", url, headers=headers, secret=frozenset(self.target.headers))
        self.exchanges.append(exchange)
        body = exchange.response
        if exchange.status != 200 or not isinstance(body, dict) or not isinstance(body.get("effects"), list):
            return f"cannot read the effects ({said(exchange)} from GET {url})"
        found = [
            (str(e.get("step")), str(e.get("action")))
            for e in body["effects"]
            if isinstance(e, dict) and e.get("step") == self.target.step
        ]
        return found

    def expect_effects(self, *expected: Action) -> str | None:
        if not self.target.check_effects:
            return None
        found = self.effects()
        if isinstance(found, str):
            return found
        actions = [action for _, action in found]
        if actions != list(expected):
            want = ", ".join(expected) or "none"
            return f"the participant applied [{', '.join(actions) or 'nothing'}]; expected [{want}]"
        return None

    def compensate_payload(self, executed: Exchange | None) -> Any:
        if self.target.compensate_payload is not None:
            return self.target.compensate_payload
        if executed is not None and isinstance(executed.response, dict):
            return executed.response
        return {}


def _same(a: Exchange, b: Exchange) -> bool:
    return a.status == b.status and a.response == b.response


def repeated_execute(run: Run) -> str | None:
    first = run.call("execute", run.target.payload)
    if not ok(first):
        return f"the execute with the given payload must succeed; it answered {said(first)}"
    again = run.call("execute", run.target.payload)
    if not _same(first, again):
        return f"the repeat answered {said(again)} with another body; a repeated key must get the same answer"
    return run.expect_effects("execute")


def concurrent_duplicates(run: Run) -> str | None:
    count = run.target.concurrency
    start = Barrier(count)

    def deliver(_: int) -> Exchange:
        start.wait()
        return run.call("execute", run.target.payload, record=False)

    with ThreadPoolExecutor(max_workers=count) as pool:
        answers = list(pool.map(deliver, range(count)))
    run.exchanges.extend(answers)
    # A transient answer (425 while another delivery works, 5xx, no answer) is allowed: it is retried.
    finals = [a for a in answers if is_final(a.status)]
    settled = finals[0] if finals else run.until_final("execute", run.target.payload, answers[0])
    if not ok(settled):
        return f"the execute with the given payload must succeed; it answered {said(settled)}"
    if any(not _same(settled, other) for other in finals):
        return f"{count} concurrent deliveries of one key got different final answers"
    return run.expect_effects("execute")


def compensate_before_execute(run: Run) -> str | None:
    answer = run.call("compensate", run.compensate_payload(None))
    if not ok(answer):
        return f"a compensate with no execute before it must succeed as a no-op; it answered {said(answer)}"
    return run.expect_effects()


def execute_after_compensate(run: Run) -> str | None:
    compensated = run.call("compensate", run.compensate_payload(None))
    if not ok(compensated):
        return f"the compensate (before any execute) answered {said(compensated)}; it must succeed as a no-op"
    late = run.call("execute", run.target.payload)
    if not is_business_failure(late.status):
        return (
            f"the execute after its compensation answered {said(late)}; it must be refused with a 4xx "
            "(not 408/425/429) and never applied"
        )
    return run.expect_effects()


def repeated_compensate(run: Run) -> str | None:
    executed = run.call("execute", run.target.payload)
    if not ok(executed):
        return f"the execute with the given payload must succeed; it answered {said(executed)}"
    payload = run.compensate_payload(executed)
    first = run.call("compensate", payload)
    if not ok(first):
        return f"the compensate after a successful execute answered {said(first)}; it must succeed"
    again = run.call("compensate", payload)
    if not _same(first, again):
        return (
            f"the repeated compensate answered {said(again)} with another body; it must get the same answer"
        )
    return run.expect_effects("execute", "compensate")


def business_failure(run: Run) -> str | None:
    if run.target.failing_payload is None:
        raise Skip("no --failing-payload given")
    first = run.call("execute", run.target.failing_payload)
    if not is_business_failure(first.status):
        return (
            f"the failing payload got {said(first)}; a business failure must answer 4xx (not 5xx, 408, 425, "
            "429), or the orchestrator retries it instead of compensating"
        )
    again = run.call("execute", run.target.failing_payload)
    if not _same(first, again):
        return f"the repeat of the refused execute answered {said(again)}; a refusal is kept for its key"
    return run.expect_effects()


def _refuses(token: TokenChoice, what: str) -> Callable[[Run], str | None]:
    def case(run: Run) -> str | None:
        if token == "wrong-audience" and run.tokens.wrong_audience() is None:
            raise Skip("a token for another audience needs a metadata server (not --token-file)")
        answer = run.call("execute", run.target.payload, token=token)
        if answer.status not in (401, 403):
            return f"an execute with {what} answered {said(answer)}; it must be refused with 401 or 403"
        return run.expect_effects()

    return case


@dataclass(frozen=True)
class Case:
    name: str
    rule: str
    check: Callable[[Run], str | None]


CASES: tuple[Case, ...] = (
    Case(
        "repeated-execute",
        "a repeated execute (same Idempotency-Key) applies once and answers the same",
        repeated_execute,
    ),
    Case(
        "concurrent-duplicates",
        "concurrent duplicate deliveries of one execute apply it once",
        concurrent_duplicates,
    ),
    Case(
        "compensate-before-execute",
        "a compensate that arrives before its execute is a no-op",
        compensate_before_execute,
    ),
    Case(
        "execute-after-compensate",
        "an execute that arrives after its compensation is refused, never applied",
        execute_after_compensate,
    ),
    Case(
        "repeated-compensate",
        "a repeated compensate (same Idempotency-Key) undoes once and answers the same",
        repeated_compensate,
    ),
    Case(
        "business-failure-4xx",
        "a business failure answers 4xx (not 5xx), the same again for its key",
        business_failure,
    ),
    Case("missing-token", "a call without an ID token is refused (401/403)", _refuses("none", "no token")),
    Case(
        "tampered-token",
        "a call whose token signature does not verify is refused (401/403)",
        _refuses("tampered", "a token whose signature does not verify"),
    ),
    Case(
        "wrong-audience",
        "a call with a token for another audience is refused (401/403)",
        _refuses("wrong-audience", "a token for another audience"),
    ),
)
