"""The HTTP surface of one demo participant (aiohttp).

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

Injected results answer as in DTM: SUCCESS 200 (the call proceeds normally), FAILURE 409, ONGOING 425,
ERROR 500, HANG = no answer until ``seconds`` (default: the service's ``hang_seconds``) have passed or
the service stops, then 503. ``"simulate"`` in a payload is a result name, ``"decline"`` (payment: 409
"card declined"), or ``{"result": ..., "times": n, "status": ..., "reason": ..., "seconds": ...}``, where
``times`` limits it to the first n attempts of the call's ``Idempotency-Key`` (transient failures that a
retry gets past).

Control endpoints (no authentication; the services listen on loopback): ``POST /_control/next``
``{"result", "count"=1, "action"?, "status"?, "reason"?, "seconds"?, "after_effect"?}``, ``GET /_control/calls`` (the
list of calls seen), ``GET /_control/state``, ``POST /_control/reset``, ``GET /_control/health``.
Secret header values (the API key) are never logged nor recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import saga_participant as sdk
from aiohttp import web
from saga_participant import SagaCall, is_final

from examples.participants.services import SERVICES, Decision, ServiceSpec, decide
from examples.participants.state import (
    ACTIONS,
    Action,
    Answer,
    CallRecord,
    Injection,
    InjectionError,
    Ledger,
    pair_of,
    parse_injection,
)
from examples.participants.tokens import IdTokenVerifier, TokenError

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
DEFAULT_HANG_SECONDS = 3600.0
API_KEY_HEADER = "X-Api-Key"

log = logging.getLogger("examples.participants")


@dataclass(frozen=True)
class ParticipantConfig:
    service: str
    # Accepted token audiences: the service's own origin (``http://127.0.0.1:9001``).
    audiences: tuple[str, ...]
    certs_url: str = GOOGLE_CERTS_URL
    api_key: str | None = field(default=None, repr=False)  # never shown
    hang_seconds: float = DEFAULT_HANG_SECONDS


def loopback_audiences(host: str, port: int) -> tuple[str, ...]:
    """The origins a caller may use for this service: the bound one, and its loopback alias."""
    origins = [f"http://{host}:{port}"]
    if host in ("127.0.0.1", "localhost"):
        alias = "localhost" if host == "127.0.0.1" else "127.0.0.1"
        origins.append(f"http://{alias}:{port}")
    return tuple(origins)


LEDGER_KEY = web.AppKey("ledger", Ledger)
CONFIG_KEY = web.AppKey("config", ParticipantConfig)
STOPPING_KEY = web.AppKey("stopping", asyncio.Event)


def _json(status: int, body: Any) -> web.Response:
    return web.json_response(body, status=status)


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
        stopping: asyncio.Event,
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
        self.stopping = stopping
        self.verifier = verifier or IdTokenVerifier(config.certs_url, config.audiences)

    async def handle(self, request: web.Request) -> web.Response:
        action = self.spec.action_of(request.path)
        assert action is not None
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
        try:
            answer = await self._answer(request, action, record)
        except asyncio.CancelledError:
            record.outcome = record.outcome or "cancelled"
            raise
        record.status = answer.status
        _log(record)
        return _json(answer.status, answer.body)

    async def _answer(self, request: web.Request, action: Action, record: CallRecord) -> Answer:
        refused = await self._check_caller(request, record)
        if refused is not None:
            return refused
        payload = await self._read_payload(request, record)
        if isinstance(payload, Answer):
            return payload
        key = record.idempotency_key
        if not key:
            record.outcome = "bad request: no Idempotency-Key"
            return Answer(
                400, {"error": "INVALID_ARGUMENT", "message": "an Idempotency-Key header is required"}
            )
        return await self._carry_out(record, action, key, payload)

    async def _check_caller(self, request: web.Request, record: CallRecord) -> Answer | None:
        """The ID token, then (payment only) the API key: the refusal, or None to go on."""
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            record.outcome = "unauthenticated: no bearer token"
            return Answer(401, {"error": "UNAUTHENTICATED", "message": "an OIDC ID token is required"})
        try:
            claims = await self.verifier.verify(authorization[7:].strip())
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

    async def _read_payload(self, request: web.Request, record: CallRecord) -> dict[str, Any] | Answer:
        """The JSON object body (an empty body or ``null`` is ``{}``), or the 400 answer."""
        try:
            body = await request.read()
            payload = json.loads(body) if body.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            record.outcome = "bad request: body is not JSON"
            return Answer(400, {"error": "INVALID_ARGUMENT", "message": "the body must be JSON"})
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            record.outcome = "bad request: body is not an object"
            return Answer(400, {"error": "INVALID_ARGUMENT", "message": "the body must be a JSON object"})
        return payload

    async def _carry_out(
        self, record: CallRecord, action: Action, key: str, payload: dict[str, Any]
    ) -> Answer:
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
                answer = await self._inject(injection, record)
                record.outcome = f"{done}, then {record.outcome}"
                return answer
            answer = await self._inject(injection, record)
            self._remember(record, action, key, answer)
            return answer
        if forced:
            payload = {k: v for k, v in payload.items() if k != "simulate"}
        return self._decide(record, action, key, payload)

    def _decide(self, record: CallRecord, action: Action, key: str, payload: dict[str, Any]) -> Answer:
        """The ``saga_participant`` barrier around the business effect (``services.decide``): a replay,
        a null compensation, a refused late execute, or the effect, recorded with its answer. No await
        in here, and the effect runs inside the barrier's transaction: one atomic change."""
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
            )
            ran.append(decision)
            return sdk.Answer(decision.answer.status, decision.answer.body, effect=decision.effect)

        answer = self.ledger.barrier.run(self._saga_call(record, action, key), effect, transactional=True)
        if ran:
            record.effect, record.outcome = ran[0].effect, ran[0].outcome
        else:
            record.outcome = _barrier_outcome(action, answer)
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

    async def effects(self, request: web.Request) -> web.Response:
        """``GET /_saga/effects?saga_id=ID`` (the participant protocol's, read by ``saga certify``): the
        business effects applied for the saga, in order; behind the same checks as the business calls."""
        record = CallRecord(0, self.spec.name, "GET", request.path, "execute", None, None, None)
        refused = await self._check_caller(request, record)
        if refused is not None:
            return _json(refused.status, refused.body)
        saga_id = request.query.get("saga_id", "").strip()
        if not saga_id:
            return _json(
                400, {"error": "INVALID_ARGUMENT", "message": "the saga_id query parameter is required"}
            )
        effects = [effect.to_json() for effect in self.ledger.barrier.effects(saga_id)]
        return _json(200, {"saga_id": saga_id, "effects": effects})

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

    async def _inject(self, injection: Injection, record: CallRecord) -> Answer:
        status = injection.answer_status()
        if injection.result == "HANG":
            seconds = self.config.hang_seconds if injection.seconds is None else injection.seconds
            record.outcome = f"injected HANG ({seconds:g}s)"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
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


