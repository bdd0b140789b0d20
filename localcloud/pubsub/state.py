"""In-memory Pub/Sub: topics, publishing, subscription administration, dead-lettering and seek.

Plain objects on one asyncio loop; the injected ``Clock`` is the only source of time. How messages go out
to consumers (leases, redelivery, ordering, timers) is ``localcloud.pubsub.delivery``; the records are in
``records``, the limits and checks in ``validation``.

Behaviour (https://cloud.google.com/pubsub/docs/admin, https://cloud.google.com/pubsub/docs/dead-letter-topics):
- deleting a topic leaves its subscriptions, whose topic becomes ``_deleted-topic_``;
- a subscription gets only messages published after it was created, that match its filter;
- a detached subscription drops its backlog and gets nothing more;
- a dead-lettered message is republished with the ``CloudPubSubDeadLetterSource*`` attributes, or dropped
  (with a warning) if the dead-letter topic does not exist;
- seeking to a time acks what was published before it and brings back what was published after it, as far
  as the subscription (``retain_acked_messages``) or the topic (message retention) kept it.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque

from google.api_core import exceptions as gexc
from google.protobuf import timestamp_pb2
from google.pubsub_v1.types import pubsub

from localcloud.clock import Clock
from localcloud.pubsub import names
from localcloud.pubsub.delivery import Delivery
from localcloud.pubsub.filters import compile_filter
from localcloud.pubsub.protos import PubsubMessagePb, SubscriptionPb, TopicPb, duration_of, seconds_of, varint
from localcloud.pubsub.records import Entry, Lease, StoredMessage, SubscriptionState
from localcloud.pubsub.schemas import SchemaRegistry
from localcloud.pubsub.validation import (
    DEFAULT_ACK_DEADLINE_SECONDS,
    DEFAULT_EXPIRATION_SECONDS,
    DEFAULT_MAX_DELIVERY_ATTEMPTS,
    DEFAULT_RETENTION_SECONDS,
    MAX_TOPIC_RETENTION_SECONDS,
    MESSAGE_SUBSCRIPTION_FIELDS,
    UPDATABLE_SUBSCRIPTION_FIELDS,
    check_retention,
    validate_subscription,
)

__all__ = ["Lease", "PubSubState", "SubscriptionState"]  # Lease: imported from here by ``push``

log = logging.getLogger("localcloud.pubsub")


class PubSubState(Delivery):
    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.topics: dict[str, pubsub.Topic] = {}
        self.topic_log: dict[str, deque[StoredMessage]] = {}  # retained messages, when retention is set
        self._ids = itertools.count(1)
        self.schemas = SchemaRegistry(clock)  # topics' schema_settings name its schemas

    # ---- topics ------------------------------------------------------------------------------

    def get_topic(self, name: str) -> pubsub.Topic:
        found = self.topics.get(name)
        if found is not None:
            return found
        names.topic(name, "topic")
        raise gexc.NotFound(f"Topic not found: {name}")

    def create_topic(self, topic: pubsub.Topic) -> pubsub.Topic:
        names.topic(topic.name, "name")
        if topic.name in self.topics:
            raise gexc.AlreadyExists(f"Topic already exists: {topic.name}")
        if topic.HasField("message_retention_duration"):
            check_retention(topic.message_retention_duration, MAX_TOPIC_RETENTION_SECONDS)
        if topic.HasField("schema_settings"):
            self.schemas.check_settings(topic.schema_settings)
        stored = TopicPb()
        stored.CopyFrom(topic)
        stored.state = pubsub.Topic.State.ACTIVE
        self.topics[topic.name] = stored
        self.topic_log[topic.name] = deque()
        return stored

    def delete_topic(self, name: str) -> None:
        self.get_topic(name)
        del self.topics[name]
        self.topic_log.pop(name, None)
        for sub in self.subscriptions.values():
            if sub.pb.topic == name:
                sub.pb.topic = names.DELETED_TOPIC

    def topic_subscriptions(self, name: str) -> list[str]:
        self.get_topic(name)
        return sorted(s.name for s in self.subscriptions.values() if s.pb.topic == name)

    def publish(self, topic_name: str, messages: list[pubsub.PubsubMessage]) -> list[str]:
        """Store ``messages`` (raw pbs, taken over: message id and publish time are set on them)."""
        topic = self.get_topic(topic_name)
        now = self.clock.now()
        whole = int(now)
        nanos = round((now - whole) * 1e9) // 1000 * 1000
        stamp = timestamp_pb2.Timestamp(seconds=whole, nanos=nanos)
        ids = [str(n) for n in itertools.islice(self._ids, len(messages))]
        stored_all: list[StoredMessage] = []
        for message, message_id in zip(messages, ids, strict=True):
            message.message_id = message_id
            message.publish_time.CopyFrom(stamp)
            wire = message.SerializeToString()
            size = len(wire)
            stored_all.append(
                StoredMessage(message, now, b"\x12" + varint(size) + wire, size, message.ordering_key)
            )
        if topic.HasField("message_retention_duration"):
            log_ = self.topic_log[topic_name]
            log_.extend(stored_all)
            horizon = now - seconds_of(topic.message_retention_duration)
            while log_ and log_[0].published_at < horizon:
                log_.popleft()
        seqs = self._seq
        for sub in list(self.subscriptions.values()):
            if sub.pb.topic != topic_name or sub.pb.detached:
                continue
            if not sub.pb.filter and not sub.ordered:
                unacked, fresh = sub.unacked, sub.fresh
                for stored in stored_all:
                    entry = Entry(next(seqs), stored, 0, now)
                    unacked[entry.seq] = entry
                    fresh.append(entry)
                self.dispatch(sub)
                continue
            predicate = sub.predicate
            added = False
            for stored in stored_all:
                if predicate(stored.message.attributes):
                    self._add(sub, Entry(next(seqs), stored, 0, now), now)
                    added = True
            if added:
                self.dispatch(sub)
        return ids

    # ---- subscriptions -----------------------------------------------------------------------

    def create_subscription(self, request: pubsub.Subscription) -> pubsub.Subscription:
        names.subscription(request.name, "name")
        names.topic(request.topic, "topic")
        if request.name in self.subscriptions:
            raise gexc.AlreadyExists(f"Subscription already exists: {request.name}")
        if request.topic not in self.topics:
            raise gexc.NotFound(f"Topic not found: {request.topic}")
        pb = SubscriptionPb()
        pb.CopyFrom(request)
        validate_subscription(pb, self.topics)
        predicate = compile_filter(pb.filter)
        if not pb.ack_deadline_seconds:
            pb.ack_deadline_seconds = DEFAULT_ACK_DEADLINE_SECONDS
        if not pb.HasField("message_retention_duration"):
            pb.message_retention_duration.CopyFrom(duration_of(DEFAULT_RETENTION_SECONDS))
        if not pb.HasField("expiration_policy"):
            pb.expiration_policy.ttl.CopyFrom(duration_of(DEFAULT_EXPIRATION_SECONDS))
        if pb.dead_letter_policy.dead_letter_topic and not pb.dead_letter_policy.max_delivery_attempts:
            pb.dead_letter_policy.max_delivery_attempts = DEFAULT_MAX_DELIVERY_ATTEMPTS
        topic = self.topics[pb.topic]
        if topic.HasField("message_retention_duration"):
            pb.topic_message_retention_duration.CopyFrom(topic.message_retention_duration)
        pb.state = pubsub.Subscription.State.ACTIVE
        sub = SubscriptionState(pb, predicate, self.clock.now())
        self.subscriptions[pb.name] = sub
        return pb

    def update_subscription(
        self, name: str, patch: pubsub.Subscription, paths: list[str]
    ) -> pubsub.Subscription:
        sub = self.get_subscription(name, "subscription.name")
        if not paths:
            raise gexc.InvalidArgument("Invalid [update_mask]: at least one path is required")
        candidate = SubscriptionPb()
        candidate.CopyFrom(sub.pb)
        for path in paths:
            if path not in UPDATABLE_SUBSCRIPTION_FIELDS:
                raise gexc.InvalidArgument(f"Invalid [update_mask]: cannot update field {path!r}")
            if path in MESSAGE_SUBSCRIPTION_FIELDS:
                if patch.HasField(path):
                    getattr(candidate, path).CopyFrom(getattr(patch, path))
                else:
                    candidate.ClearField(path)
            elif path == "labels":
                candidate.labels.clear()
                candidate.labels.update(patch.labels)
            else:
                setattr(candidate, path, getattr(patch, path))
        if not candidate.ack_deadline_seconds:
            candidate.ack_deadline_seconds = DEFAULT_ACK_DEADLINE_SECONDS
        if (
            candidate.dead_letter_policy.dead_letter_topic
            and not candidate.dead_letter_policy.max_delivery_attempts
        ):
            candidate.dead_letter_policy.max_delivery_attempts = DEFAULT_MAX_DELIVERY_ATTEMPTS
        validate_subscription(candidate, self.topics)
        sub.predicate = compile_filter(candidate.filter)
        sub.pb.CopyFrom(candidate)
        self.dispatch(sub)
        return sub.pb

    def delete_subscription(self, name: str) -> None:
        sub = self.get_subscription(name)
        del self.subscriptions[name]
        for entry in sub.unacked.values():
            if entry.lease is not None:
                self.leases.pop(entry.lease.ack_id, None)
        sub.closed.set()

    def detach_subscription(self, sub: SubscriptionState) -> None:
        """Detached: the backlog is dropped and nothing more arrives."""
        sub.pb.detached = True
        for entry in sub.unacked.values():
            if entry.lease is not None:
                self._end_lease(entry.lease)
        self._reset_queues(sub)

    # ---- dead letters ------------------------------------------------------------------------

    def _dead_letter(self, sub: SubscriptionState, entry: Entry) -> None:
        topic = str(sub.pb.dead_letter_policy.dead_letter_topic)
        if topic not in self.topics:
            log.warning("dead-letter topic %s of %s does not exist; message dropped", topic, sub.name)
            return
        original = entry.stored.message
        copy = PubsubMessagePb(data=original.data, ordering_key=original.ordering_key)
        copy.attributes.update(original.attributes)
        project, sub_id = names.subscription(sub.name)
        copy.attributes["CloudPubSubDeadLetterSourceSubscription"] = sub_id
        copy.attributes["CloudPubSubDeadLetterSourceSubscriptionProject"] = project
        copy.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] = str(entry.attempts)
        copy.attributes["CloudPubSubDeadLetterSourceTopicPublishTime"] = original.publish_time.ToJsonString()
        self.publish(topic, [copy])

    # ---- seek --------------------------------------------------------------------------------

    def seek_to_time(self, sub: SubscriptionState, when: float) -> None:
        """Messages published before ``when`` become acked, the retained ones after it unacked."""
        if sub.pb.retain_acked_messages:
            self._prune_retained(sub)
        everything = list(sub.unacked.values()) + list(sub.retained.values())
        known = {id(entry.stored) for entry in everything}
        for stored in self.topic_log.get(str(sub.pb.topic), ()):
            if stored.published_at >= sub.created_at and id(stored) not in known:
                everything.append(Entry(next(self._seq), stored))
        now = self.clock.now()
        self._reset_queues(sub)
        sub.retained = {}
        # renumbered, so that publish order is seq order again
        for entry in sorted(everything, key=lambda e: (e.stored.published_at, e.seq)):
            if entry.lease is not None:
                self._end_lease(entry.lease)
            entry.seq = next(self._seq)
            if entry.stored.published_at < when:
                entry.acked = True
                if sub.pb.retain_acked_messages:
                    sub.retained[entry.seq] = entry
            else:
                entry.acked = False
                entry.available_at = now
                self._add(sub, entry, now)
        self.dispatch(sub)
