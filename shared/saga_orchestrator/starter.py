"""What the start_saga function does with one Eventarc ``messagePublished`` event (framework-free).

Delivery is at least once. A request is started at most once: its saga id (given, or derived from the
Pub/Sub message id) labels the execution, and an existing execution with that label means "already
started". An invalid request is answered with a ``rejected`` result on ``saga-results`` and then
acknowledged (never redelivered); any other failure (Workflows or Pub/Sub unavailable) propagates so the
event is redelivered.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.events import PubsubMessage, encode_result, event_source
from saga_orchestrator.logging import get_logger, log_context, trace_name
from saga_orchestrator.model import SagaRequest
from saga_orchestrator.participant import trace_id
from saga_orchestrator.result import rejected_result
from saga_orchestrator.settings import Settings
from saga_orchestrator.validation import (
    SAGA_ID_RE,
    decode_request,
    derive_saga_id,
    utc_now_iso,
    validate_request,
)

log = get_logger("saga_orchestrator.starter")


@dataclass(frozen=True)
class RequestMessage:
    message_id: str
    publish_time: str | None
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)


class Starter(Protocol):
    """Starts the saga workflow; ``SagaOrchestrator`` is the real one."""

    def find_execution(self, saga_id: str) -> str | None: ...

    def start(self, request: SagaRequest) -> Any: ...


class Publisher(Protocol):
    def publish(self, message: PubsubMessage) -> str: ...


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
    if not isinstance(message_id, str) or not message_id:
        raise InvalidRequestError([FieldError("message.messageId", "is missing")])
    publish_time = message.get("publishTime") or message.get("publish_time")
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
        publish_time=_normalize_time(publish_time) if isinstance(publish_time, str) else None,
        data=decoded,
        attributes={str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {},
    )


class SagaStarter:
    def __init__(self, settings: Settings, *, starter: Starter, publisher: Publisher) -> None:
        self.settings = settings
        self._starter = starter
        self._publisher = publisher

    def handle_event(self, event_id: str | None, data: Any) -> StartResult:
        try:
            message = decode_event(event_id, data)
        except InvalidRequestError as error:
            fallback = event_id or "unknown"
            return self._reject(derive_saga_id(fallback), error.errors, fallback, None)
        return self.handle_message(message)

    def handle_message(self, message: RequestMessage) -> StartResult:
        raw: Any = None
        try:
            raw = decode_request(message.data)
            request = validate_request(
                raw, self.settings, message_id=message.message_id, requested_at=message.publish_time
            )
        except InvalidRequestError as error:
            given = raw.get("saga_id") if isinstance(raw, dict) else None
            saga_id = (
                given
                if isinstance(given, str) and SAGA_ID_RE.match(given)
                else derive_saga_id(message.message_id)
            )
            metadata = (
                raw.get("metadata")
                if isinstance(raw, dict) and isinstance(raw.get("metadata"), dict)
                else None
            )
            return self._reject(saga_id, error.errors, message.message_id, metadata)
        trace = trace_name(self.settings.project_id, trace_id(request.saga_id))
        with log_context(saga_id=request.saga_id, trace=trace):
            existing = self._starter.find_execution(request.saga_id)
            if existing:
                log.info("duplicate request: the saga was already started", execution=existing)
                return StartResult("duplicate", request.saga_id, existing)
            started = self._starter.start(request)
            name = getattr(started, "execution_name", started)
            if not getattr(started, "created", True):  # another start of this saga won the race
                log.info("duplicate request: the saga was already started", execution=name)
                return StartResult("duplicate", request.saga_id, str(name))
            log.info("saga started", execution=name, steps=len(request.steps))
            return StartResult("started", request.saga_id, str(name))

    def _reject(
        self, saga_id: str, errors: list[FieldError], event_id: str, metadata: dict[str, Any] | None
    ) -> StartResult:
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


def _normalize_time(value: str) -> str:
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    moment = moment.astimezone(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class PubsubPublisher:
    """Publishes to one topic with a ``google.cloud.pubsub_v1.PublisherClient``; waits for the id."""

    def __init__(self, client: Any, topic_path: str, *, timeout_seconds: float = 60) -> None:
        self._client = client
        self._topic = topic_path
        self._timeout = timeout_seconds

    def publish(self, message: PubsubMessage) -> str:
        future = self._client.publish(self._topic, message.data, **message.attributes)
        return str(future.result(timeout=self._timeout))
