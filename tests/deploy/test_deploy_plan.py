"""deploy.sh against a fake gcloud: what it creates, which IAM bindings it makes (and none broader), that a
second run changes nothing, that --dry-run calls nothing, and how settings are read. The checks (--check,
and before every deploy) and --destroy are in test_deploy_checks.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from saga_orchestrator.settings import Settings

from tests.deploy.fake_cloud import (
    ACCOUNTS,
    ALLOWED_HOSTS,
    APIS,
    BASH,
    CALLBACK_ROLE,
    DEPLOY,
    PROJECT,
    PROJECT_NUMBER,
    PUBSUB_AGENT,
    REGION,
    REPO,
    START_BUCKET,
    START_CLAIMS_PERMISSIONS,
    START_CLAIMS_ROLE,
    FakeCloud,
    FirstDeploy,
    bindings,
    changing_calls,
    email,
    initial_state,
    plan_commands,
    sa,
    settings_file,
)

EXPECTED_BINDINGS = {
    # Workflows takes roles on the project only: the starter creates, lists and cancels executions; the
    # executor sends callbacks and nothing else (a custom role).
    (f"project/{PROJECT}", "roles/workflows.invoker", sa("saga-starter")),
    (f"project/{PROJECT}", CALLBACK_ROLE, sa("saga-executor")),
    # The build account: Logs Writer (project only), Storage Object Viewer (the source bucket does not
    # exist before the first build), Artifact Registry Writer on the functions' repository only.
    (f"project/{PROJECT}", "roles/logging.logWriter", sa("saga-build")),
    (f"project/{PROJECT}", "roles/storage.objectViewer", sa("saga-build")),
    (f"repository/{REGION}/saga-functions", "roles/artifactregistry.writer", sa("saga-build")),
    # The Pub/Sub service agent mints the trigger's tokens, for that one account.
    (f"sa/{email('saga-trigger')}", "roles/iam.serviceAccountTokenCreator", f"serviceAccount:{PUBSUB_AGENT}"),
    ("topic/saga-results", "roles/pubsub.publisher", sa("saga-starter")),
    # The starter claims saga ids in the bucket of start claims: object create/get/update/delete there only.
    (f"bucket/{START_BUCKET}", START_CLAIMS_ROLE, sa("saga-starter")),
    ("topic/saga-results", "roles/pubsub.publisher", sa("saga-completion")),
    (f"queue/{REGION}/saga-tasks", "roles/cloudtasks.enqueuer", sa("saga-workflow")),
    (f"queue/{REGION}/saga-tasks", "roles/cloudtasks.taskDeleter", sa("saga-workflow")),
    (f"sa/{email('saga-tasks-invoker')}", "roles/iam.serviceAccountUser", sa("saga-workflow")),
    ("secret/payment-api-key", "roles/secretmanager.secretAccessor", sa("saga-executor")),
    (f"run/{REGION}/step-executor", "roles/run.invoker", sa("saga-tasks-invoker")),
    (f"run/{REGION}/step-executor", "roles/run.invoker", sa("saga-workflow")),  # the forward run
    (f"run/{REGION}/saga-completion", "roles/run.invoker", sa("saga-workflow")),
    (f"run/{REGION}/start-saga", "roles/run.invoker", sa("saga-trigger")),
    # The sweeper lists executions (project-level only in Workflows) and publishes on saga-results only;
    # the scheduler's account may only invoke the sweeper.
    (f"project/{PROJECT}", "roles/workflows.viewer", sa("saga-sweeper")),
    ("topic/saga-results", "roles/pubsub.publisher", sa("saga-sweeper")),
    (f"run/{REGION}/saga-sweeper", "roles/run.invoker", sa("saga-scheduler")),
}


# --- the first deploy ---------------------------------------------------------------------------


def test_first_deploy_enables_every_api_the_saga_uses(first_deploy: FirstDeploy) -> None:
    assert set(first_deploy.state["services"]) == APIS


def test_first_deploy_creates_the_nine_service_accounts_marked_as_its_own(first_deploy: FirstDeploy) -> None:
    accounts = first_deploy.state["service_accounts"]
    assert set(accounts) == {email(name) for name in ACCOUNTS}
    assert {account["description"] for account in accounts.values()} == {
        "Created by deploy.sh of the saga orchestrator"
    }


def test_first_deploy_creates_both_topics(first_deploy: FirstDeploy) -> None:
    assert set(first_deploy.state["topics"]) == {"saga-requests", "saga-results"}


def test_queue_gets_the_retry_settings_and_rate_limits_of_the_settings_file(
    first_deploy: FirstDeploy,
) -> None:
    queue = first_deploy.state["queues"][f"{REGION}/saga-tasks"]
    assert queue["retryConfig"] == {
        "maxAttempts": 20,
        "minBackoff": "0.500s",
        "maxBackoff": "30s",
        "maxDoublings": 5,
    }
    assert queue["rateLimits"] == {"maxDispatchesPerSecond": 500.0, "maxConcurrentDispatches": 200}
    create = next(argv for argv in first_deploy.calls if argv[:3] == ["tasks", "queues", "create"])
    assert "--max-retry-duration=0s" in create


def test_secret_is_created_empty_and_the_output_says_how_to_add_a_value(first_deploy: FirstDeploy) -> None:
    assert first_deploy.state["secrets"] == {"payment-api-key": {"replication": "automatic", "versions": []}}
    assert "gcloud secrets versions add payment-api-key" in first_deploy.result.stdout


def test_every_binding_is_made_on_the_narrowest_resource_and_no_other_exists(
    first_deploy: FirstDeploy,
) -> None:
    assert bindings(first_deploy.state) == EXPECTED_BINDINGS


def test_project_level_grants_are_only_those_without_a_narrower_resource(first_deploy: FirstDeploy) -> None:
    project_grants = {
        (role, member)
        for resource, role, member in bindings(first_deploy.state)
        if resource.startswith("project/")
    }
    assert project_grants == {
        ("roles/workflows.invoker", sa("saga-starter")),
        (CALLBACK_ROLE, sa("saga-executor")),
        ("roles/workflows.viewer", sa("saga-sweeper")),
        ("roles/logging.logWriter", sa("saga-build")),
        ("roles/storage.objectViewer", sa("saga-build")),
    }
    # The README's table names each of them, with its reason.
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    deploy_section = readme[readme.index("## Deploy to Google Cloud") :]
    deploy_section = deploy_section[: deploy_section.index("\n## ", 1)]
    for role, _ in project_grants:
        assert role.replace(f"projects/{PROJECT}/roles/", "") in deploy_section, role
    # And the grant on the bucket of start claims, with the role's permissions and its setting.
    for name in (
        "sagaStartClaims",
        "DEPLOY_START_CLAIMS_ROLE_ID",
        "SAGA_START_BUCKET",
        *START_CLAIMS_PERMISSIONS,
    ):
        assert name in deploy_section, name


def test_the_executor_custom_role_holds_only_the_callback_permission(first_deploy: FirstDeploy) -> None:
    role = first_deploy.state["roles"]["sagaCallbackSender"]
    assert role["includedPermissions"] == ["workflows.callbacks.send", "workflows.executions.get"]
    assert role["stage"] == "GA"


def test_first_deploy_creates_the_bucket_of_start_claims_private_in_the_region_without_soft_delete(
    first_deploy: FirstDeploy,
) -> None:
    assert first_deploy.state["buckets"] == {
        START_BUCKET: {
            "name": START_BUCKET,
            "projectNumber": PROJECT_NUMBER,
            "location": REGION.upper(),
            "locationType": "region",
            "storageClass": "STANDARD",
            "iamConfiguration": {
                "uniformBucketLevelAccess": {"enabled": True},
                "publicAccessPrevention": "enforced",
            },
            # Released claims are the only objects ever deleted: no soft-deleted copies to pay for; no
            # lifecycle rule, retention policy or versioning (a new bucket has none).
            "softDeletePolicy": {"retentionDurationSeconds": 0},
        }
    }
    [create] = [argv for argv in first_deploy.calls if argv[:3] == ["storage", "buckets", "create"]]
    assert create == [
        "storage", "buckets", "create", f"gs://{START_BUCKET}", f"--project={PROJECT}", f"--location={REGION}",
        "--uniform-bucket-level-access", "--public-access-prevention", "--soft-delete-duration=0",
    ]  # fmt: skip


def test_the_starter_may_create_read_update_and_delete_claims_in_that_bucket_and_nothing_else(
    first_deploy: FirstDeploy,
) -> None:
    role = first_deploy.state["roles"]["sagaStartClaims"]
    assert sorted(role["includedPermissions"]) == START_CLAIMS_PERMISSIONS
    assert role["stage"] == "GA"
    assert {(r, role) for r, role, m in bindings(first_deploy.state) if m == sa("saga-starter")} == {
        (f"project/{PROJECT}", "roles/workflows.invoker"),
        ("topic/saga-results", "roles/pubsub.publisher"),
        (f"bucket/{START_BUCKET}", START_CLAIMS_ROLE),
    }
    # Nobody else holds a role on the bucket.
    assert {m for r, _, m in bindings(first_deploy.state) if r.startswith("bucket/")} == {sa("saga-starter")}
    # The bucket is created before the role is granted on it, and both before start_saga is deployed.
    order = [tuple(argv[:3]) for argv in changing_calls(first_deploy.calls)]
    assert (
        order.index(("storage", "buckets", "create"))
        < order.index(("storage", "buckets", "add-iam-policy-binding"))
        < order.index(("functions", "deploy", "start_saga"))
    )


def test_no_account_gets_invoker_secret_publisher_or_tasks_roles_on_the_project(
    first_deploy: FirstDeploy,
) -> None:
    for argv in first_deploy.calls:
        if argv[:2] == ["projects", "add-iam-policy-binding"]:
            assert not any(
                role in arg
                for arg in argv
                for role in (
                    "run.invoker",
                    "secretAccessor",
                    "pubsub.publisher",
                    "cloudtasks",
                    "iam.serviceAccount",
                )
            ), argv


def test_http_functions_are_private_gen2_with_their_own_accounts(first_deploy: FirstDeploy) -> None:
    functions = first_deploy.state["functions"]
    assert set(functions) == {
        f"{REGION}/{name}" for name in ("start_saga", "step_executor", "saga_completion", "saga_sweeper")
    }
    accounts = {
        "step_executor": "saga-executor",
        "saga_completion": "saga-completion",
        "start_saga": "saga-starter",
        "saga_sweeper": "saga-sweeper",
    }
    for name, account in accounts.items():
        function = functions[f"{REGION}/{name}"]
        assert function["entryPoint"] == name
        assert function["runtime"] == "python312"
        assert function["memory"] == "512Mi"
        assert function["timeout"] == "300s"
        assert function["serviceAccount"] == email(account)
        assert function["buildServiceAccount"] == f"projects/{PROJECT}/serviceAccounts/{email('saga-build')}"
        assert (
            function["dockerRepository"]
            == f"projects/{PROJECT}/locations/{REGION}/repositories/saga-functions"
        )
        assert function["noAllowUnauthenticated"] and not function["allowUnauthenticated"]
    assert functions[f"{REGION}/step_executor"]["trigger"] == {"http": True}
    assert functions[f"{REGION}/saga_completion"]["trigger"] == {"http": True}
    assert functions[f"{REGION}/saga_sweeper"]["trigger"] == {"http": True}


def test_step_executor_is_sized_for_the_queues_concurrent_dispatches(first_deploy: FirstDeploy) -> None:
    functions = first_deploy.state["functions"]
    executor = functions[f"{REGION}/step_executor"]
    settings = settings_file(first_deploy.cloud.checkout)
    # 20 calls per instance (one vCPU, 20 threads) x 10 instances = the 200 the queue dispatches at once.
    assert (executor["concurrency"], executor["maxInstances"], executor["cpu"]) == (20, 10, "1")
    assert executor["concurrency"] * executor["maxInstances"] == int(
        settings["SAGA_QUEUE_MAX_CONCURRENT_DISPATCHES"]
    )
    assert yaml.safe_load(executor["envVarsFile"])["THREADS"] == "20"
    for name, instances in (("start_saga", 100), ("saga_completion", 100), ("saga_sweeper", 1)):
        function = functions[f"{REGION}/{name}"]
        assert (function["concurrency"], function["maxInstances"], function["cpu"]) == (1, instances, None)


def test_start_saga_gets_an_eventarc_trigger_on_saga_requests_with_retries(first_deploy: FirstDeploy) -> None:
    trigger = first_deploy.state["functions"][f"{REGION}/start_saga"]["trigger"]
    assert trigger == {"topic": "saga-requests", "retry": True, "serviceAccount": email("saga-trigger")}


def test_each_function_ships_its_main_the_shared_package_and_requirements(first_deploy: FirstDeploy) -> None:
    checkout = first_deploy.cloud.checkout
    package = sorted(
        str(p.relative_to(checkout / "shared"))
        for p in (checkout / "shared" / "saga_orchestrator").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    for name in ("start_saga", "step_executor", "saga_completion", "saga_sweeper"):
        files = first_deploy.state["functions"][f"{REGION}/{name}"]["sourceFiles"]
        assert "main.py" in files and "requirements.txt" in files
        assert sorted(f for f in files if f.startswith("saga_orchestrator/")) == package
        assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)


def test_functions_receive_every_saga_setting_of_the_file_as_strings(first_deploy: FirstDeploy) -> None:
    expected = {
        key: value
        for key, value in settings_file(first_deploy.cloud.checkout).items()
        if key.startswith("SAGA_")
    }
    expected["SAGA_PROJECT_ID"] = PROJECT
    expected["SAGA_ALLOWED_HOSTS"] = ALLOWED_HOSTS
    for function in first_deploy.state["functions"].values():
        env = yaml.safe_load(function["envVarsFile"])
        assert env.pop("THREADS") == str(function["concurrency"])
        assert env == expected
        assert all(isinstance(value, str) for value in env.values())


def test_workflow_gets_its_account_and_the_urls_read_back_from_the_functions(
    first_deploy: FirstDeploy,
) -> None:
    workflow = first_deploy.state["workflows"][f"{REGION}/saga-orchestrator"]
    assert workflow["serviceAccount"] == email("saga-workflow")
    assert workflow["sourceContents"] == (
        first_deploy.cloud.checkout / "workflows" / "saga_orchestrator.yaml"
    ).read_text(encoding="utf-8")
    assert workflow["userEnvVars"] == {
        "SAGA_STEP_EXECUTOR_URL": "https://step-executor-fake-uc.a.run.app",
        "SAGA_COMPLETION_URL": "https://saga-completion-fake-uc.a.run.app",
        "SAGA_TASK_QUEUE_PATH": f"projects/{PROJECT}/locations/{REGION}/queues/saga-tasks",
        "SAGA_TASKS_INVOKER_EMAIL": email("saga-tasks-invoker"),
        "SAGA_DISPATCH_DEADLINE_SECONDS": "120",
    }


def test_start_saga_is_deployed_last_so_no_request_is_consumed_before_the_workflow_exists(
    first_deploy: FirstDeploy,
) -> None:
    deploys = [argv[:3] for argv in first_deploy.calls if argv[1:2] == ["deploy"]]
    assert deploys == [
        ["functions", "deploy", "step_executor"],
        ["functions", "deploy", "saga_completion"],
        ["workflows", "deploy", "saga-orchestrator"],
        ["functions", "deploy", "saga_sweeper"],
        ["functions", "deploy", "start_saga"],
    ]


def test_a_scheduler_job_calls_the_sweeper_on_the_schedule_with_an_oidc_token_of_its_own_account(
    first_deploy: FirstDeploy,
) -> None:
    url = "https://saga-sweeper-fake-uc.a.run.app"
    assert first_deploy.state["scheduler_jobs"] == {
        f"{REGION}/saga-sweeper": {
            "schedule": settings_file(first_deploy.cloud.checkout)["DEPLOY_SWEEP_SCHEDULE"],
            "timeZone": "Etc/UTC",
            "httpTarget": {
                "uri": url,
                "httpMethod": "POST",
                "oidcToken": {"serviceAccountEmail": email("saga-scheduler"), "audience": url},
            },
        }
    }
    # The scheduler's account holds nothing but run.invoker on the sweeper.
    assert {(r, role) for r, role, m in bindings(first_deploy.state) if m == sa("saga-scheduler")} == {
        (f"run/{REGION}/saga-sweeper", "roles/run.invoker")
    }
    assert {(r, role) for r, role, m in bindings(first_deploy.state) if m == sa("saga-sweeper")} == {
        (f"project/{PROJECT}", "roles/workflows.viewer"),
        ("topic/saga-results", "roles/pubsub.publisher"),
    }


def test_a_changed_sweep_schedule_updates_the_job_in_place_and_nothing_else(deployed: FakeCloud) -> None:
    deployed.deploy("--project", PROJECT, env={"DEPLOY_SWEEP_SCHEDULE": "*/10 * * * *"})
    assert [argv[:5] for argv in changing_calls(deployed.calls())] == [
        ["scheduler", "jobs", "update", "http", "saga-sweeper"]
    ]
    assert deployed.state()["scheduler_jobs"][f"{REGION}/saga-sweeper"]["schedule"] == "*/10 * * * *"


def test_secret_values_are_never_read(first_deploy: FirstDeploy) -> None:
    for argv in first_deploy.calls:
        assert "access" not in argv and not any(arg.startswith("--data-file") for arg in argv), argv


# --- a second run -------------------------------------------------------------------------------


def test_second_run_changes_nothing(deployed: FakeCloud, first_deploy: FirstDeploy) -> None:
    result = deployed.deploy("--project", PROJECT)
    assert changing_calls(deployed.calls()) == []
    assert deployed.state() == first_deploy.state
    assert "+ gcloud" not in result.stdout


def test_changed_settings_update_the_queue_in_place_and_redeploy_only_the_functions(
    deployed: FakeCloud,
) -> None:
    deployed.deploy(
        "--project",
        PROJECT,
        env={"DEPLOY_FUNCTION_MEMORY": "1Gi", "SAGA_QUEUE_MAX_DISPATCHES_PER_SECOND": "50"},
    )
    assert sorted(argv[:4] for argv in changing_calls(deployed.calls())) == [
        ["functions", "deploy", "saga_completion", "--gen2"],
        ["functions", "deploy", "saga_sweeper", "--gen2"],
        ["functions", "deploy", "start_saga", "--gen2"],
        ["functions", "deploy", "step_executor", "--gen2"],
        ["tasks", "queues", "update", "saga-tasks"],
    ]
    state = deployed.state()
    assert {f["memory"] for f in state["functions"].values()} == {"1Gi"}
    assert state["queues"][f"{REGION}/saga-tasks"]["rateLimits"]["maxDispatchesPerSecond"] == 50.0


def test_a_function_left_failed_by_a_broken_build_is_deployed_again(deployed: FakeCloud) -> None:
    state = deployed.state()
    state["functions"][f"{REGION}/step_executor"]["state"] = "FAILED"
    deployed.write_state(state)
    deployed.deploy("--project", PROJECT)
    assert [argv[:3] for argv in changing_calls(deployed.calls())] == [
        ["functions", "deploy", "step_executor"]
    ]
    assert deployed.state()["functions"][f"{REGION}/step_executor"]["state"] == "ACTIVE"


@pytest.fixture(scope="module")
def preexisting(
    tmp_path_factory: pytest.TempPathFactory, checkout: Path
) -> tuple[FakeCloud, subprocess.CompletedProcess[str]]:
    """A project where someone made the queue by hand (other settings) and gave the secret a value."""
    cloud = FakeCloud(tmp_path_factory.mktemp("preexisting") / "cloud", checkout).install(initial_state())
    state = cloud.state()
    state["queues"][f"{REGION}/saga-tasks"] = {"retryConfig": {"maxAttempts": 100}, "rateLimits": {}}
    state["secrets"]["payment-api-key"] = {
        "replication": "automatic",
        "versions": [
            {"name": f"projects/{PROJECT_NUMBER}/secrets/payment-api-key/versions/1", "value": "s3cr3t"}
        ],
    }
    cloud.write_state(state)
    return cloud, cloud.deploy("--project", PROJECT)


def test_a_queue_made_by_hand_with_other_settings_is_updated_not_recreated(
    preexisting: tuple[FakeCloud, subprocess.CompletedProcess[str]],
) -> None:
    cloud, _ = preexisting
    queue_calls = [argv[:3] for argv in cloud.calls() if argv[:2] == ["tasks", "queues"]]
    assert ["tasks", "queues", "create"] not in queue_calls
    assert ["tasks", "queues", "update"] in queue_calls
    assert cloud.state()["queues"][f"{REGION}/saga-tasks"]["retryConfig"]["maxAttempts"] == 20


def test_an_existing_secret_with_a_value_is_kept_without_a_reminder_or_a_leak(
    preexisting: tuple[FakeCloud, subprocess.CompletedProcess[str]],
) -> None:
    cloud, result = preexisting
    assert not [argv for argv in cloud.calls() if argv[:2] == ["secrets", "create"]]
    assert "versions add payment-api-key" not in result.stdout
    assert "s3cr3t" not in result.stdout + result.stderr


def test_a_missing_binding_is_added_back_and_nothing_else_changes(deployed: FakeCloud) -> None:
    state = deployed.state()
    del state["iam"]["secret/payment-api-key"]
    deployed.write_state(state)
    deployed.deploy("--project", PROJECT)
    assert [argv[:3] for argv in changing_calls(deployed.calls())] == [
        ["secrets", "add-iam-policy-binding", "payment-api-key"]
    ]
    assert bindings(deployed.state()) == EXPECTED_BINDINGS


def test_a_failing_gcloud_command_stops_the_deploy_with_its_error(cloud: FakeCloud) -> None:
    result = cloud.run("--project", PROJECT, env={"FAKE_GCLOUD_FAIL": "pubsub topics create"})
    assert result.returncode != 0
    assert "PERMISSION_DENIED" in result.stderr
    assert "command failed" in result.stderr and "pubsub topics create saga-requests" in result.stderr
    assert not [argv for argv in cloud.calls() if argv[:2] == ["functions", "deploy"]]


# --- dry run ------------------------------------------------------------------------------------


def test_dry_run_calls_no_gcloud_and_succeeds(cloud: FakeCloud) -> None:
    result = cloud.run("--project", PROJECT, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert cloud.calls() == []
    assert cloud.state() == initial_state()


def test_dry_run_works_where_gcloud_is_not_installed(cloud: FakeCloud, tools_only_path: str) -> None:
    result = cloud.run("--project", PROJECT, "--dry-run", path=tools_only_path)
    assert result.returncode == 0, result.stderr
    assert "gcloud functions deploy" in result.stdout


def test_dry_run_prints_a_command_for_every_resource_and_binding(cloud: FakeCloud) -> None:
    result = cloud.run("--project", PROJECT, "--dry-run")
    commands = plan_commands(result.stdout)
    assert all(argv[0] == "gcloud" for argv in commands)
    enabled = next(argv for argv in commands if argv[1:3] == ["services", "enable"])
    assert set(enabled) >= APIS
    created = {(argv[1], argv[2], argv[3]) for argv in commands if "create" in argv[1:4]}
    assert {
        ("iam", "service-accounts", "create"),
        ("pubsub", "topics", "create"),
        ("tasks", "queues", "create"),
        ("secrets", "create", "payment-api-key"),
        ("storage", "buckets", "create"),
    } <= created
    accounts = {argv[4] for argv in commands if argv[1:4] == ["iam", "service-accounts", "create"]}
    assert accounts == set(ACCOUNTS)
    planned_bindings = {
        (
            *argv[1:4],  # the command and the resource it binds on
            next((a for a in argv if a.startswith("--role=")), "--role=roles/run.invoker"),
            next(a for a in argv if a.startswith("--member=")),
        )
        for argv in commands
        if {"add-iam-policy-binding", "add-invoker-policy-binding"} & set(argv)
    }
    assert len(planned_bindings) == len(EXPECTED_BINDINGS)
    for role_id in ("sagaCallbackSender", "sagaStartClaims"):
        assert ["gcloud", "iam", "roles", "create", role_id] in [argv[:5] for argv in commands]
    deploys = [argv[1:4] for argv in commands if "deploy" in argv[2:3]]
    assert deploys == [
        ["functions", "deploy", "step_executor"],
        ["functions", "deploy", "saga_completion"],
        ["workflows", "deploy", "saga-orchestrator"],
        ["functions", "deploy", "saga_sweeper"],
        ["functions", "deploy", "start_saga"],
    ]


def test_dry_run_shows_checks_as_would_check_and_urls_as_placeholders(cloud: FakeCloud) -> None:
    result = cloud.run("--project", PROJECT, "--dry-run")
    assert "? would check: gcloud pubsub topics describe saga-requests" in result.stdout
    workflow = next(argv for argv in plan_commands(result.stdout) if argv[1:3] == ["workflows", "deploy"])
    env_vars = next(arg for arg in workflow if arg.startswith("--set-env-vars="))
    assert "SAGA_STEP_EXECUTOR_URL=<url of step_executor>" in env_vars
    assert "SAGA_COMPLETION_URL=<url of saga_completion>" in env_vars


def test_dry_run_plan_matches_what_a_deploy_runs(cloud: FakeCloud, first_deploy: FirstDeploy) -> None:
    """Every command of a real first deploy appears in the plan (temp paths and URLs aside)."""
    plan = plan_commands(cloud.run("--project", PROJECT, "--dry-run").stdout)

    def shape(argv: list[str]) -> tuple[str, ...]:
        return tuple(a.split("=", 1)[0] if a.startswith(("--source=", "--env-vars-file=", "--set-env-vars=", "--labels=", "--update-labels=", "--uri=", "--oidc-token-audience=", "--member=serviceAccount:service-")) else a for a in argv)  # fmt: skip

    planned = {shape(argv[1:]) for argv in plan}
    for argv in changing_calls(first_deploy.calls):
        assert shape(argv) in planned, argv


# --- settings -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def overridden(tmp_path_factory: pytest.TempPathFactory, checkout: Path) -> dict[str, Any]:
    """The state after a deploy with settings overridden from the environment (and --project)."""
    fake = FakeCloud(tmp_path_factory.mktemp("overridden") / "cloud", checkout).install(initial_state())
    fake.deploy(
        "--project",
        PROJECT,
        env={
            "SAGA_PROJECT_ID": "somebody-else",
            "SAGA_RESULT_TOPIC": "order-results",
            "SAGA_SECRETS": "a-key, b-key",
            "SAGA_TRIGGER_SA": "saga-trigger",
            "SAGA_START_BUCKET": "order-start-claims",
        },
    )
    return fake.state()


def test_environment_overrides_the_settings_file(overridden: dict[str, Any]) -> None:
    assert set(overridden["topics"]) == {"saga-requests", "order-results"}
    assert set(overridden["secrets"]) == {"a-key", "b-key"}
    assert ("topic/order-results", "roles/pubsub.publisher", sa("saga-completion")) in bindings(overridden)
    assert ("secret/b-key", "roles/secretmanager.secretAccessor", sa("saga-executor")) in bindings(overridden)
    env = yaml.safe_load(overridden["functions"][f"{REGION}/saga_completion"]["envVarsFile"])
    assert env["SAGA_RESULT_TOPIC"] == "order-results"


def test_a_start_bucket_named_in_the_settings_is_created_granted_and_passed_to_the_functions(
    overridden: dict[str, Any],
) -> None:
    assert set(overridden["buckets"]) == {"order-start-claims"}
    assert ("bucket/order-start-claims", START_CLAIMS_ROLE, sa("saga-starter")) in bindings(overridden)
    for function in overridden["functions"].values():
        assert yaml.safe_load(function["envVarsFile"])["SAGA_START_BUCKET"] == "order-start-claims"


def test_an_empty_start_bucket_setting_reaches_the_functions_empty_and_names_the_default_bucket(
    first_deploy: FirstDeploy,
) -> None:
    """The functions name the bucket as deploy.sh does (``Settings.start_bucket``)."""
    assert settings_file(first_deploy.cloud.checkout)["SAGA_START_BUCKET"] == ""
    for function in first_deploy.state["functions"].values():
        env = yaml.safe_load(function["envVarsFile"])
        assert env["SAGA_START_BUCKET"] == ""
        assert Settings.from_env(env).start_bucket == START_BUCKET
    assert set(first_deploy.state["buckets"]) == {START_BUCKET}


def test_project_flag_wins_over_the_environment(overridden: dict[str, Any]) -> None:
    # The fake refuses any other project, so the deploy succeeding already says most of it.
    assert overridden["project_id"] == PROJECT
    env = yaml.safe_load(overridden["functions"][f"{REGION}/start_saga"]["envVarsFile"])
    assert env["SAGA_PROJECT_ID"] == PROJECT


def test_a_trigger_account_of_its_own_gets_only_run_invoker_on_start_saga(overridden: dict[str, Any]) -> None:
    assert overridden["functions"][f"{REGION}/start_saga"]["trigger"]["serviceAccount"] == email(
        "saga-trigger"
    )
    assert {(r, role) for r, role, m in bindings(overridden) if m == sa("saga-trigger")} == {
        (f"run/{REGION}/start-saga", "roles/run.invoker")
    }
    # Only the Pub/Sub service agent may mint its tokens.
    assert {(role, m) for r, role, m in bindings(overridden) if r == f"sa/{email('saga-trigger')}"} == {
        ("roles/iam.serviceAccountTokenCreator", f"serviceAccount:{PUBSUB_AGENT}")
    }


def test_settings_flag_reads_another_file_and_region_flag_overrides_it(
    cloud: FakeCloud, tmp_path: Path
) -> None:
    text = (cloud.checkout / "deployment.env").read_text(encoding="utf-8")
    text = text.replace("SAGA_PROJECT_ID=local-project", "SAGA_PROJECT_ID=other-project")
    text = text.replace("SAGA_TASK_QUEUE=saga-tasks", "SAGA_TASK_QUEUE=order-tasks")
    other = tmp_path / "other.env"
    other.write_text(text, encoding="utf-8")
    cloud.write_state(initial_state("other-project"))
    cloud.deploy("--settings", str(other), "--region", "europe-west1")
    state = cloud.state()
    assert set(state["queues"]) == {"europe-west1/order-tasks"}
    assert set(state["functions"]) == {
        f"europe-west1/{n}" for n in ("start_saga", "step_executor", "saga_completion", "saga_sweeper")
    }
    workflow = state["workflows"]["europe-west1/saga-orchestrator"]
    assert (
        workflow["userEnvVars"]["SAGA_TASK_QUEUE_PATH"]
        == "projects/other-project/locations/europe-west1/queues/order-tasks"
    )
    assert workflow["serviceAccount"] == email("saga-workflow", "other-project")


# --- errors -------------------------------------------------------------------------------------


def test_missing_project_is_a_clear_error(cloud: FakeCloud, tmp_path: Path) -> None:
    text = (
        (cloud.checkout / "deployment.env")
        .read_text(encoding="utf-8")
        .replace("SAGA_PROJECT_ID=local-project\n", "")
    )
    settings = tmp_path / "no-project.env"
    settings.write_text(text, encoding="utf-8")
    result = cloud.run("--settings", str(settings))
    assert result.returncode != 0
    assert "no Google Cloud project" in result.stderr and "--project" in result.stderr
    assert cloud.calls() == []


def test_the_local_placeholder_project_is_refused(cloud: FakeCloud) -> None:
    result = cloud.run("--dry-run")
    assert result.returncode != 0
    assert "'local-project'" in result.stderr and "--project" in result.stderr


def test_missing_gcloud_is_a_clear_error(cloud: FakeCloud, tools_only_path: str) -> None:
    result = cloud.run("--project", PROJECT, path=tools_only_path)
    assert result.returncode != 0
    assert "gcloud not found" in result.stderr


def test_malformed_settings_are_named(cloud: FakeCloud) -> None:
    result = cloud.run(
        "--project",
        PROJECT,
        env={
            "SAGA_QUEUE_MAX_ATTEMPTS": "many",
            "SAGA_WORKFLOW_SA": "X",
            "DEPLOY_FUNCTION_TIMEOUT_SECONDS": "900",
            "DEPLOY_BUILD_SA": "builder@example.com",
            "DEPLOY_CALLBACK_ROLE_ID": "send callbacks",
            "DEPLOY_START_CLAIMS_ROLE_ID": "x",
            "SAGA_START_BUCKET": "Saga_Starts",
            "DEPLOY_STEP_EXECUTOR_CONCURRENCY": "1001",
            "DEPLOY_SAGA_SWEEPER_MAX_INSTANCES": "0",
        },
    )
    assert result.returncode != 0
    for key in (
        "SAGA_QUEUE_MAX_ATTEMPTS",
        "SAGA_WORKFLOW_SA",
        "DEPLOY_FUNCTION_TIMEOUT_SECONDS",
        "DEPLOY_BUILD_SA",
        "DEPLOY_CALLBACK_ROLE_ID",
        "DEPLOY_START_CLAIMS_ROLE_ID",
        "SAGA_START_BUCKET",
        "DEPLOY_STEP_EXECUTOR_CONCURRENCY",
        "DEPLOY_SAGA_SWEEPER_MAX_INSTANCES",
    ):
        assert key in result.stderr
    assert cloud.calls() == []


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SAGA_START_BUCKET": "google-saga-starts"}, "'google-saga-starts'"),
        ({"SAGA_START_BUCKET": "claims.example.com"}, "'claims.example.com'"),
        # The default bucket name comes from the project id, which may make it invalid.
        ({"SAGA_PROJECT_ID": "google-shop-1"}, "its default <SAGA_PROJECT_ID>-saga-starts"),
        ({"DEPLOY_START_CLAIMS_ROLE_ID": "sagaCallbackSender"}, "must differ"),
    ],
)
def test_a_start_bucket_or_claims_role_that_cannot_work_is_refused_before_any_call(
    cloud: FakeCloud, env: dict[str, str], named: str
) -> None:
    args = () if "SAGA_PROJECT_ID" in env else ("--project", PROJECT)
    result = cloud.run(*args, "--dry-run", env=env)
    assert result.returncode == 1
    assert named in result.stderr
    assert cloud.calls() == []


def test_an_unknown_argument_exits_2_with_usage(cloud: FakeCloud) -> None:
    result = cloud.run("--projcet", PROJECT)
    assert result.returncode == 2
    assert "unknown argument: --projcet" in result.stderr and "Usage:" in result.stderr


def test_help_prints_usage_and_calls_nothing(cloud: FakeCloud) -> None:
    result = cloud.run("--help")
    assert result.returncode == 0
    assert "--dry-run" in result.stdout and "--settings FILE" in result.stdout
    assert "--check" in result.stdout and "--destroy" in result.stdout
    assert cloud.calls() == []


# --- the script itself --------------------------------------------------------------------------


def test_deploy_script_parses() -> None:
    result = subprocess.run([BASH, "-n", str(DEPLOY)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_deploy_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    result = subprocess.run([shellcheck, str(DEPLOY)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
