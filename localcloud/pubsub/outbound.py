"""What the emulator's own deliveries share — push to an endpoint (``push.py``) and rows to a BigQuery table
(``bigquery.py``): a consumer attached to each subscription of their kind (and detached when it changes or
goes), the delivery tasks in flight, and one HTTP session whose connections are kept alive and checked
before reuse (``localcloud._http``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

import aiohttp

from localcloud._http import KeepAliveConnector
from localcloud.pubsub.state import Lease, PubSubState, SubscriptionState


class OutboundConsumer:
    """A subscription's consumer on the emulator's side: leases for one ordering key at a time, the
    subscription's ack deadline, ``capacity`` and ``deliver`` by kind."""

    one_per_key = True

    def __init__(self, sub: SubscriptionState) -> None:
        self.sub = sub
        self.in_flight = 0

    @property
    def deadline_seconds(self) -> int:
        return self.sub.ack_deadline

    def capacity(self) -> int:
        raise NotImplementedError

    def deliver(self, subscription: SubscriptionState, leases: list[Lease]) -> None:
        raise NotImplementedError

    def released(self, lease: Lease) -> None:
        pass


C = TypeVar("C", bound=OutboundConsumer)


class Outbound(Generic[C]):
    """The consumers of one kind of delivery. A subclass says which subscriptions it serves (``wants``)
    and builds their consumer (``consumer_for``)."""

    def __init__(self, state: PubSubState) -> None:
        self.state = state
        self.consumers: dict[str, C] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def wants(self, sub: SubscriptionState) -> bool:
        raise NotImplementedError

    def consumer_for(self, sub: SubscriptionState) -> C:
        raise NotImplementedError

    def sync(self, sub: SubscriptionState) -> None:
        """Attach or detach the consumer after a subscription was created, changed or deleted."""
        wanted = self.wants(sub) and sub.name in self.state.subscriptions
        current = self.consumers.get(sub.name)
        if current is not None and (not wanted or current.sub is not sub):
            self.state.detach(current.sub, current)
            del self.consumers[sub.name]
            current = None
        if wanted and current is None:
            consumer = self.consumer_for(sub)
            self.consumers[sub.name] = consumer
            self.state.attach(sub, consumer)

    def spawn(self, delivery: Coroutine[Any, Any, None]) -> None:
        """Run one delivery on the loop, kept until it ends (``stop`` cancels those still running)."""
        task = asyncio.get_running_loop().create_task(delivery)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    def client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Kept-alive connections, each checked before reuse (an endpoint closes idle ones after a while).
            self._session = aiohttp.ClientSession(connector=KeepAliveConnector())
        return self._session
