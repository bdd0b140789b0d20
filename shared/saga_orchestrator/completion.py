"""What the saga_completion function does with one completion request (framework-free): check the
saga result and publish it, once per call, as a binary-mode CloudEvent on the result topic.

The body is the workflow's completion call: the saga result, except that succeeded steps' outputs come
in ``outputs`` (step name → output) rather than in their records (``result.merge_outputs``).

The workflow may call more than once for one saga (its http.post is retried); every call publishes the
same ``ce-id``, so consumers dedupe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from saga_orchestrator.events import encode_notice, encode_result, event_id, event_source
from saga_orchestrator.logging import get_logger, log_context, trace_name
from saga_orchestrator.ports import Publisher
from saga_orchestrator.result import SagaResult, merge_outputs, parse_notice, parse_result
from saga_orchestrator.settings import Settings
from saga_orchestrator.tracing import trace_id

log = get_logger("saga_orchestrator.completion")


@dataclass(frozen=True)
class Announced:
    message_id: str
    event_id: str


def announce(data: Any, settings: Settings, publisher: Publisher) -> Announced:
    """Publish a stuck or parked notice (the body has ``notice``); raises ``InvalidRequestError`` for a
    bad one, publishing errors propagate."""
    notice = parse_notice(data)
    message = encode_notice(notice, source=event_source(settings.workflow_path))
    with log_context(saga_id=notice.saga_id, trace=trace_name(settings.project_id, trace_id(notice.saga_id))):
        message_id = publisher.publish(message)
        log.warning(
            f"saga {notice.notice}: waiting for an operator",
            execution=notice.execution,
            step=notice.step,
            action=notice.action,
            verbs=list(notice.verbs),
            until=notice.until,
        )
    return Announced(message_id=message_id, event_id=message.attributes["ce-id"])


@dataclass(frozen=True)
class Published:
    message_id: str
    event_id: str
    result: SagaResult


def complete(data: Any, settings: Settings, publisher: Publisher) -> Published:
    """Raises ``InvalidRequestError`` for a bad result; publishing errors propagate. The workflow sends
    each output once, beside the steps (``outputs``); the published result has it in its step's record."""
    result = parse_result(merge_outputs(data))
    message = encode_result(result, source=event_source(settings.workflow_path))
    with log_context(saga_id=result.saga_id, trace=trace_name(settings.project_id, trace_id(result.saga_id))):
        message_id = publisher.publish(message)
        log.info(f"saga {result.status}", execution=result.execution, failed_step=result.failed_step)
    return Published(message_id=message_id, event_id=event_id(result), result=result)
