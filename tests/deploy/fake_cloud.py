"""The fake Google Cloud project the deploy tests run deploy.sh against (``fake_gcloud.py`` answers as
gcloud), and what the tests read back from it."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy.sh"
# What deploy.sh reads from the repository.
SHIPPED = (
    "deploy.sh",
    "deployment.env",
    "requirements.txt",
    "functions",
    "shared/saga_orchestrator",
    "workflows/saga_orchestrator.yaml",
)
FAKE = Path(__file__).with_name("fake_gcloud.py")
PROJECT = "saga-test-project"
PROJECT_NUMBER = "123456789012"
PUBSUB_AGENT = f"service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
# Participants' hosts, as a real deploy must name them (deploy.sh refuses the loopback-only default).
ALLOWED_HOSTS = "api.example.com,*.example.net"
BASH = shutil.which("bash") or "/bin/bash"
# What deploy.sh needs besides gcloud; a PATH of only these proves it does not find a gcloud elsewhere.
TOOLS = (
    "awk", "cat", "cp", "cut", "dirname", "env", "find", "grep", "mkdir", "mktemp", "rm", "sed",
    "sha256sum", "sleep", "sort", "tr",
)  # fmt: skip


def initial_state(project: str = PROJECT) -> dict[str, Any]:
    """A project created after July 2024 (its default build account may not build a function) whose
    Pub/Sub service agent is recent."""
    return {
        "project_id": project,
        "project_number": PROJECT_NUMBER,
        "default_build_account_ready": False,
        "pubsub_agent_created": "2024-09-02",
        "roles": {},
        "repositories": {},
        "services": [],
        "service_accounts": {},
        "topics": {},
        "queues": {},
        "secrets": {},
        "functions": {},
        "run_services": {},
        "workflows": {},
        "scheduler_jobs": {},
        "buckets": {},
        "iam": {},
    }


@dataclass
class FakeCloud:
    """One fake project: where its state and call log live, and how to run deploy.sh against it."""

    root: Path
    checkout: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def log_path(self) -> Path:
        return self.root / "calls.jsonl"

    def install(self, state: dict[str, Any]) -> FakeCloud:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        gcloud = self.bin_dir / "gcloud"
        gcloud.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{FAKE}" "$@"\n', encoding="utf-8")
        gcloud.chmod(0o755)
        self.write_state(state)
        return self

    def run(
        self, *args: str, env: dict[str, str] | None = None, path: str | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        full_env = {
            "PATH": path if path is not None else f"{self.bin_dir}:/usr/bin:/bin",
            "HOME": str(self.root),
            "TMPDIR": str(tmp),
            "LANG": "C.UTF-8",
            "FAKE_GCLOUD_STATE": str(self.state_path),
            "FAKE_GCLOUD_LOG": str(self.log_path),
            "SAGA_ALLOWED_HOSTS": ALLOWED_HOSTS,
            **self.env,
            **(env or {}),
        }
        return subprocess.run(
            [BASH, str(self.checkout / "deploy.sh"), *args],
            env=full_env,
            cwd=cwd or self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def deploy(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Runs deploy.sh and fails the test, showing its output, when it does not succeed."""
        result = self.run(*args, env=env)
        assert result.returncode == 0, (
            f"deploy.sh failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
        return result

    def gcloud(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Runs one command against this project, as a person following deploy.sh's advice would."""
        return subprocess.run(
            [str(self.bin_dir / "gcloud"), *argv],
            env={"FAKE_GCLOUD_STATE": str(self.state_path), "FAKE_GCLOUD_LOG": str(self.log_path)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def calls(self) -> list[list[str]]:
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["argv"] for line in lines if line.strip()]

    def forget_calls(self) -> None:
        self.log_path.unlink(missing_ok=True)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
        return state

    def write_state(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")


REGION = "us-central1"
APIS = {
    f"{name}.googleapis.com"
    for name in [
        "workflows",
        "workflowexecutions",
        "cloudtasks",
        "pubsub",
        "secretmanager",
        "cloudfunctions",
        "run",
        "eventarc",
        "cloudbuild",
        "artifactregistry",
        "logging",
        "iam",
        "cloudscheduler",
        "storage",
    ]
}
# Verbs that change a project; a run that changes nothing issues none of them.
CHANGING_VERBS = {
    "create",
    "update",
    "deploy",
    "enable",
    "add-iam-policy-binding",
    "delete",
    "undelete",
    "set-iam-policy",
    "remove-iam-policy-binding",
    "add-invoker-policy-binding",
}


def email(account: str, project: str = PROJECT) -> str:
    return f"{account}@{project}.iam.gserviceaccount.com"


def sa(account: str, project: str = PROJECT) -> str:
    return f"serviceAccount:{email(account, project)}"


def bindings(state: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(resource, role, member) for resource, pairs in state["iam"].items() for role, member in pairs}


def settings_file(checkout: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (checkout / "deployment.env").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def changing_calls(calls: list[list[str]]) -> list[list[str]]:
    return [argv for argv in calls if CHANGING_VERBS & set(argv)]


@dataclass(frozen=True)
class FirstDeploy:
    cloud: FakeCloud
    result: subprocess.CompletedProcess[str]
    calls: list[list[str]]
    state: dict[str, Any]


CALLBACK_ROLE = f"projects/{PROJECT}/roles/sagaCallbackSender"
START_CLAIMS_ROLE = f"projects/{PROJECT}/roles/sagaStartClaims"
# The bucket of start claims when SAGA_START_BUCKET is empty, and what a claim needs in it.
START_BUCKET = f"{PROJECT}-saga-starts"
START_CLAIMS_PERMISSIONS = [
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
    "storage.objects.update",
]
# The service accounts deploy.sh creates with the default settings.
ACCOUNTS = (
    "saga-starter",
    "saga-workflow",
    "saga-executor",
    "saga-completion",
    "saga-tasks-invoker",
    "saga-trigger",
    "saga-sweeper",
    "saga-scheduler",
    "saga-build",
)


def eventarc_can_push_to_start_saga(state: dict[str, Any], region: str = REGION) -> bool:
    """Whether Eventarc's push of a saga request reaches start_saga, as Google documents it
    (https://cloud.google.com/eventarc/standard/docs/functions/roles-permissions): the trigger's account
    may invoke the function, and a Pub/Sub service agent created on or before 2021-04-08 may mint that
    account's tokens (on the account or on the project)."""
    function = state["functions"].get(f"{region}/start_saga")
    if function is None:
        return False
    trigger = function["trigger"]["serviceAccount"]
    service = function["serviceConfig"]["service"].rsplit("/", 1)[1]
    granted = bindings(state)
    if (f"run/{region}/{service}", "roles/run.invoker", f"serviceAccount:{trigger}") not in granted:
        return False
    if state["pubsub_agent_created"] > "2021-04-08":
        return True
    agent = f"serviceAccount:service-{state['project_number']}@gcp-sa-pubsub.iam.gserviceaccount.com"
    return any(
        (resource, "roles/iam.serviceAccountTokenCreator", agent) in granted
        for resource in (f"sa/{trigger}", f"project/{state['project_id']}")
    )


def findings(stdout: str) -> list[tuple[str, str, str]]:
    """The check lines of deploy.sh's output: (level, what, fix)."""
    found = []
    for line in stdout.splitlines():
        level, colon, rest = line.partition(": ")
        if colon and level in ("error", "todo", "warning"):
            what, _, fix = rest.partition(" -- fix: ")
            found.append((level, what, fix))
    return found


def plan_commands(stdout: str) -> list[list[str]]:
    """The '+' lines of a plan, read back the way a shell would."""
    return [shlex.split(line[2:], comments=True) for line in stdout.splitlines() if line.startswith("+ ")]
