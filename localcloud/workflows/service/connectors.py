"""Workflows connectors, routed to the local emulators by the APIs' own HTTP annotations.

Which connectors run here: every method with a ``google.api.http`` rule (each additional binding too) of
the services the local cloud emulates — Cloud Tasks v2 and v2beta3 (``CloudTasks``), Pub/Sub v1 (``Publisher``,
``Subscriber`` and the ``IAMPolicy`` mixin the emulator serves), Secret Manager v1
(``SecretManagerService``), Workflows v1 (``Workflows``) and Workflows Executions v1 (``Executions``) —
plus the Workflows-only helpers ``secretmanager.v1.projects.secrets.versions.accessString``,
``secretmanager.v1.projects.secrets.addVersionString``
(https://cloud.google.com/workflows/docs/reference/googleapis/secretmanager/v1/projects.secrets/addVersionString)
and ``workflowexecutions.v1.projects.locations.workflows.executions.run`` (a child execution, polled to
its end: its result, or ``ExecutionError``).
``routes()`` lists them. No method has code of its own: ``localcloud.transcoding`` turns the REST-shaped
arguments into the request the rule describes.

Names, as Google's connector reference spells them (https://cloud.google.com/workflows/docs/reference/googleapis):
``googleapis.SERVICE.VERSION.RESOURCE….METHOD``, the resources being the collections of the rule's path
(``/v2/{parent=projects/*/locations/*/queues/*}/tasks`` → ``projects.locations.queues.tasks``) and the
method the rule's custom verb (``:publish``) or the standard verb of the RPC (``Get``/``List``/``Create``/
``Delete``; ``Update`` is ``patch`` over PATCH).

Arguments, as the REST API takes them (https://cloud.google.com/workflows/docs/reference/googleapis): each
path variable by its last field name (``name`` for ``{topic.name=…}``; the dotted path is accepted too),
``body`` (the whole request for ``body: "*"``, else the rule's body field), every other argument a query
parameter by its JSON or proto name (``pageSize``, ``responseView``; dotted for nested fields). The
result is the REST response resource as ProtoJSON (lowerCamel names, int64 as strings, bytes as base64),
``{}`` for ``google.protobuf.Empty``.

Semantics (https://cloud.google.com/workflows/docs/connectors):

- ``connector_params.timeout``: the end-to-end duration of the call, retries and polling included (default
  1800 s, at most 31,536,000 s); when it runs out the call raises ``TimeoutError``. A single request is
  never given more than 1800 s.
- Retries: "an idempotent retry policy for GET requests", "a non-idempotent retry policy" for the other
  methods: at most 5 retries, delays from 1 s multiplied by 1.25 up to 60 s; GET retries 429, 502, 503 and
  504 (HTTP codes of the gRPC status) and connection failures, the others 429 and 503
  (https://cloud.google.com/workflows/docs/reference/stdlib/http/default_retry). A connection the
  emulator refuses is gRPC ``UNAVAILABLE``, which the REST API answers as 503.
- Long-running operations (here: Workflows ``create``/``patch``/``delete``): the call polls
  ``google.longrunning.Operations/GetOperation`` (``connector_params.polling_policy``: ``initial_delay``
  1 s, ``multiplier`` 1.25, ``max_delay`` 60 s) until the operation is done and returns its ``response``
  (without the ``@type`` of its ``Any``); a failed operation raises ``OperationError`` with ``message``,
  ``operation`` (the Operation) and ``error``. ``skip_polling: true`` returns the Operation at once.
  ``scopes`` is accepted and ignored (the emulators check no token).
- API errors raise ``HttpError`` with the REST API's code and Google's JSON error body
  ``{"error": {"code", "message", "status"}}``; arguments that do not fit the method (an unknown field, a
  body where the rule has none) are the REST API's 400 INVALID_ARGUMENT.
- A connector this engine does not route (``googleapis.bigquery.v2.jobs.query``) deploys, and calling it
  raises ``HttpError`` 501 ``UNIMPLEMENTED`` naming it and saying it is not emulated locally. Why 501: it
  is the status Google APIs answer for "the operation is not implemented or is not supported/enabled in
  this service" (https://cloud.google.com/apis/design/errors#handling_errors, ``google.rpc.Code``); it is
  permanent, so neither the connectors' retries nor ``http.default_retry`` (429, 502, 503, 504) repeat a
  call that can never succeed, and a workflow's ``except`` sees it at once, as an ``HttpError`` like
  every other API error a connector raises. 503 ``UNAVAILABLE`` would say "try again later".

One channel per emulator is shared by every execution, opened on first use. Each RPC is a bare unary call
on raw protobuf messages (the wire format the generated clients send; the emulators read no request
metadata); with no network at all when the emulator runs on the same event loop.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.longrunning import operations_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from localcloud import _grpc
from localcloud import transcoding as tc
from localcloud.clock import Clock, SystemClock
from localcloud.config import LocalCloudConfig
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.service import protojson

# connector_params.timeout: default 1800 s, max 31536000 s (the Workflows JSON schema); we also cap a
# single RPC at the longest HTTP timeout Workflows allows.
DEFAULT_CONNECTOR_TIMEOUT_SECONDS = 1800.0
MAX_CONNECTOR_TIMEOUT_SECONDS = 31_536_000.0
MAX_RPC_SECONDS = 1800.0
MAX_RETRIES = 5
RETRY_INITIAL_DELAY, RETRY_MULTIPLIER, RETRY_MAX_DELAY = 1.0, 1.25, 60.0
POLLING_DEFAULTS = {"initial_delay": 1.0, "multiplier": 1.25, "max_delay": 60.0}

TASKS_CREATE = "googleapis.cloudtasks.v2.projects.locations.queues.tasks.create"
TASKS_DELETE = "googleapis.cloudtasks.v2.projects.locations.queues.tasks.delete"
PUBSUB_PUBLISH = "googleapis.pubsub.v1.projects.topics.publish"
SECRET_ACCESS_STRING = "googleapis.secretmanager.v1.projects.secrets.versions.accessString"
SECRET_ADD_VERSION_STRING = "googleapis.secretmanager.v1.projects.secrets.addVersionString"
# The Executions connector's helper: start a child execution and wait for its result
# (https://cloud.google.com/workflows/docs/reference/googleapis/workflowexecutions/v1/projects.locations.workflows.executions/run).
EXECUTIONS_RUN = "googleapis.workflowexecutions.v1.projects.locations.workflows.executions.run"
_EXECUTIONS_CREATE = "googleapis.workflowexecutions.v1.projects.locations.workflows.executions.create"
_EXECUTIONS_GET = "googleapis.workflowexecutions.v1.projects.locations.workflows.executions.get"
_ENDED = ("SUCCEEDED", "FAILED", "CANCELLED")
_SECRET_ACCESS = "googleapis.secretmanager.v1.projects.secrets.versions.access"
_SECRET_ADD_VERSION = "googleapis.secretmanager.v1.projects.secrets.addVersion"

CODEC = tc.Codec(parse=protojson.parse, to_json=protojson.to_json)

# HTTP 429 and 503; a GET also retries 504 (DEADLINE_EXCEEDED of a single request capped at
# MAX_RPC_SECONDS). No gRPC status maps to 502.
_RETRY_ALWAYS = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE})
_RETRY_IDEMPOTENT = _RETRY_ALWAYS | {grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclass(frozen=True)
class _Api:
    """An emulated API: its connector service name, the config field of its emulator's address, and
    where its rules come from (a GAPIC transports module and the gRPC services the emulator serves)."""

    service: str
    address: str
    transports: str
    grpc_services: tuple[str, ...]


_APIS = (
    _Api(
        "cloudtasks",
        "tasks",
        "google.cloud.tasks_v2.services.cloud_tasks.transports",
        ("google.cloud.tasks.v2.CloudTasks",),
    ),
    # Served by the same emulator over the same queues (``localcloud.tasks.v2beta3``).
    _Api(
        "cloudtasks",
        "tasks",
        "google.cloud.tasks_v2beta3.services.cloud_tasks.transports",
        ("google.cloud.tasks.v2beta3.CloudTasks",),
    ),
    _Api(
        "pubsub",
        "pubsub",
        "google.pubsub_v1.services.publisher.transports",
        ("google.pubsub.v1.Publisher", "google.iam.v1.IAMPolicy"),
    ),
    _Api(
        "pubsub",
        "pubsub",
        "google.pubsub_v1.services.subscriber.transports",
        ("google.pubsub.v1.Subscriber", "google.iam.v1.IAMPolicy"),
    ),
    _Api(
        "secretmanager",
        "secretmanager",
        "google.cloud.secretmanager_v1.services.secret_manager_service.transports",
        ("google.cloud.secretmanager.v1.SecretManagerService",),
    ),
    _Api(
        "workflows",
        "workflows",
        "google.cloud.workflows_v1.services.workflows.transports",
        ("google.cloud.workflows.v1.Workflows",),
    ),
)

# google-cloud-workflows ships no REST transport for Executions, so its rules are given here, as in
# google/cloud/workflows/executions/v1/executions.proto (googleapis/googleapis), for the four RPCs the
# Executions service serves.
_EXECUTIONS = "google.cloud.workflows.executions.v1.Executions"
_EXECUTIONS_RULES = {
    "CreateExecution": {
        "method": "post",
        "uri": "/v1/{parent=projects/*/locations/*/workflows/*}/executions",
        "body": "execution",
    },
    "GetExecution": {"method": "get", "uri": "/v1/{name=projects/*/locations/*/workflows/*/executions/*}"},
    "ListExecutions": {"method": "get", "uri": "/v1/{parent=projects/*/locations/*/workflows/*}/executions"},
    "CancelExecution": {
        "method": "post",
        "uri": "/v1/{name=projects/*/locations/*/workflows/*/executions/*}:cancel",
        "body": "*",
    },
}


@dataclass(frozen=True)
class Route:
    """Where a connector goes: the RPC, the HTTP rule its name comes from, the emulator's address."""

    method: tc.RpcMethod
    rule: tc.HttpRule
    address_field: str

    @property
    def idempotent(self) -> bool:
        return self.rule.method == "GET"

    def address(self, config: LocalCloudConfig) -> str:
        return str(getattr(config, self.address_field))


