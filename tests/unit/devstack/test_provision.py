"""Provisioning with the real client libraries against the real emulators."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from saga_orchestrator.clients import ClientFactory

from devstack.provision import (
    WORKFLOW_FILE,
    FunctionUrls,
    deploy_workflow,
    ensure_queue,
    ensure_secret,
    generate_secret_values,
    internal_url_prefixes,
    queue_path,
    workflow_env,
)
from devstack.settings import DEFAULT_PATH, DeploymentSettings

SETTINGS = DeploymentSettings.load(DEFAULT_PATH, env={})
URLS = FunctionUrls("http://127.0.0.1:8081", "http://127.0.0.1:8082", "http://127.0.0.1:8083")


@pytest.fixture
def factory(emulators_in_thread: dict[str, str]) -> Iterator[ClientFactory]:
    factory = ClientFactory(
        {
            "CLOUD_TASKS_EMULATOR_HOST": emulators_in_thread["tasks"],
            "SECRET_MANAGER_EMULATOR_HOST": emulators_in_thread["secretmanager"],
            "WORKFLOWS_EMULATOR_HOST": emulators_in_thread["workflows"],
        }
    )
    yield factory
    factory.close()


def test_the_queue_gets_the_retry_settings_and_rate_limits_of_the_file(factory: ClientFactory) -> None:
    name = ensure_queue(factory, SETTINGS)
    queue = factory.tasks().get_queue(name=name)
    assert name == queue_path(SETTINGS) == "projects/local-project/locations/us-central1/queues/saga-tasks"
    retry = queue.retry_config
    assert retry.max_attempts == 20
    assert retry.min_backoff.total_seconds() == 0.5
    assert retry.max_backoff.total_seconds() == 30
    assert retry.max_doublings == 5
    assert queue.rate_limits.max_dispatches_per_second == 500
    assert queue.rate_limits.max_concurrent_dispatches == 200


def test_provisioning_the_queue_twice_updates_it(factory: ClientFactory) -> None:
    ensure_queue(factory, SETTINGS)
    changed = DeploymentSettings(data={**SETTINGS, "SAGA_QUEUE_MAX_ATTEMPTS": "7"})
    ensure_queue(factory, changed)
    assert factory.tasks().get_queue(name=queue_path(SETTINGS)).retry_config.max_attempts == 7


def test_each_secret_gets_its_generated_value_as_the_latest_version(factory: ClientFactory) -> None:
    values = generate_secret_values(SETTINGS)
    assert set(values) == {"payment-api-key"} and len(values["payment-api-key"]) >= 24
    path = ensure_secret(factory, "local-project", "payment-api-key", values["payment-api-key"])
    again = ensure_secret(factory, "local-project", "payment-api-key", "second-value")
    assert path == again == "projects/local-project/secrets/payment-api-key"
    latest = factory.secrets().access_secret_version(name=path + "/versions/latest")
    first = factory.secrets().access_secret_version(name=path + "/versions/1")
    assert latest.payload.data == b"second-value"
    assert first.payload.data == values["payment-api-key"].encode()


def test_the_workflow_env_is_what_the_workflow_reads() -> None:
    assert workflow_env(SETTINGS, URLS) == {
        "SAGA_STEP_EXECUTOR_URL": "http://127.0.0.1:8082",
        "SAGA_COMPLETION_URL": "http://127.0.0.1:8083",
        "SAGA_TASK_QUEUE_PATH": "projects/local-project/locations/us-central1/queues/saga-tasks",
        "SAGA_TASKS_INVOKER_EMAIL": "saga-tasks-invoker@local-project.iam.gserviceaccount.com",
        "SAGA_DISPATCH_DEADLINE_SECONDS": "120",
    }
    text = (DEFAULT_PATH.parent / "workflows" / "saga_orchestrator.yaml").read_text()
    for name in workflow_env(SETTINGS, URLS):
        assert f'sys.get_env("{name}")' in text


def test_internal_url_prefixes_are_the_function_urls() -> None:
    assert internal_url_prefixes(URLS) == "http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083"


def test_the_workflow_is_deployed_with_its_user_env_vars_and_service_account(factory: ClientFactory) -> None:
    env = workflow_env(SETTINGS, URLS)
    name = deploy_workflow(factory, SETTINGS, WORKFLOW_FILE.read_text(), env)
    assert name == "projects/local-project/locations/us-central1/workflows/saga-orchestrator"
    workflow = factory.workflows().get_workflow(name=name)
    assert dict(workflow.user_env_vars) == env
    assert workflow.service_account.endswith("saga-workflow@local-project.iam.gserviceaccount.com")
    assert workflow.source_contents == WORKFLOW_FILE.read_text()


def test_deploying_the_workflow_again_updates_it(factory: ClientFactory) -> None:
    deploy_workflow(factory, SETTINGS, WORKFLOW_FILE.read_text(), workflow_env(SETTINGS, URLS))
    other = FunctionUrls("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
    name = deploy_workflow(factory, SETTINGS, WORKFLOW_FILE.read_text(), workflow_env(SETTINGS, other))
    assert (
        factory.workflows().get_workflow(name=name).user_env_vars["SAGA_STEP_EXECUTOR_URL"]
        == "http://127.0.0.1:2"
    )
