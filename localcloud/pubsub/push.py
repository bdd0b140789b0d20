"""Push delivery: POSTs each message of a push subscription to its endpoint.

- Wrapped (default): JSON ``{"message": {...}, "subscription": ..., "deliveryAttempt"?}``
  (``deliveryAttempt`` only with a dead-letter policy), ``Content-Type: application/json``.
- Unwrapped (``push_config.no_wrapper``): the raw data as the body; with ``write_metadata`` the
  metadata as ``x-goog-pubsub-*`` headers and each attribute as a header of its own
  (https://cloud.google.com/pubsub/docs/payload-unwrapping).
- Eventarc triggers (``push_config.attributes`` has ``x-localcloud-eventarc-trigger``): a binary-mode
  CloudEvent instead (``localcloud.eventarc.events``). With ``x-localcloud-eventarc-retry: "false"`` a
  failed delivery is acked and logged, as for a function deployed without ``--retry``.

Connections are kept alive between pushes and checked before reuse (``localcloud._http``).
HTTP 102, 200, 201, 202 and 204 ack; any other status, a connection error, or no answer within the ack
deadline is a nack, redelivered after the subscription's backoff
(https://cloud.google.com/pubsub/docs/push#receive_push). ``oidc_token`` adds ``Authorization: Bearer``
with an ID token from the local token authority (audience defaults to the endpoint).
"""

from __future__ import annotations

import json
import logging

import aiohttp

from localcloud.auth import TokenAuthority
from localcloud.eventarc import events
from localcloud.pubsub.outbound import Outbound, OutboundConsumer
from localcloud.pubsub.state import Lease, PubSubState, SubscriptionState

log = logging.getLogger("localcloud.pubsub.push")

ACK_STATUSES = frozenset({102, 200, 201, 202, 204})
# Real push ramps concurrency up with success (slow start); a fixed cap keeps local endpoints alive.
MAX_IN_FLIGHT_PER_SUBSCRIPTION = 100


class PushConsumer(OutboundConsumer):
    def __init__(self, worker: PushWorker, sub: SubscriptionState) -> None:
        super().__init__(sub)
        self.worker = worker

    def capacity(self) -> int:
        return MAX_IN_FLIGHT_PER_SUBSCRIPTION - self.in_flight

    def deliver(self, subscription: SubscriptionState, leases: list[Lease]) -> None:
        for lease in leases:
            self.in_flight += 1
            self.worker.spawn(self.worker.send(self, lease))


class PushWorker(Outbound[PushConsumer]):
    def __init__(self, state: PubSubState, authority: TokenAuthority) -> None:
        super().__init__(state)
        self.authority = authority

    def wants(self, sub: SubscriptionState) -> bool:
        return bool(sub.pb.push_config.push_endpoint)

    def consumer_for(self, sub: SubscriptionState) -> PushConsumer:
        return PushConsumer(self, sub)

    def request_for(self, sub: SubscriptionState, lease: Lease) -> tuple[dict[str, str], bytes]:
        config = sub.pb.push_config
        message = lease.entry.stored.message
        attempt = lease.entry.attempts if sub.has_dead_letter else None
        if events.TRIGGER_ATTRIBUTE in config.attributes:
            return events.cloudevent(message, sub.name, str(sub.pb.topic))
        if config.HasField("no_wrapper"):
            headers: dict[str, str] = {}
            if config.no_wrapper.write_metadata:
                headers.update(
                    {
                        "x-goog-pubsub-subscription-name": sub.name,
                        "x-goog-pubsub-message-id": str(message.message_id),
                        "x-goog-pubsub-publish-time": message.publish_time.ToJsonString(),
                    }
                )
                if message.ordering_key:
                    headers["x-goog-pubsub-ordering-key"] = message.ordering_key
                if attempt is not None:
                    headers["x-goog-pubsub-delivery-attempt"] = str(attempt)
                headers.update(dict(message.attributes))
            return headers, bytes(message.data)
        return {"Content-Type": "application/json"}, events.push_body(message, sub.name, attempt)

    async def send(self, consumer: PushConsumer, lease: Lease) -> None:
        sub = consumer.sub
        config = sub.pb.push_config
        retry = config.attributes.get(events.RETRY_ATTRIBUTE, "true") != "false"
        try:
            headers, body = self.request_for(sub, lease)
            if config.HasField("oidc_token"):
                audience = config.oidc_token.audience or config.push_endpoint
                token = self.authority.mint_id_token(audience, config.oidc_token.service_account_email)
                headers["Authorization"] = f"Bearer {token}"
            status: int | None = None
            try:
                async with self.client().post(
                    config.push_endpoint,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=sub.ack_deadline),
                ) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                log.info("push to %s for %s failed: %s", config.push_endpoint, sub.name, error)
            if status in ACK_STATUSES:
                self.state.ack_one(sub, lease.ack_id)
                return
            entry = lease.entry
            if not retry:
                log.warning(
                    json.dumps(
                        {
                            "severity": "WARNING",
                            "message": "event delivery failed; dropped (trigger without retry)",
                            "subscription": sub.name,
                            "messageId": entry.stored.message.message_id,
                            "status": status,
                        }
                    )
                )
            self.state.nack(sub, lease.ack_id, retry=retry)
        finally:
            consumer.in_flight -= 1
            if sub.name in self.state.subscriptions:
                self.state.dispatch(sub)