@cache
def routes() -> Mapping[str, Route]:
    """Every routed connector name (the helpers aside) → its route; built once, on first use."""
    found: dict[str, Route] = {}
    for api in _APIS:
        for method in tc.methods_from_gapic(api.transports, api.grpc_services):
            _add(found, api.service, api.address, method)
    for method in _executions_methods():
        _add(found, "workflowexecutions", "workflows", method)
    return found


def _add(found: dict[str, Route], service: str, address: str, method: tc.RpcMethod) -> None:
    for rule in method.rules:
        found.setdefault(connector_name(service, method.name, rule), Route(method, rule, address))


def connector_name(service: str, rpc: str, rule: tc.HttpRule) -> str:
    """``googleapis.SERVICE.VERSION.COLLECTIONS.VERB`` of a rule (see the module docstring)."""
    version, *rest = rule.template.flat_segments()
    collections = [s for s in rest if s not in ("*", "**")]
    return ".".join(["googleapis", service, version, *collections, rule.template.verb or _verb(rpc, rule)])


def _verb(rpc: str, rule: tc.HttpRule) -> str:
    standard = re.match(r"(Get|List|Create|Delete|Update)[A-Z]", rpc)
    if standard is None:
        return rpc[:1].lower() + rpc[1:]
    verb = standard.group(1).lower()
    return ("patch" if rule.method == "PATCH" else "update") if verb == "update" else verb


