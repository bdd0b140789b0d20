"""A stand-in for ``gcloud`` in deploy.sh's tests (run as a script, never imported).

It records every call (one JSON line ``{"argv": [...]}`` in ``$FAKE_GCLOUD_LOG``) and keeps the state of
one project in ``$FAKE_GCLOUD_STATE`` (JSON): describe fails with exit 1 for what does not exist, create
and deploy record the resource, delete removes it, add-/remove-iam-policy-binding record the (role,
member) pair on the resource. It answers only the command forms deploy.sh is meant to use and refuses
anything else (exit 2), so a typo or an unexpected command fails the test instead of passing silently.
``$FAKE_GCLOUD_FAIL`` names a command (e.g. ``pubsub topics create``) that fails with exit 1, to test
error handling.

What differs between projects, as Google behaves:

- ``default_build_account_ready``: whether the project's default build account may build a function.
  Since July 2024 a new project's may not (https://cloud.google.com/functions/docs/securing/build-custom-sa),
  so a deploy without ``--build-service-account`` fails its build there. A named build account must hold
  the roles the page lists (or Cloud Build Service Account) and may write to the ``--docker-repository``.
- ``pubsub_agent_created``: when the Pub/Sub service agent was created. No gcloud command shows it (the
  fake answers none either); the tests read it to decide whether Eventarc can push to start_saga
  (https://cloud.google.com/eventarc/standard/docs/functions/roles-permissions).
- ``buckets``: Cloud Storage buckets by name, in the JSON API's form (what ``gcloud storage buckets
  describe --raw`` prints; https://cloud.google.com/storage/docs/json_api/v1/buckets). Bucket names are
  global, so a bucket may belong to another project (``projectNumber``): describing it fails with 403
  unless its name is in ``readable_buckets``, and a name nobody holds fails with ``gs://NAME not found:
  404.``, the two answers gcloud gives (googlecloudsdk/api_lib/storage/errors.py).
- A deleted custom role stays, marked ``deleted``, and its id cannot be created again
  (https://cloud.google.com/iam/docs/creating-custom-roles); a deleted service account stays in IAM
  policies as ``deleted:serviceAccount:EMAIL?uid=...`` (https://cloud.google.com/iam/docs/service-accounts-delete-undelete).

Runs with ``python -S`` (fast start), so it uses the standard library only, and not even pathlib (its
import alone would cost a tenth of a second per deploy run).
"""

from __future__ import annotations

import json
import os
import sys

# Importing typing costs as much as starting Python; the annotations only matter to mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class GcloudError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positionals and ``--flag=value`` / ``--flag`` (value "") flags; deploy.sh always uses ``=``."""
    positionals: list[str] = []
    flags: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            if name in flags:
                raise GcloudError(f"flag --{name} given twice", 2)
            flags[name] = value
        else:
            positionals.append(arg)
    return positionals, flags


def lookup(resource: Any, path: str) -> Any:
    """A field of a resource as gcloud's projections name it; ``list[].key`` takes ``key`` of each item."""
    parts = path.split(".")
    for index, part in enumerate(parts):
        each = part.endswith("[]")
        name = part[:-2] if each else part
        if not isinstance(resource, dict) or name not in resource:
            return None
        resource = resource[name]
        if each:
            if not isinstance(resource, list):
                return None
            rest = ".".join(parts[index + 1 :])
            return [lookup(item, rest) if rest else item for item in resource]
    return resource


def render_value(resource: dict[str, Any], fmt: str) -> str:
    if not (fmt.startswith("value(") and fmt.endswith(")")):
        raise GcloudError(f"fake gcloud: unsupported --format={fmt}", 2)
    fields = [lookup(resource, key.strip()) for key in fmt[len("value(") : -1].split(",")]
    return "\t".join(render_field(value) for value in fields)


def render_field(value: Any) -> str:
    """As gcloud's ``value()`` prints a field: lists joined with ``;``, nothing for a missing one."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(render_field(item) for item in value)
    return str(value)


def duration(text: str) -> str | None:
    """``0.5s`` → ``0.500s`` as the API prints it; zero durations are omitted (proto3 JSON)."""
    if not text.endswith("s"):
        raise GcloudError(f"a duration must end in 's': {text}")
    seconds = float(text[:-1])
    if seconds == 0:
        return None
    return f"{int(seconds)}s" if seconds.is_integer() else f"{seconds:.3f}s"


def seconds(text: str) -> int:
    """A gcloud duration (``0``, ``30s``, ``2w1d``; see ``gcloud topic datetimes``) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text.isdigit():
        return int(text)
    total, number = 0, ""
    for char in text.lower():
        if char.isdigit():
            number += char
        elif char in units and number:
            total, number = total + int(number) * units[char], ""
        else:
            raise GcloudError(f"INVALID_ARGUMENT: not a duration: {text}", 2)
    if number:
        raise GcloudError(f"INVALID_ARGUMENT: not a duration: {text}", 2)
    return total


