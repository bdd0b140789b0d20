"""Which connectors are routed, under the names Google's connector reference gives them, and the
connector semantics around each call: retries of 429/503 with the documented backoff on the injected
clock, the end-to-end ``connector_params.timeout``, arguments that do not fit, and the run-time error of
a connector this engine does not route."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from localcloud.auth import TokenAuthority
from localcloud.clock import ManualClock
from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.service.connectors import Connectors, routes
from tests.support.eventually import eventually_async

PROJECT = "local-project"
NOBODY = "127.0.0.1:9"  # nothing listens on the discard port: every call is refused (UNAVAILABLE, 503)


def test_the_connectors_of_googles_samples_are_routed_under_their_documented_names() -> None:
    names = Connectors(LocalCloudConfig.from_env({})).names
    documented = {
        "googleapis.secretmanager.v1.projects.secrets.versions.access",
        "googleapis.secretmanager.v1.projects.secrets.versions.accessString",
        "googleapis.secretmanager.v1.projects.secrets.addVersionString",
        "googleapis.secretmanager.v1.projects.secrets.create",
        "googleapis.pubsub.v1.projects.topics.create",
        "googleapis.pubsub.v1.projects.topics.publish",
        "googleapis.pubsub.v1.projects.subscriptions.create",
        "googleapis.pubsub.v1.projects.subscriptions.pull",
        "googleapis.pubsub.v1.projects.subscriptions.delete",
        "googleapis.cloudtasks.v2.projects.locations.queues.create",
        "googleapis.cloudtasks.v2.projects.locations.queues.delete",
        "googleapis.cloudtasks.v2.projects.locations.queues.tasks.create",
        "googleapis.cloudtasks.v2.projects.locations.queues.tasks.get",
        "googleapis.cloudtasks.v2.projects.locations.queues.tasks.delete",
        "googleapis.cloudtasks.v2beta3.projects.locations.queues.create",
        "googleapis.cloudtasks.v2beta3.projects.locations.queues.patch",
        "googleapis.cloudtasks.v2beta3.projects.locations.queues.tasks.create",
        "googleapis.workflowexecutions.v1.projects.locations.workflows.executions.create",
        "googleapis.workflowexecutions.v1.projects.locations.workflows.executions.get",
        "googleapis.workflows.v1.projects.locations.workflows.create",
    }
    assert documented <= names


def test_every_rpc_an_emulator_serves_with_an_http_rule_has_a_connector() -> None:
    from localcloud.pubsub.api import PubSubApi
    from localcloud.secretmanager.api import SecretManagerApi
    from localcloud.tasks.api import CloudTasksApi
    from localcloud.workflows.service.executions_api import ExecutionsApi
    from localcloud.workflows.service.workflows_api import WorkflowsApi

    routed: dict[str, set[str]] = {}
    for name, route in routes().items():
        routed.setdefault(name.split(".")[1], set()).add(route.method.name)
    served = {
        "pubsub": PubSubApi,
        "secretmanager": SecretManagerApi,
        "cloudtasks": CloudTasksApi,
        "workflowexecutions": ExecutionsApi,
        "workflows": WorkflowsApi,
    }
    for service, api in served.items():
        rpcs = {n for n in vars(api) if n[:1].isupper()} - {"StreamingPull"}  # a stream has no HTTP rule
        assert rpcs <= routed[service], (service, rpcs - routed[service])


def test_every_cloud_tasks_v2_connector_has_its_v2beta3_twin_routed_to_the_v2beta3_service() -> None:
    from localcloud.tasks.v2beta3 import SERVICE_NAME

    beta = {
        name: route for name, route in routes().items() if name.startswith("googleapis.cloudtasks.v2beta3.")
    }
    v2 = {name for name in routes() if name.startswith("googleapis.cloudtasks.v2.")}
    assert {name.replace(".v2.", ".v2beta3.", 1) for name in v2} <= set(beta)
    assert {route.method.service for route in beta.values()} == {SERVICE_NAME}
    assert {route.address_field for route in beta.values()} == {"tasks"}
    queues_create = beta["googleapis.cloudtasks.v2beta3.projects.locations.queues.create"]
    assert queues_create.rule.template.flat_segments()[0] == "v2beta3"


def test_a_path_variable_with_a_nested_field_is_the_argument_named_by_its_last_field() -> None:
    route = routes()["googleapis.pubsub.v1.projects.subscriptions.patch"]
    (variable,) = route.rule.template.variables
    assert (variable.field_path, variable.arg_name) == ("subscription.name", "name")
    assert route.idempotent is False
    assert routes()["googleapis.pubsub.v1.projects.subscriptions.get"].idempotent is True


async def settle_sleeps(clock: ManualClock, call: asyncio.Task[Any]) -> list[float]:
    """Advances the clock over each sleep the call makes until it ends; the sleeps' lengths."""
    slept: list[float] = []
    while True:
        await eventually_async(lambda: call.done() or clock.pending_sleepers == 1, what="a sleep or the end")
        if call.done():
            return slept
        deadline = clock.next_deadline()
        assert deadline is not None
        slept.append(round(deadline - clock.now(), 6))
        await clock.advance(deadline - clock.now())


