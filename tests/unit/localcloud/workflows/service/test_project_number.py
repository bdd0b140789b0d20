"""A workflow's ``GOOGLE_CLOUD_PROJECT_NUMBER`` is the local cloud's number for its project, and names the
project to the emulators: workflows-samples' ``connector_access_secret`` names its secret that way."""

from __future__ import annotations

import json

from localcloud._project import project_number
from tests.unit.localcloud.workflows.service.conftest import Engine

# connector_access_secret.workflows.yaml's steps, returning what they read.
ACCESS_BY_NUMBER = """
- init_variables:
    assign:
      - project: ${sys.get_env("GOOGLE_CLOUD_PROJECT_NUMBER")}
      - secret: "number-secret"
      - version: 1
- create_secret:
    call: googleapis.secretmanager.v1.projects.secrets.create
    args:
      parent: ${"projects/" + sys.get_env("GOOGLE_CLOUD_PROJECT_ID")}
      secretId: ${secret}
      body:
        replication:
          automatic: {}
- add_version:
    call: googleapis.secretmanager.v1.projects.secrets.addVersionString
    args:
      secret_id: ${secret}
      project_id: ${sys.get_env("GOOGLE_CLOUD_PROJECT_ID")}
      data: "by number"
- get_secret:
    call: googleapis.secretmanager.v1.projects.secrets.versions.access
    args:
      name: ${"projects/" + project + "/secrets/" + secret + "/versions/" + string(version)}
    result: secret_result
- done:
    return:
      number: ${project}
      name: ${secret_result.name}
      value: ${text.decode(base64.decode(secret_result.payload.data))}
"""


def test_the_project_number_names_the_workflows_project(engine: Engine) -> None:
    workflow = engine.deploy(ACCESS_BY_NUMBER)
    ended = engine.wait_until(engine.execute(workflow).name)
    assert ended.state.name == "SUCCEEDED", ended.error
    number = project_number(workflow.name.split("/")[1])
    assert json.loads(ended.result) == {
        "number": number,
        "name": f"projects/{number}/secrets/number-secret/versions/1",
        "value": "by number",
    }
