"""Eventarc-style Pub/Sub triggers, realised the way Eventarc does it: a push subscription on the topic,
named ``eventarc-{region}-{trigger}-sub-{NNN}``, created through the ordinary Subscriber API.

Its ``push_config.attributes`` mark it for the push worker (``x-localcloud-eventarc-trigger``), which then
sends binary-mode CloudEvents rather than push JSON, and say whether failures are retried
(``x-localcloud-eventarc-retry``): like a function deployed with ``--retry``, a failed delivery is retried
with exponential backoff from 10 s to 600 s for up to 24 h (message retention); without it, the event is
dropped (acked) and logged (https://cloud.google.com/functions/docs/writing/retries,
https://cloud.google.com/eventarc/docs/retry-events).
"""

from __future__ import annotations

import hashlib
from typing import Any

from google.api_core import exceptions as gexc
from google.protobuf import duration_pb2, field_mask_pb2
from google.pubsub_v1.types import pubsub

from localcloud.eventarc.events import RETRY_ATTRIBUTE, TRIGGER_ATTRIBUTE

RETRY_MIN_BACKOFF_SECONDS = 10
RETRY_MAX_BACKOFF_SECONDS = 600
RETENTION_SECONDS = 24 * 3600


def trigger_subscription_name(project: str, region: str, trigger: str) -> str:
    """Stable per trigger, so creating a trigger twice finds the same subscription."""
    number = int(hashlib.sha256(f"{project}/{region}/{trigger}".encode()).hexdigest(), 16) % 1000
    return f"projects/{project}/subscriptions/eventarc-{region}-{trigger}-sub-{number:03d}"


def create_pubsub_trigger(
    subscriber_client: Any,
    *,
    project: str,
    region: str,
    trigger: str,
    topic: str,
    destination_url: str,
    retry: bool,
    ack_deadline_seconds: int = 600,
) -> str:
    """Create (or bring up to date) the trigger's push subscription; returns its name. Idempotent.

    ``subscriber_client`` is a ``google.cloud.pubsub_v1.SubscriberClient``; ``topic`` is a topic id or a
    full ``projects/P/topics/T`` name.
    """
    topic_name = topic if topic.startswith("projects/") else f"projects/{project}/topics/{topic}"
    name = trigger_subscription_name(project, region, trigger)
    subscription = pubsub.Subscription(
        name=name,
        topic=topic_name,
        push_config=pubsub.PushConfig(
            push_endpoint=destination_url,
            attributes={TRIGGER_ATTRIBUTE: trigger, RETRY_ATTRIBUTE: "true" if retry else "false"},
        ),
        ack_deadline_seconds=ack_deadline_seconds,
        retry_policy=pubsub.RetryPolicy(
            minimum_backoff=duration_pb2.Duration(seconds=RETRY_MIN_BACKOFF_SECONDS),
            maximum_backoff=duration_pb2.Duration(seconds=RETRY_MAX_BACKOFF_SECONDS),
        ),
        message_retention_duration=duration_pb2.Duration(seconds=RETENTION_SECONDS),
    )
    try:
        subscriber_client.create_subscription(request=subscription)
    except gexc.AlreadyExists:
        existing = subscriber_client.get_subscription(subscription=name)
        if existing.topic != topic_name:
            raise gexc.FailedPrecondition(
                f"{name} belongs to trigger {trigger!r} on {existing.topic}, not {topic_name}"
            ) from None
        mask = field_mask_pb2.FieldMask(
            paths=["push_config", "ack_deadline_seconds", "retry_policy", "message_retention_duration"]
        )
        subscriber_client.update_subscription(request={"subscription": subscription, "update_mask": mask})
    return name
