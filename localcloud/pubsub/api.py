"""The RPC surface: ``Publisher``, ``Subscriber`` and ``IAMPolicy`` handlers named after the real RPCs.

Handlers take and return the raw protobuf classes of the ``google-cloud-pubsub`` wheel and raise
``google.api_core`` exceptions, which the gRPC shell maps to the status the real service sends.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import operator
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import any_pb2, empty_pb2
from google.pubsub_v1.types import pubsub
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from localcloud._paging import Paging
from localcloud.pubsub import names
from localcloud.pubsub.protos import TopicPb, epoch_of, varint
from localcloud.pubsub.records import Lease, SubscriptionState
from localcloud.pubsub.schemas import merge_schema_settings
from localcloud.pubsub.state import PubSubState
from localcloud.pubsub.validation import (
    MAX_ACK_DEADLINE_SECONDS,
    MAX_TOPIC_RETENTION_SECONDS,
    MIN_ACK_DEADLINE_SECONDS,
    check_retention,
)
from localcloud.quotas import PUBSUB_PUBLISH_KB, Quotas, project_key

PB = {name: getattr(pubsub, name).pb() for name in dir(pubsub) if hasattr(getattr(pubsub, name), "pb")}

MAX_REQUEST_BYTES = 10 * 1000 * 1000
MAX_MESSAGES_PER_REQUEST = 1000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_ORDERING_KEY_BYTES = 1024
PULL_WAIT_SECONDS = 0.5
# StreamingPullResponse size cap: a channel made without options accepts at most 4 MiB per message.
MAX_RESPONSE_BYTES = 3 * 1024 * 1024
UPDATABLE_TOPIC_FIELDS = frozenset(
    {
        "labels",
        "message_storage_policy",
        "kms_key_name",
        "schema_settings",
        "message_retention_duration",
        "ingestion_data_source_settings",
        "message_transforms",
    }
)

PUBLISHER_REQUESTS: dict[str, Any] = {
    "CreateTopic": PB["Topic"],
    "UpdateTopic": PB["UpdateTopicRequest"],
    "Publish": PB["PublishRequest"],
    "GetTopic": PB["GetTopicRequest"],
    "ListTopics": PB["ListTopicsRequest"],
    "ListTopicSubscriptions": PB["ListTopicSubscriptionsRequest"],
    "ListTopicSnapshots": PB["ListTopicSnapshotsRequest"],
    "DeleteTopic": PB["DeleteTopicRequest"],
    "DetachSubscription": PB["DetachSubscriptionRequest"],
}
SUBSCRIBER_REQUESTS: dict[str, Any] = {
    "CreateSubscription": PB["Subscription"],
    "GetSubscription": PB["GetSubscriptionRequest"],
    "UpdateSubscription": PB["UpdateSubscriptionRequest"],
    "ListSubscriptions": PB["ListSubscriptionsRequest"],
    "DeleteSubscription": PB["DeleteSubscriptionRequest"],
    "ModifyAckDeadline": PB["ModifyAckDeadlineRequest"],
    "Acknowledge": PB["AcknowledgeRequest"],
    "Pull": PB["PullRequest"],
    "ModifyPushConfig": PB["ModifyPushConfigRequest"],
    "Seek": PB["SeekRequest"],
    "ListSnapshots": PB["ListSnapshotsRequest"],
}
IAM_REQUESTS: dict[str, Any] = {
    "GetIamPolicy": iam_policy_pb2.GetIamPolicyRequest,
    "SetIamPolicy": iam_policy_pb2.SetIamPolicyRequest,
    "TestIamPermissions": iam_policy_pb2.TestIamPermissionsRequest,
}


# Any integer is taken as an offset; past the end, the page is empty.
PAGES = Paging(default_size=100, invalid_token_error="Invalid [page_token]: {token!r}", offsets_checked=False)


def validate_publish(request: Any) -> None:
    problems: list[str] = []
    messages = request.messages
    if not messages:
        problems.append("[messages]: at least one message is required")
    if len(messages) > MAX_MESSAGES_PER_REQUEST:
        problems.append(f"[messages]: at most {MAX_MESSAGES_PER_REQUEST} messages per request")
    if request.ByteSize() > MAX_REQUEST_BYTES:
        problems.append(f"[messages]: the request is larger than {MAX_REQUEST_BYTES} bytes")
    for index, message in enumerate(messages):
        attributes = message.attributes
        if not message.data and not attributes:
            problems.append(f"[messages[{index}]]: a message needs non-empty data or at least one attribute")
        if attributes:
            problems.extend(_attribute_problems(f"messages[{index}]", attributes))
        if message.ordering_key and len(message.ordering_key.encode()) > MAX_ORDERING_KEY_BYTES:
            problems.append(f"[messages[{index}].ordering_key]: exceeds {MAX_ORDERING_KEY_BYTES} bytes")
    if problems:
        raise gexc.InvalidArgument("Invalid " + "; ".join(problems))


def _attribute_problems(where: str, attributes: Any) -> list[str]:
    problems: list[str] = []
    if len(attributes) > MAX_ATTRIBUTES:
        problems.append(f"[{where}.attributes]: more than {MAX_ATTRIBUTES} attributes")
    for key, value in attributes.items():
        if not key:
            problems.append(f"[{where}.attributes]: an attribute key is empty")
        if len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
            problems.append(
                f"[{where}.attributes]: key {key[:40]!r}... exceeds {MAX_ATTRIBUTE_KEY_BYTES} bytes"
            )
        if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
            problems.append(
                f"[{where}.attributes]: value of {key!r} exceeds {MAX_ATTRIBUTE_VALUE_BYTES} bytes"
            )
    return problems


def received(sub: SubscriptionState, lease: Lease) -> Any:
    item = PB["ReceivedMessage"](ack_id=lease.ack_id)
    item.message.CopyFrom(lease.entry.stored.message)
    if sub.has_dead_letter:
        item.delivery_attempt = lease.entry.attempts
    return item


class PullConsumer:
    one_per_key = False

    def __init__(self, limit: int, deadline_seconds: int) -> None:
        self.limit = limit
        self.deadline_seconds = deadline_seconds
        self.result: asyncio.Future[list[Lease]] = asyncio.get_running_loop().create_future()

    def capacity(self) -> int:
        return 0 if self.result.done() else self.limit

    def deliver(self, subscription: SubscriptionState, leases: list[Lease]) -> None:
        self.result.set_result(leases)

    def released(self, lease: Lease) -> None:
        pass


class StreamConsumer:
    one_per_key = False

    def __init__(self, max_messages: int, max_bytes: int, deadline_seconds: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.deadline_seconds = deadline_seconds
        self.outstanding: dict[str, int] = {}
        self.outstanding_bytes = 0
        self.pending: list[Lease] = []  # delivered, not yet written to the stream
        self.wake = asyncio.Event()

    def capacity(self) -> int:
        if self.max_bytes > 0 and self.outstanding_bytes >= self.max_bytes:
            return 0
        if self.max_messages > 0:
            return self.max_messages - len(self.outstanding)
        return 1000

    def deliver(self, subscription: SubscriptionState, leases: list[Lease]) -> None:
        outstanding = self.outstanding
        total = 0
        for lease in leases:
            size = lease.entry.stored.size
            outstanding[lease.ack_id] = size
            total += size
        self.outstanding_bytes += total
        self.pending.extend(leases)
        self.wake.set()

    def released(self, lease: Lease) -> None:
        size = self.outstanding.pop(lease.ack_id, None)
        if size is not None:
            self.outstanding_bytes -= size


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited protobuf field: ``tag`` is the encoded key (field number << 3 | 2)."""
    return tag + varint(len(payload)) + payload