def _executions_methods() -> tuple[tc.RpcMethod, ...]:
    from google.cloud.workflows.executions_v1.types import executions as ex

    response: Callable[[], type[Message]] = ex.Execution.pb
    types = {
        "CreateExecution": (ex.CreateExecutionRequest.pb(), response()),
        "GetExecution": (ex.GetExecutionRequest.pb(), response()),
        "ListExecutions": (ex.ListExecutionsRequest.pb(), ex.ListExecutionsResponse.pb()),
        "CancelExecution": (ex.CancelExecutionRequest.pb(), response()),
    }
    return tuple(
        tc.RpcMethod(_EXECUTIONS, rpc, request, reply, tc.rules_from_options([_EXECUTIONS_RULES[rpc]]))
        for rpc, (request, reply) in types.items()
    )


def _get_operation_method() -> tc.RpcMethod:
    return tc.RpcMethod(
        "google.longrunning.Operations",
        "GetOperation",
        operations_pb2.GetOperationRequest,
        operations_pb2.Operation,
        (),
    )


@dataclass
class _Call:
    """One connector call in flight: its name, its end-to-end deadline on the clock, its parameters."""

    name: str
    deadline: float
    timeout: float
    skip_polling: bool
    polling: dict[str, float]


class Connectors:
    """Use from one event loop; ``close`` releases the channels. ``clock`` times retries and polling."""

    def __init__(self, config: LocalCloudConfig, clock: Clock | None = None) -> None:
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._calls: dict[tuple[str, str], grpc.aio.UnaryUnaryMultiCallable] = {}

    @property
    def names(self) -> frozenset[str]:
        return frozenset(routes()) | {SECRET_ACCESS_STRING, SECRET_ADD_VERSION_STRING, EXECUTIONS_RUN}

    async def call(
        self,
        name: str,
        args: Mapping[str, Any],
        *,
        project_id: str,
        location: str = "us-central1",
        connector_params: Mapping[str, Any] | None = None,
    ) -> Any:
        if not isinstance(args, Mapping):
            raise WorkflowError.tagged("TypeError", f"{name}: args must be a map")
        call = self._start(name, connector_params)
        if name == SECRET_ACCESS_STRING:
            return await self._access_string(call, args, project_id)
        if name == SECRET_ADD_VERSION_STRING:
            return await self._add_version_string(call, args, project_id)
        if name == EXECUTIONS_RUN:
            return await self._run_execution(call, args, project_id, location)
        route = routes().get(name)
        if route is None:
            raise not_emulated(name)
        return await self._invoke(call, route, args)

    def bind_address(self, service: str, address: str) -> None:
        """Where an emulator listens once it is bound (``service`` a ``LocalCloudConfig`` field, e.g.
        ``workflows``): the Workflows service starts its connectors before its own port is known when
        it is configured with port 0."""
        self._config = dataclasses.replace(self._config, **{service: address})

    async def close(self) -> None:
        channels, self._channels, self._calls = self._channels, {}, {}
        for channel in channels.values():
            await channel.close()

    def _start(self, name: str, params: Mapping[str, Any] | None) -> _Call:
        params = params or {}
        if not isinstance(params, Mapping):
            raise WorkflowError.tagged("TypeError", "connector_params must be a map")
        timeout = _timeout_of(params)
        skip = params.get("skip_polling", False)
        if not isinstance(skip, bool):
            raise WorkflowError.tagged("TypeError", "connector_params.skip_polling must be a boolean")
        polling = _polling_of(params.get("polling_policy"))
        return _Call(name, self._clock.now() + timeout, timeout, skip, polling)

    async def _invoke(self, call: _Call, route: Route, args: Mapping[str, Any]) -> Any:
        request = _request(call.name, route, args)
        response = await self._rpc(call, route.address(self._config), route.method, request, route.idempotent)
        if isinstance(response, operations_pb2.Operation) and not call.skip_polling:
            return await self._poll(call, route.address(self._config), response)
        return tc.response_to_rest(route.rule, response, CODEC)

    async def _rpc(
        self, call: _Call, address: str, method: tc.RpcMethod, request: Message, idempotent: bool
    ) -> Message:
        """One RPC with the connectors' retries, within the call's deadline."""
        retryable = _RETRY_IDEMPOTENT if idempotent else _RETRY_ALWAYS
        unary = self._unary(address, method.path, method.response_type)
        delay = RETRY_INITIAL_DELAY
        for attempt in range(MAX_RETRIES + 1):
            remaining = call.deadline - self._clock.now()
            if remaining <= 0:
                raise _timed_out(call)
            try:
                response: Message = await unary(request, timeout=min(remaining, MAX_RPC_SECONDS))
                return response
            except grpc.aio.AioRpcError as error:
                code = error.code()
                last = attempt == MAX_RETRIES or code not in retryable
                if code == grpc.StatusCode.DEADLINE_EXCEEDED and (last or self._clock.now() >= call.deadline):
                    raise _timed_out(call) from None
                if last:
                    raise http_error(gexc.from_grpc_error(error)) from None
            await self._clock.sleep(min(delay, max(call.deadline - self._clock.now(), 0.0)))
            delay = min(delay * RETRY_MULTIPLIER, RETRY_MAX_DELAY)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _poll(self, call: _Call, address: str, operation: operations_pb2.Operation) -> Any:
        """Polls until the operation is done; each poll is a GET with the idempotent retries."""
        get = _get_operation_method()
        delay = call.polling["initial_delay"]
        while not operation.done:
            if self._clock.now() + delay >= call.deadline:
                raise _timed_out(call)
            await self._clock.sleep(delay)
            delay = min(delay * call.polling["multiplier"], call.polling["max_delay"])
            request = operations_pb2.GetOperationRequest(name=operation.name)
            polled = await self._rpc(call, address, get, request, idempotent=True)
            assert isinstance(polled, operations_pb2.Operation)
            operation = polled
        document = json_format.MessageToDict(operation)
        if operation.HasField("error"):
            raise WorkflowError.tagged(
                "OperationError",
                f"{call.name}: the operation {operation.name} failed: {operation.error.message}",
                operation=document,
                error=document.get("error", {}),
            )
        response = dict(document.get("response", {}))
        response.pop("@type", None)
        return response

    def _unary(
        self, address: str, method: str, response_type: type[Message]
    ) -> grpc.aio.UnaryUnaryMultiCallable:
        key = (address, method)
        call = self._calls.get(key)
        if call is None:
            channel = self._channels.get(address)
            if channel is None:
                channel = self._channels[address] = _channel(address)
            call = self._calls[key] = channel.unary_unary(
                method,
                request_serializer=_serialize,
                response_deserializer=response_type.FromString,
            )
        return call

    # -- the Executions connector's helper

    async def _run_execution(
        self, call: _Call, args: Mapping[str, Any], project_id: str, location: str
    ) -> Any:
        """Creates the child execution, then (unless ``skip_polling``: null at once) polls it as the
        connector polls a long-running operation, within the call's timeout: its result JSON-decoded when
        it SUCCEEDED, else an ``ExecutionError`` carrying the execution (the tag Google's
        experimental.executions.execution_error names for an execution that failed or was cancelled)."""
        parent, body = _run_args(args, call.name, project_id, location)
        execution = await self._invoke(call, routes()[_EXECUTIONS_CREATE], {"parent": parent, "body": body})
        if call.skip_polling:
            return None
        delay = call.polling["initial_delay"]
        while execution.get("state") not in _ENDED:
            if self._clock.now() + delay >= call.deadline:
                raise _timed_out(call)
            await self._clock.sleep(delay)
            delay = min(delay * call.polling["multiplier"], call.polling["max_delay"])
            execution = await self._invoke(call, routes()[_EXECUTIONS_GET], {"name": execution["name"]})
        if execution["state"] != "SUCCEEDED":
            raise WorkflowError.tagged(
                "ExecutionError",
                f"the execution {execution['name']} ended {execution['state']}",
                execution=execution,
            )
        return json.loads(execution["result"]) if execution.get("result") else None

    # -- the Workflows-only helpers of Secret Manager

    async def _access_string(self, call: _Call, args: Mapping[str, Any], project_id: str) -> Any:
        secret_id = _required_string(args, "secret_id", call.name)
        version = args.get("version", "latest")
        project = args.get("project_id", project_id)
        if not isinstance(version, str | int) or isinstance(version, bool) or not isinstance(project, str):
            raise WorkflowError.tagged("TypeError", f"{call.name}: project_id and version must be strings")
        name = f"projects/{project}/secrets/{secret_id}/versions/{version}"
        response = await self._invoke(call, routes()[_SECRET_ACCESS], {"name": name})
        try:
            return base64.b64decode(response.get("payload", {}).get("data", "")).decode("utf-8")
        except UnicodeDecodeError:
            raise WorkflowError.tagged("ValueError", f"secret version {name} is not valid UTF-8") from None

    async def _add_version_string(self, call: _Call, args: Mapping[str, Any], project_id: str) -> Any:
        secret_id = _required_string(args, "secret_id", call.name)
        data = _required_string(args, "data", call.name)
        project = args.get("project_id", project_id)
        if not isinstance(project, str):
            raise WorkflowError.tagged("TypeError", f"{call.name}: project_id must be a string")
        body = {"payload": {"data": base64.b64encode(data.encode("utf-8")).decode("ascii")}}
        parent = f"projects/{project}/secrets/{secret_id}"
        return await self._invoke(call, routes()[_SECRET_ADD_VERSION], {"parent": parent, "body": body})


