from __future__ import annotations

import socket
import time

import pytest
from google.api_core import exceptions as gexc
from saga_orchestrator import clients
from saga_orchestrator.clients import ClientFactory
from saga_orchestrator.events import PubsubMessage
from saga_orchestrator.pubsub import PubsubPublisher


def test_clients_talk_to_the_emulator_named_in_the_environment(local_cloud):
    factory = ClientFactory(local_cloud.env)
    try:
        local_cloud.deploy_workflow("projects/p/locations/l/workflows/w")
        assert list(factory.executions().list_executions(parent="projects/p/locations/l/workflows/w")) == []
        assert factory.tasks() is factory.tasks()
        assert factory.emulator_host("tasks") == local_cloud.env["CLOUD_TASKS_EMULATOR_HOST"]
    finally:
        factory.close()


def test_without_emulator_variables_the_real_endpoints_are_chosen():
    factory = ClientFactory({})
    assert factory.emulator_host("pubsub") is None
    assert factory.emulator_host("workflows") is None


def test_the_default_factory_is_built_once_and_can_be_replaced(monkeypatch):
    monkeypatch.setenv("CLOUD_TASKS_EMULATOR_HOST", "127.0.0.1:9")
    clients.set_default_factory(None)
    try:
        first = clients.default_factory()
        assert first is clients.default_factory()
        assert first.emulator_host("tasks") == "127.0.0.1:9"
        replacement = ClientFactory({})
        clients.set_default_factory(replacement)
        assert clients.default_factory() is replacement
    finally:
        clients.set_default_factory(None)


def test_the_one_message_publisher_sends_each_message_in_a_publish_call_of_its_own(local_cloud):
    factory = ClientFactory(local_cloud.env)
    try:
        local_cloud.create_topic("projects/p/topics/results")
        assert factory.publisher_api() is factory.publisher_api()
        publisher = PubsubPublisher(factory.publisher_api, "projects/p/topics/results")
        message_id = publisher.publish(PubsubMessage(b"one", {"ce-id": "e1"}))
        [published] = local_cloud.published("projects/p/topics/results")
        assert (published.data, dict(published.attributes), published.message_id) == (
            b"one",
            {"ce-id": "e1"},
            message_id,
        )
    finally:
        factory.close()


def test_the_object_store_sends_a_token_to_google_and_none_to_the_emulator():
    class Tokens:
        def id_token(self, audience: str) -> str:
            raise AssertionError("no ID token is asked for")

        def access_token(self) -> str:
            return "token-1"

    tokens = Tokens()
    local = ClientFactory({"STORAGE_EMULATOR_HOST": "127.0.0.1:9"}, tokens=tokens).objects()
    google = ClientFactory({}, tokens=tokens).objects()
    assert (local._base, local._tokens) == ("http://127.0.0.1:9", None)
    assert (google._base, google._tokens) == ("https://storage.googleapis.com", tokens)


def test_the_one_message_publisher_gives_up_within_its_timeout():
    with socket.socket() as held:  # a port nothing answers on
        held.bind(("127.0.0.1", 0))
        factory = ClientFactory({"PUBSUB_EMULATOR_HOST": f"127.0.0.1:{held.getsockname()[1]}"})
        publisher = PubsubPublisher(factory.publisher_api, "projects/p/topics/t", timeout_seconds=2)
        started = time.monotonic()
        with pytest.raises(gexc.GoogleAPIError):
            publisher.publish(PubsubMessage(b"x", {}))
        factory.close()
    assert time.monotonic() - started < 30  # the method's own default retries for 600 s