def streaming_responses(
    sub: SubscriptionState, leases: list[Lease], properties: bytes, limit: int = MAX_RESPONSE_BYTES
) -> list[bytes]:
    """Encoded ``StreamingPullResponse``s carrying the still-live ``leases``, each under ``limit`` bytes
    unless one message alone is larger. Built from each message's stored encoding, so a delivery costs no
    message copy (field numbers: google/pubsub/v1/pubsub.proto)."""
    attempts = sub.has_dead_letter
    out: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for lease in leases:
        entry = lease.entry
        if entry.lease is not lease:
            continue  # acked, nacked or expired before it was written
        ack = lease.ack_id.encode()
        message = entry.stored.field
        # ReceivedMessage: ack_id = 1, message = 2, delivery_attempt = 3
        head = b"\x0a" + varint(len(ack)) + ack
        tail = b"\x18" + varint(entry.attempts) if attempts else b""
        head = b"\x0a" + varint(len(head) + len(message) + len(tail)) + head
        length = len(head) + len(message) + len(tail)
        if parts and size + length > limit:
            parts.append(properties)
            out.append(b"".join(parts))
            parts, size = [], 0
        parts.append(head)
        parts.append(message)
        if tail:
            parts.append(tail)
        size += length
    if parts:
        parts.append(properties)
        out.append(b"".join(parts))
    return out


