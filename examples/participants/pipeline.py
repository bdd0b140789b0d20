"""The request pipeline of one demo participant, framework-neutral: it takes the SDK's ``HttpRequest`` and
gives back its ``HttpResponse``, so a web layer (``app.py`` on aiohttp, ``asgi.py`` on FastAPI,
``functions.py`` on functions-framework) only converts with its ``saga_participant.adapters`` module and
routes. It blocks (the token check may fetch certificates, the barrier takes its store's lock, a HANG
waits): the async layers run it in a worker thread, Flask in its own request thread.

A business call goes through, in order:

1. the OIDC ID token (``Authorization: Bearer``) verified against the certificates of ``certs_url`` for
   the audience ``<this service's origin>`` (``tokens.IdTokenVerifier``: certificates and verified tokens
   are cached): 401 when missing or invalid, 503 when the certificates cannot be fetched;
2. the payment service only: the ``X-Api-Key`` header against the key it was started with: 403;
3. a JSON object body (400 otherwise) and an ``Idempotency-Key`` header (400 without one);
4. failure injection: a rule armed with ``POST /_control/next`` first (it overrides the payload), else the
   payload's ``simulate`` field; with ``"after_effect": true`` the effect of step 6 happens (and is
   remembered) before the injected answer is sent, as when a response is lost;
5. and 6. ``saga_participant``'s barrier (``Barrier.run``, its business effect inside the barrier's
   transaction): a repeat of a key already answered with a success or a business failure gets that first
   answer again, an execute after its step's compensation is refused (409), and otherwise the business
   effect (``services.decide``) happens and its answer is recorded.

``GET /_saga/effects?saga_id=ID`` (behind the same token and API key checks) lists the business effects
applied for a saga, in order, as ``saga certify`` reads them.

Injected results answer as in DTM: SUCCESS 200 (the call proceeds normally; with ``seconds``, that much
later: before its effect, or after it with ``"after_effect": true``), FAILURE 409, ONGOING 425,
ERROR 500, HANG = no answer until ``seconds`` (default: the service's ``hang_seconds``) have passed or
the service stops, then 503. ``"simulate"`` in a payload is a result name, ``"decline"`` (payment: 409
"card declined"), or ``{"result": ..., "times": n, "status": ..., "reason": ..., "seconds": ...}``, where
``times`` limits it to the first n attempts of the call's ``Idempotency-Key`` (transient failures that a
retry gets past).

Control endpoints (no authentication; the services listen on loopback; see ``control.py``):
``POST /_control/next`` ``{"result", "count"=1, "action"?, "status"?, "reason"?, "seconds"?,
"after_effect"?}``, ``GET /_control/calls`` (the list of calls seen), ``GET /_control/state``,
``GET /_control/journal`` (every business decision, kept with the state), ``POST /_control/reset``,
``GET /_control/health``. With a state directory (``ParticipantConfig.state_dir``), the barrier, the
resources and the journal survive a restart, even a SIGKILL (see ``state.py``). Secret header values (the API key) are never logged
nor recorded.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import saga_participant as sdk
from saga_participant import HttpRequest, HttpResponse, SagaCall, is_final

from examples.participants.control import control
from examples.participants.services import SERVICES, Decision, ServiceSpec, decide
from examples.participants.state import (
    Action,
    Answer,
    CallRecord,
    Injection,
    InjectionError,
    JournalEntry,
    Ledger,
    pair_of,
    parse_injection,
)
from examples.participants.tokens import IdTokenVerifier, TokenError

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
DEFAULT_HANG_SECONDS = 3600.0
API_KEY_HEADER = "X-Api-Key"
# The settings a participant process reads from its environment (``__main__``, ``functions.py``).
API_KEY_ENV = "PAYMENT_API_KEY"
CERTS_URL_ENV = "OIDC_CERTS_URL"
AUDIENCES_ENV = "PARTICIPANT_AUDIENCES"
HANG_SECONDS_ENV = "PARTICIPANT_HANG_SECONDS"
STATE_DIR_ENV = "PARTICIPANT_STATE_DIR"
CONTROL_PREFIX = "/_control/"
# Calls a participant on an event loop answers at once (each HANG holds one until it ends); on
# functions-framework, gunicorn's ``THREADS`` sets it (``server.functions_framework_env``).
MAX_CONCURRENT_CALLS = 64
# The methods a step may use on the business endpoints.
METHODS = ("POST", "PUT", "PATCH", "DELETE")

log = logging.getLogger("examples.participants")


@dataclass(frozen=True)
class ParticipantConfig:
    service: str
    # Accepted token audiences: the service's own origin (``http://127.0.0.1:9001``).
    audiences: tuple[str, ...]
    certs_url: str = GOOGLE_CERTS_URL
    api_key: str | None = field(default=None, repr=False)  # never shown
    hang_seconds: float = DEFAULT_HANG_SECONDS
    # Where the service keeps its state (``<state_dir>/<service>.sqlite3``, kept across restarts);
    # None = in memory.
    state_dir: str | None = None


def new_ledger(config: ParticipantConfig) -> Ledger:
    """The service's memory: in its state file under ``config.state_dir`` (opened as it was left), or in
    memory."""
    if config.state_dir is None:
        return Ledger()
    return Ledger.open(str(Path(config.state_dir) / f"{config.service}.sqlite3"))


def loopback_audiences(host: str, port: int) -> tuple[str, ...]:
    """The origins a caller may use for this service: the bound one, and its loopback alias."""
    origins = [f"http://{host}:{port}"]
    if host in ("127.0.0.1", "localhost"):
        alias = "localhost" if host == "127.0.0.1" else "127.0.0.1"
        origins.append(f"http://{alias}:{port}")
    return tuple(origins)


def respond(answer: Answer) -> HttpResponse:
    return HttpResponse.of(sdk.Answer(answer.status, answer.body))


def problem(status: int, error: str, message: str) -> Answer:
    return Answer(status, {"error": error, "message": message})


def _log(record: CallRecord) -> None:
    entry = {
        "severity": "INFO" if (record.status or 0) < 400 else "WARNING",
        "message": f"{record.service} {record.path} {record.action} -> {record.status} {record.outcome}",
        "logging.googleapis.com/labels": {"saga_id": record.saga_id or "", "step": record.step or ""},
        "effect": record.effect,
    }
    log.info(json.dumps(entry))


class Participant:
    """The request pipeline of one service (see the module docstring)."""

    def __init__(
        self,
        config: ParticipantConfig,
        ledger: Ledger,
        stopping: threading.Event | None = None,
        verifier: IdTokenVerifier | None = None,
    ) -> None:
        if config.service not in SERVICES:
            raise ValueError(f"unknown service {config.service!r}; one of {', '.join(SERVICES)}")
        self.spec: ServiceSpec = SERVICES[config.service]
        if self.spec.requires_api_key and not config.api_key:
            raise ValueError(
                f"the {config.service} service needs an API key to check {API_KEY_HEADER} against"
            )
        self.config = config
        self.ledger = ledger
        # Set when the service stops: a HANG answers at once then.
        self.stopping = stopping if stopping is not None else threading.Event()
        self.verifier = verifier or IdTokenVerifier(config.certs_url, config.audiences)
        self._threads = ThreadPoolExecutor(MAX_CONCURRENT_CALLS, thread_name_prefix=config.service)

    def serve(self, request: HttpRequest) -> HttpResponse:
        """Every URL of the service: the control endpoints, the effects and the two business endpoints
        (404 for any other path, 405 for a method the path does not take)."""
        if request.path.startswith(CONTROL_PREFIX):
            return respond(control(self, request.path[len(CONTROL_PREFIX) :], request))
        if request.path == sdk.EFFECTS_PATH:
            return self.effects(request) if request.method == "GET" else respond(_NOT_ALLOWED)
        action = self.spec.action_of(request.path)
        if action is None:
            return respond(problem(404, "NOT_FOUND", f"{self.spec.name} serves no {request.path}"))
        if request.method not in METHODS:
            return respond(_NOT_ALLOWED)
        return respond(self.handle(request, action))

    async def serve_async(self, request: HttpRequest) -> HttpResponse:
        """``serve`` from an event loop: the control endpoints at once (they never wait), anything else
        on one of this participant's own worker threads (not the loop's default executor, which a few
        HANGs would fill: it has CPUs + 4 threads)."""
        if request.path.startswith(CONTROL_PREFIX):
            return self.serve(request)
        return await asyncio.get_running_loop().run_in_executor(self._threads, self.serve, request)

    def handle(self, request: HttpRequest, action: Action) -> Answer:
        """One business call, recorded (with ``status`` None until it is answered) and logged."""
        headers = request.headers
        record = self.ledger.record(
            service=self.spec.name,
            method=request.method,
            path=request.path,
            action=action,
            saga_id=headers.get("X-Saga-Id"),
            step=headers.get("X-Saga-Step"),
            idempotency_key=headers.get("Idempotency-Key"),
        )
        answer = self._answer(request, action, record)
        record.status = answer.status
        _log(record)
        return answer

    def _answer(self, request: HttpRequest, action: Action, record: CallRecord) -> Answer:
        refused = self._check_caller(request, record)
        if refused is not None:
            return refused
        payload = self._read_payload(request, record)
        if isinstance(payload, Answer):
            return payload
        key = record.idempotency_key
        if not key:
            record.outcome = "bad request: no Idempotency-Key"
            return Answer(
                400, {"error": "INVALID_ARGUMENT", "message": "an Idempotency-Key header is required"}
            )
        return self._carry_out(record, action, key, payload)

    def _check_caller(self, request: HttpRequest, record: CallRecord) -> Answer | None:
        """The ID token, then (payment only) the API key: the refusal, or None to go on."""
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            record.outcome = "unauthenticated: no bearer token"
            return Answer(401, {"error": "UNAUTHENTICATED", "message": "an OIDC ID token is required"})
        try:
            claims = self.verifier.verify_blocking(authorization[7:].strip())
        except TokenError as error:
            record.outcome = (
                "unauthenticated: invalid token" if error.status == 401 else "certificates unavailable"
            )
            return Answer(error.status, {"error": "UNAUTHENTICATED", "message": error.message})
        record.caller = str(claims.get("email") or claims.get("sub") or "")

        if self.spec.requires_api_key:
            presented = request.headers.get(API_KEY_HEADER, "")
            expected = self.config.api_key or ""
            if not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
                record.outcome = "forbidden: API key missing or wrong"
                return Answer(
                    403, {"error": "PERMISSION_DENIED", "message": f"a valid {API_KEY_HEADER} is required"}
                )
        return None

    def _read_payload(self, request: HttpRequest, record: CallRecord) -> dict[str, Any] | Answer:
        """The JSON object body (an empty body or ``null`` is ``{}``), or the 400 answer."""
        try:
            payload = json.loads(request.body) if request.body.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            record.outcome = "bad request: body is not JSON"
            return Answer(400, {"error": "INVALID_ARGUMENT", "message": "the body must be JSON"})
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            record.outcome = "bad request: body is not an object"
            return Answer(400, {"error": "INVALID_ARGUMENT", "message": "the body must be a JSON object"})
        return payload

    def _carry_out(self, record: CallRecord, action: Action, key: str, payload: dict[str, Any]) -> Answer:
        """Failure injection (armed rule, else ``simulate``), then the replay, barrier and effect."""
        attempt = self.ledger.count_attempt(key)
        try:
            injection = self.ledger.switch.take(action)
            forced = injection is not None
            if injection is None:
                injection = self._payload_injection(payload.get("simulate"), attempt)
        except InjectionError as error:
            record.outcome = "bad request: simulate"
            return Answer(400, {"error": "INVALID_ARGUMENT", "message": f"simulate: {error}"})
        if injection is not None and injection.result != "SUCCESS":
            if injection.after_effect:
                # The business effect happens and is remembered, but the caller sees the injected answer
                # (a response lost on the way back); its retry gets the remembered one.
                self._decide(record, action, key, payload)
                done = record.outcome
                answer = self._inject(injection, record)
                record.outcome = f"{done}, then {record.outcome}"
                return answer
            answer = self._inject(injection, record)
            self._remember(record, action, key, answer)
            return answer
        if forced:
            payload = {k: v for k, v in payload.items() if k != "simulate"}
        # SUCCESS with ``seconds``: a slow call, slow before its effect or, with ``after_effect``, after it
        # (committed, the answer not yet sent).
        delay = injection.seconds if injection is not None and injection.seconds else 0.0
        after = injection is not None and injection.after_effect
        if delay and not after:
            self.stopping.wait(timeout=delay)
        answer = self._decide(record, action, key, payload)
        if delay and after:
            self.stopping.wait(timeout=delay)
        return answer

    def _decide(self, record: CallRecord, action: Action, key: str, payload: dict[str, Any]) -> Answer:
        """The ``saga_participant`` barrier around the business effect (``services.decide``): a replay,
        a null compensation, a refused late execute, or the effect, recorded with its answer. The effect
        runs inside the barrier's transaction: one atomic change."""
        ran: list[Decision] = []

        def effect(call: SagaCall) -> sdk.Answer:
            decision = decide(
                self.spec,
                self.ledger,
                action=action,
                pair=pair_of(key, record.saga_id, record.step, action),
                idempotency_key=key,
                saga_id=record.saga_id,
                step=record.step,
                payload=payload,
                connection=call.connection,
            )
            if is_final(decision.answer.status):  # what the barrier commits; a transient answer rolls back
                entry = JournalEntry(
                    0,
                    time.time(),
                    record.saga_id,
                    record.step,
                    action,
                    key,
                    decision.effect,
                    decision.outcome,
                    decision.resource_id,
                )
                self.ledger.book.journal(entry, call.connection)
            ran.append(decision)
            return sdk.Answer(decision.answer.status, decision.answer.body, effect=decision.effect)

        answer = self.ledger.barrier.run(self._saga_call(record, action, key), effect, transactional=True)
        if ran:
            record.effect, record.outcome = ran[0].effect, ran[0].outcome
        else:
            record.outcome = _barrier_outcome(action, answer)
        if record.outcome == REFUSED_LATE:  # journalled too: an execute that came after its compensation
            entry = JournalEntry(
                0, time.time(), record.saga_id, record.step, action, key, False, REFUSED_LATE, None
            )
            self.ledger.book.journal(entry, None)
        return Answer(answer.status, answer.body)

    def _remember(self, record: CallRecord, action: Action, key: str, answer: Answer) -> None:
        """Keep an injected business failure for its key, as a real refusal would be."""
        if is_final(answer.status):
            injected = sdk.Answer(answer.status, answer.body, effect=False)
            self.ledger.barrier.run(
                self._saga_call(record, action, key), lambda call: injected, transactional=True
            )

    @staticmethod
    def _saga_call(record: CallRecord, action: Action, key: str) -> SagaCall:
        """Saga and step from the headers; without them, the key's stem stands for the pair."""
        if record.saga_id and record.step:
            saga_id, step = record.saga_id, record.step
        else:
            saga_id, step = pair_of(key, None, None, action), "-"
        return SagaCall(saga_id=saga_id, step=step, action=action, idempotency_key=key, payload=None)

    def effects(self, request: HttpRequest) -> HttpResponse:
        """``GET /_saga/effects?saga_id=ID`` (the participant protocol's, read by ``saga certify``): the
        business effects applied for the saga, in order; behind the same checks as the business calls."""
        record = CallRecord(0, self.spec.name, "GET", request.path, "execute", None, None, None)
        refused = self._check_caller(request, record)
        if refused is not None:
            return respond(refused)
        saga_id = (request.query.get("saga_id") or "").strip()
        if not saga_id:
            return respond(problem(400, "INVALID_ARGUMENT", "the saga_id query parameter is required"))
        effects = [effect.to_json() for effect in self.ledger.barrier.effects(saga_id)]
        return respond(Answer(200, {"saga_id": saga_id, "effects": effects}))

    def _payload_injection(self, simulate: Any, attempt: int) -> Injection | None:
        if simulate is None:
            return None
        if isinstance(simulate, str) and simulate.lower() == "decline":
            if self.spec.name != "payment":
                raise InjectionError("'decline' is for the payment service")
            return Injection(result="FAILURE", reason="card declined")
        times = simulate.get("times") if isinstance(simulate, dict) else None
        if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
            raise InjectionError("times must be a positive integer")
        injection = parse_injection(simulate)
        if times is not None and attempt > times:
            return None
        return injection

    def _inject(self, injection: Injection, record: CallRecord) -> Answer:
        status = injection.answer_status()
        if injection.result == "HANG":
            seconds = self.config.hang_seconds if injection.seconds is None else injection.seconds
            record.outcome = f"injected HANG ({seconds:g}s)"
            self.stopping.wait(timeout=seconds)
            return Answer(status, {"error": "HANG", "message": injection.reason or f"hung for {seconds:g}s"})
        record.outcome = f"injected {injection.result}"
        if injection.result == "FAILURE" and injection.reason == "card declined":
            record.outcome = "declined"
            return Answer(status, {"error": "CARD_DECLINED", "message": "card declined"})
        message = injection.reason or {
            "FAILURE": "injected business failure",
            "ONGOING": "still processing, retry later",
            "ERROR": "injected server error",
        }.get(injection.result, "injected")
        return Answer(status, {"error": injection.result, "message": message})


REFUSED_LATE = "refused: compensated earlier"


def _barrier_outcome(action: Action, answer: sdk.Answer) -> str:
    body = answer.body if isinstance(answer.body, dict) else {}
    if body.get("error") == "ALREADY_COMPENSATED":
        return REFUSED_LATE
    if body.get("error") == "IN_PROGRESS":
        return "in progress: another attempt"
    if action == "compensate" and body.get("status") == "nothing_to_undo":
        return "null compensation"
    return "replayed first answer"


_NOT_ALLOWED = problem(405, "METHOD_NOT_ALLOWED", "this method is not allowed here")


def configure_logging() -> None:
    """One JSON line per call on stdout (idempotent: a second call adds no second handler)."""
    if any(getattr(handler, "_demo_participant", False) for handler in log.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._demo_participant = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
