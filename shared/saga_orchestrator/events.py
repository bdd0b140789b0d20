"""Saga results as CloudEvents in Pub/Sub binary content mode.

Binary mode on Pub/Sub: the CloudEvent attributes are message attributes prefixed ``ce-``
(``ce-specversion, ce-type, ce-source, ce-id, ce-time, ce-subject``), ``content-type`` carries the data's
media type, and the message data is the event data (the result as UTF-8 JSON).

``ce-id`` is deterministic so consumers can dedupe: a hash of saga id and execution name for completed
sagas, a hash of the request's Pub/Sub message id for rejected ones. Publishing the same outcome twice
yields the same id.

Besides the one result per saga, the topic carries *notices* while a saga waits for an operator
(``schemas/saga-notice.schema.json``): ``dev.sagaorchestrator.saga.v1.stuck`` (a compensation failed for
good) and ``.parked`` (a step with ``on_failure: "park"`` failed for good), each naming the step, its
last error, the verbs that apply and until when the saga waits. Their ``ce-id`` is a hash of the saga,
its execution and the notice's sequence number in it, so a repeated call publishes the same id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.result import Notice, SagaResult, parse_result
from saga_orchestrator.times import utc_now_iso

SPEC_VERSION = "1.0"
TYPE_PREFIX = "dev.sagaorchestrator.saga.v1."
EVENT_TYPES: dict[str, str] = {
    status: TYPE_PREFIX + status for status in ("succeeded", "compensated", "failed", "rejected")
}
NOTICE_TYPES: dict[str, str] = {notice: TYPE_PREFIX + notice for notice in ("stuck", "parked")}
CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class PubsubMessage:
    """What to hand to ``PublisherClient.publish(topic, data, **attributes)``."""

    data: bytes
    attributes: dict[str, str]


@dataclass(frozen=True)
class ResultEvent:
    id: str
    type: str
    source: str
    subject: str
    time: str
    result: SagaResult


def event_source(workflow_path: str) -> str:
    """``//workflows.googleapis.com/projects/P/locations/L/workflows/W``, the source of every result."""
    return f"//workflows.googleapis.com/{workflow_path}"


def event_id(result: SagaResult) -> str:
    if result.status == "rejected":
        key = "rejected\n" + (result.event_id or result.saga_id)
    else:
        key = f"{result.saga_id}\n{result.execution}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def encode_result(result: SagaResult, *, source: str) -> PubsubMessage:
    time = result.finished_at or utc_now_iso()
    attributes = {
        "ce-specversion": SPEC_VERSION,
        "ce-type": EVENT_TYPES[result.status],
        "ce-source": source,
        "ce-id": event_id(result),
        "ce-time": time,
        "ce-subject": result.saga_id,
        "content-type": CONTENT_TYPE,
    }
    data = json.dumps(result.to_dict(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return PubsubMessage(data=data, attributes=attributes)


def encode_notice(notice: Notice, *, source: str) -> PubsubMessage:
    key = f"{notice.notice}\n{notice.saga_id}\n{notice.execution}\n{notice.sequence}"
    attributes = {
        "ce-specversion": SPEC_VERSION,
        "ce-type": NOTICE_TYPES[notice.notice],
        "ce-source": source,
        "ce-id": hashlib.sha256(key.encode("utf-8")).hexdigest()[:32],
        "ce-time": notice.at or utc_now_iso(),
        "ce-subject": notice.saga_id,
        "content-type": CONTENT_TYPE,
    }
    data = json.dumps(notice.to_dict(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return PubsubMessage(data=data, attributes=attributes)


def decode_result(data: bytes, attributes: Mapping[str, str]) -> ResultEvent:
    """A ``saga-results`` message → ``ResultEvent``; raises ``InvalidRequestError`` if it is not one."""
    errors: list[FieldError] = []
    for name in ("ce-specversion", "ce-type", "ce-source", "ce-id", "ce-subject"):
        if not attributes.get(name):
            errors.append(FieldError(name, "attribute is missing"))
    if attributes.get("ce-specversion", SPEC_VERSION) != SPEC_VERSION:
        errors.append(FieldError("ce-specversion", f"must be {SPEC_VERSION}"))
    if attributes.get("ce-type") and attributes["ce-type"] not in EVENT_TYPES.values():
        errors.append(FieldError("ce-type", "is not a saga result type"))
    if errors:
        raise InvalidRequestError(errors)
    try:
        payload: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRequestError([FieldError("data", f"is not UTF-8 JSON ({error})")]) from None
    result = parse_result(payload)
    return ResultEvent(
        id=attributes["ce-id"],
        type=attributes["ce-type"],
        source=attributes["ce-source"],
        subject=attributes["ce-subject"],
        time=attributes.get("ce-time", ""),
        result=result,
    )
