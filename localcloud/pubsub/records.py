"""What the Pub/Sub emulator keeps: stored messages, their entries in each subscription, leases and
ordering-key queues, and the per-subscription delivery queues.

A message is stored once per topic (``StoredMessage``); each subscription holds an ``Entry`` for it. Every
record but ``SubscriptionState`` has ``__slots__``: there is one ``Entry`` per message per subscription.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from google.pubsub_v1.types import pubsub

from localcloud.pubsub.filters import Predicate
from localcloud.pubsub.validation import DEFAULT_ACK_DEADLINE_SECONDS


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