def _run_args(
    args: Mapping[str, Any], name: str, project_id: str, location: str
) -> tuple[str, dict[str, Any]]:
    """The workflow a ``run`` names (``workflow_id``; ``project_id`` and ``location`` default to the
    caller's) and the execution to create, its ``argument`` encoded as JSON."""
    workflow = _required_string(args, "workflow_id", name)
    project, where = args.get("project_id", project_id), args.get("location", location)
    if not isinstance(project, str) or not isinstance(where, str):
        raise WorkflowError.tagged("TypeError", f"{name}: project_id and location must be strings")
    execution: dict[str, Any] = {}
    if args.get("argument") is not None:
        execution["argument"] = json.dumps(args["argument"], separators=(",", ":"))
    for field_name in ("callLogLevel", "labels"):
        if field_name in args:
            execution[field_name] = args[field_name]
    return f"projects/{project}/locations/{where}/workflows/{workflow}", execution


def _request(name: str, route: Route, args: Mapping[str, Any]) -> Message:
    """The request message of a connector call: path arguments, ``body`` and query arguments."""
    variables: dict[str, str] = {}
    taken = {"body"}
    for variable in route.rule.template.variables:
        key = variable.arg_name if variable.arg_name in args else variable.field_path
        taken.add(key)
        variables[variable.field_path] = _required_string(args, key, name)
    query = {k: v for k, v in args.items() if k not in taken}
    try:
        return tc.request_from_rest(route.method, route.rule, variables, query, args.get("body"), CODEC)
    except tc.TranscodingError as error:
        raise http_error(gexc.InvalidArgument(str(error))) from None


