"""Provision a running local cloud from ``deployment.env`` with the client libraries a user would use
(google-cloud-pubsub, -tasks, -secret-manager, -workflows, -storage through ``saga_orchestrator.clients.ClientFactory``,
insecure gRPC to the emulators): what ``deploy.sh`` creates in Google Cloud, minus IAM.

- topics ``SAGA_REQUEST_TOPIC`` and ``SAGA_RESULT_TOPIC``;
- the Eventarc-style trigger from the request topic to ``start_saga`` (``localcloud.eventarc.triggers``);
- the queue ``SAGA_TASK_QUEUE`` with the file's retry settings and rate limits;
- every secret of ``SAGA_SECRETS`` with a version holding the value the caller generated (values are
  never printed nor logged here);
- the workflow ``SAGA_WORKFLOW`` from ``workflows/saga_orchestrator.yaml`` with its user env vars;
- the bucket of start claims (``SAGA_START_BUCKET``, by default ``<project>-saga-starts``) in
  ``SAGA_LOCATION``.

Running it again against the same cloud updates what exists (queue, workflow) and adds secret versions;
it never fails on ``AlreadyExists``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from google.api_core import exceptions as gexc
from saga_orchestrator.clients import ClientFactory
from saga_orchestrator.settings import Settings

from devstack.settings import REPO_ROOT, DeploymentSettings

WORKFLOW_FILE = REPO_ROOT / "workflows" / "saga_orchestrator.yaml"
TRIGGER_NAME = "saga-requests-to-start-saga"


class ProvisionError(RuntimeError):
    """A resource of the local deployment could not be created; the message names it."""


@dataclass(frozen=True)
class FunctionUrls:
    start_saga: str
    step_executor: str
    saga_completion: str
    # Called by the stack's timer (Cloud Scheduler on Google Cloud), never by the workflow.
    saga_sweeper: str = ""


@dataclass(frozen=True)
class Provisioned:
    """Resource names of what was provisioned (no secret values)."""

    request_topic: str
    result_topic: str
    queue: str
    workflow: str
    trigger: str  # the trigger's push subscription
    secrets: tuple[str, ...]
    results_subscription: str | None
    start_bucket: str = ""


def generate_secret_values(settings: DeploymentSettings) -> dict[str, str]:
    """A fresh random value for every secret of ``SAGA_SECRETS`` (the demo's ``payment-api-key``)."""
    return {name: secrets.token_urlsafe(24) for name in settings.secret_names()}


def workflow_env(settings: DeploymentSettings, urls: FunctionUrls) -> dict[str, str]:
    """The workflow's user env vars, as deploy.sh sets them."""
    return {
        "SAGA_STEP_EXECUTOR_URL": urls.step_executor,
        "SAGA_COMPLETION_URL": urls.saga_completion,
        "SAGA_TASK_QUEUE_PATH": queue_path(settings),
        "SAGA_TASKS_INVOKER_EMAIL": settings.service_account_email("SAGA_TASKS_INVOKER_SA"),
        "SAGA_DISPATCH_DEADLINE_SECONDS": settings.require("SAGA_DISPATCH_DEADLINE_SECONDS"),
    }


def queue_path(settings: DeploymentSettings) -> str:
    return f"projects/{settings.project_id}/locations/{settings.location}/queues/{settings.require('SAGA_TASK_QUEUE')}"


def topic_path(settings: DeploymentSettings, key: str) -> str:
    return f"projects/{settings.project_id}/topics/{settings.require(key)}"


def provision(
    factory: ClientFactory,
    settings: DeploymentSettings,
    *,
    function_urls: FunctionUrls,
    secret_values: Mapping[str, str],
    workflow_source: str | None = None,
    results_subscription: str | None = None,
    trigger: bool = True,
    timeout: float = 30.0,
) -> Provisioned:
    """Create everything (see the module docstring). ``results_subscription``, when given, is a pull
    subscription on the result topic created before any saga can run, so no result is missed."""
    request_topic = topic_path(settings, "SAGA_REQUEST_TOPIC")
    result_topic = topic_path(settings, "SAGA_RESULT_TOPIC")
    _create_topics(factory, (request_topic, result_topic), timeout)

    subscription = None
    if results_subscription:
        subscription = f"projects/{settings.project_id}/subscriptions/{results_subscription}"
        _create_results_subscription(factory, subscription, result_topic, timeout)

    queue = _step("queue " + queue_path(settings), lambda: ensure_queue(factory, settings, timeout))
    bucket = start_bucket(settings)
    _step(f"bucket {bucket}", lambda: ensure_start_bucket(factory, settings, timeout))
    names = _create_secrets(factory, settings, secret_values, timeout)

    source = workflow_source if workflow_source is not None else WORKFLOW_FILE.read_text(encoding="utf-8")
    workflow = _step(
        "workflow " + settings.require("SAGA_WORKFLOW"),
        lambda: deploy_workflow(factory, settings, source, workflow_env(settings, function_urls), timeout),
    )

    trigger_name = ""
    if trigger:
        trigger_name = create_trigger(factory, settings, function_urls.start_saga)
    return Provisioned(
        request_topic=request_topic,
        result_topic=result_topic,
        queue=queue,
        workflow=workflow,
        trigger=trigger_name,
        secrets=tuple(names),
        results_subscription=subscription,
        start_bucket=bucket,
    )


def _create_topics(factory: ClientFactory, topics: tuple[str, ...], timeout: float) -> None:
    publisher = factory.publisher()
    for topic in topics:
        _step(
            f"topic {topic}",
            lambda t=topic: _ignore_exists(lambda: publisher.create_topic(name=t, timeout=timeout)),
        )


def _create_results_subscription(
    factory: ClientFactory, subscription: str, result_topic: str, timeout: float
) -> None:
    subscriber = factory.subscriber()
    _step(
        f"subscription {subscription}",
        lambda: _ignore_exists(
            lambda: subscriber.create_subscription(
                request={"name": subscription, "topic": result_topic, "ack_deadline_seconds": 60},
                timeout=timeout,
            )
        ),
    )


def _create_secrets(
    factory: ClientFactory, settings: DeploymentSettings, secret_values: Mapping[str, str], timeout: float
) -> list[str]:
    """Every secret of ``SAGA_SECRETS`` with a new version; its names."""
    names: list[str] = []
    for name in settings.secret_names():
        if name not in secret_values:
            raise ProvisionError(f"secret {name}: no value was generated for it")
        names.append(
            _step(
                f"secret {name}",
                lambda n=name: ensure_secret(factory, settings.project_id, n, secret_values[n], timeout),
            )
        )
    return names


def _step(what: str, action: Any) -> Any:
    try:
        return action()
    except ProvisionError:
        raise
    except gexc.GoogleAPICallError as error:
        raise ProvisionError(f"cannot create {what}: {error}") from error


def _ignore_exists(call: Any) -> Any:
    try:
        return call()
    except gexc.AlreadyExists:
        return None


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def ensure_queue(factory: ClientFactory, settings: DeploymentSettings, timeout: float = 30.0) -> str:
    """Create (or update) the task queue with the settings' retry config and rate limits."""
    from google.cloud import tasks_v2

    name = queue_path(settings)
    queue = tasks_v2.Queue(
        name=name,
        rate_limits=tasks_v2.RateLimits(
            max_dispatches_per_second=settings.number("SAGA_QUEUE_MAX_DISPATCHES_PER_SECOND"),
            max_concurrent_dispatches=int(settings.number("SAGA_QUEUE_MAX_CONCURRENT_DISPATCHES")),
        ),
        retry_config=tasks_v2.RetryConfig(
            max_attempts=int(settings.number("SAGA_QUEUE_MAX_ATTEMPTS")),
            min_backoff=_seconds(settings.number("SAGA_QUEUE_MIN_BACKOFF_SECONDS")),
            max_backoff=_seconds(settings.number("SAGA_QUEUE_MAX_BACKOFF_SECONDS")),
            max_doublings=int(settings.number("SAGA_QUEUE_MAX_DOUBLINGS")),
        ),
    )
    client = factory.tasks()
    parent = f"projects/{settings.project_id}/locations/{settings.location}"
    try:
        client.create_queue(parent=parent, queue=queue, timeout=timeout)
    except gexc.AlreadyExists:
        client.update_queue(queue=queue, timeout=timeout)
    return name


def start_bucket(settings: DeploymentSettings) -> str:
    """The bucket of start claims, named as the functions name it (``Settings.start_bucket``)."""
    return Settings.from_env(settings.saga_env()).start_bucket


def ensure_start_bucket(factory: ClientFactory, settings: DeploymentSettings, timeout: float = 30.0) -> str:
    """Create the bucket of start claims unless it exists; returns its name."""
    from google.cloud.storage import Bucket

    name = start_bucket(settings)
    client = factory.storage()
    bucket = Bucket(client, name)
    bucket.iam_configuration.uniform_bucket_level_access_enabled = True
    with contextlib.suppress(gexc.Conflict):  # it exists: provisioning again
        client.create_bucket(bucket, project=settings.project_id, location=settings.location, timeout=timeout)
    return name


def ensure_secret(factory: ClientFactory, project: str, name: str, value: str, timeout: float = 30.0) -> str:
    """Create the secret if needed and add ``value`` as its newest version; returns the secret's name."""
    client = factory.secrets()
    path = f"projects/{project}/secrets/{name}"
    _ignore_exists(
        lambda: client.create_secret(
            request={
                "parent": f"projects/{project}",
                "secret_id": name,
                "secret": {"replication": {"automatic": {}}},
            },
            timeout=timeout,
        )
    )
    client.add_secret_version(
        request={"parent": path, "payload": {"data": value.encode("utf-8")}}, timeout=timeout
    )
    return path


def deploy_workflow(
    factory: ClientFactory,
    settings: DeploymentSettings,
    source: str,
    env: Mapping[str, str],
    timeout: float = 30.0,
) -> str:
    from google.cloud import workflows_v1

    parent = f"projects/{settings.project_id}/locations/{settings.location}"
    workflow_id = settings.require("SAGA_WORKFLOW")
    name = f"{parent}/workflows/{workflow_id}"
    workflow = workflows_v1.Workflow(
        name=name,
        description="Saga orchestrator (local cloud)",
        source_contents=source,
        service_account=settings.service_account_email("SAGA_WORKFLOW_SA"),
        user_env_vars=dict(env),
    )
    client = factory.workflows()
    try:
        operation = client.create_workflow(
            parent=parent, workflow=workflow, workflow_id=workflow_id, timeout=timeout
        )
    except gexc.AlreadyExists:
        operation = client.update_workflow(workflow=workflow, timeout=timeout)
    operation.result(timeout=timeout)
    return name


def create_trigger(factory: ClientFactory, settings: DeploymentSettings, destination_url: str) -> str:
    try:
        from localcloud.eventarc.triggers import create_pubsub_trigger
    except ImportError as error:
        raise ProvisionError(
            "cannot create the Eventarc trigger from the request topic to start_saga: "
            "localcloud.eventarc.triggers.create_pubsub_trigger is not available in this checkout"
        ) from error
    try:
        result = create_pubsub_trigger(
            factory.subscriber(),
            project=settings.project_id,
            region=settings.location,
            trigger=TRIGGER_NAME,
            topic=settings.require("SAGA_REQUEST_TOPIC"),
            destination_url=destination_url,
            retry=True,
        )
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except gexc.GoogleAPICallError as error:
        raise ProvisionError(f"cannot create the Eventarc trigger {TRIGGER_NAME}: {error}") from error
    # The trigger's push subscription (``projects/P/subscriptions/eventarc-<region>-<trigger>-sub-NNN``).
    return result if isinstance(result, str) else TRIGGER_NAME


def internal_url_prefixes(urls: FunctionUrls) -> str:
    """``LOCALCLOUD_INTERNAL_URL_PREFIXES`` (read by the Workflows engine): the function URLs,
    comma-separated. In Google Cloud a call to a ``*.cloudfunctions.net`` / ``*.run.app`` URL is an
    internal (cheaper) billable step; locally the functions are plain ``http://127.0.0.1:PORT`` servers, so
    their URLs are listed for step counts to match production."""
    return ",".join((urls.start_saga, urls.step_executor, urls.saga_completion))
