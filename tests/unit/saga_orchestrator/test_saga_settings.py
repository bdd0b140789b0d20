from __future__ import annotations

import pytest
from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.settings import Settings


def test_defaults_are_the_deployment_env_values():
    s = Settings.from_env({})
    assert s.project_id == "local-project"
    assert s.result_topic_path == "projects/local-project/topics/saga-results"
    assert s.workflow_path == "projects/local-project/locations/us-central1/workflows/saga-orchestrator"
    assert s.queue_path == "projects/local-project/locations/us-central1/queues/saga-tasks"
    assert s.queue_max_attempts == 20
    assert s.queue_min_backoff_seconds == 0.5
    assert s.allowed_hosts == ("127.0.0.1", "localhost")
    assert s.default_execute_max_attempts == 5
    assert s.default_compensate_max_attempts == 10
    assert s.metadata_host is None


def test_values_come_from_the_mapping_given():
    s = Settings.from_env(
        {
            "SAGA_PROJECT_ID": "shop",
            "SAGA_ALLOWED_HOSTS": " a.example.com , *.svc.local:8443,",
            "SAGA_MAX_STEPS": "7",
            "GCE_METADATA_HOST": "127.0.0.1:8089",
        }
    )
    assert s.project_id == "shop"
    assert s.allowed_hosts == ("a.example.com", "*.svc.local:8443")
    assert s.max_steps == 7
    assert s.metadata_host == "127.0.0.1:8089"


def test_every_malformed_variable_is_reported_at_once():
    with pytest.raises(InvalidRequestError) as caught:
        Settings.from_env(
            {
                "SAGA_MAX_STEPS": "many",
                "SAGA_QUEUE_MIN_BACKOFF_SECONDS": "-1",
                "SAGA_DISPATCH_DEADLINE_SECONDS": "5000",
            }
        )
    assert caught.value.errors == [
        FieldError("SAGA_QUEUE_MIN_BACKOFF_SECONDS", "must be at least 0, got -1"),
        FieldError("SAGA_MAX_STEPS", "must be an integer, got 'many'"),
        FieldError("SAGA_DISPATCH_DEADLINE_SECONDS", "must be at most 1800 (Cloud Tasks limit)"),
    ]


def test_retry_delays_follow_the_documented_cloud_tasks_schedule():
    # The facts sheet's example: min 10 s, max 300 s, 3 doublings.
    s = Settings.from_env(
        {
            "SAGA_QUEUE_MIN_BACKOFF_SECONDS": "10",
            "SAGA_QUEUE_MAX_BACKOFF_SECONDS": "300",
            "SAGA_QUEUE_MAX_DOUBLINGS": "3",
        }
    )
    assert [s.retry_delay_seconds(k) for k in range(1, 9)] == [10, 20, 40, 80, 160, 240, 300, 300]


def test_retry_delays_of_the_default_queue():
    s = Settings.from_env({})
    assert [s.retry_delay_seconds(k) for k in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
