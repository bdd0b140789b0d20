"""The wire shapes of Pub/Sub-sourced events: the ``PubsubMessage`` JSON of push bodies and the
binary-mode CloudEvent an Eventarc trigger sends to a Cloud Run service or a gen2 function.

CloudEvent (https://cloud.google.com/eventarc/docs/workflows/cloudevents, google-cloudevents
``pubsub/v1/data.proto``): headers ``ce-specversion: 1.0``, ``ce-type:
google.cloud.pubsub.topic.v1.messagePublished``, ``ce-source: //pubsub.googleapis.com/<topic>``,
``ce-id: <messageId>``, ``ce-time: <publishTime>``, ``Content-Type: application/json``; the body is
``MessagePublishedData``: ``{"message": {...}, "subscription": "projects/P/subscriptions/S"}``. The message
carries both spellings of the id and the publish time, as real deliveries do.
"""

from __future__ import annotations

import base64
import json
from typing import Any

EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
MESSAGE_TYPE_URL = "type.googleapis.com/google.pubsub.v1.PubsubMessage"
TRIGGER_ATTRIBUTE = "x-localcloud-eventarc-trigger"
RETRY_ATTRIBUTE = "x-localcloud-eventarc-retry"


def message_json(message: Any, *, type_url: bool = False, always_data: bool = False) -> dict[str, Any]:
    """``message`` is a raw ``google.pubsub.v1.PubsubMessage`` with id and publish time set."""
    publish_time = message.publish_time.ToJsonString()
    body: dict[str, Any] = {"@type": MESSAGE_TYPE_URL} if type_url else {}
    if message.attributes:
        body["attributes"] = dict(message.attributes)
    if message.data or always_data:
        body["data"] = base64.b64encode(message.data).decode()
    body.update(
        messageId=message.message_id,
        message_id=message.message_id,
        publishTime=publish_time,
        publish_time=publish_time,
    )
    if message.ordering_key:
        body["orderingKey"] = message.ordering_key
    return body


def push_body(message: Any, subscription: str, delivery_attempt: int | None) -> bytes:
    """The wrapped push request body (https://cloud.google.com/pubsub/docs/push#receive_push)."""
    body: dict[str, Any] = {"message": message_json(message), "subscription": subscription}
    if delivery_attempt is not None:
        body["deliveryAttempt"] = delivery_attempt
    return json.dumps(body).encode()


def cloudevent(message: Any, subscription: str, topic: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of the binary-mode CloudEvent for one message of ``topic``."""
    headers = {
        "ce-specversion": "1.0",
        "ce-type": EVENT_TYPE,
        "ce-source": f"//pubsub.googleapis.com/{topic}",
        "ce-id": str(message.message_id),
        "ce-time": message.publish_time.ToJsonString(),
        "Content-Type": "application/json",
    }
    data = {"message": message_json(message, type_url=True, always_data=True), "subscription": subscription}
    return headers, json.dumps(data).encode()
