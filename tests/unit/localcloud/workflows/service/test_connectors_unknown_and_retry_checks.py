"""Deploy-time behaviour around connectors and retries, through the Workflows API of the engine: a
workflow that names a connector the engine does not route deploys and runs its other paths, and fails
with a clear error only when it calls it; a ``retry`` with neither a policy nor a predicate is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.lang.errors import DeployError

NAMES_BIGQUERY = """
main:
  params: [args]
  steps:
    - choose:
        switch:
          - condition: ${args.query}
            next: query
        next: skip
    - query:
        call: googleapis.bigquery.v2.jobs.query
        args:
          projectId: ${sys.get_env("GOOGLE_CLOUD_PROJECT_ID")}
          body:
            query: SELECT 1
        result: rows
        next: done
    - skip:
        return: "other path"
    - done:
        return: ${rows}
"""

CATCHES_IT = """
- query:
    try:
      call: googleapis.bigquery.v2.jobs.query
      args:
        projectId: p
      result: rows
    retry: ${http.default_retry}
    except:
      as: e
      steps:
        - report:
            return:
              code: ${e.code}
              status: ${e.body.error.status}
              tags: ${e.tags}
"""


def test_a_workflow_naming_a_connector_not_emulated_deploys_and_runs_its_other_paths(engine: Any) -> None:
    workflow = engine.deploy(NAMES_BIGQUERY)
    done = engine.wait_until(engine.execute(workflow, {"query": False}).name)
    assert done.state.name == "SUCCEEDED", done.error
    assert json.loads(done.result) == "other path"


def test_calling_a_connector_not_emulated_fails_naming_it(engine: Any) -> None:
    workflow = engine.deploy(NAMES_BIGQUERY)
    done = engine.wait_until(engine.execute(workflow, {"query": True}).name)
    assert done.state.name == "FAILED"
    error = json.loads(done.error.payload)
    assert error["tags"] == ["HttpError"]
    assert error["code"] == 501
    assert (
        error["message"]
        == "googleapis.bigquery.v2.jobs.query is not emulated locally (HTTP 501 UNIMPLEMENTED)"
    )
    assert done.error.stack_trace.elements[0].step == "query"


def test_the_error_is_not_retried_by_the_default_policy_and_can_be_caught(engine: Any) -> None:
    done = engine.wait_until(engine.execute(engine.deploy(CATCHES_IT)).name, timeout=5)
    assert done.state.name == "SUCCEEDED", done.error
    assert json.loads(done.result) == {"code": 501, "status": "UNIMPLEMENTED", "tags": ["HttpError"]}


def test_a_malformed_connector_name_is_still_refused_at_deploy(engine: Any) -> None:
    with pytest.raises(gexc.InvalidArgument) as raised:
        engine.deploy("- q:\n    call: googleapis.bigquery.query\n")
    assert "is not a connector name" in str(raised.value)


RETRY_WITHOUT_PREDICATE = """
- init:
    assign:
      - tries: 0
- flaky:
    try:
      steps:
        - count:
            assign:
              - tries: ${tries + 1}
        - fail:
            raise: "not yet"
    retry:
      max_retries: 3
      backoff:
        initial_delay: 1
        max_delay: 10
        multiplier: 2
"""


def test_a_retry_with_neither_a_policy_nor_a_predicate_is_refused_naming_the_step(engine: Any) -> None:
    with pytest.raises(gexc.InvalidArgument) as raised:
        engine.deploy(RETRY_WITHOUT_PREDICATE)
    assert "the retry of step 'flaky' has neither a policy nor a predicate" in str(raised.value)
    with pytest.raises(DeployError) as refused:
        load_workflow(RETRY_WITHOUT_PREDICATE)
    assert (refused.value.step, refused.value.line) == ("flaky", 5)


@pytest.mark.parametrize(
    "retry",
    [
        "    retry: ${http.default_retry}\n",
        "    retry:\n      predicate: ${http.default_retry_predicate}\n      max_retries: 2\n",
        "    retry:\n      predicate: ${http.default_retry_predicate}\n",
    ],
)
def test_a_retry_with_a_policy_or_a_predicate_deploys(retry: str) -> None:
    source = "- s:\n    try:\n      return: 1\n" + retry
    assert load_workflow(source).main.steps[0].name == "s"


KUBERNETES_JOB = """
- create_job:
    call: gke.create_job
    args:
      cluster_id: my-cluster
      location: us-central1
      job:
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: hello
    result: job
- done:
    return: ${job}
"""


def test_a_kubernetes_api_connector_deploys_and_fails_as_not_emulated_when_called(engine: Any) -> None:
    done = engine.wait_until(engine.execute(engine.deploy(KUBERNETES_JOB)).name)
    assert done.state.name == "FAILED"
    error = json.loads(done.error.payload)
    assert (error["code"], error["message"]) == (
        501,
        "gke.create_job is not emulated locally (HTTP 501 UNIMPLEMENTED)",
    )


def test_only_the_kubernetes_api_connectors_functions_deploy_under_gke() -> None:
    with pytest.raises(DeployError, match=r"unknown function 'gke\.create_jobs'"):
        load_workflow(KUBERNETES_JOB.replace("gke.create_job", "gke.create_jobs"))
