"""Workflows RPC handlers, named after the RPCs of ``google.cloud.workflows.v1.Workflows`` and of the
``google.longrunning.Operations`` its clients poll. Requests and responses are the proto-plus types of
``google-cloud-workflows``; every rule lives in :mod:`localcloud.workflows.service.state`.

Pages: ``ListWorkflows`` 500 by default, at most 1,000, its token the last name sent;
``ListWorkflowRevisions`` 20 by default, at most 100, its token an offset.
"""

from __future__ import annotations

from typing import Any

from google.cloud.workflows_v1.types import workflows as wf
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from localcloud.workflows.service.protos import pages, workflow_proto
from localcloud.workflows.service.records import WorkflowRecord
from localcloud.workflows.service.state import WorkflowsState

WORKFLOW_PAGES = pages(default_size=500, max_size=1000)
REVISION_PAGES = pages(default_size=20, max_size=100)


def _name(record: WorkflowRecord) -> str:
    return record.name


class WorkflowsApi:
    def __init__(self, state: WorkflowsState) -> None:
        self.state = state

    async def CreateWorkflow(
        self, request: wf.CreateWorkflowRequest, context: Any
    ) -> operations_pb2.Operation:
        return self.state.create_workflow(request.parent, request.workflow_id, request.workflow)

    async def GetWorkflow(self, request: wf.GetWorkflowRequest, context: Any) -> wf.Workflow:
        return workflow_proto(*self.state.revision(request.name, request.revision_id))

    async def ListWorkflows(self, request: wf.ListWorkflowsRequest, context: Any) -> wf.ListWorkflowsResponse:
        records = self.state.list_workflows(request.parent)
        page, token = WORKFLOW_PAGES.after_key_page(records, request.page_size, request.page_token, _name)
        workflows = [workflow_proto(r, r.latest) for r in page]
        return wf.ListWorkflowsResponse(workflows=workflows, next_page_token=token)

    async def UpdateWorkflow(
        self, request: wf.UpdateWorkflowRequest, context: Any
    ) -> operations_pb2.Operation:
        paths = set(request.update_mask.paths) if request.update_mask else set()
        return self.state.update_workflow(request.workflow, paths)

    async def DeleteWorkflow(
        self, request: wf.DeleteWorkflowRequest, context: Any
    ) -> operations_pb2.Operation:
        return self.state.delete_workflow(request.name)

    async def ListWorkflowRevisions(
        self, request: wf.ListWorkflowRevisionsRequest, context: Any
    ) -> wf.ListWorkflowRevisionsResponse:
        record = self.state.workflow(request.name)
        newest_first = list(reversed(record.revisions))
        page, token = REVISION_PAGES.offset_page(newest_first, request.page_size, request.page_token)
        workflows = [workflow_proto(record, r) for r in page]
        return wf.ListWorkflowRevisionsResponse(workflows=workflows, next_page_token=token)


class OperationsApi:
    def __init__(self, state: WorkflowsState) -> None:
        self.state = state

    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: Any
    ) -> operations_pb2.Operation:
        return self.state.operation(request.name)

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: Any
    ) -> operations_pb2.ListOperationsResponse:
        return operations_pb2.ListOperationsResponse(operations=self.state.list_operations(request.name))

    async def DeleteOperation(
        self, request: operations_pb2.DeleteOperationRequest, context: Any
    ) -> empty_pb2.Empty:
        self.state.delete_operation(request.name)
        return empty_pb2.Empty()


WORKFLOWS_REQUEST_TYPES: dict[str, Any] = {
    "CreateWorkflow": wf.CreateWorkflowRequest,
    "GetWorkflow": wf.GetWorkflowRequest,
    "ListWorkflows": wf.ListWorkflowsRequest,
    "UpdateWorkflow": wf.UpdateWorkflowRequest,
    "DeleteWorkflow": wf.DeleteWorkflowRequest,
    "ListWorkflowRevisions": wf.ListWorkflowRevisionsRequest,
}
OPERATIONS_REQUEST_TYPES: dict[str, Any] = {
    "GetOperation": operations_pb2.GetOperationRequest,
    "ListOperations": operations_pb2.ListOperationsRequest,
    "DeleteOperation": operations_pb2.DeleteOperationRequest,
}
