"""The whole saga stack on one machine: emulators, provisioning, the four functions and the demo
participants, each in its own process, as a user runs them; a timer calls saga_sweeper every
``SAGA_SWEEP_SECONDS`` (``devstack.sweep``), as Cloud Scheduler does on Google Cloud.

    with LocalStack.start() as stack:                 # free ports everywhere
        stack.publish_request(stack.example_request("trip-succeeds", saga_id="t-1"))
        result = stack.wait_for_result("t-1")

Order: ``python -m localcloud serve`` (ready when it prints ``localcloud ready``), provisioning through
the client libraries (``provision.py``), then the functions under ``functions-framework`` and the
participants, all polled until they answer. ``stop()`` (or leaving the ``with``) stops every process,
leaving none behind, also when starting failed half-way.

Ports: ``StackPorts()`` (all 0) picks free ports, so tests can run beside a user's ``make up``, which uses
``StackPorts.well_known()`` (the emulators' documented defaults, functions 8081-8083, participants
9001-9003, the origins the sample requests name).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import secrets
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import IO, Any

from saga_orchestrator.clients import ClientFactory
from saga_orchestrator.settings import DEFAULTS as SAGA_DEFAULTS

from devstack.processes import (
    DEFAULT_PARTICIPANT_FRAMEWORK,
    FUNCTION_SIGNATURES,
    PARTICIPANT_FRAMEWORKS,
    LineSink,
    ManagedProcess,
    ProcessError,
    emulators_spec,
    free_ports,
    function_spec,
    parse_ready_line,
    participant_spec,
    port_is_free,
    start_all,
)
from devstack.provision import (
    FunctionUrls,
    Provisioned,
    generate_secret_values,
    internal_url_prefixes,
    provision,
)
from devstack.settings import REPO_ROOT, DeploymentSettings
from devstack.sweep import DEFAULT_PERIOD_SECONDS, SweepTimer
from localcloud.config import DEFAULTS as EMULATOR_DEFAULTS
from localcloud.config import LocalCloudConfig
from localcloud.logging.agent import CloudRunRevision, LogAgent, MetadataAccessTokens

EXAMPLES_DIR = REPO_ROOT / "examples" / "requests"
PARTICIPANTS = ("flight", "hotel", "payment")
PAYMENT_SECRET = "payment-api-key"

_EMULATOR_VARS = {
    "pubsub": "PUBSUB_EMULATOR_HOST",
    "tasks": "CLOUD_TASKS_EMULATOR_HOST",
    "secretmanager": "SECRET_MANAGER_EMULATOR_HOST",
    "workflows": "WORKFLOWS_EMULATOR_HOST",
    "workflows_http": "WORKFLOWS_HTTP_HOST",
    "metadata": "GCE_METADATA_HOST",
    "storage": "STORAGE_EMULATOR_HOST",
    "logging": "LOGGING_EMULATOR_HOST",
}


EMULATOR_SERVICES = ("metadata", "secretmanager", "storage", "pubsub", "tasks", "workflows", "logging")


def missing_components(root: Path = REPO_ROOT) -> list[str]:
    """What the stack needs that this checkout or installation lacks (emulators, Eventarc triggers,
    functions)."""
    modules = [f"localcloud.{service}.server" for service in EMULATOR_SERVICES if service != "workflows"]
    modules += ["localcloud.workflows.service.server", "localcloud.eventarc.triggers"]
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    needed = [f"functions/{name}/main.py" for name in FUNCTION_SIGNATURES]
    return missing + [path for path in needed if not (root / path).exists()]


def _default_port(var: str) -> int:
    return int(EMULATOR_DEFAULTS[var].rpartition(":")[2])


@dataclass(frozen=True)
class StackPorts:
    """One port per listener; 0 = a free port chosen at start."""

    pubsub: int = 0
    tasks: int = 0
    secretmanager: int = 0
    workflows: int = 0
    workflows_http: int = 0
    metadata: int = 0
    storage: int = 0
    logging: int = 0
    start_saga: int = 0
    step_executor: int = 0
    saga_completion: int = 0
    saga_sweeper: int = 0
    flight: int = 0
    hotel: int = 0
    payment: int = 0

    @classmethod
    def well_known(cls) -> StackPorts:
        """The fixed ports of ``make up``: emulator defaults, functions 8081-8084, participants 9001-9003."""
        return cls(
            **{name: _default_port(var) for name, var in _EMULATOR_VARS.items()},
            start_saga=8081,
            step_executor=8082,
            saga_completion=8083,
            saga_sweeper=8084,
            flight=9001,
            hotel=9002,
            payment=9003,
        )

    def resolved(self) -> StackPorts:
        """Every 0 replaced by a distinct free port."""
        names = [f.name for f in fields(self) if getattr(self, f.name) == 0]
        chosen = free_ports(len(names))
        return replace(self, **dict(zip(names, chosen, strict=True)))

    def companion_ports(self) -> dict[str, int]:
        """The fixed ports the emulators take beside these (``localcloud.config``): BigQuery beside
        Pub/Sub, Resource Manager beside Secret Manager, and each gRPC emulator's REST surface; a port 0
        (a free one, chosen at start) has no fixed companions."""
        config = LocalCloudConfig.from_env(
            {var: f"127.0.0.1:{getattr(self, name)}" for name, var in _EMULATOR_VARS.items()}
        )
        addresses = {"bigquery": config.bigquery, "resourcemanager": config.resourcemanager}
        for service in ("pubsub", "tasks", "secretmanager", "resourcemanager"):
            addresses[f"{service}_rest"] = config.rest_address(service)
        ports = {name: int(address.rpartition(":")[2] or 0) for name, address in addresses.items()}
        return {name: port for name, port in ports.items() if port}

    def busy(self) -> list[str]:
        """``name=port`` of every fixed port that something else already holds, the emulators'
        companions included."""
        fixed = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}
        return [
            f"{name}={port}"
            for name, port in {**fixed, **self.companion_ports()}.items()
            if not port_is_free(port)
        ]


@dataclass(frozen=True)
class ResultEvent:
    """One saga result as received on the result topic: a binary-mode CloudEvent."""

    id: str
    type: str
    subject: str
    attributes: Mapping[str, str]
    data: Any


class LocalStack:
    """A running stack. Build it with ``LocalStack.start(...)`` (context manager) or ``launch(...)``."""

    def __init__(
        self,
        *,
        settings: DeploymentSettings,
        ports: StackPorts,
        log_dir: Path,
        echo: IO[str] | None,
        quotas: str = "",
    ) -> None:
        self.settings = settings
        self.ports = ports
        self.log_dir = log_dir
        self._echo = echo
        host = "127.0.0.1"
        self.config = LocalCloudConfig.from_env(
            {
                **{var: f"{host}:{getattr(ports, name)}" for name, var in _EMULATOR_VARS.items()},
                "LOCALCLOUD_PROJECT": settings.project_id,
                "LOCALCLOUD_LOCATION": settings.location,
                "LOCALCLOUD_QUOTAS": quotas,
            }
        )
        self.function_urls = FunctionUrls(
            start_saga=f"http://{host}:{ports.start_saga}",
            step_executor=f"http://{host}:{ports.step_executor}",
            saga_completion=f"http://{host}:{ports.saga_completion}",
            saga_sweeper=f"http://{host}:{ports.saga_sweeper}",
        )
        self.participant_urls = {name: f"http://{host}:{getattr(ports, name)}" for name in PARTICIPANTS}
        # The web layer each participant runs on (``launch(participant_frameworks=...)``).
        self.participant_frameworks = dict.fromkeys(PARTICIPANTS, DEFAULT_PARTICIPANT_FRAMEWORK)
        self.emulator_addresses: dict[str, str] = {}
        self.provisioned: Provisioned | None = None
        self.processes: list[ManagedProcess] = []
        self._factory: ClientFactory | None = None
        self._results: list[ResultEvent] = []
        self._deliveries: list[ResultEvent] = []
        self._secret_values: dict[str, str] = {}
        self.sweep_timer: SweepTimer | None = None
        # Forwards the functions' output to the Cloud Logging emulator, as Cloud Run does.
        self.log_agent: LogAgent | None = None
        self._stopped = False

    # --- lifecycle ------------------------------------------------------------------------------------

    @classmethod
    def launch(
        cls,
        ports: StackPorts | None = None,
        *,
        settings: DeploymentSettings | None = None,
        env_file: str | Path | None = None,
        participants: bool = True,
        log_dir: str | Path | None = None,
        echo: IO[str] | None = None,
        ready_timeout: float = 60.0,
        participant_hang_seconds: float | None = None,
        participant_frameworks: Mapping[str, str] | None = None,
        participant_state_dir: str | Path | None = None,
        quotas: str = "",
    ) -> LocalStack:
        """Start everything and return the running stack; the caller must ``stop()`` it.
        ``participant_frameworks``: by service, the web layer its participant runs on (one of
        ``PARTICIPANT_FRAMEWORKS``; a service not named runs on aiohttp). ``participant_state_dir``: the
        participants keep their state there (one SQLite file each), so a restarted participant
        (``process(name).restart()``) remembers what it did; by default they keep it in memory. ``quotas``:
        the emulators' ``LOCALCLOUD_QUOTAS`` (``localcloud.quotas``: "" none, ``google`` Google's defaults)."""
        settings = settings if settings is not None else DeploymentSettings.load(env_file)
        wanted = ports if ports is not None else StackPorts()
        busy = wanted.busy()
        if busy:
            raise ProcessError("localstack", "ports already in use: " + ", ".join(busy))
        missing = missing_components()
        if missing:
            raise ProcessError("localstack", "this checkout lacks " + ", ".join(missing))
        directory = (
            Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="localcloud-logs-"))
        )
        frameworks = dict(participant_frameworks or {})
        unknown = sorted(set(frameworks) - set(PARTICIPANTS)) + sorted(
            set(frameworks.values()) - set(PARTICIPANT_FRAMEWORKS)
        )
        if unknown:
            raise ValueError(f"participant_frameworks: no participant or framework {', '.join(unknown)}")
        stack = cls(settings=settings, ports=wanted.resolved(), log_dir=directory, echo=echo, quotas=quotas)
        stack.participant_frameworks.update(frameworks)
        try:
            stack._start_emulators(ready_timeout)
            stack._provision()
            stack._start_services(
                participants,
                participant_hang_seconds,
                None if participant_state_dir is None else str(participant_state_dir),
            )
        except BaseException:
            stack.stop()
            raise
        return stack

    @classmethod
    @contextlib.contextmanager
    def start(cls, ports: StackPorts | None = None, **options: Any) -> Iterator[LocalStack]:
        """``with LocalStack.start() as stack: ...``; options as for ``launch``."""
        stack = cls.launch(ports, **options)
        try:
            yield stack
        finally:
            stack.stop()

    def stop(self) -> None:
        """Stop every process (services first, emulators last). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.sweep_timer is not None:
            self.sweep_timer.stop()
        if self._factory is not None:
            with contextlib.suppress(Exception):
                self._factory.close()
        if self.log_agent is not None:
            self.log_agent.close()
        for process in reversed(self.processes):
            process.stop()

    def _start_emulators(self, ready_timeout: float) -> None:
        env = {
            **self.config.client_environment(),
            "LOCALCLOUD_PROJECT": self.settings.project_id,
            "LOCALCLOUD_LOCATION": self.settings.location,
            "LOCALCLOUD_INTERNAL_URL_PREFIXES": self.internal_url_prefixes(),
            "LOCALCLOUD_QUOTAS": self.config.quotas,
        }
        (emulators,) = start_all(
            [emulators_spec(env, ready_timeout=ready_timeout)], log_dir=self.log_dir, echo=self._echo
        )
        self.processes.append(emulators)
        self.emulator_addresses = parse_ready_line(emulators.ready_line or "")

    def quota_report(self) -> dict[str, Any]:
        """The emulators' ``/admin/quotas``: ``{"limits": {...}, "usage": {quota: {key: {"calls", "units",
        "refused", ...}}}}`` (``localcloud.quotas``; usage is counted with quotas off too)."""
        url = f"http://{self.config.workflows_http}/admin/quotas"
        with urllib.request.urlopen(url, timeout=10) as answer:
            report: dict[str, Any] = json.loads(answer.read())
        return report

    def _provision(self) -> None:
        self._secret_values = generate_secret_values(self.settings)
        self.provisioned = provision(
            self.factory,
            self.settings,
            function_urls=self.function_urls,
            secret_values=self._secret_values,
            results_subscription="saga-results-localstack-" + secrets.token_hex(4),
        )

    def _start_services(self, participants: bool, hang_seconds: float | None, state_dir: str | None) -> None:
        env = self.function_environment()
        specs = [function_spec(name, getattr(self.ports, name), env) for name in FUNCTION_SIGNATURES]
        if participants:
            certs_url = f"http://{self.config.metadata}/oauth2/v1/certs"
            for name in PARTICIPANTS:
                api_key = self._secret_values.get(PAYMENT_SECRET) if name == "payment" else None
                specs.append(
                    participant_spec(
                        name,
                        getattr(self.ports, name),
                        certs_url=certs_url,
                        api_key=api_key,
                        hang_seconds=hang_seconds,
                        framework=self.participant_frameworks[name],
                        state_dir=state_dir,
                    )
                )
        self.processes.extend(
            start_all(specs, log_dir=self.log_dir, echo=self._echo, sinks=self._function_log_sinks())
        )
        self.sweep_timer = SweepTimer(
            self.function_urls.saga_sweeper, self.sweep_period(), self.log_dir / "sweep-timer.log"
        ).start()

    def _function_log_sinks(self) -> dict[str, LineSink]:
        """Each function's output lines go to Cloud Logging as its Cloud Run revision's (the names
        ``function_spec`` gives it in ``K_SERVICE`` and ``K_REVISION``)."""
        self.log_agent = LogAgent(self.config.logging, MetadataAccessTokens(self.config.metadata))
        sinks = {}
        for name in FUNCTION_SIGNATURES:
            service = name.replace("_", "-")
            revision = CloudRunRevision(
                self.settings.project_id, service, f"{service}-00001-local", self.settings.location
            )
            sinks[name] = self.log_agent.sink(revision)
        return sinks

    def process(self, name: str) -> ManagedProcess:
        """The child process called ``name``: ``localcloud``, a function's name (``step_executor``) or
        ``participant-<service>``."""
        for process in self.processes:
            if process.name == name:
                return process
        raise KeyError(f"no process {name!r}; there are {', '.join(p.name for p in self.processes)}")

    def sweep_period(self) -> float:
        """``SAGA_SWEEP_SECONDS`` of the settings: how often the local timer calls saga_sweeper."""
        raw = self.settings.data.get("SAGA_SWEEP_SECONDS", "")
        return float(raw) if raw else DEFAULT_PERIOD_SECONDS

    # --- what the processes see ----------------------------------------------------------------------

    def internal_url_prefixes(self) -> str:
        return internal_url_prefixes(self.function_urls)

    def function_environment(self) -> dict[str, str]:
        """The environment of each function: the emulator variables, every SAGA_* of the settings and
        ``LOCALCLOUD_INTERNAL_URL_PREFIXES``; ``SAGA_SWEEP_WINDOW_SECONDS`` is two local sweep periods
        plus 2 s; ``SAGA_ALLOWED_HOSTS`` also lists the local Workflows
        engine's HTTP address (``WORKFLOWS_HTTP_HOST``), where step_executor reports each step's outcome
        (on Google Cloud that host is ``workflowexecutions.googleapis.com``, which the executor allows
        itself)."""
        saga = self.settings.saga_env()
        saga["SAGA_ALLOWED_HOSTS"] = with_callback_host(
            saga.get("SAGA_ALLOWED_HOSTS", ""), self.config.workflows_http
        )
        # The local timer sweeps every few seconds: a look-back of two periods (plus slack) lets every
        # ended execution be seen by a second sweep if the first missed it, without publishing the same
        # swept result a hundred times. SAGA_SWEEP_WINDOW_SECONDS of deployment.env is Google Cloud's.
        saga["SAGA_SWEEP_WINDOW_SECONDS"] = f"{2 * self.sweep_period() + 2:g}"
        return {
            **self.config.client_environment(),
            **saga,
            "LOCALCLOUD_INTERNAL_URL_PREFIXES": self.internal_url_prefixes(),
        }

    @property
    def factory(self) -> ClientFactory:
        """Clients bound to this stack's emulators (the same factory the functions use)."""
        if self._factory is None:
            self._factory = ClientFactory(self.config.client_environment())
        return self._factory

    # --- using it --------------------------------------------------------------------------------------

    def publish_request(
        self, request: Mapping[str, Any] | str | bytes, attributes: Mapping[str, str] | None = None
    ) -> str:
        """Publish a saga request on the request topic; returns the message id."""
        if isinstance(request, Mapping):
            data = json.dumps(request).encode("utf-8")
        elif isinstance(request, str):
            data = request.encode("utf-8")
        else:
            data = request
        topic = f"projects/{self.settings.project_id}/topics/{self.settings.require('SAGA_REQUEST_TOPIC')}"
        future = self.factory.publisher().publish(topic, data, **dict(attributes or {}))
        return str(future.result(timeout=30))

    def pull_results(self, timeout: float = 2.0) -> list[ResultEvent]:
        """Pull what has arrived on the result topic since the last pull (acknowledged), and keep it."""
        from google.api_core import exceptions as gexc

        assert self.provisioned is not None and self.provisioned.results_subscription is not None
        subscriber = self.factory.subscriber()
        try:
            # The emulator answers an empty pull within a second; a client deadline shorter than that
            # could abandon a pull whose messages were already handed out (leased until the ack
            # deadline), so the RPC deadline never goes below 10 s.
            response = subscriber.pull(
                request={"subscription": self.provisioned.results_subscription, "max_messages": 100},
                timeout=max(timeout, 10.0),
            )
        except (gexc.DeadlineExceeded, gexc.RetryError):
            return []
        received = list(response.received_messages)
        if received:
            subscriber.acknowledge(
                request={
                    "subscription": self.provisioned.results_subscription,
                    "ack_ids": [m.ack_id for m in received],
                }
            )
        events = [_to_event(m.message) for m in received]
        self._deliveries.extend(events)
        known = {e.id for e in self._results}
        for event in events:
            if event.id not in known:
                known.add(event.id)
                self._results.append(event)
        return events

    def result_events(self, *, distinct: bool = True) -> list[ResultEvent]:
        """Every result event received so far (pulls first): one per ``ce-id``, or with ``distinct=False``
        every delivery, duplicates included (Pub/Sub delivers at least once)."""
        self.pull_results(timeout=0.5)
        return list(self._results if distinct else self._deliveries)

    def results(self) -> list[Any]:
        """The data of every distinct result received so far."""
        return [event.data for event in self.result_events()]

    def wait_for_result(self, saga_id: str, timeout: float = 60.0) -> Any:
        """The result data of ``saga_id``; polls until ``timeout`` seconds have passed."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self._results:
                if event.subject == saga_id or (
                    isinstance(event.data, dict) and event.data.get("saga_id") == saga_id
                ):
                    return event.data
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"no result for saga {saga_id!r} within {timeout:g}s (logs: {self.log_dir})"
                )
            if not self.pull_results(timeout=min(2.0, max(remaining, 0.1))):
                time.sleep(min(0.1, max(remaining, 0)))

    def example_request(self, name: str, *, saga_id: str | None = None) -> dict[str, Any]:
        """``examples/requests/<name>.json`` with its participant origins (9001-9003) pointed at this stack."""
        text = (EXAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8")
        well_known = StackPorts.well_known()
        for service in PARTICIPANTS:
            text = text.replace(
                f"http://127.0.0.1:{getattr(well_known, service)}", self.participant_urls[service]
            )
        request: dict[str, Any] = json.loads(text)
        if saga_id is not None:
            request["saga_id"] = saga_id
        return request

    def participant(self, service: str, path: str, body: Any = None) -> Any:
        """Call a participant's control endpoint: ``calls``, ``state``, ``next``, ``reset``, ``health``."""
        url = f"{self.participant_urls[service]}/_control/{path}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        method = "POST" if path in ("next", "reset") else "GET"
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def participant_calls(self, service: str) -> list[dict[str, Any]]:
        return list(self.participant(service, "calls"))

    def arm(self, service: str, result: str, count: int = 1, action: str | None = None, **extra: Any) -> None:
        """DTM-style switch: the next ``count`` calls of ``service`` answer ``result``."""
        self.participant(service, "next", {"result": result, "count": count, "action": action, **extra})

    def summary(self) -> dict[str, str]:
        """Name -> address/URL of everything that listens."""
        addresses = {name: getattr(self.config, name) for name in _EMULATOR_VARS}
        addresses.update(
            {
                "start_saga": self.function_urls.start_saga,
                "step_executor": self.function_urls.step_executor,
                "saga_completion": self.function_urls.saga_completion,
                "saga_sweeper": self.function_urls.saga_sweeper,
            }
        )
        addresses.update(self.participant_urls)
        return addresses


def with_callback_host(allowed_hosts: str, callback_host: str) -> str:
    """``SAGA_ALLOWED_HOSTS`` plus the Workflows callback ``host:port``, unless listed already. Without
    it, an allowlist restricted by port would refuse every task's callback (sagas would stall until
    their waits end). An empty allowlist means the functions' default, which is kept."""
    entries = [entry.strip() for entry in allowed_hosts.split(",") if entry.strip()]
    if not entries:
        entries = SAGA_DEFAULTS["SAGA_ALLOWED_HOSTS"].split(",")
    if callback_host and callback_host.lower() not in (entry.lower() for entry in entries):
        entries.append(callback_host)
    return ",".join(entries)


def _to_event(message: Any) -> ResultEvent:
    attributes = dict(message.attributes)
    raw = bytes(message.data)
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = raw.decode("utf-8", errors="replace")
    return ResultEvent(
        id=attributes.get("ce-id", message.message_id),
        type=attributes.get("ce-type", ""),
        subject=attributes.get("ce-subject", ""),
        attributes=attributes,
        data=data,
    )
