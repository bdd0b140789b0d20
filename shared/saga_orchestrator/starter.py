"""What the start_saga function does with one Eventarc ``messagePublished`` event (framework-free).

Delivery is at least once. A request is started at most once: its saga id (given, or derived from the
Pub/Sub message id) is claimed in Cloud Storage before the execution is created, and a claim that records
an execution means "already started" (``saga_orchestrator.starts``; no Executions list call). While
another delivery of the same saga holds the claim without having recorded its execution,
``StartInProgressError`` propagates, so this event is redelivered and then finds the execution. An
invalid request is answered with a ``rejected`` result on ``saga-results`` and then acknowledged (never
redelivered); any other failure (Workflows, Cloud Storage or Pub/Sub unavailable) propagates so the
event is redelivered.

Every message gets exactly one answer. Decoding and validation are total (``validation``); should they
still raise something else, that is a defect, and the message is rejected naming it (logged as an
error) rather than redelivered for a day. The saga id of a rejection is the request's when it is a valid
saga id, else the one derived from the Pub/Sub message id; its metadata is echoed only when it is an
object of JSON text.
"""

from __future__ import annotations

import base64
import binascii
import json
import traceback
from dataclasses import dataclass, field
from typing import Any, Literal

from saga_orchestrator.checks import json_problems, readable
from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.events import encode_result, event_source
from saga_orchestrator.logging import get_logger, log_context, trace_name
from saga_orchestrator.model import SagaRequest, derive_saga_id, is_saga_id
from saga_orchestrator.ports import Publisher
from saga_orchestrator.result import rejected_result
from saga_orchestrator.settings import Settings
from saga_orchestrator.starts import SagaStarts, StartInProgressError
from saga_orchestrator.times import normalize_time, utc_now_iso
from saga_orchestrator.tracing import trace_id
from saga_orchestrator.validation import decode_request, validate_request

log = get_logger("saga_orchestrator.starter")


@dataclass(frozen=True)
class RequestMessage:
    message_id: str
    publish_time: str | None
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StartResult:
    outcome: Literal["started", "duplicate", "rejected"]
    saga_id: str
    execution_name: str | None = None
    errors: tuple[FieldError, ...] = ()
    result_message_id: str | None = None


def decode_event(event_id: str | None, data: Any) -> RequestMessage:
    """The ``data`` of a ``google.cloud.pubsub.topic.v1.messagePublished`` CloudEvent → the message.

    Raises ``InvalidRequestError`` for a malformed envelope or data that is not base64.
    """
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError:
            data = None
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise InvalidRequestError([FieldError("message", "the event data has no Pub/Sub message")])
    message = data["message"]
    message_id = message.get("messageId") or message.get("message_id") or event_id
    if not isinstance(message_id, str) or not message_id or json_problems(message_id):
        raise InvalidRequestError([FieldError("message.messageId", "is missing")])
    publish_time = message.get("publishTime") or message.get("publish_time")
    if json_problems(publish_time):
        publish_time = None
    attributes = message.get("attributes") or {}
    raw = message.get("data")
    if raw is None or raw == "":
        raise InvalidRequestError([FieldError("", "the message has no data (expected a JSON saga request)")])
    if not isinstance(raw, str):
        raise InvalidRequestError([FieldError("", "the message data must be a base64 string")])
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError([FieldError("", "the message data is not valid base64")]) from None
    return RequestMessage(
        message_id=message_id,
        publish_time=normalize_time(publish_time) if isinstance(publish_time, str) else None,
        data=decoded,
        attributes={str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {},
    )


class SagaStarter:
    def __init__(self, settings: Settings, *, executions: SagaStarts, publisher: Publisher) -> None:
        self.settings = settings
        self._executions = executions
        self._publisher = publisher

    def handle_event(self, event_id: str | None, data: Any) -> StartResult:
        fallback = event_id if isinstance(event_id, str) and event_id else "unknown"
        try:
            message = decode_event(event_id, data)
        except InvalidRequestError as error:
            return self._reject(derive_saga_id(fallback), error.errors, fallback, None)
        except Exception as error:  # a defect: answer it rather than have the event redelivered
            return self._reject(derive_saga_id(fallback), [_defect(error)], fallback, None)
        return self.handle_message(message)

    def handle_message(self, message: RequestMessage) -> StartResult:
        raw: Any = None
        try:
            raw = decode_request(message.data)
            request = validate_request(
                raw, self.settings, message_id=message.message_id, requested_at=message.publish_time
            )
        except InvalidRequestError as error:
            return self._reject_request(raw, error.errors, message.message_id)
        except Exception as error:  # a defect: answer it rather than have the event redelivered
            return self._reject_request(raw, [_defect(error)], message.message_id)
        return self._start(request)

    def _start(self, request: SagaRequest) -> StartResult:
        """At most one execution per saga id: one that was started already makes the request a duplicate."""
        trace = trace_name(self.settings.project_id, trace_id(request.saga_id))
        with log_context(saga_id=request.saga_id, trace=trace):
            try:
                started = self._executions.start(request)
            except StartInProgressError as busy:
                log.warning(
                    "another delivery is starting this saga; this one will be redelivered",
                    claimed_at=busy.claimed_at,
                )
                raise
            if not started.created:
                log.info("duplicate request: the saga was already started", execution=started.execution_name)
                return StartResult("duplicate", request.saga_id, started.execution_name)
            log.info("saga started", execution=started.execution_name, steps=len(request.steps))
            return StartResult("started", request.saga_id, started.execution_name)

    def _reject_request(self, raw: Any, errors: list[FieldError], message_id: str) -> StartResult:
        """Reject under the request's own saga id when it is valid, echoing its metadata when it is
        publishable."""
        given = raw.get("saga_id") if isinstance(raw, dict) else None
        saga_id = given if is_saga_id(given) else derive_saga_id(message_id)
        metadata = raw.get("metadata") if isinstance(raw, dict) else None
        echoed = metadata if isinstance(metadata, dict) and not json_problems(metadata) else None
        return self._reject(saga_id, errors, message_id, echoed)

    def _reject(
        self, saga_id: str, errors: list[FieldError], event_id: str, metadata: dict[str, Any] | None
    ) -> StartResult:
        event_id = readable(event_id)
        result = rejected_result(
            saga_id, errors, finished_at=utc_now_iso(), event_id=event_id, metadata=metadata
        )
        message = encode_result(result, source=event_source(self.settings.workflow_path))
        with log_context(saga_id=saga_id):
            message_id = self._publisher.publish(message)
            log.warning(
                "saga request rejected", errors=[e.to_dict() for e in errors], result_message=message_id
            )
        return StartResult("rejected", saga_id, None, tuple(errors), message_id)


def _defect(error: Exception) -> FieldError:
    """An exception decoding or validating should never raise, as a problem to report."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    text = readable(f"{type(error).__name__}: {error}")
    log.error("checking the saga request raised; it is rejected (a defect)", error=text, where=where)
    return FieldError("", f"the request could not be checked ({text})")
