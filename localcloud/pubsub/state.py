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

Cost: every operation touches only the messages it hands out, acks or fails, never the whole backlog.
Deliverable messages wait in queues (never delivered, in publish order; back from a nack or backoff; one
entry per ordering key whose next message may go out), backoffs in a heap by time, and leases in a heap by
deadline whose stale items (acked, extended) are skipped when popped and compacted when they pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import secrets
from collections import deque
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


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_VARINTS = tuple(_encode_varint(n) for n in range(1 << 14))


def varint(value: int) -> bytes:
    """``value`` as a protobuf base-128 varint."""
    return _VARINTS[value] if value < 16384 else _encode_varint(value)


@dataclass(eq=False, slots=True)
class StoredMessage:
    """A published message as stored once per topic; subscriptions refer to it."""

    message: pubsub.PubsubMessage  # raw pb, with message_id and publish_time set
    published_at: float
    # ``message`` encoded as field 2 of a ``ReceivedMessage``, written as is into streaming pull responses
    field: bytes
    size: int  # of ``message`` encoded
    ordering_key: str = ""


@dataclass(eq=False, slots=True)
class Entry:
    """One message in one subscription."""

    seq: int
    stored: StoredMessage
    attempts: int = 0  # deliveries so far
    available_at: float = 0.0
    acked: bool = False
    lease: Lease | None = None
    key: str = ""  # the ordering key, on an ordered subscription only

    @property
    def ordering_key(self) -> str:
        return self.stored.ordering_key


@dataclass(eq=False, slots=True)
class Lease:
    ack_id: str
    entry: Entry
    consumer: Consumer | None
    deadline: float
    owner: SubscriptionState | None = None


@dataclass(eq=False, slots=True)
class KeyQueue:
    """The unacked messages of one ordering key, in publish order; ``entries[:leased]`` are out on lease
    and ``entries[leased]`` is the only one that may go out next."""

    key: str
    entries: deque[Entry] = field(default_factory=deque)
    leased: int = 0


class Consumer(Protocol):
    """Something messages are handed to: a StreamingPull stream, a waiting Pull, the push worker."""

    one_per_key: bool

    def capacity(self) -> int: ...

    def deliver(self, subscription: SubscriptionState, leases: list[Lease]) -> None: ...

    def released(self, lease: Lease) -> None: ...


