"""Google's workflows-samples (GoogleCloudPlatform/workflows-samples, ``src/**/*.yaml``) on the local cloud.

Every YAML file is deployed, unchanged, through the Workflows emulator with the real
``google-cloud-workflows`` client, then executed once and sorted by what it calls (read from its
``call:`` lines, not from a list kept here):

- **emulated**: only the standard library, subworkflows and connectors the engine routes to an emulator
  (Pub/Sub, Cloud Tasks v2/v2beta3, Secret Manager, Workflows, Workflows Executions). It must succeed and,
  where its comment states the result ("Expected output: ..."), return that result.
- **other service**: a ``googleapis.*`` connector of a service the local cloud does not emulate (BigQuery,
  Firestore, Compute, ...) or of the Kubernetes API (``gke.*``). It must fail with the engine's ``HttpError`` 501 "... is not emulated locally".
- **outside HTTP**: ``http.*`` calls to hosts on the internet (public APIs, Cloud Run or Functions URLs). Run with a short deadline and reported, never counted as unexpected:
  what they do depends on the network, not on the emulators.

Where a sample's comment asks for a resource ("Make sure you have this secret and it has a version of 1")
or for a placeholder to be replaced ("replace TOPIC_ID placeholder"), ``SETUP`` below does what the comment
says, and nothing else: the file deployed is the sample's text with only those placeholders replaced.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1, secretmanager_v1, tasks_v2, workflows_v1
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.cloud.workflows import executions_v1
from google.cloud.workflows.executions_v1.services.executions.transports import ExecutionsGrpcTransport
from google.cloud.workflows_v1.services.workflows.transports import WorkflowsGrpcTransport
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

from localcloud._project import project_number
from localcloud.config import LocalCloudConfig
from localcloud.workflows.service.connectors import Connectors

NOT_EMULATED = "is not emulated locally"
OUTSIDE_DEADLINE_SECONDS = 20.0
EMULATED_DEADLINE_SECONDS = 60.0

_CALL = re.compile(r"^\s*-?\s*call:\s*([\w.]+)", re.MULTILINE)
_OUTSIDE = ("http.",)

# A stand-in for the "translate" workflow the parallel samples start through the Executions connector
# (on Google, connect_translate.yaml deployed under that name, which calls the Translation API).
STAND_IN_TRANSLATE = """
main:
  params: [args]
  steps:
    - translate:
        return: ${args.text + " [" + args.source + "->" + args.target + "]"}
"""


@dataclass(frozen=True)
class Setup:
    """What a sample's comments ask for before it runs, and what they say it returns."""

    argument: Any = None
    replace: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # secret ids created with a version 1 (``SECRET_VALUE``)
    topics: tuple[str, ...] = ()
    paused_queues: tuple[str, ...] = ()  # created paused: their tasks' targets are on the internet
    workflows: Mapping[str, str] = field(default_factory=dict)  # workflow id -> source
    result: Any = None  # the result the comment states; None when it states none
    error: str = ""  # a text the error must contain when the sample fails on Google too
    why: str = ""


SECRET_VALUE = "s3cr3t"
PROJECT_ID = "samples-project"
# What the local cloud reports for it (GOOGLE_CLOUD_PROJECT_NUMBER) and reads back as the id.
PROJECT_NUMBER = project_number(PROJECT_ID)


def _tomorrow() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))


TRANSLATED = [
    "hello world! [en->fr]",
    "你好 世界！ [zh-CN->en]",
    "No hablo español! [es->en]",
]