def _channel(address: str) -> grpc.aio.Channel:
    """In process when the emulator serves on this event loop (``localcloud serve``), else a real one."""
    local = getattr(_grpc, "channel", None)
    return local(address) if local is not None else grpc.aio.insecure_channel(address)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def http_error(error: gexc.GoogleAPICallError) -> WorkflowError:
    """The ``HttpError`` map a connector raises for an API error (the REST API's code and error body)."""
    code = int(error.code or 500)
    status = error.grpc_status_code.name if error.grpc_status_code is not None else "UNKNOWN"
    return WorkflowError.tagged(
        "HttpError",
        f"HTTP server responded with error code {code}",
        code=code,
        headers={"Content-Type": "application/json; charset=UTF-8"},
        body={"error": {"code": code, "message": error.message, "status": status}},
    )


def not_emulated(name: str) -> WorkflowError:
    """The error of a connector this engine does not route (see the module docstring for why 501)."""
    error = http_error(
        gexc.MethodNotImplemented(
            f"connector {name} is not emulated locally: the local cloud routes the connectors of Cloud "
            "Tasks v2 and v2beta3, Pub/Sub v1, Secret Manager v1, Workflows v1 and Workflows Executions v1 only"
        )
    )
    error.payload["message"] = f"{name} is not emulated locally (HTTP 501 UNIMPLEMENTED)"
    return error