def _barrier_outcome(action: Action, answer: sdk.Answer) -> str:
    body = answer.body if isinstance(answer.body, dict) else {}
    if body.get("error") == "ALREADY_COMPENSATED":
        return "refused: compensated earlier"
    if body.get("error") == "IN_PROGRESS":
        return "in progress: another attempt"
    if action == "compensate" and body.get("status") == "nothing_to_undo":
        return "null compensation"
    return "replayed first answer"


PARTICIPANT_KEY = web.AppKey("participant", Participant)


async def _on_shutdown(app: web.Application) -> None:
    app[STOPPING_KEY].set()


async def _on_cleanup(app: web.Application) -> None:
    await app[PARTICIPANT_KEY].verifier.close()


async def _control_next(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _json(400, {"error": "INVALID_ARGUMENT", "message": "the body must be JSON"})
    if not isinstance(body, dict):
        return _json(400, {"error": "INVALID_ARGUMENT", "message": "the body must be a JSON object"})
    ledger = request.app[LEDGER_KEY]
    count = body.get("count", 1)
    action = body.get("action")
    try:
        if not isinstance(count, int) or isinstance(count, bool):
            raise InjectionError("count must be an integer")
        if action is not None and action not in ACTIONS:
            raise InjectionError("action must be 'execute' or 'compensate'")
        ledger.switch.arm(parse_injection(body), count, action)
    except InjectionError as error:
        return _json(400, {"error": "INVALID_ARGUMENT", "message": str(error)})
    return _json(200, {"armed": ledger.switch.pending()})


async def _control_calls(request: web.Request) -> web.Response:
    return _json(200, [record.to_dict() for record in request.app[LEDGER_KEY].calls])


async def _control_state(request: web.Request) -> web.Response:
    return _json(200, {"service": request.app[CONFIG_KEY].service, **request.app[LEDGER_KEY].snapshot()})


async def _control_reset(request: web.Request) -> web.Response:
    request.app[LEDGER_KEY].reset()
    return _json(200, {"reset": True})


async def _control_health(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    return _json(200, {"service": config.service, "audiences": list(config.audiences)})


def create_app(config: ParticipantConfig, ledger: Ledger | None = None) -> web.Application:
    """One participant service. ``ledger`` may be shared with a test to look at the state directly."""
    ledger = ledger if ledger is not None else Ledger()
    stopping = asyncio.Event()
    participant = Participant(config, ledger, stopping)
    app = web.Application()
    app[LEDGER_KEY] = ledger
    app[CONFIG_KEY] = config
    app[STOPPING_KEY] = stopping
    app[PARTICIPANT_KEY] = participant
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    app.router.add_post("/_control/next", _control_next)
    app.router.add_get("/_control/calls", _control_calls)
    app.router.add_get("/_control/state", _control_state)
    app.router.add_post("/_control/reset", _control_reset)
    app.router.add_get("/_control/health", _control_health)
    app.router.add_get(sdk.EFFECTS_PATH, participant.effects)
    for path in (participant.spec.execute_path, participant.spec.compensate_path):
        # Steps may choose their method; the participant accepts the usual ones on its endpoints.
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            app.router.add_route(method, path, participant.handle)
    return app


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_HANG_SECONDS",
    "GOOGLE_CERTS_URL",
    "ParticipantConfig",
    "create_app",
    "is_final",
    "loopback_audiences",
]
