"""The framework-neutral participant: one kind of saga step, its execute and compensate handlers behind
the token check, the protocol's headers and the barrier. Adapters turn their framework's request into an
``HttpRequest`` and the ``HttpResponse`` back; nothing here imports a web framework.

A call is answered, in order:

1. 401/403 (``TokenError``) unless the OIDC token verifies (when ``auth`` is given); 503 when the
   certificates cannot be fetched (the orchestrator retries);
2. 400 for a body that is not JSON or missing ``Idempotency-Key`` / ``X-Saga-Id`` / ``X-Saga-Step`` (all
   faults named at once);
3. the barrier (``barrier.py``): a replay, a refusal, a null compensation, 425 while another delivery
   works, or the handler's answer;
4. 500 when the handler raises (nothing recorded: the retry decides again).

``GET /_saga/effects?saga_id=ID`` (when ``effects_endpoint`` is on, behind the same token check) answers
``{"effects": [{"step", "action", "idempotency_key"}]}``: the business effects applied, in order, no-ops
and replays left out. ``saga_participant.certify`` reads it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from saga_participant.auth import TokenError, TokenPolicy, TokenVerifier
from saga_participant.barrier import DEFAULT_LEASE_SECONDS, DEFAULT_SCOPE, Barrier, BarrierStore
from saga_participant.protocol import (
    AUTHORIZATION,
    Action,
    Answer,
    CallError,
    SagaCall,
    read_call,
)

EFFECTS_PATH = "/_saga/effects"
log = logging.getLogger("saga_participant")

AnyHandler = Callable[[SagaCall], "Answer | Awaitable[Answer]"]
H = TypeVar("H", bound=AnyHandler)


@dataclass(frozen=True)
class HttpRequest:
    """``headers`` must look names up case-insensitively (every framework's headers object does)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, answer: Answer) -> HttpResponse:
        body = b"" if answer.body is None else json.dumps(answer.body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", **answer.headers}
        return cls(answer.status, body, headers)


def _problem(status: int, error: str, message: str) -> Answer:
    return Answer(status, {"error": error, "message": message}, effect=False)


class Participant:
    """``auth``: a ``TokenPolicy`` or ``TokenVerifier`` (None: no token check, for steps with ``auth:
    none`` behind other protection). ``transactional``: handlers run inside the store's transaction and
    write through ``call.connection`` (sync handlers only). ``scope`` separates participants that share a
    store. ``run_orphan_compensations``: see ``Barrier``."""

    def __init__(
        self,
        *,
        auth: TokenPolicy | TokenVerifier | None,
        store: BarrierStore | None = None,
        scope: str = DEFAULT_SCOPE,
        transactional: bool = False,
        effects_endpoint: bool = False,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        run_orphan_compensations: bool = False,
    ) -> None:
        if store is None:
            from saga_participant.stores.sqlite import SQLiteStore

            store = SQLiteStore()
        self.verifier = TokenVerifier(auth) if isinstance(auth, TokenPolicy) else auth
        self.barrier = Barrier(
            store, scope=scope, lease_seconds=lease_seconds, run_orphan_compensations=run_orphan_compensations
        )
        self.transactional = transactional
        self.effects_endpoint = effects_endpoint
        self._handlers: dict[Action, AnyHandler] = {}

    def execute(self, handler: H) -> H:
        """Register (decorate) the execute handler: ``(SagaCall) -> Answer`` (sync or async)."""
        self._handlers["execute"] = handler
        return handler

    def compensate(self, handler: H) -> H:
        """Register (decorate) the compensate handler; it runs only after a successful execute."""
        self._handlers["compensate"] = handler
        return handler

    def handle(self, request: HttpRequest, action: Action | None = None) -> HttpResponse:
        """Answer one call (blocking; sync handlers only). ``action``: the endpoint's own action, else
        ``X-Saga-Action`` decides."""
        call = self._admit(request, action)
        if isinstance(call, Answer):
            return HttpResponse.of(call)
        handler = self._handler(call.action)
        if inspect.iscoroutinefunction(handler):
            raise TypeError("an async handler needs handle_async (an async framework adapter)")
        return HttpResponse.of(self._logged(call, lambda: self._run_sync(call, handler)))

    async def handle_async(self, request: HttpRequest, action: Action | None = None) -> HttpResponse:
        """Answer one call from an event loop: store and certificate I/O run in worker threads."""
        call = await asyncio.to_thread(self._admit, request, action)
        if isinstance(call, Answer):
            return HttpResponse.of(call)
        handler = self._handler(call.action)
        if not inspect.iscoroutinefunction(handler):
            answer = await asyncio.to_thread(self._logged, call, lambda: self._run_sync(call, handler))
            return HttpResponse.of(answer)
        if self.transactional:
            raise TypeError("transactional handlers must be sync (they run inside the store's transaction)")
        early = await asyncio.to_thread(self.barrier.begin, call)
        if early is not None:
            return HttpResponse.of(self._logged(call, lambda: early))
        try:
            answer = await handler(call)
        except Exception:
            await asyncio.to_thread(self.barrier.release, call)
            log.exception("the %s handler failed for %s", call.action, call.idempotency_key)
            return HttpResponse.of(_problem(500, "INTERNAL", "the handler failed; retry"))
        finished = await asyncio.to_thread(self.barrier.finish, call, answer)
        return HttpResponse.of(self._logged(call, lambda: finished))

    def effects(self, request: HttpRequest) -> HttpResponse:
        """``GET /_saga/effects?saga_id=ID`` (404 unless ``effects_endpoint``)."""
        if not self.effects_endpoint:
            return HttpResponse.of(_problem(404, "NOT_FOUND", "the effects endpoint is not enabled"))
        refused = self._check_token(request)
        if refused is not None:
            return HttpResponse.of(refused)
        saga_id = (request.query.get("saga_id") or "").strip()
        if not saga_id:
            return HttpResponse.of(
                _problem(400, "INVALID_ARGUMENT", "the saga_id query parameter is required")
            )
        effects = [effect.to_json() for effect in self.barrier.effects(saga_id)]
        return HttpResponse.of(Answer(200, {"saga_id": saga_id, "effects": effects}))

    async def effects_async(self, request: HttpRequest) -> HttpResponse:
        return await asyncio.to_thread(self.effects, request)

    def _handler(self, action: Action) -> AnyHandler:
        handler = self._handlers.get(action)
        if handler is None:
            raise LookupError(f"no {action} handler is registered")
        return handler

    def _check_token(self, request: HttpRequest) -> Answer | None:
        caller = self._caller(request)
        return caller if isinstance(caller, Answer) else None

    def _caller(self, request: HttpRequest) -> str | Answer | None:
        """The verified caller's email, None without a token check, or the refusal."""
        if self.verifier is None:
            return None
        try:
            claims = self.verifier.verify_header(request.headers.get(AUTHORIZATION))
        except TokenError as error:
            code = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}.get(error.status, "UNAVAILABLE")
            return _problem(error.status, code, error.message)
        return str(claims.get("email") or claims.get("sub") or "")

    def _admit(self, request: HttpRequest, action: Action | None) -> SagaCall | Answer:
        """The verified, parsed call, or the answer that refuses it."""
        caller = self._caller(request)
        if isinstance(caller, Answer):
            return caller
        try:
            payload = json.loads(request.body) if request.body.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _problem(400, "INVALID_ARGUMENT", "the body must be JSON")
        try:
            return read_call(request.headers, payload, action=action, caller=caller)
        except CallError as error:
            return _problem(400, "INVALID_ARGUMENT", str(error))

    def _run_sync(self, call: SagaCall, handler: AnyHandler) -> Answer:
        def run(current: SagaCall) -> Answer:
            answer = handler(current)
            if not isinstance(answer, Answer):
                raise TypeError(
                    f"the {call.action} handler must return an Answer, not {type(answer).__name__}"
                )
            return answer

        try:
            return self.barrier.run(call, run, transactional=self.transactional)
        except Exception:
            log.exception("the %s handler failed for %s", call.action, call.idempotency_key)
            return _problem(500, "INTERNAL", "the handler failed; retry")

    def _logged(self, call: SagaCall, produce: Callable[[], Answer]) -> Answer:
        answer = produce()
        entry: dict[str, Any] = {
            "severity": "INFO" if answer.status < 400 else "WARNING",
            "message": f"{call.action} {call.step} -> {answer.status}",
            "logging.googleapis.com/labels": {"saga_id": call.saga_id, "step": call.step},
            "idempotency_key": call.idempotency_key,
        }
        if call.trace_id:
            entry["logging.googleapis.com/trace"] = call.trace_id
        log.info(json.dumps(entry))
        return answer