SETUP: dict[str, Setup] = {
    "args.workflows.yaml": Setup(
        argument={"firstName": "Sherlock", "lastName": "Holmes"}, result="Hello Sherlock Holmes"
    ),
    "iterate_for_range.workflows.yaml": Setup(result=45),  # "sum is 45"
    "iterate_list.workflows.yaml": Setup(result=15),  # "sum is 15"
    "iterate_map.workflows.yaml": Setup(result=60),  # "sum is 60"
    "list_reverse.workflows.yaml": Setup(result=[3, 2, 1]),  # "Expected output: `[3,2,1]`"
    "subworkflow.workflows.yaml": Setup(result="Hello Kristof"),
    # names the secret by GOOGLE_CLOUD_PROJECT_NUMBER: the project's number, read as its id
    "connector_access_secret.workflows.yaml": Setup(secrets=("test-secret",)),
    "connector_publish_pubsub.workflows.yaml": Setup(topics=("mytopic1",)),
    "connector_schedule_tasks.workflows.yaml": Setup(
        paused_queues=("testqueue",),
        error="KeyError",
        why="returns ${task_result.body}; a Task has no 'body' key, so Google raises KeyError too",
    ),
    "connectors/connector_cloudtasks.workflows.yaml": Setup(
        # A schedule time Cloud Tasks takes: at most 30 days ahead.
        replace={"TIME_IN_ZULU_FORMAT": _tomorrow(), "CLOUD_FUNCTION_URL": "https://example.com/fn"},
        result="SUCCESS",
    ),
    # "This workflow expects following items to be provided through input argument for execution"
    "connectors/connector_bigquerydatatransfer.workflows.yaml": Setup(
        argument={"projectID": PROJECT_ID, "datasetID": "d1", "tableID": "t1", "runConfigDisplayName": "r1"}
    ),
    "connectors/connector_cloudresourcemanager.workflows.yaml": Setup(
        argument={"projectNumber": PROJECT_NUMBER}
    ),
    "connectors/connector_ml.workflows.yaml": Setup(argument={"projectID": PROJECT_ID}),
    "parallel_inline.workflows.yaml": Setup(
        argument={"text": "hello world!", "source": "en", "target": "fr"}
    ),
    "connectors/connector_pubsub.workflows.yaml": Setup(
        replace={"TOPIC_ID": "samples-topic", "SUBSCRIPTION_ID": "samples-subscription"}, result="SUCCESS"
    ),
    "connectors/connector_secretmanager.workflows.yaml": Setup(
        secrets=("test-secret",), result=[SECRET_VALUE, SECRET_VALUE, SECRET_VALUE]
    ),
    "connectors/connector_workflowexecutions.workflows.yaml": Setup(
        replace={"[fill in the workflow to execute]": "echo"},
        workflows={"echo": "main:\n  params: [args]\n  steps:\n    - echo:\n        return: ${args}\n"},
    ),
    "connectors/connector_workflows.workflows.yaml": Setup(result="SUCCESS"),
    "parallel_for_in.workflows.yaml": Setup(workflows={"translate": STAND_IN_TRANSLATE}, result=TRANSLATED),
    "parallel_for_range.workflows.yaml": Setup(
        workflows={"translate": STAND_IN_TRANSLATE}, result=TRANSLATED
    ),
}


@dataclass
class Outcome:
    sample: str
    kind: str  # emulated | other service | outside HTTP
    deployed: bool
    state: str = ""  # SUCCEEDED, FAILED, ... or "" when it did not run
    expected: bool = False
    detail: str = ""


def kind_of(source: str, routed: frozenset[str]) -> str:
    calls = _CALL.findall(source)
    if any(c.startswith(("googleapis.", "gke.")) and c not in routed for c in calls):
        return "other service"
    if any(c.startswith(_OUTSIDE) for c in calls if not c.startswith("http.default_retry")):
        return "outside HTTP"
    return "emulated"


