"""deploy.sh's checks (--check, and the same checks before every deploy) and --destroy, against the fake
gcloud in the kinds of project a first deploy meets: a healthy one; a new one, whose default build
account may not build a function; an old one, whose Pub/Sub service agent predates 2021-04-08; and one
whose settings still name the local allowlist."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.fake_cloud import (
    ACCOUNTS,
    CALLBACK_ROLE,
    PROJECT,
    PROJECT_NUMBER,
    PUBSUB_AGENT,
    REGION,
    START_BUCKET,
    START_CLAIMS_PERMISSIONS,
    START_CLAIMS_ROLE,
    FakeCloud,
    FirstDeploy,
    bindings,
    changing_calls,
    email,
    eventarc_can_push_to_start_saga,
    findings,
    plan_commands,
    sa,
)

# The account a new project's functions would be built by unless told otherwise.
COMPUTE = f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com"
# Verbs that only read.
READING_VERBS = {"describe", "list", "get-iam-policy"}


def only_reads(calls: list[list[str]]) -> bool:
    return all(READING_VERBS & set(argv) for argv in calls)


@pytest.fixture
def broken(cloud: FakeCloud) -> FakeCloud:
    """A new project whose settings name the Compute Engine default account, which holds no role, as the
    build account, and still allow only loopback hosts."""
    state = cloud.state()
    state["service_accounts"][COMPUTE] = {
        "email": COMPUTE,
        "displayName": "Compute Engine default service account",
    }
    cloud.write_state(state)
    cloud.env.update({"DEPLOY_BUILD_SA": COMPUTE, "SAGA_ALLOWED_HOSTS": "127.0.0.1,localhost"})
    return cloud


# --- --check ------------------------------------------------------------------------------------


def test_check_on_a_healthy_project_finds_nothing_and_changes_nothing(deployed: FakeCloud) -> None:
    result = deployed.run("--project", PROJECT, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert findings(result.stdout) == []
    assert "check passed" in result.stdout
    assert deployed.calls() and only_reads(deployed.calls())


def test_check_on_a_broken_project_names_each_problem_with_its_fix_and_changes_nothing(
    broken: FakeCloud,
) -> None:
    result = broken.run("--project", PROJECT, "--check")
    assert result.returncode == 1
    found = findings(result.stdout)
    assert all(fix for _, _, fix in found), found
    errors = {what.split(" (")[0].split(":")[0]: fix for level, what, fix in found if level == "error"}
    assert errors == {
        "SAGA_ALLOWED_HOSTS": errors["SAGA_ALLOWED_HOSTS"],
        f"build service account {COMPUTE} lacks roles/logging.logWriter": (
            f"gcloud projects add-iam-policy-binding {PROJECT} --member=serviceAccount:{COMPUTE}"
            " --role=roles/logging.logWriter --condition=None"
        ),
        f"build service account {COMPUTE} lacks roles/storage.objectViewer": (
            f"gcloud projects add-iam-policy-binding {PROJECT} --member=serviceAccount:{COMPUTE}"
            " --role=roles/storage.objectViewer --condition=None"
        ),
    }
    assert "SAGA_ALLOWED_HOSTS=" in errors["SAGA_ALLOWED_HOSTS"]
    todo = [what for level, what, _ in found if level == "todo"]
    assert [what.split(":")[0] for what in todo[:1]] == ["APIs not enabled"]
    assert any(CALLBACK_ROLE in what for what in todo)
    assert any(PUBSUB_AGENT in what and "2021-04-08" in what for what in todo)
    assert "# checks: 3 error(s)" in result.stdout
    assert "error" in result.stderr
    assert only_reads(broken.calls())


def test_running_the_fixes_a_check_prints_makes_it_pass(broken: FakeCloud) -> None:
    result = broken.run("--project", PROJECT, "--check")
    for level, _, fix in findings(result.stdout):
        if level == "error" and fix.startswith("gcloud "):
            ran = broken.gcloud(*shlex.split(fix)[1:])
            assert ran.returncode == 0, ran.stderr
    again = broken.run("--project", PROJECT, "--check", env={"SAGA_ALLOWED_HOSTS": "api.example.com"})
    assert again.returncode == 0, again.stdout
    assert {level for level, _, _ in findings(again.stdout)} == {"todo"}


def test_check_and_destroy_exclude_each_other(cloud: FakeCloud) -> None:
    result = cloud.run("--project", PROJECT, "--check", "--destroy")
    assert result.returncode == 2
    assert cloud.calls() == []


def test_a_rate_over_the_cloud_tasks_limit_is_an_error_and_a_small_executor_a_warning(
    cloud: FakeCloud,
) -> None:
    result = cloud.run(
        "--project",
        PROJECT,
        "--check",
        "--dry-run",
        env={"SAGA_QUEUE_MAX_DISPATCHES_PER_SECOND": "600", "DEPLOY_STEP_EXECUTOR_MAX_INSTANCES": "5"},
    )
    assert result.returncode == 1
    found = {(level, fix) for level, _, fix in findings(result.stdout)}
    assert ("error", "SAGA_QUEUE_MAX_DISPATCHES_PER_SECOND=500") in found
    # 20 per instance x 5 instances = 100 < the 200 the queue dispatches at once.
    assert ("warning", "DEPLOY_STEP_EXECUTOR_MAX_INSTANCES=10") in found
    assert cloud.calls() == []


# --- the allowlist ------------------------------------------------------------------------------


@pytest.mark.parametrize("hosts", ["127.0.0.1,localhost", "localhost:8080, [::1], 127.0.0.2"])
def test_a_loopback_only_allowlist_is_refused_naming_the_key_before_anything_changes(
    cloud: FakeCloud, hosts: str
) -> None:
    result = cloud.run("--project", PROJECT, env={"SAGA_ALLOWED_HOSTS": hosts})
    assert result.returncode == 1
    [error] = [what for level, what, _ in findings(result.stdout) if level == "error"]
    assert error.startswith("SAGA_ALLOWED_HOSTS") and "nothing was changed" in result.stderr
    assert changing_calls(cloud.calls()) == []
    dry = cloud.run("--project", PROJECT, "--dry-run", env={"SAGA_ALLOWED_HOSTS": hosts})
    assert dry.returncode == 1 and "SAGA_ALLOWED_HOSTS" in dry.stdout


def test_an_allowlist_naming_a_real_host_beside_loopback_is_accepted(cloud: FakeCloud) -> None:
    result = cloud.run(
        "--project", PROJECT, "--check", "--dry-run", env={"SAGA_ALLOWED_HOSTS": "localhost,api.shop.io"}
    )
    assert result.returncode == 0, result.stdout
    assert "= SAGA_ALLOWED_HOSTS=localhost,api.shop.io" in result.stdout


# --- a new project: the build account -----------------------------------------------------------


def function_source(root: Path) -> Path:
    """The smallest source the fake takes for a function."""
    for name in ("main.py", "requirements.txt", "saga_orchestrator/__init__.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("", encoding="utf-8")
    return root


def test_in_a_new_project_the_default_build_account_cannot_build_a_function(
    cloud: FakeCloud, tmp_path: Path
) -> None:
    """What deploy.sh guards against: the fake fails such a build as Google does."""
    state = cloud.state()
    state["service_accounts"][email("runner")] = {"email": email("runner")}
    cloud.write_state(state)
    env_file = tmp_path / "env.yaml"
    env_file.write_text("", encoding="utf-8")
    result = cloud.gcloud(
        "functions", "deploy", "f", "--gen2", f"--region={REGION}", f"--project={PROJECT}", "--runtime=python312",
        f"--source={function_source(tmp_path / 'src')}", "--entry-point=f", f"--service-account={email('runner')}",
        f"--env-vars-file={env_file}", "--trigger-http",
    )  # fmt: skip
    assert result.returncode == 1
    assert "missing permission on the build service account" in result.stderr


def test_a_deploy_in_a_new_project_builds_every_function_with_its_own_build_account(
    first_deploy: FirstDeploy,
) -> None:
    assert first_deploy.cloud.state()["default_build_account_ready"] is False
    builder = f"projects/{PROJECT}/serviceAccounts/{email('saga-build')}"
    assert {f["buildServiceAccount"] for f in first_deploy.state["functions"].values()} == {builder}
    assert {(r, role) for r, role, m in bindings(first_deploy.state) if m == sa("saga-build")} == {
        (f"project/{PROJECT}", "roles/logging.logWriter"),
        (f"project/{PROJECT}", "roles/storage.objectViewer"),
        (f"repository/{REGION}/saga-functions", "roles/artifactregistry.writer"),
    }


def test_a_build_account_of_your_own_that_lacks_a_role_stops_the_deploy_before_anything_changes(
    broken: FakeCloud,
) -> None:
    result = broken.run("--project", PROJECT, env={"SAGA_ALLOWED_HOSTS": "api.example.com"})
    assert result.returncode == 1
    errors = [what for level, what, _ in findings(result.stdout) if level == "error"]
    assert errors == [
        f"build service account {COMPUTE} lacks roles/logging.logWriter: the build of every function would fail",
        f"build service account {COMPUTE} lacks roles/storage.objectViewer: the build of every function would fail",
    ]
    assert "nothing was changed" in result.stderr
    assert changing_calls(broken.calls()) == []


def test_a_build_account_of_your_own_with_the_builder_role_is_used_and_not_granted_project_roles(
    broken: FakeCloud,
) -> None:
    granted = broken.gcloud(
        "projects", "add-iam-policy-binding", PROJECT, f"--member=serviceAccount:{COMPUTE}",
        "--role=roles/cloudbuild.builds.builder", "--condition=None",
    )  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    broken.deploy("--project", PROJECT, env={"SAGA_ALLOWED_HOSTS": "api.example.com"})
    state = broken.state()
    assert {f["buildServiceAccount"] for f in state["functions"].values()} == {
        f"projects/{PROJECT}/serviceAccounts/{COMPUTE}"
    }
    assert {(r, role) for r, role, m in bindings(state) if m == f"serviceAccount:{COMPUTE}"} == {
        (f"project/{PROJECT}", "roles/cloudbuild.builds.builder"),
        (f"repository/{REGION}/saga-functions", "roles/artifactregistry.writer"),
    }
    assert email("saga-build") not in state["service_accounts"]


# --- an old project: the Pub/Sub service agent --------------------------------------------------


@pytest.fixture
def old_project(cloud: FakeCloud) -> FakeCloud:
    """A project whose Pub/Sub service agent was created before 2021-04-08 (and whose default build
    account could still build)."""
    state = cloud.state()
    state["pubsub_agent_created"] = "2020-11-03"
    state["default_build_account_ready"] = True
    cloud.write_state(state)
    return cloud


def test_in_an_old_project_the_deploy_lets_the_pubsub_agent_mint_the_trigger_token_so_sagas_start(
    old_project: FakeCloud,
) -> None:
    old_project.deploy("--project", PROJECT)
    state = old_project.state()
    assert eventarc_can_push_to_start_saga(state)
    # The grant is on the trigger's account only, never on the project.
    assert {r for r, role, _ in bindings(state) if role == "roles/iam.serviceAccountTokenCreator"} == {
        f"sa/{email('saga-trigger')}"
    }
    # Without it, this project would start no saga (and a project with a recent agent would).
    without = copy.deepcopy(state)
    without["iam"][f"sa/{email('saga-trigger')}"].clear()
    assert not eventarc_can_push_to_start_saga(without)
    without["pubsub_agent_created"] = "2021-04-09"
    assert eventarc_can_push_to_start_saga(without)


def test_in_an_old_project_a_second_run_changes_nothing(old_project: FakeCloud) -> None:
    old_project.deploy("--project", PROJECT)
    before = old_project.state()
    old_project.forget_calls()
    result = old_project.deploy("--project", PROJECT)
    assert changing_calls(old_project.calls()) == []
    assert old_project.state() == before
    assert "+ gcloud" not in result.stdout


# --- grants of earlier versions, a deleted custom role -------------------------------------------


def test_grants_an_earlier_deploy_made_and_nothing_needs_are_removed(
    deployed: FakeCloud, first_deploy: FirstDeploy
) -> None:
    state = deployed.state()
    state["iam"][f"project/{PROJECT}"] += [
        ["roles/workflows.invoker", sa("saga-executor")],
        ["roles/logging.logWriter", sa("saga-executor")],
        ["roles/logging.logWriter", sa("saga-workflow")],
    ]
    deployed.write_state(state)
    check = deployed.run("--project", PROJECT, "--check")
    assert check.returncode == 0 and len(findings(check.stdout)) == 3
    deployed.forget_calls()
    deployed.deploy("--project", PROJECT)
    assert [argv[:2] for argv in changing_calls(deployed.calls())] == [
        ["projects", "remove-iam-policy-binding"]
    ] * 3
    assert bindings(deployed.state()) == bindings(first_deploy.state)


@pytest.mark.parametrize("role_id", ["sagaCallbackSender", "sagaStartClaims"])
def test_a_deleted_custom_role_is_undeleted_not_created_again(deployed: FakeCloud, role_id: str) -> None:
    state = deployed.state()
    state["roles"][role_id]["deleted"] = True
    deployed.write_state(state)
    deployed.deploy("--project", PROJECT)
    assert [argv[:4] for argv in changing_calls(deployed.calls())] == [["iam", "roles", "undelete", role_id]]
    assert "deleted" not in deployed.state()["roles"][role_id]


def test_a_claims_role_with_other_permissions_is_set_back_to_exactly_the_four(deployed: FakeCloud) -> None:
    state = deployed.state()
    role = state["roles"]["sagaStartClaims"]
    role["includedPermissions"] = ["storage.objects.list", "storage.objects.get", "storage.buckets.delete"]
    role["deleted"] = True
    deployed.write_state(state)
    check = deployed.run("--project", PROJECT, "--check")
    assert check.returncode == 0, check.stdout
    assert [(level, what.split(" (")[0]) for level, what, _ in findings(check.stdout)] == [
        ("todo", f"custom role {START_CLAIMS_ROLE} was deleted"),
        (
            "todo",
            f"custom role {START_CLAIMS_ROLE} holds other permissions than {','.join(START_CLAIMS_PERMISSIONS)}",
        ),
    ]
    deployed.forget_calls()
    deployed.deploy("--project", PROJECT)
    assert [argv[:4] for argv in changing_calls(deployed.calls())] == [
        ["iam", "roles", "undelete", "sagaStartClaims"],
        ["iam", "roles", "update", "sagaStartClaims"],
    ]
    role = deployed.state()["roles"]["sagaStartClaims"]
    assert sorted(role["includedPermissions"]) == START_CLAIMS_PERMISSIONS and "deleted" not in role


# --- the bucket of start claims -----------------------------------------------------------------


def without_the_bucket(cloud: FakeCloud) -> None:
    state = cloud.state()
    del state["buckets"][START_BUCKET]
    del state["iam"][f"bucket/{START_BUCKET}"]
    cloud.write_state(state)


def test_check_without_the_bucket_lists_it_and_the_grant_as_todo_and_their_fixes_make_it_pass(
    deployed: FakeCloud, first_deploy: FirstDeploy
) -> None:
    without_the_bucket(deployed)
    result = deployed.run("--project", PROJECT, "--check")
    assert result.returncode == 0, result.stdout
    found = findings(result.stdout)
    assert [(level, what) for level, what, _ in found] == [
        ("todo", f"bucket gs://{START_BUCKET} (start claims) does not exist"),
        (
            "todo",
            f"{email('saga-starter')} may not claim saga ids in gs://{START_BUCKET} ({START_CLAIMS_ROLE} on the bucket)",
        ),
    ]
    assert only_reads(deployed.calls())
    for _, _, fix in found:
        ran = deployed.gcloud(*shlex.split(fix)[1:])
        assert ran.returncode == 0, ran.stderr
    assert deployed.state() == first_deploy.state
    again = deployed.run("--project", PROJECT, "--check")
    assert again.returncode == 0 and findings(again.stdout) == []


def test_a_deploy_without_the_bucket_creates_it_and_the_grant_and_changes_nothing_else(
    deployed: FakeCloud, first_deploy: FirstDeploy
) -> None:
    without_the_bucket(deployed)
    deployed.deploy("--project", PROJECT)
    assert [argv[:3] for argv in changing_calls(deployed.calls())] == [
        ["storage", "buckets", "create"],
        ["storage", "buckets", "add-iam-policy-binding"],
    ]
    assert deployed.state() == first_deploy.state


def test_a_missing_grant_on_the_bucket_is_a_todo_and_a_deploy_adds_it_back(deployed: FakeCloud) -> None:
    state = deployed.state()
    state["iam"][f"bucket/{START_BUCKET}"].clear()
    deployed.write_state(state)
    check = deployed.run("--project", PROJECT, "--check")
    assert [(level, fix) for level, _, fix in findings(check.stdout)] == [
        (
            "todo",
            f"gcloud storage buckets add-iam-policy-binding gs://{START_BUCKET} --project={PROJECT}"
            f" --member={sa('saga-starter')} --role={START_CLAIMS_ROLE}",
        )
    ]
    deployed.forget_calls()
    deployed.deploy("--project", PROJECT)
    assert [argv[:3] for argv in changing_calls(deployed.calls())] == [
        ["storage", "buckets", "add-iam-policy-binding"]
    ]


OTHER_PROJECT_NUMBER = "999999999999"


def a_bucket_of_another_project(cloud: FakeCloud, readable: bool) -> None:
    """The bucket name deploy.sh would use, already taken in another project (bucket names are global)."""
    state = cloud.state()
    state["buckets"][START_BUCKET] = {
        "name": START_BUCKET,
        "projectNumber": OTHER_PROJECT_NUMBER,
        "location": "US",
        "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": True}},
    }
    if readable:
        state["readable_buckets"] = [START_BUCKET]
    cloud.write_state(state)


@pytest.mark.parametrize(
    ("readable", "said"),
    [
        (True, f"belongs to another project (number {OTHER_PROJECT_NUMBER}), not to {PROJECT}"),
        (False, "exists but cannot be read (HTTPError 403: "),
    ],
)
def test_a_bucket_name_taken_by_another_project_is_an_error_whose_fix_names_a_free_bucket(
    cloud: FakeCloud, readable: bool, said: str
) -> None:
    a_bucket_of_another_project(cloud, readable)
    result = cloud.run("--project", PROJECT, "--check")
    assert result.returncode == 1
    [(what, fix)] = [(what, fix) for level, what, fix in findings(result.stdout) if level == "error"]
    assert what.startswith(f"bucket gs://{START_BUCKET} (SAGA_START_BUCKET) ") and said in what
    other = f"{PROJECT}-saga-start-claims"
    assert f"SAGA_START_BUCKET={other} bash deploy.sh --project {PROJECT}" in fix
    assert only_reads(cloud.calls())
    # A deploy stops before it changes anything; with the name the fix gives, it goes through.
    stopped = cloud.run("--project", PROJECT)
    assert stopped.returncode == 1 and "nothing was changed" in stopped.stderr
    assert changing_calls(cloud.calls()) == []
    cloud.deploy("--project", PROJECT, env={"SAGA_START_BUCKET": other})
    state = cloud.state()
    assert state["buckets"][other]["projectNumber"] == PROJECT_NUMBER
    assert state["buckets"][START_BUCKET]["projectNumber"] == OTHER_PROJECT_NUMBER
    assert f"bucket/{START_BUCKET}" not in state["iam"]


MISCONFIGURED: dict[str, tuple[dict[str, Any], str, str]] = {
    # setting changed on the bucket: (fields, what the error says, the flag of its fix)
    "no uniform access": (
        {
            "iamConfiguration": {
                "uniformBucketLevelAccess": {"enabled": False},
                "publicAccessPrevention": "enforced",
            }
        },
        "has no uniform bucket-level access",
        "--uniform-bucket-level-access",
    ),
    "a retention policy": (
        {"retentionPolicy": {"retentionPeriod": 86400, "isLocked": False}},
        "has a retention policy (86400 s)",
        "--clear-retention-period",
    ),
    "a rule that deletes": (
        {"lifecycle": {"rule": [{"action": {"type": "SetStorageClass"}}, {"action": {"type": "Delete"}}]}},
        "has a lifecycle rule that deletes objects",
        "--clear-lifecycle",
    ),
}


@pytest.mark.parametrize("case", sorted(MISCONFIGURED))
def test_a_bucket_of_the_project_that_cannot_hold_claims_safely_is_an_error_with_its_fix(
    deployed: FakeCloud, case: str
) -> None:
    fields, said, flag = MISCONFIGURED[case]
    state = deployed.state()
    state["buckets"][START_BUCKET].update(fields)
    deployed.write_state(state)
    result = deployed.run("--project", PROJECT, "--check")
    assert result.returncode == 1
    [(level, what, fix)] = findings(result.stdout)
    assert level == "error" and what.startswith(f"bucket gs://{START_BUCKET} {said}"), what
    assert fix == f"gcloud storage buckets update gs://{START_BUCKET} --project={PROJECT} {flag}"
    stopped = deployed.run("--project", PROJECT)
    assert stopped.returncode == 1 and "nothing was changed" in stopped.stderr
    assert changing_calls(deployed.calls()) == []
    # The fix it prints is enough.
    fixed = deployed.gcloud(*shlex.split(fix)[1:])
    assert fixed.returncode == 0, fixed.stderr
    again = deployed.run("--project", PROJECT, "--check")
    assert again.returncode == 0 and findings(again.stdout) == [], again.stdout


COSTLY: dict[str, tuple[dict[str, Any], str, str]] = {
    "another location": ({"location": "US"}, "is in US, not in us-central1", "location cannot change"),
    "public access prevention inherited": (
        {
            "iamConfiguration": {
                "uniformBucketLevelAccess": {"enabled": True},
                "publicAccessPrevention": "inherited",
            }
        },
        "does not enforce public access prevention",
        "--public-access-prevention",
    ),
    "versioning": ({"versioning": {"enabled": True}}, "keeps object versions", "--no-versioning"),
    "soft delete": (
        {"softDeletePolicy": {"retentionDurationSeconds": 604800}},
        "keeps deleted objects for 604800 s",
        "--clear-soft-delete",
    ),
}


@pytest.mark.parametrize("case", sorted(COSTLY))
def test_a_bucket_that_works_at_a_cost_is_a_warning_and_a_deploy_leaves_it_as_it_is(
    deployed: FakeCloud, case: str
) -> None:
    fields, said, fix_part = COSTLY[case]
    state = deployed.state()
    state["buckets"][START_BUCKET].update(fields)
    deployed.write_state(state)
    result = deployed.run("--project", PROJECT, "--check")
    assert result.returncode == 0, result.stdout
    [(level, what, fix)] = findings(result.stdout)
    assert level == "warning" and said in what and fix_part in fix
    deployed.forget_calls()
    deployed.deploy("--project", PROJECT)
    assert changing_calls(deployed.calls()) == []


# --- --destroy ----------------------------------------------------------------------------------


def resource_of(argv: list[str]) -> tuple[str, str] | None:
    """The resource a create/deploy or delete command is about, the same for both."""
    verb_at = {("functions",): 1, ("workflows",): 1, ("tasks", "queues"): 2, ("pubsub", "topics"): 2}
    for group, at in verb_at.items():
        if tuple(argv[: len(group)]) == group and argv[at] in ("create", "deploy", "delete"):
            return group[-1], argv[at + 1]
    if argv[:2] == ["scheduler", "jobs"] and argv[2] in ("create", "delete"):
        return "job", argv[4] if argv[2] == "create" else argv[3]
    if argv[:2] == ["artifacts", "repositories"] and argv[2] in ("create", "delete"):
        return "repository", argv[3]
    if argv[:2] == ["iam", "roles"] and argv[2] in ("create", "delete"):
        return "role", argv[3]
    if argv[:2] == ["iam", "service-accounts"] and argv[2] in ("create", "delete"):
        return "account", argv[3].split("@")[0]
    return None


def test_destroy_dry_run_calls_nothing_and_removes_in_the_reverse_order_of_a_deploy(
    deployed: FakeCloud, first_deploy: FirstDeploy
) -> None:
    before = deployed.state()
    result = deployed.run("--project", PROJECT, "--destroy", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert deployed.calls() == [] and deployed.state() == before
    commands = [argv[1:] for argv in plan_commands(result.stdout)]
    created = [r for r in map(resource_of, first_deploy.calls) if r is not None]
    removed = [r for r in map(resource_of, commands) if r is not None]
    assert removed == created[::-1]
    # Secrets hold values only their owner put there; APIs may serve other things.
    assert not [argv for argv in commands if argv[:2] in (["secrets", "delete"], ["services", "disable"])]
    # The project-level grants go before the accounts they name.
    revoked = [argv for argv in commands if argv[:2] == ["projects", "remove-iam-policy-binding"]]
    assert len(revoked) == len({(role, m) for r, role, m in bindings(before) if r == f"project/{PROJECT}"})


def test_destroy_dry_run_keeps_the_bucket_of_start_claims_and_removes_the_grant_and_the_role(
    deployed: FakeCloud,
) -> None:
    result = deployed.run("--project", PROJECT, "--destroy", "--dry-run")
    assert result.returncode == 0, result.stderr
    commands = [argv[1:] for argv in plan_commands(result.stdout)]
    # The claims are the memory of which saga ids started: the bucket stays, and the output says how to
    # delete it.
    assert not [argv for argv in commands if argv[:1] == ["storage"] and {"delete", "rm"} & set(argv)]
    kept = next(
        line for line in result.stdout.splitlines() if line.startswith(f"= bucket gs://{START_BUCKET} kept")
    )
    assert kept.endswith(f": gcloud storage rm --recursive gs://{START_BUCKET} --project={PROJECT}")
    # The starter's grant on it goes before the role it names, and the role before the starter's account.
    order = [argv[:4] for argv in commands]
    grant = [
        "storage", "buckets", "remove-iam-policy-binding", f"gs://{START_BUCKET}",
    ]  # fmt: skip
    assert f"--role={START_CLAIMS_ROLE}" in commands[order.index(grant)]
    assert (
        order.index(grant)
        < order.index(["iam", "roles", "delete", "sagaStartClaims"])
        < order.index(["iam", "roles", "delete", "sagaCallbackSender"])
        < order.index(["iam", "service-accounts", "delete", email("saga-starter")])
    )


def test_destroy_removes_what_deploy_created_keeps_the_rest_and_a_deploy_brings_it_back(
    deployed: FakeCloud, first_deploy: FirstDeploy
) -> None:
    state = deployed.state()
    # Things deploy.sh did not create: a topic of the same name made by hand (no label), another topic,
    # another account, a person's project role.
    state["topics"]["saga-requests"].pop("labels")
    state["topics"]["orders"] = {"name": f"projects/{PROJECT}/topics/orders"}
    state["service_accounts"][email("billing")] = {"email": email("billing")}
    state["iam"][f"project/{PROJECT}"].append(["roles/owner", "user:ops@example.com"])
    deployed.write_state(state)
    deployed.deploy("--project", PROJECT, "--destroy")
    after = deployed.state()
    for kind in ("functions", "workflows", "scheduler_jobs", "queues", "repositories", "run_services"):
        assert after[kind] == {}, kind
    assert after["roles"]["sagaCallbackSender"]["deleted"] is True
    assert after["roles"]["sagaStartClaims"]["deleted"] is True
    # The bucket of start claims stays as it was, without the starter's grant.
    assert after["buckets"] == first_deploy.state["buckets"]
    assert set(after["topics"]) == {"saga-requests", "orders"}
    assert set(after["service_accounts"]) == {email("billing")}
    assert after["secrets"] == first_deploy.state["secrets"]
    assert after["services"] == first_deploy.state["services"]
    # No grant is left behind, not even to a deleted account.
    assert bindings(after) == {(f"project/{PROJECT}", "roles/owner", "user:ops@example.com")}
    assert not any(m.startswith("deleted:") for _, _, m in bindings(after))

    deployed.forget_calls()
    again = deployed.run("--project", PROJECT, "--destroy")
    assert again.returncode == 0 and changing_calls(deployed.calls()) == []

    deployed.deploy("--project", PROJECT)
    redeployed = bindings(deployed.state()) - {(f"project/{PROJECT}", "roles/owner", "user:ops@example.com")}
    assert redeployed == bindings(first_deploy.state)
    assert set(deployed.state()["service_accounts"]) == {email(a) for a in ACCOUNTS} | {email("billing")}
