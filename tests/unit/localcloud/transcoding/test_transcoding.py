"""REST ↔ gRPC transcoding from the HTTP rules the Google client packages carry: path templates, body
``*`` and field bodies, query parameters (nested, repeated), ProtoJSON values (int64 as strings, bytes as
base64), and round trips of real requests of each emulated service."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from google.cloud.secretmanager_v1.types import resources as secret_resources
from google.cloud.secretmanager_v1.types import service as secrets
from google.cloud.tasks_v2.types import cloudtasks, queue, target, task
from google.cloud.workflows.executions_v1.types import executions as ex
from google.cloud.workflows_v1.types import workflows as wf
from google.iam.v1 import iam_policy_pb2, options_pb2
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.pubsub_v1.types import pubsub

from localcloud import transcoding as tc

TASKS = "google.cloud.tasks_v2.services.cloud_tasks.transports"
PUBLISHER = "google.pubsub_v1.services.publisher.transports"
SUBSCRIBER = "google.pubsub_v1.services.subscriber.transports"
SECRETS = "google.cloud.secretmanager_v1.services.secret_manager_service.transports"
WORKFLOWS = "google.cloud.workflows_v1.services.workflows.transports"
QUEUE = "projects/p/locations/us-central1/queues/q"


def method(transports: str, service: str, rpc: str) -> tc.RpcMethod:
    found = {m.name: m for m in tc.methods_from_gapic(transports, [service])}
    return found[rpc]


def create_task() -> tc.RpcMethod:
    return method(TASKS, "google.cloud.tasks.v2.CloudTasks", "CreateTask")


# -- path templates


def test_a_template_with_a_variable_a_pattern_and_a_custom_verb() -> None:
    template = tc.PathTemplate.parse("/v1/{name=projects/*/secrets/*/versions/*}:access")
    assert template.verb == "access"
    (variable,) = template.variables
    assert (variable.field_path, variable.pattern) == (
        "name",
        ("projects", "*", "secrets", "*", "versions", "*"),
    )
    assert template.flat_segments() == ("v1", "projects", "*", "secrets", "*", "versions", "*")
    assert template.match("/v1/projects/p/secrets/s/versions/latest:access") == {
        "name": "projects/p/secrets/s/versions/latest"
    }
    assert template.match("/v1/projects/p/secrets/s:access") is None
    assert (
        template.expand({"name": "projects/p/secrets/s/versions/3"})
        == "/v1/projects/p/secrets/s/versions/3:access"
    )


def test_a_template_variable_with_a_nested_field_path_is_named_by_its_last_field() -> None:
    template = tc.PathTemplate.parse("/v1/{topic.name=projects/*/topics/*}")
    (variable,) = template.variables
    assert (variable.field_path, variable.arg_name) == ("topic.name", "name")
    assert template.match("/v1/projects/p/topics/t%20x") == {"topic.name": "projects/p/topics/t x"}


def test_literal_segments_after_a_variable_and_a_bare_variable() -> None:
    template = tc.PathTemplate.parse("/v2/{parent=projects/*/locations/*/queues/*}/tasks:batchCreate")
    assert template.expand({"parent": QUEUE}) == f"/v2/{QUEUE}/tasks:batchCreate"
    bare = tc.PathTemplate.parse("/v1/{name}")
    assert bare.variables[0].pattern == ("*",)
    assert bare.match("/v1/x") == {"name": "x"}
    assert bare.match("/v1/x/y") is None


def test_expanding_a_value_that_does_not_fit_the_pattern_names_the_parameter() -> None:
    template = tc.PathTemplate.parse("/v1/{topic=projects/*/topics/*}:publish")
    with pytest.raises(tc.TranscodingError, match="'topic' must look like 'projects/\\*/topics/\\*'"):
        template.expand({"topic": "projects/p/topics"})
    with pytest.raises(tc.TranscodingError, match="missing the path parameter 'topic'"):
        template.expand({})


# -- the rules the packages carry


def test_the_rules_come_from_the_generated_transports() -> None:
    rule = create_task().rules[0]
    assert (rule.method, rule.template.text, rule.body) == (
        "POST",
        "/v2/{parent=projects/*/locations/*/queues/*}/tasks",
        "*",
    )
    assert create_task().path == "/google.cloud.tasks.v2.CloudTasks/CreateTask"
    assert create_task().request_type is cloudtasks.CreateTaskRequest.pb()
    assert create_task().response_type is task.Task.pb()


def test_methods_without_a_rule_and_mixins_of_other_services_are_left_out() -> None:
    subscriber = {m.name for m in tc.methods_from_gapic(SUBSCRIBER, ["google.pubsub.v1.Subscriber"])}
    assert "Pull" in subscriber
    assert "StreamingPull" not in subscriber  # no HTTP rule
    assert "GetIamPolicy" not in subscriber  # google.iam.v1.IAMPolicy, not asked for
    tasks = {m.name for m in tc.methods_from_gapic(TASKS, ["google.cloud.tasks.v2.CloudTasks"])}
    assert "GetLocation" not in tasks  # google.cloud.location.Locations
    empty = method(TASKS, "google.cloud.tasks.v2.CloudTasks", "DeleteTask")
    assert empty.response_type.DESCRIPTOR.full_name == "google.protobuf.Empty"


def test_additional_bindings_are_rules_of_their_own() -> None:
    access = method(SECRETS, "google.cloud.secretmanager.v1.SecretManagerService", "AccessSecretVersion")
    assert [r.template.text for r in access.rules] == [
        "/v1/{name=projects/*/secrets/*/versions/*}:access",
        "/v1/{name=projects/*/locations/*/secrets/*/versions/*}:access",
    ]


# -- REST -> gRPC


def test_body_star_takes_every_field_the_path_does_not_bind() -> None:
    body = {"task": {"httpRequest": {"url": "http://x/", "body": base64.b64encode(b"\x00\xffhi").decode()}}}
    request = tc.request_from_rest(create_task(), create_task().rules[0], {"parent": QUEUE}, {}, body)
    assert isinstance(request, cloudtasks.CreateTaskRequest.pb())
    assert request.parent == QUEUE
    assert request.task.http_request.body == b"\x00\xffhi"  # bytes from base64


def test_a_field_body_fills_that_field_and_the_rest_comes_from_the_path_and_the_query() -> None:
    create = method(TASKS, "google.cloud.tasks.v2.CloudTasks", "CreateQueue")
    assert create.rules[0].body == "queue"
    request = tc.request_from_rest(
        create,
        create.rules[0],
        {"parent": "projects/p/locations/l"},
        {},
        {"name": "projects/p/locations/l/queues/q", "retryConfig": {"maxAttempts": 3, "minBackoff": "0.5s"}},
    )
    assert request.parent == "projects/p/locations/l"
    assert request.queue.retry_config.max_attempts == 3
    assert request.queue.retry_config.min_backoff == duration_pb2.Duration(nanos=500_000_000)


def test_query_parameters_by_json_or_proto_name_and_enums_by_name() -> None:
    list_tasks = method(TASKS, "google.cloud.tasks.v2.CloudTasks", "ListTasks")
    rule = list_tasks.rules[0]
    for query in ({"pageSize": 7, "responseView": "FULL"}, {"page_size": 7, "response_view": "FULL"}):
        request = tc.request_from_rest(list_tasks, rule, {"parent": QUEUE}, query, None)
        assert (request.parent, request.page_size, request.response_view) == (QUEUE, 7, task.Task.View.FULL)


def test_a_nested_query_parameter_is_dotted() -> None:
    get_policy = method(SECRETS, "google.cloud.secretmanager.v1.SecretManagerService", "GetIamPolicy")
    request = tc.request_from_rest(
        get_policy,
        get_policy.rules[0],
        {"resource": "projects/p/secrets/s"},
        {"options.requestedPolicyVersion": 3},
        None,
    )
    assert request.options.requested_policy_version == 3


def test_a_nested_path_variable_and_a_field_mask_query_parameter() -> None:
    update = method(WORKFLOWS, "google.cloud.workflows.v1.Workflows", "UpdateWorkflow")
    rule = update.rules[0]
    assert (rule.method, rule.template.text, rule.body) == (
        "PATCH",
        "/v1/{workflow.name=projects/*/locations/*/workflows/*}",
        "workflow",
    )
    name = "projects/p/locations/l/workflows/w"
    request = tc.request_from_rest(
        update,
        rule,
        {"workflow.name": name},
        {"updateMask": "sourceContents,labels"},
        {"sourceContents": "x"},
    )
    assert request.workflow.name == name
    assert request.workflow.source_contents == "x"
    assert list(request.update_mask.paths) == ["source_contents", "labels"]


def test_repeated_fields_in_the_body_and_int64_given_as_a_string() -> None:
    ack = method(SUBSCRIBER, "google.pubsub.v1.Subscriber", "Acknowledge")
    request = tc.request_from_rest(
        ack, ack.rules[0], {"subscription": "projects/p/subscriptions/s"}, {}, {"ackIds": ["a", "b"]}
    )
    assert list(request.ack_ids) == ["a", "b"]
    add = method(SECRETS, "google.cloud.secretmanager.v1.SecretManagerService", "AddSecretVersion")
    request = tc.request_from_rest(
        add,
        add.rules[0],
        {"parent": "projects/p/secrets/s"},
        {},
        {"payload": {"data": "aGk=", "dataCrc32c": "3632233996"}},
    )
    assert (request.payload.data, request.payload.data_crc32c) == (b"hi", 3632233996)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "The body must be a JSON object"),
        ({"task": {"colour": "red"}}, "Invalid JSON payload received"),
    ],
)
def test_a_body_that_does_not_fit_is_an_invalid_argument(body: Any, message: str) -> None:
    with pytest.raises(tc.TranscodingError, match=message):
        tc.request_from_rest(create_task(), create_task().rules[0], {"parent": QUEUE}, {}, body)


def test_a_body_for_a_rule_without_one_is_refused() -> None:
    get = method(TASKS, "google.cloud.tasks.v2.CloudTasks", "GetTask")
    with pytest.raises(tc.TranscodingError, match="GetTask takes no request body"):
        tc.request_from_rest(get, get.rules[0], {"name": f"{QUEUE}/tasks/t"}, {}, {"x": 1})


# -- gRPC -> REST


def test_the_remaining_fields_become_flat_query_parameters_repeated_ones_as_lists() -> None:
    ack = method(SUBSCRIBER, "google.pubsub.v1.Subscriber", "Acknowledge")
    as_get = tc.HttpRule("GET", tc.PathTemplate.parse("/v1/{subscription=projects/*/subscriptions/*}:ack"))
    ack_request = ack.request_type(subscription="projects/p/subscriptions/s", ack_ids=["a", "b"])
    rest = tc.rest_from_request(as_get, ack_request)
    assert (rest.method, rest.path, rest.query, rest.body) == (
        "GET",
        "/v1/projects/p/subscriptions/s:ack",
        {"ackIds": ["a", "b"]},
        None,
    )
    policy = iam_policy_pb2.GetIamPolicyRequest(
        resource="projects/p/topics/t", options=options_pb2.GetPolicyOptions(requested_policy_version=3)
    )
    get_policy = method(PUBLISHER, "google.iam.v1.IAMPolicy", "GetIamPolicy")
    rest = tc.rest_from_request(get_policy.rules[0], policy)
    assert (rest.path, rest.query) == (
        "/v1/projects/p/topics/t:getIamPolicy",
        {"options.requestedPolicyVersion": 3},
    )


def test_responses_are_protojson_int64_as_strings_bytes_as_base64() -> None:
    access = method(SECRETS, "google.cloud.secretmanager.v1.SecretManagerService", "AccessSecretVersion")
    response = access.response_type(
        name="projects/p/secrets/s/versions/1",
        payload=secret_resources.SecretPayload.pb()(data=b"\xfe\x00", data_crc32c=3632233996),
    )
    assert tc.response_to_rest(access.rules[0], response) == {
        "name": "projects/p/secrets/s/versions/1",
        "payload": {"data": "/gA=", "dataCrc32c": "3632233996"},
    }
    publish = method(PUBLISHER, "google.pubsub.v1.Publisher", "Publish")
    only_ids = tc.HttpRule("POST", publish.rules[0].template, "*", response_body="message_ids")
    assert tc.response_to_rest(only_ids, pubsub.PublishResponse.pb()(message_ids=["1", "2"])) == ["1", "2"]


# -- round trips of real requests, one or more per service


def _executions_create() -> tc.RpcMethod:
    rule = tc.rules_from_options(
        [
            {
                "method": "post",
                "uri": "/v1/{parent=projects/*/locations/*/workflows/*}/executions",
                "body": "execution",
            }
        ]
    )
    return tc.RpcMethod(
        "google.cloud.workflows.executions.v1.Executions",
        "CreateExecution",
        ex.CreateExecutionRequest.pb(),
        ex.Execution.pb(),
        rule,
    )


def _round_trip_cases() -> list[tuple[tc.RpcMethod, Message]]:
    http = target.HttpRequest(
        url="https://example.com/step",
        http_method=target.HttpMethod.PUT,
        headers={"Content-Type": "application/json"},
        body=b'{"a": 1}',
        oidc_token=target.OidcToken(service_account_email="sa@p.iam.gserviceaccount.com"),
    )
    schedule = timestamp_pb2.Timestamp(seconds=1_767_225_600, nanos=5_000)
    created = task.Task(name=f"{QUEUE}/tasks/t1", http_request=http, schedule_time=schedule)
    tasks = "google.cloud.tasks.v2.CloudTasks"
    return [
        (
            create_task(),
            cloudtasks.CreateTaskRequest.pb(cloudtasks.CreateTaskRequest(parent=QUEUE, task=created)),
        ),
        (
            method(TASKS, tasks, "UpdateQueue"),
            cloudtasks.UpdateQueueRequest.pb(
                cloudtasks.UpdateQueueRequest(
                    queue=queue.Queue(
                        name=QUEUE, rate_limits=queue.RateLimits(max_dispatches_per_second=2.5)
                    ),
                    update_mask=field_mask_pb2.FieldMask(paths=["rate_limits"]),
                )
            ),
        ),
        (
            method(TASKS, tasks, "ListTasks"),
            cloudtasks.ListTasksRequest.pb(
                cloudtasks.ListTasksRequest(parent=QUEUE, page_size=5, response_view=task.Task.View.FULL)
            ),
        ),
        (
            method(PUBLISHER, "google.pubsub.v1.Publisher", "Publish"),
            pubsub.PublishRequest.pb(
                pubsub.PublishRequest(
                    topic="projects/p/topics/t",
                    messages=[pubsub.PubsubMessage(data=b"\x00hi", attributes={"k": "v"}, ordering_key="o")],
                )
            ),
        ),
        (
            method(SUBSCRIBER, "google.pubsub.v1.Subscriber", "CreateSubscription"),
            pubsub.Subscription.pb(
                pubsub.Subscription(
                    name="projects/p/subscriptions/s",
                    topic="projects/p/topics/t",
                    ack_deadline_seconds=30,
                    retain_acked_messages=True,
                )
            ),
        ),
        (
            method(SUBSCRIBER, "google.pubsub.v1.Subscriber", "Pull"),
            pubsub.PullRequest.pb(
                pubsub.PullRequest(subscription="projects/p/subscriptions/s", max_messages=10)
            ),
        ),
        (
            method(SECRETS, "google.cloud.secretmanager.v1.SecretManagerService", "AddSecretVersion"),
            secrets.AddSecretVersionRequest.pb(
                secrets.AddSecretVersionRequest(
                    parent="projects/p/secrets/s",
                    payload=secret_resources.SecretPayload(data=b"k", data_crc32c=2**40),
                )
            ),
        ),
        (
            method(SECRETS, "google.cloud.secretmanager.v1.SecretManagerService", "ListSecrets"),
            secrets.ListSecretsRequest.pb(
                secrets.ListSecretsRequest(parent="projects/p", filter="labels.a=b")
            ),
        ),
        (
            method(WORKFLOWS, "google.cloud.workflows.v1.Workflows", "UpdateWorkflow"),
            wf.UpdateWorkflowRequest.pb(
                wf.UpdateWorkflowRequest(
                    workflow=wf.Workflow(name="projects/p/locations/l/workflows/w", source_contents="- a:\n"),
                    update_mask=field_mask_pb2.FieldMask(paths=["source_contents"]),
                )
            ),
        ),
        (
            _executions_create(),
            ex.CreateExecutionRequest.pb(
                ex.CreateExecutionRequest(
                    parent="projects/p/locations/l/workflows/w", execution=ex.Execution(argument='{"a": 1}')
                )
            ),
        ),
    ]


@pytest.mark.parametrize(
    ("rpc", "request_message"), _round_trip_cases(), ids=lambda v: getattr(v, "name", "")
)
def test_a_real_request_survives_grpc_to_rest_and_back(rpc: tc.RpcMethod, request_message: Message) -> None:
    rule = rpc.rules[0]
    rest = tc.rest_from_request(rule, request_message)
    assert rest.method == rule.method
    variables = rule.template.match(rest.path)
    assert variables is not None, rest.path
    again = tc.request_from_rest(rpc, rule, variables, rest.query, rest.body)
    assert again == request_message
