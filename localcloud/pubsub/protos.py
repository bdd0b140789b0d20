"""Conversions between the emulator's floats and the protobuf types of the Pub/Sub API.

Times are epoch seconds as floats inside the emulator; a ``Timestamp`` is cut to the microsecond, as the
real service sends it. ``varint`` lets streaming pull write a stored message into a response as is.
"""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2
from google.pubsub_v1.types import pubsub

TopicPb = pubsub.Topic.pb()
SubscriptionPb = pubsub.Subscription.pb()
PubsubMessagePb = pubsub.PubsubMessage.pb()


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
