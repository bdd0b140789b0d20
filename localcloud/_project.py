"""One project number for each project id, the same in every emulator of the local cloud.

Google gives each project an id, chosen by its owner, and a number, assigned by Google, and a resource name
may name the project by either: ``projects/123456789012/secrets/x`` and ``projects/my-project/secrets/x``
are the same secret (https://cloud.google.com/resource-manager/docs/creating-managing-projects#identifying_projects).
The local cloud has no Resource Manager to assign numbers, so it derives one from the id
(:func:`project_number`): 100,000,000,000 plus the CRC-32 of the id, 12 digits like a real number, the same
in every process and every run. The metadata server (``numeric-project-id``), the Workflows engine
(``GOOGLE_CLOUD_PROJECT_NUMBER``) and Cloud Storage (a bucket's ``projectNumber``) report it, and the
emulators of Secret Manager, Pub/Sub and Cloud Tasks read it in a resource name as the project it stands
for (:class:`ProjectNumbers`, :func:`accept_numbers`).

A number can only be read back as an id the emulator has met: the configured project (``LOCALCLOUD_PROJECT``)
and every project id a request has named so far. A number of no id met so far is left as it is (it then
names a project of its own). Project ids start with a letter, so a segment of digits is always a number.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor

_BASE = 100_000_000_000
_NAME = re.compile(r"projects/([^/]+)(/.*)?")
# The string fields that hold resource names in the requests and responses of the emulated APIs
# (Pub/Sub, Secret Manager, Cloud Tasks, IAM); message fields are searched for them too (a Topic's
# ``name``, a Subscription's ``dead_letter_policy.dead_letter_topic``). Map fields (labels, attributes)
# and payloads never are.
NAME_FIELDS = frozenset(
    {
        "name",
        "parent",
        "project",
        "topic",
        "subscription",
        "snapshot",
        "schema",
        "resource",
        "dead_letter_topic",
    }
)

Plan = tuple[tuple[FieldDescriptor, "Plan | None"], ...]
_PLANS: dict[str, Plan] = {}


def project_number(project_id: str, given: str = "") -> str:
    """The project's number: ``given`` when there is one (the metadata server can be told its project's
    number), the segment itself when it is a number already, else derived from the id."""
    if given:
        return given
    if project_id.isdigit():
        return project_id
    return str(_BASE + zlib.crc32(project_id.encode()))


class ProjectNumbers:
    """Reads a project number in a resource name as the id of the project it stands for."""

    def __init__(self, *project_ids: str) -> None:
        self._ids: dict[str, str] = {}  # number -> id
        for project_id in project_ids:
            self.meet(project_id)

    def meet(self, project_id: str) -> None:
        if project_id and not project_id.isdigit():
            self._ids.setdefault(project_number(project_id), project_id)

    def project_id(self, project: str) -> str:
        """The id ``project`` (an id or a number) stands for; a number of no id met so far unchanged."""
        if project.isdigit():
            return self._ids.get(project, project)
        self.meet(project)
        return project

    def name(self, name: str) -> str:
        """``projects/NUMBER/...`` as ``projects/ID/...``; any other name unchanged (its id met)."""
        match = _NAME.fullmatch(name)
        if match is None:
            return name
        project = match.group(1)
        project_id = self.project_id(project)
        return name if project_id == project else f"projects/{project_id}{match.group(2) or ''}"

    def read(self, message: Any) -> dict[str, str]:
        """Rewrites the project numbers in the resource names of ``message`` (a protobuf request) as ids, in
        place; returns number -> id of those it rewrote."""
        rewritten: dict[str, str] = {}

        def to_id(name: str) -> str:
            match = _NAME.fullmatch(name)
            if match is None or not match.group(1).isdigit():
                return self.name(name)
            project_id = self.project_id(match.group(1))
            if project_id != match.group(1):
                rewritten[match.group(1)] = project_id
            return f"projects/{project_id}{match.group(2) or ''}"

        rewrite_names(message, to_id)
        return rewritten


def as_numbers(message: Any, numbers: dict[str, str]) -> Any:
    """A copy of ``message`` (a protobuf response) whose resource names in the projects of ``numbers``
    (number -> id) name them by number again; ``message`` itself when there is nothing to rewrite."""
    if not numbers or not _plan(message.DESCRIPTOR):
        return message
    by_id = {project_id: number for number, project_id in numbers.items()}

    def to_number(name: str) -> str:
        match = _NAME.fullmatch(name)
        if match is None or match.group(1) not in by_id:
            return name
        return f"projects/{by_id[match.group(1)]}{match.group(2) or ''}"

    copy = type(message)()
    copy.CopyFrom(message)
    rewrite_names(copy, to_number)
    return copy


def rewrite_names(message: Any, rewrite: Callable[[str], str]) -> None:
    """Applies ``rewrite`` to every resource name of ``message`` (see ``NAME_FIELDS``), in place."""
    _rewrite(message, _plan(message.DESCRIPTOR), rewrite)


def _rewrite(message: Any, plan: Plan, rewrite: Callable[[str], str]) -> None:
    for field, nested in plan:
        value = getattr(message, field.name)
        if nested is not None:
            if _repeated(field):
                for item in value:
                    _rewrite(item, nested, rewrite)
            elif message.HasField(field.name):
                _rewrite(value, nested, rewrite)
        elif _repeated(field):
            new_values = [rewrite(item) for item in value]
            if new_values != list(value):
                value[:] = new_values
        elif value:
            new = rewrite(value)
            if new != value:
                setattr(message, field.name, new)


def _repeated(field: FieldDescriptor) -> bool:
    # ``is_repeated`` since protobuf 5.28 (``label`` is gone in 7); ``label`` before.
    is_repeated = getattr(field, "is_repeated", None)
    if is_repeated is not None:
        return bool(is_repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _plan(descriptor: Descriptor, visiting: frozenset[str] = frozenset()) -> Plan:
    """The fields of ``descriptor`` that hold resource names, or messages that do (cached per type)."""
    cached = _PLANS.get(descriptor.full_name)
    if cached is not None:
        return cached
    entries: list[tuple[FieldDescriptor, Plan | None]] = []
    for field in descriptor.fields:
        nested_type = field.message_type
        if nested_type is None:
            if field.type == FieldDescriptor.TYPE_STRING and field.name in NAME_FIELDS:
                entries.append((field, None))
            continue
        skip = nested_type.GetOptions().map_entry or nested_type.full_name.startswith("google.protobuf.")
        if skip or nested_type.full_name in visiting:
            continue
        nested = _plan(nested_type, visiting | {descriptor.full_name})
        if nested:
            entries.append((field, nested))
    plan = tuple(entries)
    if not visiting:
        _PLANS[descriptor.full_name] = plan
    return plan


def accept_numbers(
    handlers: Iterable[grpc.GenericRpcHandler], numbers: ProjectNumbers, *, answer_numbers: bool = False
) -> None:
    """Makes the method handlers of ``handlers`` (the tables ``localcloud._grpc.service`` builds) read a
    project number in a request's resource names as the project's id, before the handler sees the request.
    With ``answer_numbers``, the answer to a request that named a project by number names it by number too
    (what Secret Manager does). Done in place, before the tables are served (gRPC and REST alike)."""
    for handler in handlers:
        methods: dict[str, grpc.RpcMethodHandler] = getattr(handler, "methods", {})
        for path, method in methods.items():
            if method.unary_unary is not None:
                methods[path] = method._replace(
                    unary_unary=_reading_unary(method.unary_unary, numbers, answer_numbers)
                )
            elif method.stream_stream is not None and method.request_deserializer is not None:
                methods[path] = method._replace(
                    request_deserializer=_reading_deserializer(method.request_deserializer, numbers)
                )


def _reading_unary(
    call: Callable[[Any, Any], Awaitable[Any]], numbers: ProjectNumbers, answer_numbers: bool
) -> Callable[[Any, Any], Awaitable[Any]]:
    async def read(request: Any, context: Any) -> Any:
        rewritten = numbers.read(request)
        response = await call(request, context)
        if answer_numbers and rewritten and response is not None:
            return as_numbers(response, rewritten)
        return response

    return read


def _reading_deserializer(
    deserialize: Callable[[bytes], Any], numbers: ProjectNumbers
) -> Callable[[bytes], Any]:
    def read(data: bytes) -> Any:
        message = deserialize(data)
        numbers.read(message)
        return message

    return read
