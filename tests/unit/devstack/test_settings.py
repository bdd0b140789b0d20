from __future__ import annotations

from pathlib import Path

import pytest

from devstack.settings import DEFAULT_PATH, DeploymentSettings, SettingsFileError, parse_env_file

FUNCTION_ENV = [
    "SAGA_PROJECT_ID",
    "SAGA_LOCATION",
    "SAGA_REQUEST_TOPIC",
    "SAGA_RESULT_TOPIC",
    "SAGA_TASK_QUEUE",
    "SAGA_WORKFLOW",
    "SAGA_QUEUE_MAX_ATTEMPTS",
    "SAGA_QUEUE_MIN_BACKOFF_SECONDS",
    "SAGA_QUEUE_MAX_BACKOFF_SECONDS",
    "SAGA_QUEUE_MAX_DOUBLINGS",
    "SAGA_DISPATCH_DEADLINE_SECONDS",
    "SAGA_ALLOWED_HOSTS",
    "SAGA_MAX_STEPS",
    "SAGA_DEFAULT_DEADLINE_SECONDS",
    "SAGA_DEFAULT_STEP_TIMEOUT_SECONDS",
    "SAGA_DEFAULT_EXECUTE_MAX_ATTEMPTS",
    "SAGA_DEFAULT_COMPENSATE_MAX_ATTEMPTS",
    "SAGA_SECRET_CACHE_SECONDS",
]


def test_parse_keeps_values_verbatim_and_skips_comments_and_blanks() -> None:
    text = "# a comment\n\nA=1\n  B = two words  \nC=x=y#not-a-comment\nEMPTY=\n"
    assert parse_env_file(text) == {"A": "1", "B": "two words", "C": "x=y#not-a-comment", "EMPTY": ""}


def test_a_line_without_equals_is_an_error_naming_the_line() -> None:
    with pytest.raises(SettingsFileError) as caught:
        parse_env_file("A=1\nthis is wrong\n", path="my.env")
    assert caught.value.line == 2
    assert str(caught.value).startswith("my.env:2:")


def test_a_lowercase_key_is_an_error() -> None:
    with pytest.raises(SettingsFileError, match="not a valid key"):
        parse_env_file("saga_project=1\n")


def test_environment_overrides_keys_of_the_file_only(tmp_path: Path) -> None:
    file = tmp_path / "d.env"
    file.write_text("SAGA_PROJECT_ID=from-file\nSAGA_LOCATION=europe-west1\n")
    settings = DeploymentSettings.load(file, env={"SAGA_PROJECT_ID": "from-env", "SAGA_OTHER": "ignored"})
    assert dict(settings) == {"SAGA_PROJECT_ID": "from-env", "SAGA_LOCATION": "europe-west1"}


def test_the_repository_file_gives_every_function_variable() -> None:
    settings = DeploymentSettings.load(DEFAULT_PATH, env={})
    assert set(FUNCTION_ENV) <= set(settings.saga_env())
    assert all(key.startswith("SAGA_") for key in settings.saga_env())
    assert "DEPLOY_RUNTIME" in settings and "DEPLOY_RUNTIME" not in settings.saga_env()


def test_service_accounts_become_emails_of_the_project() -> None:
    settings = DeploymentSettings(
        data={"SAGA_PROJECT_ID": "p1", "SAGA_TASKS_INVOKER_SA": "saga-tasks-invoker"}
    )
    assert (
        settings.service_account_email("SAGA_TASKS_INVOKER_SA")
        == "saga-tasks-invoker@p1.iam.gserviceaccount.com"
    )


def test_secret_names_are_a_comma_separated_list() -> None:
    settings = DeploymentSettings(data={"SAGA_SECRETS": "payment-api-key, other ,"})
    assert settings.secret_names() == ("payment-api-key", "other")


def test_a_missing_required_key_names_the_file_and_the_key() -> None:
    settings = DeploymentSettings(data={}, source="x.env")
    with pytest.raises(KeyError, match=r"x\.env has no value for SAGA_PROJECT_ID"):
        _ = settings.project_id


def test_with_values_returns_a_changed_copy() -> None:
    settings = DeploymentSettings(data={"SAGA_MAX_STEPS": "20"})
    changed = settings.with_values({"SAGA_MAX_STEPS": "3"})
    assert (settings["SAGA_MAX_STEPS"], changed["SAGA_MAX_STEPS"]) == ("20", "3")
