"""The two code examples of the seed document run unchanged against the client factory: with nothing but
the environment pointing at the local cloud, ``SagaOrchestrator(...).execute_saga(steps=steps)`` starts a
real execution of the deployed saga workflow, and ``TaskManager(...).create_retry_task(...)`` creates a
real Cloud Task on ``saga-tasks``.

The snippets below are the seed's, word for word; only the names the seed leaves undefined
(``booking_data``, ``booking_id``, ``amount``, ``transaction_id``) are given values first.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.cloud import tasks_v2, workflows_v1
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.cloud.workflows import executions_v1
from google.cloud.workflows.executions_v1.services.executions.transports import ExecutionsGrpcTransport
from google.cloud.workflows_v1.services.workflows.transports import WorkflowsGrpcTransport
from saga_orchestrator.clients import ClientFactory
from saga_orchestrator.settings import default_start_bucket

from devstack.processes import ManagedProcess, emulators_spec, free_ports

ROOT = Path(__file__).resolve().parents[2]
PROJECT, LOCATION = "your-project-id", "us-central1"

SEED_PRELUDE = """
booking_data = {"date": "2026-12-18", "guests": 2}
booking_id = "b-1"
amount = 420
transaction_id = "tx-1"
"""

SEED_ORCHESTRATOR_EXAMPLE = """
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator

# Initialize the orchestrator
orchestrator = SagaOrchestrator(
    project_id="your-project-id",
    location="us-central1",
    workflow_name="saga-orchestrator"
)

# Define steps
steps = [
    {
        "name": "create_booking",
        "execute_url": "https://booking-service/execute",
        "execute_payload": {"action": "create", "data": booking_data},
        "compensate_url": "https://booking-service/compensate",
        "compensate_payload": {"action": "cancel", "booking_id": booking_id}
    },
    {
        "name": "process_payment",
        "execute_url": "https://payment-service/execute",
        "execute_payload": {"action": "charge", "amount": amount},
        "compensate_url": "https://payment-service/compensate",
        "compensate_payload": {"action": "refund", "transaction_id": transaction_id}
    }
]

# Execute the saga
execution_name = orchestrator.execute_saga(steps=steps)
"""

SEED_TASKS_EXAMPLE = """
from saga_orchestrator.tasks.task_manager import TaskManager

task_manager = TaskManager(
    project_id="your-project-id",
    location_id="us-central1",
    queue_id="saga-tasks"
)

task_response = task_manager.create_retry_task(
    url="https://external-provider/api/endpoint",
    payload={"data": "value"},
    max_attempts=5
)
"""


@pytest.fixture(scope="module")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    ports = free_ports(8)
    names = (
        "PUBSUB_EMULATOR_HOST",
        "CLOUD_TASKS_EMULATOR_HOST",
        "SECRET_MANAGER_EMULATOR_HOST",
        "WORKFLOWS_EMULATOR_HOST",
        "WORKFLOWS_HTTP_HOST",
        "GCE_METADATA_HOST",
        "STORAGE_EMULATOR_HOST",
        "LOGGING_EMULATOR_HOST",
    )
    env = {name: f"127.0.0.1:{port}" for name, port in zip(names, ports, strict=True)}
    env |= {"GCE_METADATA_IP": env["GCE_METADATA_HOST"], "LOCALCLOUD_PROJECT": PROJECT}
    env["STORAGE_EMULATOR_HOST"] = "http://" + env["STORAGE_EMULATOR_HOST"]  # a URL, as the client reads it
    process = ManagedProcess.start(emulators_spec(env), log_dir=tmp_path_factory.mktemp("seed-logs"))
    try:
        process.wait_ready()
        # The bucket deploy.sh creates for the project's start claims (execute_saga claims each saga id).
        ClientFactory(env).storage().create_bucket(default_start_bucket(PROJECT), project=PROJECT)
        yield env
    finally:
        process.stop()


def run_seed(snippet: str, env: dict[str, str]) -> dict[str, str]:
    """Run a seed snippet in a fresh interpreter whose only link to the local cloud is the environment."""
    program = (
        SEED_PRELUDE
        + snippet
        + textwrap.dedent("""
        import json
        print(json.dumps({k: str(v.name if hasattr(v, "name") else v) for k, v in dict(globals()).items()
                          if k in ("execution_name", "task_response")}))
    """)
    )
    settings = {
        "SAGA_PROJECT_ID": PROJECT,
        "SAGA_ALLOWED_HOSTS": "booking-service,payment-service,external-provider",
        "SAGA_STEP_EXECUTOR_URL": "https://step-executor.example.com/",
        "SAGA_TASKS_INVOKER_EMAIL": f"saga-tasks-invoker@{PROJECT}.iam.gserviceaccount.com",
    }
    completed = subprocess.run(
        [sys.executable, "-c", program],
        env={"PATH": "/usr/bin:/bin", **env, **settings},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.e2e
def test_the_seed_orchestrator_example_starts_a_real_execution(local_cloud: dict[str, str]) -> None:
    channel = grpc.insecure_channel(local_cloud["WORKFLOWS_EMULATOR_HOST"])
    workflows = workflows_v1.WorkflowsClient(transport=WorkflowsGrpcTransport(channel=channel))
    workflows.create_workflow(
        parent=f"projects/{PROJECT}/locations/{LOCATION}",
        workflow_id="saga-orchestrator",
        workflow=workflows_v1.Workflow(
            source_contents=(ROOT / "workflows" / "saga_orchestrator.yaml").read_text()
        ),
    ).result(timeout=30)

    names = run_seed(SEED_ORCHESTRATOR_EXAMPLE, local_cloud)

    executions = executions_v1.ExecutionsClient(transport=ExecutionsGrpcTransport(channel=channel))
    execution = executions.get_execution(name=names["execution_name"])
    assert execution.name.startswith(
        f"projects/{PROJECT}/locations/{LOCATION}/workflows/saga-orchestrator/executions/"
    )
    argument = json.loads(execution.argument)
    assert [step["name"] for step in argument["steps"]] == ["create_booking", "process_payment"]
    assert argument["steps"][1]["execute"]["payload"] == {"action": "charge", "amount": 420}
    assert dict(execution.labels) == {"saga_id": argument["saga_id"]}


@pytest.mark.e2e
def test_the_seed_task_manager_example_creates_a_real_task(local_cloud: dict[str, str]) -> None:
    tasks = tasks_v2.CloudTasksClient(
        transport=CloudTasksGrpcTransport(
            channel=grpc.insecure_channel(local_cloud["CLOUD_TASKS_EMULATOR_HOST"])
        )
    )
    parent = f"projects/{PROJECT}/locations/{LOCATION}"
    queue = tasks.create_queue(parent=parent, queue=tasks_v2.Queue(name=f"{parent}/queues/saga-tasks"))
    tasks.pause_queue(name=queue.name)  # keep the task where it is: its target is not on this machine

    names = run_seed(SEED_TASKS_EXAMPLE, local_cloud)

    task = tasks.get_task(request={"name": names["task_response"], "response_view": tasks_v2.Task.View.FULL})
    assert task.name.startswith(f"{parent}/queues/saga-tasks/tasks/")
    body = json.loads(task.http_request.body)
    assert body["call"]["url"] == "https://external-provider/api/endpoint"
    assert body["call"]["max_attempts"] == 5
    assert task.http_request.url == "https://step-executor.example.com/"
