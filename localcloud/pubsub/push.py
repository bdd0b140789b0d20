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

import asyncio
import contextlib
import json
import logging

import aiohttp

from localcloud._http import KeepAliveConnector
from localcloud.auth import TokenAuthority
from localcloud.eventarc import events
from localcloud.pubsub.state import Lease, PubSubState, SubscriptionState

log = logging.getLogger("localcloud.pubsub.push")

ACK_STATUSES = frozenset({102, 200, 201, 202, 204})
# Real push ramps concurrency up with success (slow start); a fixed cap keeps local endpoints alive.
MAX_IN_FLIGHT_PER_SUBSCRIPTION = 100


class PushConsumer:
    one_per_key = True

    def __init__(self, worker: PushWorker, sub: SubscriptionState) -> None:
        self.worker = worker
        self.sub = sub
        self.in_flight = 0

    @property
    def deadline_seconds(self) -> int:
        return self.sub.ack_deadline

    def capacity(self) -> int:
        return MAX_IN_FLIGHT_PER_SUBSCRIPTION - self.in_flight

    def deliver(self, subscription: SubscriptionState, leases: list[Lease]) -> None:
        for lease in leases:
            self.in_flight += 1
            task = asyncio.get_running_loop().create_task(self.worker.send(self, lease))
            self.worker.tasks.add(task)
            task.add_done_callback(self.worker.tasks.discard)

    def released(self, lease: Lease) -> None:
        pass


class PushWorker:
    def __init__(self, state: PubSubState, authority: TokenAuthority) -> None:
        self.state = state
        self.authority = authority
        self.consumers: dict[str, PushConsumer] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def sync(self, sub: SubscriptionState) -> None:
        """Attach or detach the push consumer after a subscription was created, changed or deleted."""
        wanted = bool(sub.pb.push_config.push_endpoint) and sub.name in self.state.subscriptions
        current = self.consumers.get(sub.name)
        if current is not None and (not wanted or current.sub is not sub):
            self.state.detach(current.sub, current)
            del self.consumers[sub.name]
            current = None
        if wanted and current is None:
            consumer = PushConsumer(self, sub)
            self.consumers[sub.name] = consumer
            self.state.attach(sub, consumer)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Kept-alive connections, each checked before reuse (an endpoint closes idle ones after a while).
            self._session = aiohttp.ClientSession(connector=KeepAliveConnector())
        return self._session

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
                async with self._client().post(
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
