"""Publisher throughput quota (``LOCALCLOUD_QUOTAS``, ``pubsub.publish.kb``): a publish that would take the
project over its kB per window fails with RESOURCE_EXHAUSTED over gRPC and HTTP 429 over REST, publishing
nothing; once the window has moved on, publishing works again."""

from __future__ import annotations

import base64

import pytest
import requests
from google import pubsub_v1 as pubsub_v1_gapic
from google.api_core import exceptions as gexc
from google.pubsub_v1 import PubsubMessage

from localcloud.clock import ManualClock
from localcloud.quotas import PUBSUB_PUBLISH_KB, QuotaConfig

from .conftest import PROJECT, Local, Starter, call


async def publish(local: Local, topic: str, size: int) -> list[str]:
    """One Publish request (the GAPIC client, without the batching client's retries)."""
    api = pubsub_v1_gapic.PublisherClient()  # PUBSUB_EMULATOR_HOST points at ``local``
    response = await call(api.publish, topic=topic, messages=[PubsubMessage(data=b"x" * size)], retry=None)
    return list(response.message_ids)


def publish_over_rest(local: Local, topic: str, size: int) -> requests.Response:
    body = {"messages": [{"data": base64.b64encode(b"x" * size).decode()}]}
    return requests.post(f"http://{local.service.rest_address}/v1/{topic}:publish", json=body, timeout=10)


async def test_publishes_over_the_throughput_quota_fail_with_resource_exhausted(
    start_pubsub: Starter,
) -> None:
    clock = ManualClock()
    local = await start_pubsub(clock)
    local.service.api.quotas.config = QuotaConfig.parse("pubsub.publish.kb=10/min")
    topic = local.topic("quota")
    await call(local.publisher.create_topic, name=topic)
    assert len(await publish(local, topic, 6_000)) == 1
    with pytest.raises(
        gexc.ResourceExhausted, match="Quota exceeded for quota metric 'Publisher throughput'"
    ):
        await publish(local, topic, 6_000)
    refused = await call(publish_over_rest, local, topic, 6_000)
    assert refused.status_code == 429
    assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert len(await publish(local, topic, 3_000)) == 1  # what is left of the 10 kB
    await clock.advance(60)
    assert (await call(publish_over_rest, local, topic, 6_000)).status_code == 200
    usage = local.service.api.quotas.usage()[PUBSUB_PUBLISH_KB][PROJECT]
    assert usage["calls"] == 3 and usage["refused"] == 2