def _timed_out(call: _Call) -> WorkflowError:
    return WorkflowError.tagged("TimeoutError", f"{call.name} did not finish within {call.timeout:g} seconds")


def _timeout_of(params: Mapping[str, Any]) -> float:
    value = params.get("timeout", DEFAULT_CONNECTOR_TIMEOUT_SECONDS)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise WorkflowError.tagged("TypeError", "connector_params.timeout must be a positive number")
    if value > MAX_CONNECTOR_TIMEOUT_SECONDS:
        raise WorkflowError.tagged(
            "ValueError",
            f"connector_params.timeout must be at most {MAX_CONNECTOR_TIMEOUT_SECONDS:g} seconds",
        )
    return float(value)


def _polling_of(policy: Any) -> dict[str, float]:
    if policy is None:
        return dict(POLLING_DEFAULTS)
    if not isinstance(policy, Mapping):
        raise WorkflowError.tagged("TypeError", "connector_params.polling_policy must be a map")
    polling = dict(POLLING_DEFAULTS)
    for key, value in policy.items():
        if key not in POLLING_DEFAULTS:
            raise WorkflowError.tagged("ValueError", f"connector_params.polling_policy has no '{key}'")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise WorkflowError.tagged("TypeError", f"connector_params.polling_policy.{key} must be positive")
        polling[key] = float(value)
    return polling


def _required_string(args: Mapping[str, Any], key: str, connector: str) -> str:
    value = args.get(key)
    if value is None:
        raise WorkflowError.tagged("ValueError", f"{connector}: missing required argument '{key}'")
    if not isinstance(value, str):
        raise WorkflowError.tagged("TypeError", f"{connector}: argument '{key}' must be a string")
    return value