class PubSubApi:
    def __init__(
        self,
        state: PubSubState,
        on_subscription_change: Callable[[SubscriptionState], None],
        quotas: Quotas | None = None,
    ) -> None:
        self.state = state
        # LOCALCLOUD_QUOTAS: publisher throughput, in kB of published messages (localcloud.quotas).
        self.quotas = quotas or Quotas(clock=state.clock)
        self.on_subscription_change = on_subscription_change
        # Checks a subscription about to be created or changed against what lives outside Pub/Sub (a
        # BigQuery subscription's table: ``localcloud.pubsub.bigquery``); set by ``server.start``.
        self.check_subscription: Callable[[Any], Awaitable[None]] | None = None
        self.closing = asyncio.Event()
        self.policies: dict[str, Any] = {}

    # ---- Publisher ---------------------------------------------------------------------------

    async def CreateTopic(self, request: Any, context: Any) -> Any:
        return self.state.create_topic(request)

    async def GetTopic(self, request: Any, context: Any) -> Any:
        return self.state.get_topic(request.topic)

    async def UpdateTopic(self, request: Any, context: Any) -> Any:
        topic = self.state.get_topic(request.topic.name)
        paths = list(request.update_mask.paths)
        if not paths:
            raise gexc.InvalidArgument("Invalid [update_mask]: at least one path is required")
        candidate = TopicPb()
        candidate.CopyFrom(topic)
        for path in paths:
            if path.partition(".")[0] == "schema_settings":
                merge_schema_settings(candidate, request.topic, path)
                continue
            if path not in UPDATABLE_TOPIC_FIELDS:
                raise gexc.InvalidArgument(f"Invalid [update_mask]: cannot update field {path!r}")
            if path == "labels":
                candidate.labels.clear()
                candidate.labels.update(request.topic.labels)
            elif path == "kms_key_name":
                candidate.kms_key_name = request.topic.kms_key_name
            elif request.topic.HasField(path):
                getattr(candidate, path).CopyFrom(getattr(request.topic, path))
            else:
                candidate.ClearField(path)
        if candidate.HasField("message_retention_duration"):
            check_retention(candidate.message_retention_duration, MAX_TOPIC_RETENTION_SECONDS)
        if candidate.HasField("schema_settings") and any(p.startswith("schema_settings") for p in paths):
            self.state.schemas.check_settings(candidate.schema_settings)
        topic.CopyFrom(candidate)
        for sub in self.state.subscriptions.values():
            if sub.pb.topic == topic.name:
                if topic.HasField("message_retention_duration"):
                    sub.pb.topic_message_retention_duration.CopyFrom(topic.message_retention_duration)
                else:
                    sub.pb.ClearField("topic_message_retention_duration")
        return topic

    async def Publish(self, request: Any, context: Any) -> Any:
        names.topic(request.topic, "topic")
        self.state.get_topic(request.topic)
        validate_publish(request)
        self.state.schemas.stamp(self.state.topics[request.topic], request.messages)
        size = sum(message.ByteSize() for message in request.messages)
        self.quotas.charge(PUBSUB_PUBLISH_KB, project_key(request.topic), size / 1000)
        ids = self.state.publish(request.topic, list(request.messages))
        return PB["PublishResponse"](message_ids=ids)

    async def ListTopics(self, request: Any, context: Any) -> Any:
        project = names.project(request.project)
        prefix = f"projects/{project}/topics/"
        items, token = PAGES.offset_page(
            sorted(n for n in self.state.topics if n.startswith(prefix)),
            request.page_size,
            request.page_token,
        )
        return PB["ListTopicsResponse"](topics=[self.state.topics[n] for n in items], next_page_token=token)

    async def ListTopicSubscriptions(self, request: Any, context: Any) -> Any:
        items, token = PAGES.offset_page(
            self.state.topic_subscriptions(request.topic), request.page_size, request.page_token
        )
        return PB["ListTopicSubscriptionsResponse"](subscriptions=items, next_page_token=token)

    async def ListTopicSnapshots(self, request: Any, context: Any) -> Any:
        self.state.get_topic(request.topic)
        return PB["ListTopicSnapshotsResponse"]()

    async def DeleteTopic(self, request: Any, context: Any) -> Any:
        self.state.delete_topic(request.topic)
        return empty_pb2.Empty()

    async def DetachSubscription(self, request: Any, context: Any) -> Any:
        self.state.detach_subscription(self.state.get_subscription(request.subscription))
        return PB["DetachSubscriptionResponse"]()

    # ---- Subscriber --------------------------------------------------------------------------

    async def CreateSubscription(self, request: Any, context: Any) -> Any:
        if self.check_subscription is not None and request.name not in self.state.subscriptions:
            await self.check_subscription(request)
        created = self.state.create_subscription(request)
        self.on_subscription_change(self.state.subscriptions[created.name])
        return created

    async def GetSubscription(self, request: Any, context: Any) -> Any:
        return self.state.get_subscription(request.subscription).pb

    async def UpdateSubscription(self, request: Any, context: Any) -> Any:
        if self.check_subscription is not None and "bigquery_config" in request.update_mask.paths:
            await self.check_subscription(request.subscription)
        updated = self.state.update_subscription(
            request.subscription.name, request.subscription, list(request.update_mask.paths)
        )
        self.on_subscription_change(self.state.subscriptions[updated.name])
        return updated

    async def ListSubscriptions(self, request: Any, context: Any) -> Any:
        project = names.project(request.project)
        prefix = f"projects/{project}/subscriptions/"
        subs = self.state.subscriptions
        items, token = PAGES.offset_page(
            sorted(n for n in subs if n.startswith(prefix)), request.page_size, request.page_token
        )
        return PB["ListSubscriptionsResponse"](
            subscriptions=[subs[n].pb for n in items], next_page_token=token
        )

    async def DeleteSubscription(self, request: Any, context: Any) -> Any:
        sub = self.state.get_subscription(request.subscription)
        self.state.delete_subscription(request.subscription)
        self.on_subscription_change(sub)
        return empty_pb2.Empty()

    async def ModifyAckDeadline(self, request: Any, context: Any) -> Any:
        invalid = self._invalid_ack_ids(request.subscription, request.ack_ids)
        self.state.modify_ack_deadline(
            request.subscription, list(request.ack_ids), request.ack_deadline_seconds
        )
        await self._reject_invalid_ack_ids(request.subscription, invalid, context)
        return empty_pb2.Empty()

    async def Acknowledge(self, request: Any, context: Any) -> Any:
        invalid = self._invalid_ack_ids(request.subscription, request.ack_ids)
        self.state.acknowledge(request.subscription, list(request.ack_ids))
        await self._reject_invalid_ack_ids(request.subscription, invalid, context)
        return empty_pb2.Empty()

    def _invalid_ack_ids(self, subscription: str, ack_ids: Any) -> list[str]:
        sub = self.state.get_subscription(subscription)
        if not sub.pb.enable_exactly_once_delivery:
            return []
        return [ack_id for ack_id in ack_ids if self.state.live_lease(sub, ack_id) is None]

    async def _reject_invalid_ack_ids(self, subscription: str, invalid: list[str], context: Any) -> None:
        """With exactly-once delivery, unknown or expired ack ids fail the call with an ``ErrorInfo``
        naming each one, which the client turns into ``AcknowledgeError`` for those messages."""
        if not invalid:
            return
        info = error_details_pb2.ErrorInfo(
            reason="EXACTLY_ONCE_ACKID_FAILURE",
            domain="pubsub.googleapis.com",
            metadata=dict.fromkeys(invalid, "PERMANENT_FAILURE_INVALID_ACK_ID"),
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        message = f"Invalid [ack_ids]: {len(invalid)} ack id(s) of {subscription} are unknown or expired"
        status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])
        rich = rpc_status.to_status(status)
        await context.abort(rich.code, rich.details, trailing_metadata=rich.trailing_metadata)

    async def Pull(self, request: Any, context: Any) -> Any:
        sub = self.state.get_subscription(request.subscription)
        if request.max_messages <= 0:
            raise gexc.InvalidArgument("Invalid [max_messages]: must be positive")
        leases = self.state.pull_now(sub, None, request.max_messages, sub.ack_deadline)
        if not leases and not request.return_immediately:
            waiter = PullConsumer(request.max_messages, sub.ack_deadline)
            self.state.attach(sub, waiter)
            closed: asyncio.Future[Any] = asyncio.ensure_future(sub.closed.wait())
            try:
                pending: set[asyncio.Future[Any]] = {waiter.result, closed}
                # The first of the two ends the wait: messages for this pull, or the subscription gone.
                await asyncio.wait(pending, timeout=PULL_WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()  # also when the caller gave up (the call was cancelled)
                self.state.detach(sub, waiter)
            if waiter.result.done():
                leases = waiter.result.result()
            elif sub.closed.is_set():
                raise gexc.NotFound(f"Subscription does not exist: {sub.name}")
        return PB["PullResponse"](received_messages=[received(sub, lease) for lease in leases])

    async def StreamingPull(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        """Responses are yielded already encoded (``bytes``), by ``streaming_responses``."""
        try:
            first = await anext(requests)
        except StopAsyncIteration:
            return
        sub = self.state.get_subscription(first.subscription)
        deadline = first.stream_ack_deadline_seconds
        if not MIN_ACK_DEADLINE_SECONDS <= deadline <= MAX_ACK_DEADLINE_SECONDS:
            raise gexc.InvalidArgument(
                f"Invalid [stream_ack_deadline_seconds] {deadline}: must be between "
                f"{MIN_ACK_DEADLINE_SECONDS} and {MAX_ACK_DEADLINE_SECONDS}"
            )
        consumer = StreamConsumer(first.max_outstanding_messages, first.max_outstanding_bytes, deadline)
        self._stream_request(sub, consumer, first)
        reader = asyncio.ensure_future(self._read_stream(sub, consumer, requests))
        closing = asyncio.ensure_future(self.closing.wait())
        deleted = asyncio.ensure_future(sub.closed.wait())
        for task in (reader, closing, deleted):
            task.add_done_callback(lambda _: consumer.wake.set())
        self.state.attach(sub, consumer)
        properties = _field(
            b"\x22",
            PB["StreamingPullResponse"]
            .SubscriptionProperties(
                exactly_once_delivery_enabled=sub.pb.enable_exactly_once_delivery,
                message_ordering_enabled=sub.pb.enable_message_ordering,
            )
            .SerializeToString(),
        )
        try:
            while True:
                if consumer.pending:
                    leases, consumer.pending = consumer.pending, []
                    for response in streaming_responses(sub, leases, properties):
                        yield response
                    continue
                if deleted.done():
                    raise gexc.NotFound(f"Subscription does not exist: {sub.name}")
                if closing.done():
                    raise gexc.ServiceUnavailable("The service is shutting down")
                if reader.done():
                    reader.result()
                    return
                consumer.wake.clear()
                await consumer.wake.wait()
        finally:
            self.state.detach(sub, consumer)
            for task in (reader, closing, deleted):
                task.cancel()

    def _stream_request(self, sub: SubscriptionState, consumer: StreamConsumer, request: Any) -> None:
        if request.stream_ack_deadline_seconds:
            consumer.deadline_seconds = request.stream_ack_deadline_seconds
        if request.ack_ids:
            self.state.acknowledge(sub.name, list(request.ack_ids))
        if len(request.modify_deadline_ack_ids) != len(request.modify_deadline_seconds):
            raise gexc.InvalidArgument(
                "Invalid [modify_deadline_seconds]: must have as many entries as modify_deadline_ack_ids"
            )
        # one call per run of equal deadlines (a client sends a whole batch with one value), in request order
        pairs = zip(request.modify_deadline_ack_ids, request.modify_deadline_seconds, strict=True)
        for seconds, run in itertools.groupby(pairs, key=operator.itemgetter(1)):
            self.state.modify_ack_deadline(sub.name, [ack_id for ack_id, _ in run], seconds)

    async def _read_stream(
        self, sub: SubscriptionState, consumer: StreamConsumer, requests: AsyncIterator[Any]
    ) -> None:
        async for request in requests:
            if sub.name not in self.state.subscriptions:
                return
            self._stream_request(sub, consumer, request)
            self.state.dispatch(sub)

    async def ModifyPushConfig(self, request: Any, context: Any) -> Any:
        sub = self.state.get_subscription(request.subscription)
        patch = PB["Subscription"]()
        patch.push_config.CopyFrom(request.push_config)
        self.state.update_subscription(sub.name, patch, ["push_config"])
        self.on_subscription_change(sub)
        return empty_pb2.Empty()

    async def Seek(self, request: Any, context: Any) -> Any:
        sub = self.state.get_subscription(request.subscription)
        if request.WhichOneof("target") == "snapshot":
            raise gexc.MethodNotImplemented("Seek to a snapshot is not supported by the local emulator")
        if request.WhichOneof("target") != "time":
            raise gexc.InvalidArgument("Invalid [target]: a time or a snapshot is required")
        self.state.seek_to_time(sub, epoch_of(request.time))
        return PB["SeekResponse"]()

    async def ListSnapshots(self, request: Any, context: Any) -> Any:
        names.project(request.project)
        return PB["ListSnapshotsResponse"]()

    # ---- IAMPolicy ---------------------------------------------------------------------------

    def _resource(self, resource: str) -> None:
        if "/topics/" in resource:
            self.state.get_topic(resource)
        elif "/subscriptions/" in resource:
            self.state.get_subscription(resource, "resource")
        elif "/schemas/" in resource:
            self.state.schemas.record(resource, "resource")
        else:
            raise gexc.InvalidArgument(f"Invalid [resource]: {resource!r}")

    async def GetIamPolicy(self, request: Any, context: Any) -> Any:
        self._resource(request.resource)
        return self.policies.get(request.resource) or policy_pb2.Policy(etag=b"\x00 \x01")

    async def SetIamPolicy(self, request: Any, context: Any) -> Any:
        self._resource(request.resource)
        current = self.policies.get(request.resource)
        if request.policy.etag and current is not None and request.policy.etag != current.etag:
            raise gexc.Aborted("Invalid [policy.etag]: the policy was changed concurrently")
        policy = policy_pb2.Policy()
        policy.CopyFrom(request.policy)
        policy.version = policy.version or 1
        policy.etag = hashlib.sha256(policy.SerializeToString()).digest()[:8]
        self.policies[request.resource] = policy
        return policy

    async def TestIamPermissions(self, request: Any, context: Any) -> Any:
        self._resource(request.resource)
        return iam_policy_pb2.TestIamPermissionsResponse(permissions=list(request.permissions))


def _encoded(message: Any) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


def handler_tables(api: PubSubApi) -> list[grpc.GenericRpcHandler]:
    from localcloud import _grpc

    def table(service: str, requests: dict[str, Any]) -> dict[str, grpc.RpcMethodHandler]:
        return {
            name: _grpc.unary(getattr(api, name), request_type, method=f"{service}/{name}")
            for name, request_type in requests.items()
        }

    subscriber = table("google.pubsub.v1.Subscriber", SUBSCRIBER_REQUESTS)
    streaming = _grpc.stream_stream(
        api.StreamingPull, PB["StreamingPullRequest"], method="google.pubsub.v1.Subscriber/StreamingPull"
    )
    subscriber["StreamingPull"] = streaming._replace(response_serializer=_encoded)
    return [
        _grpc.service("google.pubsub.v1.Publisher", table("google.pubsub.v1.Publisher", PUBLISHER_REQUESTS)),
        _grpc.service("google.pubsub.v1.Subscriber", subscriber),
        _grpc.service("google.iam.v1.IAMPolicy", table("google.iam.v1.IAMPolicy", IAM_REQUESTS)),
    ]