def bucket_name(url: str) -> str:
    """The bucket of a ``gs://NAME`` URL (the storage commands take URLs, not names)."""
    if not url.startswith("gs://") or "/" in url[len("gs://") :].rstrip("/"):
        raise GcloudError(f"fake gcloud: expected a bucket URL gs://NAME, got {url}", 2)
    return url[len("gs://") :].rstrip("/")


# Bucket names (https://cloud.google.com/storage/docs/buckets#naming), without dotted names.
def valid_bucket_name(name: str) -> bool:
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_")
    return (
        3 <= len(name) <= 63
        and set(name) <= allowed
        and name[0] not in "-_"
        and name[-1] not in "-_"
        and not name.startswith("goog")
        and "google" not in name
    )


def read(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read()


def run_service_name(function: str) -> str:
    """The Cloud Run service the fake gives a function; deploy.sh reads it (serviceConfig.service)."""
    return function.replace("_", "-").lower()


# The roles that let an account build a function (https://cloud.google.com/functions/docs/securing/build-custom-sa);
# Cloud Build Service Account covers them all.
BUILD_PROJECT_ROLES = ("roles/logging.logWriter", "roles/storage.objectViewer")
BUILD_ROLE_COVERING = "roles/cloudbuild.builds.builder"
BUILD_FAILED = (
    "OperationError: code=3, message=Build failed with status: FAILURE. Could not build the function due"
    " to a missing permission on the build service account. If you didn't revoke that permission"
    " explicitly, this could be caused by a change in the organization policies. Please refer to the"
    " following documentation for more details and resolution:"
    " https://cloud.google.com/functions/docs/troubleshooting#build-service-account"
)


class Fake:
    def __init__(self, state: dict[str, Any], positionals: list[str], flags: dict[str, str]) -> None:
        self.state = state
        self.pos = positionals
        self.flags = flags
        self.out: list[str] = []

    # --- helpers ---------------------------------------------------------------------------------
    def project(self) -> str:
        project = self.flags.get("project")
        if project is None:
            raise GcloudError("fake gcloud: every call must name --project", 2)
        if project != self.state["project_id"]:
            raise GcloudError(f"NOT_FOUND: project {project} (fake knows {self.state['project_id']})")
        return project

    def location(self, flag: str) -> str:
        value = self.flags.get(flag)
        if not value:
            raise GcloudError(f"fake gcloud: --{flag} is required here", 2)
        return value

    def arg(self, index: int) -> str:
        if len(self.pos) <= index:
            raise GcloudError("fake gcloud: missing positional argument", 2)
        return self.pos[index]

    def emit(self, resource: dict[str, Any]) -> None:
        fmt = self.flags.get("format")
        if fmt is None:
            self.out.append(json.dumps(resource))
        else:
            self.out.append(render_value(resource, fmt))

    def require_account(self, email: str) -> None:
        if email not in self.state["service_accounts"]:
            raise GcloudError(f"INVALID_ARGUMENT: service account {email} is unknown to the fake")

    def policy(self, key: str, exists: bool) -> None:
        if not exists:
            raise GcloudError(f"NOT_FOUND: {key}")
        if self.flags.get("flatten") != "bindings[].members" or self.flags.get("format") != (
            "value(bindings.role,bindings.members)"
        ):
            raise GcloudError("fake gcloud: get-iam-policy only with the flatten/format deploy.sh uses", 2)
        for role, member in self.state["iam"].get(key, []):
            self.out.append(f"{role}\t{member}")

    def bind(self, key: str, exists: bool) -> None:
        if not exists:
            raise GcloudError(f"fake gcloud: cannot bind on {key}: it was never created")
        member = self.flags.get("member", "")
        role = self.flags.get("role", "")
        custom = f"projects/{self.state['project_id']}/roles/"
        if not member or not role.startswith(("roles/", custom)):
            raise GcloudError("fake gcloud: --member and --role=roles/... are required", 2)
        if role.startswith(custom):
            found = self.state["roles"].get(role[len(custom) :])
            if found is None or found.get("deleted"):
                raise GcloudError(f"INVALID_ARGUMENT: Role {role} does not exist.")
        if member.startswith("serviceAccount:") and not member.startswith("serviceAccount:service-"):
            self.require_account(member.split(":", 1)[1])
        bindings = self.state["iam"].setdefault(key, [])
        if [role, member] not in bindings:
            bindings.append([role, member])

    def unbind(self, key: str, exists: bool) -> None:
        if not exists:
            raise GcloudError(f"NOT_FOUND: {key}")
        pair = [self.flags.get("role", ""), self.flags.get("member", "")]
        bindings = self.state["iam"].get(key, [])
        if pair not in bindings:
            raise GcloudError(
                f"INVALID_ARGUMENT: Policy binding with the specified principal, role {pair[0]} not found!"
            )
        bindings.remove(pair)

    def has_role(self, key: str, role: str, member: str) -> bool:
        return [role, member] in self.state["iam"].get(key, [])

    # --- commands --------------------------------------------------------------------------------
    def dispatch(self) -> None:
        pos = self.pos
        group = tuple(pos[:3])
        if pos[:1] == ["projects"]:
            self.projects(self.arg(1))
        elif pos[:1] == ["services"]:
            self.services(self.arg(1))
        elif group[:2] == ("iam", "service-accounts"):
            self.service_accounts(self.arg(2))
        elif group[:2] == ("iam", "roles"):
            self.custom_roles(self.arg(2))
        elif group[:2] == ("artifacts", "repositories"):
            self.repositories(self.arg(2))
        elif group[:2] == ("pubsub", "topics"):
            self.topics(self.arg(2))
        elif group[:2] == ("tasks", "queues"):
            self.queues(self.arg(2))
        elif group[:2] == ("secrets", "versions"):
            self.secret_versions(self.arg(2))
        elif pos[:1] == ["secrets"]:
            self.secrets(self.arg(1))
        elif pos[:1] == ["functions"]:
            self.functions(self.arg(1))
        elif group[:2] == ("run", "services"):
            self.run_services(self.arg(2))
        elif pos[:1] == ["workflows"]:
            self.workflows(self.arg(1))
        elif group[:2] == ("scheduler", "jobs"):
            self.scheduler_jobs(self.arg(2))
        elif group[:2] == ("storage", "buckets"):
            self.buckets(self.arg(2))
        else:
            raise GcloudError(f"fake gcloud: unsupported command: {' '.join(pos)}", 2)

    def projects(self, verb: str) -> None:
        project = self.arg(2)
        if project != self.state["project_id"]:
            raise GcloudError(f"NOT_FOUND: project {project}")
        if verb == "describe":
            self.emit({"projectId": project, "projectNumber": self.state["project_number"]})
        elif verb == "get-iam-policy":
            self.policy(f"project/{project}", True)
        elif verb in ("add-iam-policy-binding", "remove-iam-policy-binding"):
            if self.flags.get("condition") != "None":
                raise GcloudError("fake gcloud: project bindings must say --condition=None", 2)
            if verb.startswith("add"):
                self.bind(f"project/{project}", True)
            else:
                self.unbind(f"project/{project}", True)
        else:
            raise GcloudError(f"fake gcloud: unsupported: projects {verb}", 2)

    def services(self, verb: str) -> None:
        self.project()
        enabled: list[str] = self.state["services"]
        if verb == "list" and "enabled" in self.flags:
            for name in enabled:
                self.emit({"config": {"name": name}})
        elif verb == "enable":
            for name in self.pos[2:]:
                if not name.endswith(".googleapis.com"):
                    raise GcloudError(f"INVALID_ARGUMENT: not a service: {name}")
                if name not in enabled:
                    enabled.append(name)
        else:
            raise GcloudError(f"fake gcloud: unsupported: services {verb}", 2)

    def service_accounts(self, verb: str) -> None:
        project = self.project()
        accounts: dict[str, Any] = self.state["service_accounts"]
        if verb == "describe":
            email = self.arg(3)
            if email not in accounts:
                raise GcloudError(f"NOT_FOUND: service account {email}")
            self.emit(accounts[email])
        elif verb == "create":
            email = f"{self.arg(3)}@{project}.iam.gserviceaccount.com"
            if email in accounts:
                raise GcloudError(f"ALREADY_EXISTS: {email}")
            accounts[email] = {"email": email, "displayName": self.flags.get("display-name", "")}
            if self.flags.get("description"):
                accounts[email]["description"] = self.flags["description"]
        elif verb == "delete":
            email = self.arg(3)
            if email not in accounts:
                raise GcloudError(f"NOT_FOUND: service account {email}")
            del accounts[email]
            self.state["iam"].pop(f"sa/{email}", None)
            for pairs in self.state["iam"].values():
                for pair in pairs:
                    if pair[1] == f"serviceAccount:{email}":
                        pair[1] = f"deleted:serviceAccount:{email}?uid=1234567890"
        elif verb == "get-iam-policy":
            self.policy(f"sa/{self.arg(3)}", self.arg(3) in accounts)
        elif verb == "add-iam-policy-binding":
            self.bind(f"sa/{self.arg(3)}", self.arg(3) in accounts)
        else:
            raise GcloudError(f"fake gcloud: unsupported: iam service-accounts {verb}", 2)

    def topics(self, verb: str) -> None:
        project = self.project()
        topics: dict[str, Any] = self.state["topics"]
        name = self.arg(3)
        if verb == "describe":
            if name not in topics:
                raise GcloudError(f"NOT_FOUND: topic {name}")
            self.emit(topics[name])
        elif verb == "create":
            if name in topics:
                raise GcloudError(f"ALREADY_EXISTS: topic {name}")
            topics[name] = {"name": f"projects/{project}/topics/{name}"}
            labels = dict(
                pair.split("=", 1) for pair in filter(None, self.flags.get("labels", "").split(","))
            )
            if labels:
                topics[name]["labels"] = labels
        elif verb == "delete":
            if name not in topics:
                raise GcloudError(f"NOT_FOUND: topic {name}")
            del topics[name]
            self.state["iam"].pop(f"topic/{name}", None)
        elif verb == "get-iam-policy":
            self.policy(f"topic/{name}", name in topics)
        elif verb == "add-iam-policy-binding":
            self.bind(f"topic/{name}", name in topics)
        else:
            raise GcloudError(f"fake gcloud: unsupported: pubsub topics {verb}", 2)

    def queues(self, verb: str) -> None:
        self.project()
        key = f"{self.location('location')}/{self.arg(3)}"
        queues: dict[str, Any] = self.state["queues"]
        if verb == "describe":
            if key not in queues:
                raise GcloudError(f"NOT_FOUND: queue {key}")
            self.emit(queues[key])
        elif verb in ("create", "update"):
            if verb == "create" and key in queues:
                raise GcloudError(f"ALREADY_EXISTS: queue {key}")
            if verb == "update" and key not in queues:
                raise GcloudError(f"NOT_FOUND: queue {key}")
            queue = queues.setdefault(key, {"retryConfig": {}, "rateLimits": {}})
            self.apply_queue_flags(queue)
        elif verb == "delete":
            if key not in queues:
                raise GcloudError(f"NOT_FOUND: queue {key}")
            del queues[key]
            self.state["iam"].pop(f"queue/{key}", None)
        elif verb == "get-iam-policy":
            self.policy(f"queue/{key}", key in queues)
        elif verb == "add-iam-policy-binding":
            self.bind(f"queue/{key}", key in queues)
        else:
            raise GcloudError(f"fake gcloud: unsupported: tasks queues {verb}", 2)

    def apply_queue_flags(self, queue: dict[str, Any]) -> None:
        retry, rates = queue["retryConfig"], queue["rateLimits"]
        known = {"project", "location"}
        for flag, target, field, convert in (
            ("max-attempts", retry, "maxAttempts", int),
            ("min-backoff", retry, "minBackoff", duration),
            ("max-backoff", retry, "maxBackoff", duration),
            ("max-doublings", retry, "maxDoublings", lambda v: int(v) or None),
            ("max-retry-duration", retry, "maxRetryDuration", duration),
            ("max-dispatches-per-second", rates, "maxDispatchesPerSecond", float),
            ("max-concurrent-dispatches", rates, "maxConcurrentDispatches", int),
        ):
            known.add(flag)
            if flag in self.flags:
                value = convert(self.flags[flag])
                if value is None:
                    target.pop(field, None)
                else:
                    target[field] = value
        unknown = set(self.flags) - known
        if unknown:
            raise GcloudError(f"fake gcloud: unexpected queue flags {sorted(unknown)}", 2)

    def secrets(self, verb: str) -> None:
        self.project()
        secrets: dict[str, Any] = self.state["secrets"]
        name = self.arg(2)
        if verb == "describe":
            if name not in secrets:
                raise GcloudError(f"NOT_FOUND: secret {name}")
            self.emit({"name": f"projects/{self.state['project_number']}/secrets/{name}"})
        elif verb == "create":
            if name in secrets:
                raise GcloudError(f"ALREADY_EXISTS: secret {name}")
            if self.flags.get("replication-policy") != "automatic":
                raise GcloudError("fake gcloud: expected --replication-policy=automatic", 2)
            if "data-file" in self.flags:
                raise GcloudError("fake gcloud: deploy.sh must never write a secret value", 2)
            secrets[name] = {"replication": "automatic", "versions": []}
        elif verb == "get-iam-policy":
            self.policy(f"secret/{name}", name in secrets)
        elif verb == "add-iam-policy-binding":
            self.bind(f"secret/{name}", name in secrets)
        elif verb == "remove-iam-policy-binding":
            self.unbind(f"secret/{name}", name in secrets)
        else:
            raise GcloudError(f"fake gcloud: unsupported: secrets {verb}", 2)

    def secret_versions(self, verb: str) -> None:
        self.project()
        name = self.arg(3)
        secret = self.state["secrets"].get(name)
        if verb != "list":
            raise GcloudError(f"fake gcloud: unsupported: secrets versions {verb}", 2)
        if secret is None:
            raise GcloudError(f"NOT_FOUND: secret {name}")
        for version in secret["versions"][:1]:
            self.emit({"name": version["name"]})

    def functions(self, verb: str) -> None:
        self.project()
        region = self.location("region")
        name = self.arg(2)
        key = f"{region}/{name}"
        functions: dict[str, Any] = self.state["functions"]
        if verb == "describe":
            if key not in functions:
                raise GcloudError(f"NOT_FOUND: function {key}")
            self.emit(functions[key])
        elif verb == "deploy":
            functions[key] = self.deployed_function(name, region, functions.get(key))
        elif verb == "add-invoker-policy-binding":
            if key not in functions:
                raise GcloudError(f"NOT_FOUND: function {key}")
            if set(self.flags) != {"region", "project", "member"}:
                raise GcloudError("fake gcloud: add-invoker-policy-binding takes --region and --member", 2)
            service = functions[key]["serviceConfig"]["service"].rsplit("/", 1)[1]
            self.flags["role"] = "roles/run.invoker"
            self.bind(f"run/{region}/{service}", True)
        elif verb == "delete":
            if key not in functions:
                raise GcloudError(f"NOT_FOUND: function {key}")
            service = functions.pop(key)["serviceConfig"]["service"].rsplit("/", 1)[1]
            self.state["run_services"].pop(f"{region}/{service}", None)
            self.state["iam"].pop(f"run/{region}/{service}", None)
        else:
            raise GcloudError(f"fake gcloud: unsupported: functions {verb}", 2)

    def check_build(self) -> None:
        """Fails like Google's build does when the build account may not build a function."""
        flags = self.flags
        account = flags.get("build-service-account")
        if account is None:
            if not self.state["default_build_account_ready"]:
                raise GcloudError(BUILD_FAILED)
            return
        prefix = f"projects/{self.state['project_id']}/serviceAccounts/"
        if not account.startswith(prefix):
            raise GcloudError(
                "INVALID_ARGUMENT: --build-service-account must be projects/P/serviceAccounts/EMAIL"
            )
        email = account[len(prefix) :]
        if email not in self.state["service_accounts"]:
            raise GcloudError(f"INVALID_ARGUMENT: service account {email} does not exist")
        member = f"serviceAccount:{email}"
        project = f"project/{self.state['project_id']}"
        if not self.has_role(project, BUILD_ROLE_COVERING, member) and not all(
            self.has_role(project, role, member) for role in BUILD_PROJECT_ROLES
        ):
            raise GcloudError(BUILD_FAILED)
        repository = flags.get("docker-repository")
        if repository is not None:
            parts = repository.split("/")
            if len(parts) != 6 or parts[4] != "repositories":
                raise GcloudError(
                    "INVALID_ARGUMENT: --docker-repository must be projects/P/locations/L/repositories/R"
                )
            key = f"{parts[3]}/{parts[5]}"
            if key not in self.state["repositories"]:
                raise GcloudError(f"NOT_FOUND: repository {repository}")
            if not self.has_role(project, BUILD_ROLE_COVERING, member) and not self.has_role(
                f"repository/{key}", "roles/artifactregistry.writer", member
            ):
                raise GcloudError(BUILD_FAILED)

    def deployed_function(self, name: str, region: str, previous: dict[str, Any] | None) -> dict[str, Any]:
        flags = self.flags
        for required in ("gen2", "runtime", "source", "entry-point", "service-account", "env-vars-file"):
            if required not in flags:
                raise GcloudError(f"fake gcloud: deploy without --{required}", 2)
        source = flags["source"]
        files = sorted(
            os.path.relpath(os.path.join(folder, file), source)
            for folder, _, names in os.walk(source)
            for file in names
        )
        for needed in ("main.py", "requirements.txt", "saga_orchestrator/__init__.py"):
            if needed not in files:
                raise GcloudError(f"INVALID_ARGUMENT: build dir lacks {needed}")
        self.require_account(flags["service-account"])
        self.check_build()
        concurrency = int(flags.get("concurrency", "1"))
        cpu = float(flags.get("cpu", "0.333"))
        if concurrency > 1 and cpu < 1:
            raise GcloudError(
                "INVALID_ARGUMENT: spec.template.spec.containers[0].resources.limits.cpu: Invalid value"
                " specified for cpu. Total cpu < 1 is not supported with concurrency > 1."
            )
        trigger: dict[str, Any]
        if "trigger-http" in flags:
            trigger = {"http": True}
        elif "trigger-topic" in flags:
            if flags["trigger-topic"] not in self.state["topics"]:
                raise GcloudError(f"NOT_FOUND: topic {flags['trigger-topic']}")
            trigger = {
                "topic": flags["trigger-topic"],
                "retry": "retry" in flags,
                "serviceAccount": flags.get("trigger-service-account"),
            }
            if trigger["serviceAccount"]:
                self.require_account(trigger["serviceAccount"])
        else:
            raise GcloudError("fake gcloud: a function needs a trigger", 2)
        labels = dict(previous["labels"]) if previous else {}
        for pair in filter(None, flags.get("update-labels", "").split(",")):
            label, _, value = pair.partition("=")
            labels[label] = value
        service = run_service_name(name)
        self.state["run_services"][f"{region}/{service}"] = {"name": service}
        return {
            "name": f"projects/{self.state['project_id']}/locations/{region}/functions/{name}",
            "runtime": flags["runtime"],
            "entryPoint": flags["entry-point"],
            "memory": flags.get("memory"),
            "timeout": flags.get("timeout"),
            "concurrency": concurrency,
            "maxInstances": int(flags["max-instances"]) if "max-instances" in flags else None,
            "cpu": flags.get("cpu"),
            "buildServiceAccount": flags.get("build-service-account"),
            "dockerRepository": flags.get("docker-repository"),
            "serviceAccount": flags["service-account"],
            "allowUnauthenticated": "allow-unauthenticated" in flags,
            "noAllowUnauthenticated": "no-allow-unauthenticated" in flags,
            "envVarsFile": read(flags["env-vars-file"]),
            "sourceFiles": files,
            "trigger": trigger,
            "labels": labels,
            "revision": (previous["revision"] + 1) if previous else 1,
            "state": "ACTIVE",
            "serviceConfig": {
                "uri": f"https://{service}-fake-uc.a.run.app",
                "service": f"projects/{self.state['project_id']}/locations/{region}/services/{service}",
            },
        }

    def run_services(self, verb: str) -> None:
        self.project()
        key = f"{self.location('region')}/{self.arg(3)}"
        exists = key in self.state["run_services"]
        if verb == "get-iam-policy":
            self.policy(f"run/{key}", exists)
        elif verb == "add-iam-policy-binding":
            self.bind(f"run/{key}", exists)
        else:
            raise GcloudError(f"fake gcloud: unsupported: run services {verb}", 2)

    def workflows(self, verb: str) -> None:
        self.project()
        key = f"{self.location('location')}/{self.arg(2)}"
        workflows: dict[str, Any] = self.state["workflows"]
        if verb == "describe":
            if key not in workflows:
                raise GcloudError(f"NOT_FOUND: workflow {key}")
            self.emit(workflows[key])
        elif verb == "deploy":
            flags = self.flags
            for required in ("source", "service-account", "set-env-vars"):
                if required not in flags:
                    raise GcloudError(f"fake gcloud: workflows deploy without --{required}", 2)
            self.require_account(flags["service-account"])
            env = dict(pair.split("=", 1) for pair in flags["set-env-vars"].split(","))
            labels = dict(pair.split("=", 1) for pair in filter(None, flags.get("labels", "").split(",")))
            previous = workflows.get(key)
            workflows[key] = {
                "sourceContents": read(flags["source"]),
                "serviceAccount": flags["service-account"],
                "userEnvVars": env,
                "labels": labels,
                "revision": (previous["revision"] + 1) if previous else 1,
            }
        elif verb == "delete":
            if key not in workflows:
                raise GcloudError(f"NOT_FOUND: workflow {key}")
            del workflows[key]
        else:
            raise GcloudError(f"fake gcloud: unsupported: workflows {verb}", 2)

    def custom_roles(self, verb: str) -> None:
        """Project custom roles (https://cloud.google.com/iam/docs/creating-custom-roles)."""
        project = self.project()
        roles: dict[str, Any] = self.state["roles"]
        role_id = self.arg(3)
        role = roles.get(role_id)
        if verb == "describe":
            if role is None:
                raise GcloudError(
                    f"NOT_FOUND: The role named projects/{project}/roles/{role_id} was not found."
                )
            self.emit(role)
        elif verb == "create":
            if role is not None:
                raise GcloudError(
                    f"ALREADY_EXISTS: A role named {role_id} in projects/{project} already exists."
                    + (" It was deleted: undelete it or use another id." if role.get("deleted") else "")
                )
            for required in ("title", "permissions", "stage"):
                if not self.flags.get(required):
                    raise GcloudError(f"fake gcloud: iam roles create without --{required}", 2)
            roles[role_id] = {
                "name": f"projects/{project}/roles/{role_id}",
                "title": self.flags["title"],
                "description": self.flags.get("description", ""),
                "includedPermissions": self.flags["permissions"].split(","),
                "stage": self.flags["stage"],
            }
        elif verb in ("update", "undelete", "delete"):
            if role is None:
                raise GcloudError(
                    f"NOT_FOUND: The role named projects/{project}/roles/{role_id} was not found."
                )
            if verb == "update":
                role["includedPermissions"] = self.flags["permissions"].split(",")
            elif verb == "undelete":
                role.pop("deleted", None)
            else:
                if role.get("deleted"):
                    raise GcloudError(f"FAILED_PRECONDITION: role {role_id} is already deleted")
                role["deleted"] = True
        else:
            raise GcloudError(f"fake gcloud: unsupported: iam roles {verb}", 2)

    def repositories(self, verb: str) -> None:
        project = self.project()
        key = f"{self.location('location')}/{self.arg(3)}"
        repositories: dict[str, Any] = self.state["repositories"]
        if verb == "describe":
            if key not in repositories:
                raise GcloudError(f"NOT_FOUND: repository {key}")
            self.emit(repositories[key])
        elif verb == "create":
            if key in repositories:
                raise GcloudError(f"ALREADY_EXISTS: repository {key}")
            if self.flags.get("repository-format") != "docker":
                raise GcloudError("fake gcloud: expected --repository-format=docker", 2)
            location, name = key.split("/")
            repositories[key] = {
                "name": f"projects/{project}/locations/{location}/repositories/{name}",
                "format": "DOCKER",
            }
        elif verb == "delete":
            if key not in repositories:
                raise GcloudError(f"NOT_FOUND: repository {key}")
            del repositories[key]
            self.state["iam"].pop(f"repository/{key}", None)
        elif verb == "get-iam-policy":
            self.policy(f"repository/{key}", key in repositories)
        elif verb == "add-iam-policy-binding":
            self.bind(f"repository/{key}", key in repositories)
        else:
            raise GcloudError(f"fake gcloud: unsupported: artifacts repositories {verb}", 2)

    def buckets(self, verb: str) -> None:
        """Cloud Storage buckets (https://cloud.google.com/sdk/gcloud/reference/storage/buckets)."""
        self.project()
        name = bucket_name(self.arg(3))
        buckets: dict[str, Any] = self.state.setdefault("buckets", {})
        bucket = buckets.get(name)
        if verb == "create":
            self.create_bucket(name, bucket)
            return
        if bucket is None:
            raise GcloudError(f"gs://{name} not found: 404.")
        if bucket["projectNumber"] != self.state["project_number"] and name not in self.state.get(
            "readable_buckets", []
        ):
            raise GcloudError(
                "HTTPError 403: deployer@example.com does not have storage.buckets.get access to the Google"
                " Cloud Storage bucket. Permission 'storage.buckets.get' denied on resource (or it may not"
                " exist)."
            )
        key = f"bucket/{name}"
        if verb == "describe":
            if "raw" not in self.flags:
                raise GcloudError("fake gcloud: describe a bucket with --raw (the JSON API's field names)", 2)
            self.emit(bucket)
        elif verb == "update":
            self.update_bucket(bucket)
        elif verb == "get-iam-policy":
            self.policy(key, True)
        elif verb == "add-iam-policy-binding":
            self.bind(key, True)
        elif verb == "remove-iam-policy-binding":
            self.unbind(key, True)
        else:
            raise GcloudError(f"fake gcloud: unsupported: storage buckets {verb}", 2)

    def create_bucket(self, name: str, existing: dict[str, Any] | None) -> None:
        flags = self.flags
        unknown = set(flags) - {
            "project",
            "location",
            "uniform-bucket-level-access",
            "public-access-prevention",
            "soft-delete-duration",
        }
        if unknown:
            raise GcloudError(f"fake gcloud: unexpected bucket flags {sorted(unknown)}", 2)
        if not flags.get("location"):
            raise GcloudError("fake gcloud: name the bucket's --location (gcloud would pick US)", 2)
        if not valid_bucket_name(name):
            raise GcloudError(f"HTTPError 400: Invalid bucket name: '{name}'")
        if existing is not None:
            if existing["projectNumber"] == self.state["project_number"]:
                raise GcloudError(
                    "HTTPError 409: Your previous request to create the named bucket succeeded and you"
                    " already own it."
                )
            raise GcloudError(
                "HTTPError 409: The requested bucket name is not available. The bucket namespace is shared"
                " by all users of the system. Please select a different name and try again."
            )
        soft_delete = seconds(flags["soft-delete-duration"]) if "soft-delete-duration" in flags else 604800
        self.state["buckets"][name] = {
            "name": name,
            "projectNumber": self.state["project_number"],
            "location": flags["location"].upper(),
            "locationType": "region",
            "storageClass": "STANDARD",
            "iamConfiguration": {
                "uniformBucketLevelAccess": {"enabled": "uniform-bucket-level-access" in flags},
                "publicAccessPrevention": "enforced" if "public-access-prevention" in flags else "inherited",
            },
            "softDeletePolicy": {"retentionDurationSeconds": soft_delete},
        }

    def update_bucket(self, bucket: dict[str, Any]) -> None:
        """The ``gcloud storage buckets update`` flags that deploy.sh's checks name as fixes."""
        flags = dict(self.flags)
        flags.pop("project")
        if not flags:
            raise GcloudError("fake gcloud: storage buckets update without a change", 2)
        iam = bucket.setdefault("iamConfiguration", {})
        for flag, value in flags.items():
            if flag in ("uniform-bucket-level-access", "no-uniform-bucket-level-access"):
                iam["uniformBucketLevelAccess"] = {"enabled": not flag.startswith("no-")}
            elif flag == "public-access-prevention":
                iam["publicAccessPrevention"] = "enforced"
            elif flag == "clear-retention-period":
                if bucket.get("retentionPolicy", {}).get("isLocked"):
                    raise GcloudError("HTTPError 403: Cannot remove a locked retention policy.")
                bucket.pop("retentionPolicy", None)
            elif flag == "clear-lifecycle":
                bucket.pop("lifecycle", None)
            elif flag in ("versioning", "no-versioning"):
                bucket["versioning"] = {"enabled": flag == "versioning"}
            elif flag == "clear-soft-delete":
                bucket["softDeletePolicy"] = {"retentionDurationSeconds": 0}
            elif flag == "soft-delete-duration":
                bucket["softDeletePolicy"] = {"retentionDurationSeconds": seconds(value)}
            else:
                raise GcloudError(f"fake gcloud: unsupported: storage buckets update --{flag}", 2)

    def scheduler_jobs(self, verb: str) -> None:
        self.project()
        if verb in ("create", "update") and self.arg(3) != "http":
            raise GcloudError("fake gcloud: only HTTP scheduler jobs", 2)
        name = self.arg(4) if verb in ("create", "update") else self.arg(3)
        key = f"{self.location('location')}/{name}"
        jobs: dict[str, Any] = self.state.setdefault("scheduler_jobs", {})
        if verb == "describe":
            if key not in jobs:
                raise GcloudError(f"NOT_FOUND: job {key}")
            self.emit(
                {
                    "name": f"projects/{self.state['project_id']}/locations/{key.replace('/', '/jobs/')}",
                    **jobs[key],
                }
            )
        elif verb in ("create", "update"):
            if verb == "create" and key in jobs:
                raise GcloudError(f"ALREADY_EXISTS: job {key}")
            if verb == "update" and key not in jobs:
                raise GcloudError(f"NOT_FOUND: job {key}")
            jobs[key] = self.scheduler_job()
        elif verb == "delete":
            if key not in jobs:
                raise GcloudError(f"NOT_FOUND: job {key}")
            del jobs[key]
        else:
            raise GcloudError(f"fake gcloud: unsupported: scheduler jobs {verb}", 2)

    def scheduler_job(self) -> dict[str, Any]:
        flags = self.flags
        for required in ("schedule", "uri", "oidc-service-account-email"):
            if not flags.get(required):
                raise GcloudError(f"fake gcloud: scheduler job without --{required}", 2)
        self.require_account(flags["oidc-service-account-email"])
        return {
            "schedule": flags["schedule"],
            "timeZone": flags.get("time-zone", "Etc/UTC"),
            "httpTarget": {
                "uri": flags["uri"],
                "httpMethod": flags.get("http-method", "post").upper(),
                "oidcToken": {
                    "serviceAccountEmail": flags["oidc-service-account-email"],
                    # The job's URI when no audience is given (OidcToken.audience).
                    "audience": flags.get("oidc-token-audience") or flags["uri"],
                },
            },
        }


def main(argv: list[str]) -> int:
    state_path = os.environ["FAKE_GCLOUD_STATE"]
    with open(os.environ["FAKE_GCLOUD_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"argv": argv}) + "\n")
    try:
        positionals, flags = parse(argv)
        if os.environ.get("FAKE_GCLOUD_FAIL") and " ".join(positionals).startswith(
            os.environ["FAKE_GCLOUD_FAIL"]
        ):
            raise GcloudError("PERMISSION_DENIED: the test made this command fail")
        state = json.loads(read(state_path))
        fake = Fake(state, positionals, flags)
        fake.dispatch()
    except GcloudError as error:
        print(f"ERROR: (gcloud) {error}", file=sys.stderr)
        return error.code
    with open(state_path, "w", encoding="utf-8") as out:
        out.write(json.dumps(state, indent=1, sort_keys=True))
    if fake.out:
        print("\n".join(fake.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