async def test_a_refused_call_is_retried_five_times_with_the_default_backoff_then_is_http_503() -> None:
    clock = ManualClock()
    connectors = Connectors(LocalCloudConfig.from_env({"PUBSUB_EMULATOR_HOST": NOBODY}), clock)
    call = asyncio.ensure_future(
        connectors.call(
            "googleapis.pubsub.v1.projects.topics.get", {"topic": "projects/p/topics/t"}, project_id=PROJECT
        )
    )
    try:
        assert await settle_sleeps(clock, call) == [1.0, 1.25, 1.5625, 1.953125, 2.441406]
        with pytest.raises(WorkflowError) as raised:
            await call
    finally:
        await connectors.close()
    payload = raised.value.payload
    assert (payload["tags"], payload["code"]) == (["HttpError"], 503)
    assert payload["body"]["error"]["status"] == "UNAVAILABLE"


async def test_the_timeout_bounds_the_whole_call_retries_included() -> None:
    clock = ManualClock()
    connectors = Connectors(LocalCloudConfig.from_env({"PUBSUB_EMULATOR_HOST": NOBODY}), clock)
    call = asyncio.ensure_future(
        connectors.call(
            "googleapis.pubsub.v1.projects.topics.publish",
            {"topic": "projects/p/topics/t", "body": {"messages": [{"data": "aGk="}]}},
            project_id=PROJECT,
            connector_params={"timeout": 3},
        )
    )
    try:
        assert await settle_sleeps(clock, call) == [1.0, 1.25, 0.75]
        with pytest.raises(WorkflowError) as raised:
            await call
    finally:
        await connectors.close()
    assert raised.value.tags == ["TimeoutError"]
    assert "within 3 seconds" in raised.value.payload["message"]


@dataclasses.dataclass
class Secrets:
    connectors: Connectors
    clock: ManualClock


@pytest.fixture
async def secrets() -> AsyncIterator[Secrets]:
    from localcloud.secretmanager import server

    clock = ManualClock()
    config = LocalCloudConfig.from_env({"SECRET_MANAGER_EMULATOR_HOST": "127.0.0.1:0"})
    ctx = Context(config=config, clock=clock, authority=TokenAuthority(clock, key_size=1024))
    started = await server.start(ctx)
    connectors = Connectors(dataclasses.replace(config, secretmanager=started.address), clock)
    yield Secrets(connectors, clock)
    await connectors.close()
    await started.stop()


async def test_an_answer_that_is_not_429_or_503_is_not_retried(secrets: Secrets) -> None:
    with pytest.raises(WorkflowError) as raised:
        await secrets.connectors.call(
            "googleapis.secretmanager.v1.projects.secrets.get",
            {"name": "projects/p/secrets/none"},
            project_id=PROJECT,
        )
    assert raised.value.payload["code"] == 404
    assert secrets.clock.pending_sleepers == 0


@pytest.mark.parametrize(
    ("args", "tag", "message"),
    [
        ({}, "ValueError", "missing required argument 'parent'"),
        ({"parent": 7}, "TypeError", "argument 'parent' must be a string"),
        ({"parent": "projects/p", "colour": "red"}, "HttpError", "colour"),
        ({"parent": "projects/p", "body": "text"}, "HttpError", "Invalid JSON payload received"),
    ],
)
async def test_arguments_that_do_not_fit_the_method(
    secrets: Secrets, args: dict[str, Any], tag: str, message: str
) -> None:
    with pytest.raises(WorkflowError) as raised:
        await secrets.connectors.call(
            "googleapis.secretmanager.v1.projects.secrets.create", args, project_id=PROJECT
        )
    assert raised.value.tags == [tag]
    text = (
        raised.value.payload["body"]["error"]["message"]
        if tag == "HttpError"
        else raised.value.payload["message"]
    )
    assert message in text
    if tag == "HttpError":
        assert raised.value.payload["code"] == 400


@pytest.mark.parametrize(
    ("params", "tag"),
    [
        ({"timeout": 31_536_001}, "ValueError"),
        ({"timeout": "soon"}, "TypeError"),
        ({"skip_polling": "yes"}, "TypeError"),
        ({"polling_policy": {"initial_delay": 1, "jitter": 2}}, "ValueError"),
    ],
)
async def test_connector_params_are_checked(secrets: Secrets, params: dict[str, Any], tag: str) -> None:
    with pytest.raises(WorkflowError) as raised:
        await secrets.connectors.call(
            "googleapis.secretmanager.v1.projects.secrets.list",
            {"parent": "projects/p"},
            project_id=PROJECT,
            connector_params=params,
        )
    assert raised.value.tags == [tag]


async def test_a_connector_not_routed_here_is_http_501_saying_it_is_not_emulated_locally() -> None:
    connectors = Connectors(LocalCloudConfig.from_env({}))
    try:
        for name in ("googleapis.bigquery.v2.jobs.query", "googleapis.pubsub.v1.projects.topics.publishh"):
            with pytest.raises(WorkflowError) as raised:
                await connectors.call(name, {"projectId": "p"}, project_id=PROJECT)
            payload = raised.value.payload
            assert (payload["tags"], payload["code"]) == (["HttpError"], 501)
            assert payload["message"] == f"{name} is not emulated locally (HTTP 501 UNIMPLEMENTED)"
            assert payload["body"]["error"]["status"] == "UNIMPLEMENTED"
            assert name in payload["body"]["error"]["message"]
    finally:
        await connectors.close()
