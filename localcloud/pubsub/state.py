"""In-memory Pub/Sub: topics, subscriptions, leases and the delivery scheduler.

Plain objects on one asyncio loop; the injected ``Clock`` is the only source of time, so ack deadlines,
retry backoff and retention are driven by ``ManualClock`` in tests. Nothing here polls: publishing,
acking and new consumers call ``dispatch`` directly, and one timer task sleeps on the clock until the
earliest lease deadline or backoff expiry of any subscription.

Delivery model (https://cloud.google.com/pubsub/docs/subscriber):
- every delivery gets a fresh ack id; an ack id from an earlier delivery of the same message is ignored;
- a lease ends by ack, nack (``ModifyAckDeadline`` 0), or expiry; nack and expiry count as failed
  attempts: with a dead-letter policy the message goes to the dead-letter topic once
  ``max_delivery_attempts`` deliveries failed, otherwise it is redelivered after the retry-policy
  backoff (``minimum_backoff * 2**(attempt-1)`` capped at ``maximum_backoff``), or at once without one;
- consumers (streams, waiting ``Pull`` calls, the push worker) are served round-robin, each up to its
  flow-control capacity;
- with message ordering, a key's messages are delivered in publish order, never overtaking an earlier
  message of that key that is still waiting; a nack or expiry sends the key back to the failed message.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import itertools
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from google.api_core import exceptions as gexc
from google.protobuf import duration_pb2, timestamp_pb2
from google.pubsub_v1.types import pubsub

from localcloud.clock import Clock
from localcloud.pubsub import names
from localcloud.pubsub.filters import Predicate, compile_filter

log = logging.getLogger("localcloud.pubsub")

TopicPb = pubsub.Topic.pb()
SubscriptionPb = pubsub.Subscription.pb()
PubsubMessagePb = pubsub.PubsubMessage.pb()
ReceivedMessagePb = pubsub.ReceivedMessage.pb()

DEFAULT_ACK_DEADLINE_SECONDS = 10
MIN_ACK_DEADLINE_SECONDS = 10
MAX_ACK_DEADLINE_SECONDS = 600
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
MIN_RETENTION_SECONDS = 600
MAX_SUBSCRIPTION_RETENTION_SECONDS = 7 * 24 * 3600
MAX_TOPIC_RETENTION_SECONDS = 31 * 24 * 3600
DEFAULT_EXPIRATION_SECONDS = 31 * 24 * 3600
DEFAULT_MAX_DELIVERY_ATTEMPTS = 5


def seconds_of(duration: duration_pb2.Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def duration_of(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def timestamp_of(epoch: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    whole = int(epoch)
    stamp.seconds, stamp.nanos = whole, round((epoch - whole) * 1e9) // 1000 * 1000
    return stamp


def epoch_of(stamp: timestamp_pb2.Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


@dataclass(eq=False)
class StoredMessage:
    """A published message as stored once per topic; subscriptions refer to it."""

    message: pubsub.PubsubMessage  # raw pb, with message_id and publish_time set
    published_at: float
    size: int


@dataclass(eq=False)
class Entry:
    """One message in one subscription."""

    seq: int
    stored: StoredMessage
    attempts: int = 0  # deliveries so far
    available_at: float = 0.0
    acked: bool = False
    lease: Lease | None = None

    @property
    def ordering_key(self) -> str:
        return str(self.stored.message.ordering_key)


@dataclass(eq=False)
class Lease:
    ack_id: str
    entry: Entry
    consumer: Consumer | None
    deadline: float
    subscription: str = ""


class Consumer(Protocol):
    """Something messages are handed to: a StreamingPull stream, a waiting Pull, the push worker."""

    one_per_key: bool

    def capacity(self) -> int: ...

    def deliver(self, subscription: SubscriptionState, leases: list[Lease]) -> None: ...

    def released(self, lease: Lease) -> None: ...


@dataclass
class SubscriptionState:
    pb: pubsub.Subscription  # raw pb
    predicate: Predicate
    created_at: float
    entries: list[Entry] = field(default_factory=list)  # not yet acked, by seq
    retained: list[Entry] = field(default_factory=list)  # acked, kept for seek when retain_acked_messages
    consumers: list[Consumer] = field(default_factory=list)
    next_consumer: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return str(self.pb.name)

    @property
    def ack_deadline(self) -> int:
        return int(self.pb.ack_deadline_seconds) or DEFAULT_ACK_DEADLINE_SECONDS

    @property
    def has_dead_letter(self) -> bool:
        return bool(self.pb.dead_letter_policy.dead_letter_topic)

    @property
    def ordered(self) -> bool:
        return bool(self.pb.enable_message_ordering)


class PubSubState:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.topics: dict[str, pubsub.Topic] = {}
        self.topic_log: dict[str, list[StoredMessage]] = {}  # retained messages, when retention is set
        self.subscriptions: dict[str, SubscriptionState] = {}
        self.leases: dict[str, Lease] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._ack_prefix = secrets.token_hex(4)
        self._timers: list[tuple[float, int, str]] = []
        self._timer_wake = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._timer_task is None:
            self._timer_task = asyncio.get_running_loop().create_task(self._run_timers())

    async def stop(self) -> None:
        for sub in self.subscriptions.values():
            sub.closed.set()
        if self._timer_task is not None:
            self._timer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer_task
            self._timer_task = None

    # ---- topics ------------------------------------------------------------------------------

    def get_topic(self, name: str) -> pubsub.Topic:
        names.topic(name, "topic")
        try:
            return self.topics[name]
        except KeyError:
            raise gexc.NotFound(f"Topic not found: {name}") from None

    def create_topic(self, topic: pubsub.Topic) -> pubsub.Topic:
        names.topic(topic.name, "name")
        if topic.name in self.topics:
            raise gexc.AlreadyExists(f"Topic already exists: {topic.name}")
        if topic.HasField("message_retention_duration"):
            check_retention(topic.message_retention_duration, MAX_TOPIC_RETENTION_SECONDS)
        stored = TopicPb()
        stored.CopyFrom(topic)
        stored.state = pubsub.Topic.State.ACTIVE
        self.topics[topic.name] = stored
        self.topic_log[topic.name] = []
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
        self.get_topic(topic_name)
        now = self.clock.now()
        ids: list[str] = []
        stored_all: list[StoredMessage] = []
        for message in messages:
            stored_pb = PubsubMessagePb()
            stored_pb.CopyFrom(message)
            stored_pb.message_id = str(next(self._ids))
            stored_pb.publish_time.CopyFrom(timestamp_of(now))
            stored = StoredMessage(stored_pb, now, stored_pb.ByteSize())
            ids.append(stored_pb.message_id)
            stored_all.append(stored)
        topic = self.topics[topic_name]
        if topic.HasField("message_retention_duration"):
            log_ = self.topic_log[topic_name]
            log_.extend(stored_all)
            horizon = now - seconds_of(topic.message_retention_duration)
            while log_ and log_[0].published_at < horizon:
                log_.pop(0)
        for sub in list(self.subscriptions.values()):
            if sub.pb.topic != topic_name or sub.pb.detached:
                continue
            added = False
            for stored in stored_all:
                if sub.predicate(stored.message.attributes):
                    sub.entries.append(Entry(next(self._seq), stored, available_at=now))
                    added = True
            if added:
                self.dispatch(sub)
        return ids

    # ---- subscriptions -----------------------------------------------------------------------

    def get_subscription(self, name: str, field_name: str = "subscription") -> SubscriptionState:
        names.subscription(name, field_name)
        try:
            return self.subscriptions[name]
        except KeyError:
            raise gexc.NotFound(f"Subscription does not exist: {name}") from None

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
            if path in _MESSAGE_FIELDS:
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
        for entry in sub.entries:
            if entry.lease is not None:
                self.leases.pop(entry.lease.ack_id, None)
        sub.closed.set()

    def attach(self, sub: SubscriptionState, consumer: Consumer) -> None:
        sub.consumers.append(consumer)
        self.dispatch(sub)

    def detach(self, sub: SubscriptionState, consumer: Consumer) -> None:
        with contextlib.suppress(ValueError):
            sub.consumers.remove(consumer)

    # ---- leases ------------------------------------------------------------------------------

    def acknowledge(self, subscription: str, ack_ids: list[str]) -> None:
        sub = self.get_subscription(subscription)
        for ack_id in ack_ids:
            lease = self.live_lease(sub, ack_id)
            if lease is None:
                continue
            self._end_lease(lease)
            self._mark_acked(sub, lease.entry)
        self.dispatch(sub)

    def modify_ack_deadline(self, subscription: str, ack_ids: list[str], seconds: int) -> None:
        sub = self.get_subscription(subscription)
        if not 0 <= seconds <= MAX_ACK_DEADLINE_SECONDS:
            raise gexc.InvalidArgument(
                f"Invalid [ack_deadline_seconds] {seconds}: must be between 0 and {MAX_ACK_DEADLINE_SECONDS}"
            )
        now = self.clock.now()
        for ack_id in ack_ids:
            lease = self.live_lease(sub, ack_id)
            if lease is None:
                continue
            if seconds == 0:
                self._fail(sub, lease.entry)
            else:
                lease.deadline = now + seconds
                self._schedule(sub, lease.deadline)
        self.dispatch(sub)

    def live_lease(self, sub: SubscriptionState, ack_id: str) -> Lease | None:
        """The lease ``ack_id`` names, if it is the current delivery of a message of ``sub``."""
        lease = self.leases.get(ack_id)
        if lease is None or lease.entry.lease is not lease or lease.subscription != sub.name:
            return None
        return lease

    def nack(self, sub: SubscriptionState, ack_id: str, *, retry: bool = True) -> None:
        """A push/Eventarc failure. ``retry=False`` acks instead (a trigger without ``--retry``)."""
        lease = self.leases.get(ack_id)
        if lease is None or lease.entry.lease is not lease:
            return
        if retry:
            self._fail(sub, lease.entry)
        else:
            self._end_lease(lease)
            self._mark_acked(sub, lease.entry)
        self.dispatch(sub)

    def ack_one(self, sub: SubscriptionState, ack_id: str) -> None:
        lease = self.leases.get(ack_id)
        if lease is None or lease.entry.lease is not lease:
            return
        self._end_lease(lease)
        self._mark_acked(sub, lease.entry)
        self.dispatch(sub)

    def _end_lease(self, lease: Lease) -> None:
        self.leases.pop(lease.ack_id, None)
        lease.entry.lease = None
        if lease.consumer is not None:
            lease.consumer.released(lease)

    def _mark_acked(self, sub: SubscriptionState, entry: Entry) -> None:
        entry.acked = True
        index = bisect.bisect_left(sub.entries, entry.seq, key=lambda e: e.seq)
        if index < len(sub.entries) and sub.entries[index] is entry:
            del sub.entries[index]
            if sub.pb.retain_acked_messages:
                bisect.insort(sub.retained, entry, key=lambda e: e.seq)
                horizon = self.clock.now() - seconds_of(sub.pb.message_retention_duration)
                sub.retained = [kept for kept in sub.retained if kept.stored.published_at >= horizon]

    def backoff(self, sub: SubscriptionState, entry: Entry) -> float:
        if sub.pb.HasField("retry_policy"):
            low = (
                seconds_of(sub.pb.retry_policy.minimum_backoff)
                if sub.pb.retry_policy.HasField("minimum_backoff")
                else 10.0
            )
            high = (
                seconds_of(sub.pb.retry_policy.maximum_backoff)
                if sub.pb.retry_policy.HasField("maximum_backoff")
                else 600.0
            )
            return float(min(high, low * 2 ** max(0, entry.attempts - 1)))
        if sub.pb.push_config.push_endpoint:
            # Without a retry policy push backs off on its own; this floor also keeps a failing endpoint
            # from being called in a hot loop.
            return float(min(60.0, 0.1 * 2 ** max(0, entry.attempts - 1)))
        return 0.0

    def _fail(self, sub: SubscriptionState, entry: Entry) -> None:
        """A nack or an expired lease: dead-letter, or schedule the redelivery."""
        if entry.lease is not None:
            self._end_lease(entry.lease)
        policy = sub.pb.dead_letter_policy
        if policy.dead_letter_topic and entry.attempts >= policy.max_delivery_attempts:
            self._dead_letter(sub, entry)
            self._mark_acked(sub, entry)
            return
        now = self.clock.now()
        entry.available_at = now + self.backoff(sub, entry)
        if sub.ordered and entry.ordering_key:
            # Later messages of the key that are out go back too, so the key restarts here.
            for other in sub.entries:
                if other.seq > entry.seq and other.ordering_key == entry.ordering_key and other.lease:
                    self._end_lease(other.lease)
                    other.available_at = max(other.available_at, entry.available_at)
        if entry.available_at > now:
            self._schedule(sub, entry.available_at)

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

    # ---- delivery ----------------------------------------------------------------------------

    def pull_now(
        self,
        sub: SubscriptionState,
        consumer: Consumer | None,
        limit: int,
        deadline_seconds: int,
        one_per_key: bool = False,
    ) -> list[Lease]:
        """Lease up to ``limit`` deliverable messages to ``consumer``."""
        now = self.clock.now()
        self._expire(sub, now)
        leases: list[Lease] = []
        if limit <= 0:
            return leases
        busy_keys: set[str] = set()
        horizon = now - seconds_of(sub.pb.message_retention_duration)
        for entry in list(sub.entries):
            key = entry.ordering_key if sub.ordered else ""
            if key and key in busy_keys:
                continue
            if entry.lease is not None:
                if key and one_per_key:
                    busy_keys.add(key)
                continue
            if entry.available_at > now:
                if key:
                    busy_keys.add(key)
                continue
            if entry.stored.published_at < horizon:
                self._mark_acked(sub, entry)  # past retention: gone
                continue
            entry.attempts += 1
            ack_id = f"{self._ack_prefix}-{next(self._seq)}"
            lease = Lease(ack_id, entry, consumer, now + deadline_seconds, sub.name)
            entry.lease = lease
            self.leases[ack_id] = lease
            leases.append(lease)
            if key and one_per_key:
                busy_keys.add(key)
            if len(leases) >= limit:
                break
        if leases:
            self._schedule(sub, min(lease.deadline for lease in leases))
        return leases

    def dispatch(self, sub: SubscriptionState) -> None:
        """Hand deliverable messages to the attached consumers, round-robin."""
        if sub.name not in self.subscriptions or not sub.entries or not sub.consumers:
            return
        now = self.clock.now()
        self._expire(sub, now)
        rounds = 0
        while sub.consumers and rounds < 10_000:
            rounds += 1
            available = self._deliverable_estimate(sub, now)
            if available == 0:
                return
            progressed = False
            for _ in range(len(sub.consumers)):
                index = sub.next_consumer % len(sub.consumers)
                consumer = sub.consumers[index]
                capacity = consumer.capacity()
                if capacity <= 0:
                    sub.next_consumer = index + 1
                    continue
                share = max(1, min(capacity, -(-available // len(sub.consumers))))
                deadline = getattr(consumer, "deadline_seconds", sub.ack_deadline)
                leases = self.pull_now(sub, consumer, share, deadline, consumer.one_per_key)
                if not leases:
                    return  # nothing left this consumer may take (ordering keys busy)
                sub.next_consumer = index + 1
                progressed = True
                consumer.deliver(sub, leases)
                available -= len(leases)
                if available <= 0 or not sub.consumers:
                    return
            if not progressed:
                return

    def _deliverable_estimate(self, sub: SubscriptionState, now: float) -> int:
        return sum(1 for e in sub.entries if e.lease is None and e.available_at <= now)

    def _expire(self, sub: SubscriptionState, now: float) -> None:
        for entry in list(sub.entries):
            lease = entry.lease
            if lease is not None and lease.deadline <= now:
                self._fail(sub, entry)

    # ---- seek --------------------------------------------------------------------------------

    def seek_to_time(self, sub: SubscriptionState, when: float) -> None:
        """Messages published before ``when`` become acked, the retained ones after it unacked."""
        everything = {e.seq: e for e in sub.entries + sub.retained}
        for stored in self.topic_log.get(str(sub.pb.topic), []):
            if stored.published_at >= sub.created_at and not any(
                e.stored is stored for e in everything.values()
            ):
                entry = Entry(next(self._seq), stored)
                everything[entry.seq] = entry
        entries: list[Entry] = []
        retained: list[Entry] = []
        now = self.clock.now()
        for entry in sorted(everything.values(), key=lambda e: (e.stored.published_at, e.seq)):
            if entry.lease is not None:
                self._end_lease(entry.lease)
            if entry.stored.published_at < when:
                entry.acked = True
                if sub.pb.retain_acked_messages:
                    retained.append(entry)
            else:
                entry.acked = False
                entry.available_at = now
                entries.append(entry)
        # renumber so that publish order is seq order again
        for entry in entries + retained:
            entry.seq = next(self._seq)
        sub.entries = sorted(entries, key=lambda e: e.seq)
        sub.retained = sorted(retained, key=lambda e: e.seq)
        self.dispatch(sub)

    # ---- timers ------------------------------------------------------------------------------

    def _schedule(self, sub: SubscriptionState, when: float) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), sub.name))
        if self._timers[0][0] == when:
            self._timer_wake.set()

    async def _run_timers(self) -> None:
        while True:
            now = self.clock.now()
            while self._timers and self._timers[0][0] <= now:
                _, _, name = heapq.heappop(self._timers)
                sub = self.subscriptions.get(name)
                if sub is not None:
                    try:
                        self._expire(sub, now)
                        self.dispatch(sub)
                    except Exception:
                        log.exception("timer for %s failed", name)
            self._timer_wake.clear()
            if self._timers:
                sleeper = asyncio.ensure_future(self.clock.sleep(self._timers[0][0] - now))
                waker = asyncio.ensure_future(self._timer_wake.wait())
                try:
                    await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
                    waker.cancel()
            else:
                await self._timer_wake.wait()


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
_MESSAGE_FIELDS = frozenset(
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
    """Report every bad field at once."""
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
    policy = pb.dead_letter_policy
    if pb.HasField("dead_letter_policy") and policy.dead_letter_topic:
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
    if pb.HasField("retry_policy"):
        for part in ("minimum_backoff", "maximum_backoff"):
            value = getattr(pb.retry_policy, part)
            if pb.retry_policy.HasField(part) and not 0 <= seconds_of(value) <= 600:
                problems.append(f"[retry_policy.{part}] {seconds_of(value):g}s: must be between 0s and 600s")
    endpoint = pb.push_config.push_endpoint
    if endpoint and not endpoint.startswith(("http://", "https://")):
        problems.append(f"[push_config.push_endpoint] {endpoint!r}: must be an http(s) URL")
    if problems:
        raise gexc.InvalidArgument("Invalid " + "; ".join(problems))