class WorkflowsSamples:
    """Deploys and runs the samples against one local cloud (its client environment in ``env``)."""

    def __init__(self, env: Mapping[str, str], project: str, location: str) -> None:
        self.env = env
        self.project, self.location = project, location
        self.parent = f"projects/{project}/locations/{location}"
        workflows_channel = grpc.insecure_channel(env["WORKFLOWS_EMULATOR_HOST"])
        self.workflows = workflows_v1.WorkflowsClient(
            transport=WorkflowsGrpcTransport(channel=workflows_channel)
        )
        self.executions = executions_v1.ExecutionsClient(
            transport=ExecutionsGrpcTransport(channel=workflows_channel)
        )
        self.secrets = secretmanager_v1.SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(
                channel=grpc.insecure_channel(env["SECRET_MANAGER_EMULATOR_HOST"])
            )
        )
        self.tasks = tasks_v2.CloudTasksClient(
            transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(env["CLOUD_TASKS_EMULATOR_HOST"]))
        )
        self.publisher = pubsub_v1.PublisherClient(
            transport=PublisherGrpcTransport(channel=grpc.insecure_channel(env["PUBSUB_EMULATOR_HOST"]))
        )
        self.routed = Connectors(LocalCloudConfig.from_env({})).names

    def run_all(self, root: Path, progress: Callable[[str], None] = print) -> list[Outcome]:
        outcomes = []
        for path in sorted((root / "src").rglob("*.yaml")):
            outcome = self.run_one(root / "src", path)
            progress(
                f"  {outcome.sample:60} {outcome.kind:14} {outcome.state or '-':10} "
                f"{'ok' if outcome.expected else 'UNEXPECTED'}"
            )
            outcomes.append(outcome)
        return outcomes

    def run_one(self, src: Path, path: Path) -> Outcome:
        relative = path.relative_to(src).as_posix()
        setup = SETUP.get(relative, Setup())
        source = path.read_text()
        for placeholder, value in setup.replace.items():
            source = source.replace(placeholder, value)
        outcome = Outcome(relative, kind_of(source, self.routed), deployed=False)
        try:
            self._prepare(setup)
            name = self._deploy(workflow_id(relative), source)
        except gexc.GoogleAPICallError as error:
            outcome.detail = f"deploy: {error.message}"
            return outcome
        outcome.deployed = True
        deadline = OUTSIDE_DEADLINE_SECONDS if outcome.kind == "outside HTTP" else EMULATED_DEADLINE_SECONDS
        execution = self._execute(name, setup.argument, deadline)
        outcome.state = execution.state.name
        if execution.state.name == "SUCCEEDED":
            result = json.loads(execution.result) if execution.result else None
            outcome.detail = _short(execution.result)
            outcome.expected = outcome.kind == "outside HTTP" or (
                outcome.kind == "emulated" and not setup.error and setup.result in (None, result)
            )
            if setup.result is not None and result != setup.result:
                outcome.detail = (
                    f"returned {_short(execution.result)}, its comment says {json.dumps(setup.result)}"
                )
        else:
            message = execution.error.payload or execution.error.context or outcome.state
            outcome.detail = _short(message)
            outcome.expected = (
                outcome.kind == "outside HTTP"
                or (outcome.kind == "other service" and NOT_EMULATED in message)
                or bool(setup.error and setup.error in message)
            )
        if setup.why:
            outcome.detail += f" ({setup.why})"
        return outcome

    def _prepare(self, setup: Setup) -> None:
        for secret_id in setup.secrets:
            parent = f"projects/{self.project}"
            try:
                secret = self.secrets.create_secret(
                    parent=parent,
                    secret_id=secret_id,
                    secret=secretmanager_v1.Secret(replication={"automatic": {}}),
                )
                self.secrets.add_secret_version(
                    parent=secret.name, payload=secretmanager_v1.SecretPayload(data=SECRET_VALUE.encode())
                )
            except gexc.AlreadyExists:
                pass
        for topic in setup.topics:
            with contextlib.suppress(gexc.AlreadyExists):
                self.publisher.create_topic(name=f"projects/{self.project}/topics/{topic}")
        for queue in setup.paused_queues:
            name = f"{self.parent}/queues/{queue}"
            with contextlib.suppress(gexc.AlreadyExists):
                self.tasks.create_queue(parent=self.parent, queue=tasks_v2.Queue(name=name))
            self.tasks.pause_queue(name=name)
        for workflow, source in setup.workflows.items():
            self._deploy(workflow, source)

    def _deploy(self, workflow: str, source: str) -> str:
        name = f"{self.parent}/workflows/{workflow}"
        try:
            self.workflows.get_workflow(name=name)
        except gexc.NotFound:
            operation = self.workflows.create_workflow(
                parent=self.parent,
                workflow_id=workflow,
                workflow=workflows_v1.Workflow(source_contents=source),
            )
            return str(operation.result(timeout=30).name)
        return name

    def _execute(self, workflow: str, argument: Any, deadline: float) -> Any:
        execution = self.executions.create_execution(
            parent=workflow,
            execution=executions_v1.Execution(argument=json.dumps(argument) if argument is not None else ""),
        )
        end = time.monotonic() + deadline
        while True:
            current = self.executions.get_execution(name=execution.name)
            if current.state.name not in ("ACTIVE", "QUEUED", "STATE_UNSPECIFIED"):
                return current
            if time.monotonic() > end:
                self.executions.cancel_execution(name=execution.name)
                return self.executions.get_execution(name=execution.name)
            time.sleep(0.1)


def workflow_id(relative: str) -> str:
    """A workflow id from a sample's path: letters, digits, '-' and '_', starting with a letter."""
    stem = relative.removesuffix(".workflows.yaml").replace("/", "-")
    return ("w-" + re.sub(r"[^A-Za-z0-9_-]", "-", stem))[:64]


def _short(value: str, limit: int = 240) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    kinds = sorted({o.kind for o in outcomes})
    return {
        "samples": len(outcomes),
        "deployed": sum(o.deployed for o in outcomes),
        "by kind": {k: sum(o.kind == k for o in outcomes) for k in kinds},
        "emulated ran ok": sum(o.kind == "emulated" and o.expected for o in outcomes),
        "failed as expected": sum(o.kind == "other service" and o.expected for o in outcomes),
        "outside HTTP (not judged)": sum(o.kind == "outside HTTP" for o in outcomes),
        "unexpected": [
            {"sample": o.sample, "kind": o.kind, "state": o.state, "detail": o.detail}
            for o in outcomes
            if not o.expected
        ],
        "outcomes": [vars(o) for o in outcomes],
    }
