"""The checks on topics and subscriptions clients send, with the limits of the real service.

Limits (https://cloud.google.com/pubsub/quotas, https://cloud.google.com/pubsub/docs/subscription-properties):
ack deadline 10 to 600 seconds (0 to 600 in ``ModifyAckDeadline``); message retention 10 minutes to 7 days
on a subscription, to 31 days on a topic; expiration at least 1 day; 5 to 100 delivery attempts before
dead-lettering; retry backoff 0 to 600 seconds. ``validate_subscription`` reports every bad field at once.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.api_core import exceptions as gexc
from google.protobuf import duration_pb2
from google.pubsub_v1.types import pubsub

from localcloud.pubsub import names
from localcloud.pubsub.protos import seconds_of

DEFAULT_ACK_DEADLINE_SECONDS = 10
MIN_ACK_DEADLINE_SECONDS = 10
MAX_ACK_DEADLINE_SECONDS = 600
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
MIN_RETENTION_SECONDS = 600
MAX_SUBSCRIPTION_RETENTION_SECONDS = 7 * 24 * 3600
MAX_TOPIC_RETENTION_SECONDS = 31 * 24 * 3600
DEFAULT_EXPIRATION_SECONDS = 31 * 24 * 3600
DEFAULT_MAX_DELIVERY_ATTEMPTS = 5


UPDATABLE_SUBSCRIPTION_FIELDS = frozenset(
    {
        "ack_deadline_seconds",
        "push_config",
        "bigquery_config",
        "cloud_storage_config",
        "retain_acked_messages",
        "message_retention_duration",
        "labels",
        "expiration_policy",
        "filter",
        "dead_letter_policy",
        "retry_policy",
        "detached",
        "enable_exactly_once_delivery",
        "message_transforms",
    }
)
MESSAGE_SUBSCRIPTION_FIELDS = frozenset(
    {
        "push_config",
        "bigquery_config",
        "cloud_storage_config",
        "message_retention_duration",
        "expiration_policy",
        "dead_letter_policy",
        "retry_policy",
    }
)


def check_retention(
    duration: duration_pb2.Duration, maximum: float, field_name: str = "message_retention_duration"
) -> None:
    seconds = seconds_of(duration)
    if not MIN_RETENTION_SECONDS <= seconds <= maximum:
        raise gexc.InvalidArgument(
            f"Invalid [{field_name}] {seconds:g}s: must be between {MIN_RETENTION_SECONDS}s and {maximum:g}s"
        )


def validate_subscription(pb: pubsub.Subscription, topics: Mapping[str, pubsub.Topic]) -> None:
    """Report every bad field at once; a well-formed dead-letter topic that does not exist is NOT_FOUND."""
    problems = [
        *_retention_problems(pb),
        *_dead_letter_problems(pb, topics),
        *_redelivery_problems(pb),
    ]
    if pb.push_config.push_endpoint and pb.bigquery_config.table:  # a subscription is of one kind
        problems.append("[subscription]: push_config and bigquery_config cannot both be set")
    if problems:
        raise gexc.InvalidArgument("Invalid " + "; ".join(problems))


def _retention_problems(pb: pubsub.Subscription) -> list[str]:
    problems: list[str] = []
    deadline = pb.ack_deadline_seconds
    if deadline and not MIN_ACK_DEADLINE_SECONDS <= deadline <= MAX_ACK_DEADLINE_SECONDS:
        problems.append(
            f"[ack_deadline_seconds] {deadline}: must be between {MIN_ACK_DEADLINE_SECONDS} and "
            f"{MAX_ACK_DEADLINE_SECONDS}"
        )
    if pb.HasField("message_retention_duration"):
        try:
            check_retention(pb.message_retention_duration, MAX_SUBSCRIPTION_RETENTION_SECONDS)
        except gexc.InvalidArgument as error:
            problems.append(str(error.message).removeprefix("Invalid "))
    if pb.HasField("expiration_policy") and pb.expiration_policy.HasField("ttl"):
        ttl = seconds_of(pb.expiration_policy.ttl)
        if ttl < 24 * 3600:
            problems.append(f"[expiration_policy.ttl] {ttl:g}s: must be at least 1 day")
    return problems


def _dead_letter_problems(pb: pubsub.Subscription, topics: Mapping[str, pubsub.Topic]) -> list[str]:
    problems: list[str] = []
    policy = pb.dead_letter_policy
    if not pb.HasField("dead_letter_policy") or not policy.dead_letter_topic:
        return problems
    try:
        names.topic(policy.dead_letter_topic, "dead_letter_policy.dead_letter_topic")
    except gexc.InvalidArgument as error:
        problems.append(str(error.message).removeprefix("Invalid "))
    else:
        if policy.dead_letter_topic not in topics:
            raise gexc.NotFound(f"Dead letter topic not found: {policy.dead_letter_topic}")
    if not 5 <= policy.max_delivery_attempts <= 100:
        problems.append(
            f"[dead_letter_policy.max_delivery_attempts] {policy.max_delivery_attempts}: must be between 5 and 100"
        )
    return problems


def _redelivery_problems(pb: pubsub.Subscription) -> list[str]:
    problems: list[str] = []
    if pb.HasField("retry_policy"):
        for part in ("minimum_backoff", "maximum_backoff"):
            value = getattr(pb.retry_policy, part)
            if pb.retry_policy.HasField(part) and not 0 <= seconds_of(value) <= 600:
                problems.append(f"[retry_policy.{part}] {seconds_of(value):g}s: must be between 0s and 600s")
    endpoint = pb.push_config.push_endpoint
    if endpoint and not endpoint.startswith(("http://", "https://")):
        problems.append(f"[push_config.push_endpoint] {endpoint!r}: must be an http(s) URL")
    return problems
