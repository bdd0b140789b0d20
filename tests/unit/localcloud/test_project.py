"""One project number per project id (``localcloud._project``), and a number in a resource name read as
the project's id."""

from __future__ import annotations

from google.cloud.secretmanager_v1.types import resources, service
from google.pubsub_v1.types import pubsub

from localcloud._project import ProjectNumbers, as_numbers, project_number


def test_the_number_is_twelve_digits_and_the_same_every_time() -> None:
    number = project_number("my-project")
    assert number.isdigit() and len(number) == 12
    assert project_number("my-project") == number != project_number("other-project")
    assert project_number("123456789012") == "123456789012"  # a number is its own number
    assert project_number("my-project", "42") == "42"  # a number given wins


def test_a_number_in_a_name_reads_as_the_id_it_stands_for() -> None:
    numbers = ProjectNumbers("my-project")
    number = project_number("my-project")
    assert numbers.name(f"projects/{number}/secrets/x") == "projects/my-project/secrets/x"
    assert numbers.name(f"projects/{number}") == "projects/my-project"
    assert numbers.name("projects/my-project/topics/t") == "projects/my-project/topics/t"
    assert numbers.name("projects/999999999999/topics/t") == "projects/999999999999/topics/t"  # no such id
    assert numbers.name("organizations/1/x") == "organizations/1/x"


def test_an_id_named_in_a_request_is_met_and_its_number_known_from_then_on() -> None:
    numbers = ProjectNumbers()
    number = project_number("later-project")
    assert numbers.name(f"projects/{number}/topics/t") == f"projects/{number}/topics/t"
    numbers.read(pubsub.GetTopicRequest.pb()(topic="projects/later-project/topics/t"))
    assert numbers.name(f"projects/{number}/topics/t") == "projects/later-project/topics/t"


def test_read_rewrites_the_names_of_a_request_and_nothing_else() -> None:
    numbers = ProjectNumbers("my-project")
    number = project_number("my-project")
    request = pubsub.Subscription.pb()(
        name=f"projects/{number}/subscriptions/s",
        topic=f"projects/{number}/topics/t",
        dead_letter_policy={"dead_letter_topic": f"projects/{number}/topics/dead"},
        labels={"name": f"projects/{number}/topics/t"},
        filter=f'attributes.name = "projects/{number}/topics/t"',
    )
    assert numbers.read(request) == {number: "my-project"}
    assert request.name == "projects/my-project/subscriptions/s"
    assert request.topic == "projects/my-project/topics/t"
    assert request.dead_letter_policy.dead_letter_topic == "projects/my-project/topics/dead"
    assert request.labels["name"] == f"projects/{number}/topics/t"  # user data stays as it was
    assert request.filter == f'attributes.name = "projects/{number}/topics/t"'

    publish = pubsub.PublishRequest.pb()(
        topic=f"projects/{number}/topics/t",
        messages=[{"ordering_key": f"projects/{number}/topics/t", "attributes": {"topic": "projects/1/x"}}],
    )
    numbers.read(publish)
    assert publish.topic == "projects/my-project/topics/t"
    assert publish.messages[0].ordering_key == f"projects/{number}/topics/t"


def test_as_numbers_answers_with_the_number_in_a_copy() -> None:
    number = project_number("my-project")
    stored = resources.Secret.pb()(name="projects/my-project/secrets/x")
    listed = service.ListSecretsResponse.pb()(secrets=[stored])
    answer = as_numbers(listed, {number: "my-project"})
    assert answer.secrets[0].name == f"projects/{number}/secrets/x"
    assert stored.name == "projects/my-project/secrets/x"  # the stored message is left alone
    assert as_numbers(stored, {}) is stored