@dataclass(eq=False)
class SubscriptionState:
    pb: pubsub.Subscription  # raw pb
    predicate: Predicate
    created_at: float
    unacked: dict[int, Entry] = field(default_factory=dict)  # by seq, in seq order
    retained: dict[int, Entry] = field(default_factory=dict)  # acked, kept for seek (retain_acked_messages)
    consumers: list[Consumer] = field(default_factory=list)
    next_consumer: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    # What may go out now, without an ordering key: never delivered (publish order) and back from a nack,
    # expiry or backoff (a heap by seq). Keyed messages wait in ``keys``; a key whose next message may go
    # out is in ``ready_keys`` (by that message's seq). Stale heap items are skipped when popped.
    fresh: deque[Entry] = field(default_factory=deque)
    returned: list[tuple[int, int, Entry]] = field(default_factory=list)
    keys: dict[str, KeyQueue] = field(default_factory=dict)
    ready_keys: list[tuple[int, str]] = field(default_factory=list)
    delayed: list[tuple[float, int, Entry]] = field(default_factory=list)  # backoff, by available_at
    expiries: list[tuple[float, int, list[Lease]]] = field(default_factory=list)  # leases by deadline
    expiry_items: int = 0
    lease_count: int = 0
    wake_at: float = math.inf  # the earliest timer pending for this subscription
    retained_check_at: int = 1024

    @property
    def name(self) -> str:
        return str(self.pb.name)

    @property
    def entries(self) -> list[Entry]:
        """The unacked messages, in publish order."""
        return list(self.unacked.values())

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
        self.topic_log: dict[str, deque[StoredMessage]] = {}  # retained messages, when retention is set
        self.subscriptions: dict[str, SubscriptionState] = {}
        self.leases: dict[str, Lease] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._tick = itertools.count()  # tie-breaker for heap items
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

    def _add(self, sub: SubscriptionState, entry: Entry, now: float) -> None:
        """Queue a new unacked, available ``entry``, later than every other one of ``sub``."""
        sub.unacked[entry.seq] = entry
        key = entry.stored.ordering_key if sub.ordered else ""
        entry.key = key
        if not key:
            sub.fresh.append(entry)
            return
        queue = sub.keys.get(key)
        if queue is None:
            queue = sub.keys[key] = KeyQueue(key)
        queue.entries.append(entry)
        if len(queue.entries) == queue.leased + 1:
            self._offer_key(sub, queue, now)

    # ---- subscriptions -----------------------------------------------------------------------

    def get_subscription(self, name: str, field_name: str = "subscription") -> SubscriptionState:
        found = self.subscriptions.get(name)
        if found is not None:
            return found
        names.subscription(name, field_name)
        raise gexc.NotFound(f"Subscription does not exist: {name}")

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
        deadline = self.clock.now() + seconds
        extended: list[Lease] = []
        for ack_id in ack_ids:
            lease = self.live_lease(sub, ack_id)
            if lease is None:
                continue
            if seconds == 0:
                self._fail(sub, lease.entry)
            else:
                lease.deadline = deadline
                extended.append(lease)
        if extended:
            self._expire_at(sub, deadline, extended)
        self.dispatch(sub)

    def live_lease(self, sub: SubscriptionState, ack_id: str) -> Lease | None:
        """The lease ``ack_id`` names, if it is the current delivery of a message of ``sub``."""
        lease = self.leases.get(ack_id)
        if lease is None or lease.entry.lease is not lease or lease.owner is not sub:
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
        if lease.owner is not None:
            lease.owner.lease_count -= 1
        if lease.consumer is not None:
            lease.consumer.released(lease)

    def _mark_acked(self, sub: SubscriptionState, entry: Entry) -> None:
        entry.acked = True
        if sub.unacked.pop(entry.seq, None) is None:
            return
        if entry.key:
            queue = sub.keys.get(entry.key)
            if queue is not None:
                index = 0 if queue.entries[0] is entry else queue.entries.index(entry)
                del queue.entries[index]
                if index < queue.leased:
                    queue.leased -= 1
                if not queue.entries:
                    del sub.keys[entry.key]
        if sub.pb.retain_acked_messages:
            sub.retained[entry.seq] = entry
            if len(sub.retained) >= sub.retained_check_at:
                self._prune_retained(sub)

    def _prune_retained(self, sub: SubscriptionState) -> None:
        horizon = self.clock.now() - seconds_of(sub.pb.message_retention_duration)
        sub.retained = {s: e for s, e in sub.retained.items() if e.stored.published_at >= horizon}
        sub.retained_check_at = 2 * len(sub.retained) + 1024

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
        if entry.key:
            queue = sub.keys[entry.key]
            index = queue.entries.index(entry)
            # Later messages of the key that are out go back too, so the key restarts here.
            for other in itertools.islice(queue.entries, index + 1, queue.leased):
                if other.lease is not None:
                    self._end_lease(other.lease)
                other.available_at = max(other.available_at, entry.available_at)
            queue.leased = min(queue.leased, index)
            self._offer_key(sub, queue, now)
        elif entry.available_at > now:
            self._delay(sub, entry)
        else:
            heapq.heappush(sub.returned, (entry.seq, next(self._tick), entry))

    def _delay(self, sub: SubscriptionState, entry: Entry) -> None:
        heapq.heappush(sub.delayed, (entry.available_at, next(self._tick), entry))
        self._schedule(sub, entry.available_at)

    def _offer_key(self, sub: SubscriptionState, queue: KeyQueue, now: float) -> None:
        """Make the next message of ``queue`` deliverable, now or when its backoff ends."""
        if queue.leased >= len(queue.entries):
            return
        candidate = queue.entries[queue.leased]
        if candidate.available_at <= now:
            heapq.heappush(sub.ready_keys, (candidate.seq, queue.key))
        else:
            self._delay(sub, candidate)

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

    def _next_ready(
        self, sub: SubscriptionState, now: float, one_per_key: bool, set_aside: list[tuple[int, str]]
    ) -> Entry | None:
        """Take the deliverable message with the lowest seq off the queues."""
        fresh, returned, ready_keys = sub.fresh, sub.returned, sub.ready_keys
        while True:
            best = fresh[0].seq if fresh else math.inf
            if returned and returned[0][0] < best:
                best = returned[0][0]
                source = 2
            else:
                source = 1 if fresh else 0
            if ready_keys and ready_keys[0][0] < best:
                seq, key = heapq.heappop(ready_keys)
                queue = sub.keys.get(key)
                if queue is None or queue.leased >= len(queue.entries):
                    continue
                candidate = queue.entries[queue.leased]
                if candidate.seq != seq or candidate.lease is not None or candidate.available_at > now:
                    continue
                if one_per_key and queue.leased:
                    set_aside.append((seq, key))
                    continue
                return candidate
            if source == 0:
                return None
            entry = fresh.popleft() if source == 1 else heapq.heappop(returned)[2]
            if entry.lease is None and not entry.acked:
                return entry

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
        horizon = now - seconds_of(sub.pb.message_retention_duration)
        deadline = now + deadline_seconds
        set_aside: list[tuple[int, str]] = []
        prefix = self._ack_prefix
        seqs = self._seq
        fresh = sub.fresh
        while len(leases) < limit:
            if fresh and not sub.returned and not sub.ready_keys:
                entry = fresh.popleft()  # the common case: only never-delivered messages are waiting
                if entry.lease is not None or entry.acked:
                    continue
            else:
                found = self._next_ready(sub, now, one_per_key, set_aside)
                if found is None:
                    break
                entry = found
            if entry.stored.published_at < horizon:
                self._mark_acked(sub, entry)  # past retention: gone
                if entry.key and entry.key in sub.keys:
                    self._offer_key(sub, sub.keys[entry.key], now)
                continue
            entry.attempts += 1
            ack_id = f"{prefix}-{next(seqs)}"
            lease = Lease(ack_id, entry, consumer, deadline, sub)
            entry.lease = lease
            self.leases[ack_id] = lease
            leases.append(lease)
            if entry.key:
                queue = sub.keys[entry.key]
                queue.leased += 1
                self._offer_key(sub, queue, now)
        for item in set_aside:
            heapq.heappush(sub.ready_keys, item)
        if leases:
            sub.lease_count += len(leases)
            self._expire_at(sub, deadline, list(leases))
        return leases

    def dispatch(self, sub: SubscriptionState) -> None:
        """Hand deliverable messages to the attached consumers, round-robin."""
        if not sub.unacked or not sub.consumers or sub.name not in self.subscriptions:
            return
        now = self.clock.now()
        self._expire(sub, now)
        rounds = 0
        while sub.consumers and rounds < 10_000:
            rounds += 1
            available = self._deliverable_estimate(sub)
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

    def _deliverable_estimate(self, sub: SubscriptionState) -> int:
        """At least the number of messages that may go out now (ready keys count their whole backlog)."""
        keyed = len(sub.unacked) if sub.ready_keys else 0
        return len(sub.fresh) + len(sub.returned) + keyed

    def _expire_at(self, sub: SubscriptionState, deadline: float, leases: list[Lease]) -> None:
        heapq.heappush(sub.expiries, (deadline, next(self._tick), leases))
        sub.expiry_items += len(leases)
        if sub.expiry_items > 2 * sub.lease_count + 4096:
            # acked or extended leases linger in older items until their deadline: drop them now
            items: list[tuple[float, int, list[Lease]]] = []
            for when, tick, batch in sub.expiries:
                live = [lease for lease in batch if lease.entry.lease is lease and lease.deadline == when]
                if live:
                    items.append((when, tick, live))
            heapq.heapify(items)
            sub.expiries = items
            sub.expiry_items = sum(len(batch) for _, _, batch in items)
        self._schedule(sub, deadline)

    def _expire(self, sub: SubscriptionState, now: float) -> None:
        """Fail the leases past their deadline and release the messages whose backoff ended."""
        expiries = sub.expiries
        while expiries and expiries[0][0] <= now:
            _, _, batch = heapq.heappop(expiries)
            sub.expiry_items -= len(batch)
            for lease in batch:
                if lease.entry.lease is lease and lease.deadline <= now:
                    self._fail(sub, lease.entry)
            expiries = sub.expiries
        delayed = sub.delayed
        while delayed and delayed[0][0] <= now:
            at, _, entry = heapq.heappop(delayed)
            if entry.acked or entry.lease is not None or entry.available_at != at:
                continue
            if not entry.key:
                heapq.heappush(sub.returned, (entry.seq, next(self._tick), entry))
                continue
            queue = sub.keys.get(entry.key)
            if (
                queue is not None
                and queue.leased < len(queue.entries)
                and queue.entries[queue.leased] is entry
            ):
                heapq.heappush(sub.ready_keys, (entry.seq, entry.key))

    def _reset_queues(self, sub: SubscriptionState) -> None:
        sub.unacked = {}
        sub.fresh = deque()
        sub.returned = []
        sub.keys = {}
        sub.ready_keys = []
        sub.delayed = []

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

    # ---- timers ------------------------------------------------------------------------------

    def _schedule(self, sub: SubscriptionState, when: float) -> None:
        if when >= sub.wake_at:
            return  # an earlier wake-up of this subscription will schedule the next one
        sub.wake_at = when
        heapq.heappush(self._timers, (when, next(self._tick), sub.name))
        if self._timers[0][0] == when:
            self._timer_wake.set()

    async def _run_timers(self) -> None:
        while True:
            now = self.clock.now()
            while self._timers and self._timers[0][0] <= now:
                _, _, name = heapq.heappop(self._timers)
                sub = self.subscriptions.get(name)
                if sub is None:
                    continue
                sub.wake_at = math.inf
                try:
                    self._expire(sub, now)
                    self.dispatch(sub)
                except Exception:
                    log.exception("timer for %s failed", name)
                due = min(
                    sub.expiries[0][0] if sub.expiries else math.inf,
                    sub.delayed[0][0] if sub.delayed else math.inf,
                )
                if due < math.inf:
                    self._schedule(sub, due)
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
