"""The delivery scheduler of the in-memory Pub/Sub: queues, leases, redelivery and timers.

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

from google.api_core import exceptions as gexc

from localcloud.clock import Clock, sleep_until
from localcloud.pubsub import names
from localcloud.pubsub.protos import seconds_of
from localcloud.pubsub.records import Consumer, Entry, KeyQueue, Lease, SubscriptionState
from localcloud.pubsub.validation import MAX_ACK_DEADLINE_SECONDS

log = logging.getLogger("localcloud.pubsub")


class Delivery:
    """The subscriptions and their leases; ``PubSubState`` adds topics, publishing and administration."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.subscriptions: dict[str, SubscriptionState] = {}
        self.leases: dict[str, Lease] = {}
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

    # ---- consumers ---------------------------------------------------------------------------

    def get_subscription(self, name: str, field_name: str = "subscription") -> SubscriptionState:
        found = self.subscriptions.get(name)
        if found is not None:
            return found
        names.subscription(name, field_name)
        raise gexc.NotFound(f"Subscription does not exist: {name}")

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
        if sub.pb.push_config.push_endpoint or sub.pb.bigquery_config.table:
            # Without a retry policy push (and a BigQuery subscription) backs off on its own; this floor
            # also keeps a failing endpoint from being called in a hot loop.
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
        """Publish ``entry`` to the dead-letter topic of ``sub``: topics live in ``PubSubState``."""
        raise NotImplementedError

    # ---- delivery ----------------------------------------------------------------------------

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
                sleeper = asyncio.ensure_future(sleep_until(self.clock, self._timers[0][0]))
                waker = asyncio.ensure_future(self._timer_wake.wait())
                try:
                    await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
                    waker.cancel()
            else:
                await self._timer_wake.wait()
