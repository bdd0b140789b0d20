from __future__ import annotations

from saga_orchestrator import clients
from saga_orchestrator.clients import ClientFactory


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


def test_an_immediate_publisher_sends_a_lone_message_without_waiting_for_a_batch(local_cloud):
    factory = ClientFactory(local_cloud.env)
    try:
        local_cloud.create_topic("projects/p/topics/results")
        immediate = factory.publisher(immediate=True)
        assert immediate is factory.publisher(immediate=True)
        assert immediate is not factory.publisher()
        # Its batches never time out: only a batch that is full at one message is ever sent.
        message_id = immediate.publish("projects/p/topics/results", b"one").result(timeout=10)
        [published] = local_cloud.published("projects/p/topics/results")
        assert (published.data, published.message_id) == (b"one", message_id)
    finally:
        factory.close()


def test_the_storage_session_reads_the_environment_once_when_it_names_no_proxy(tmp_path):
    env = {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:9", "HOME": str(tmp_path), "PATH": "/usr/bin"}
    session = ClientFactory(env).storage()._http
    assert session.trust_env is False
    assert session.verify is True
    bundle = {**env, "CURL_CA_BUNDLE": "/b/curl.pem", "REQUESTS_CA_BUNDLE": "/b/requests.pem"}
    session = ClientFactory(bundle).storage()._http
    assert (session.trust_env, session.verify) == (False, "/b/requests.pem")


def test_the_storage_session_keeps_reading_proxies_and_netrc(tmp_path):
    base = {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:9", "HOME": str(tmp_path)}
    for name in ("HTTPS_PROXY", "no_proxy", "all_proxy", "NETRC"):
        assert ClientFactory({**base, name: "x"}).storage()._http.trust_env is True
    (tmp_path / ".netrc").write_text("machine example.com login a password b\n")
    assert ClientFactory(base).storage()._http.trust_env is True
