"""Executions RPC handlers, named after the RPCs of ``google.cloud.workflows.executions.v1.Executions``.

These run once or more per saga, so they take and answer the raw protobuf messages behind the
proto-plus types (no wrapping); every rule lives in :mod:`localcloud.workflows.service.state`.

``GetExecution`` answers the FULL view by default, ``ListExecutions`` the BASIC one. ``ListExecutions``
pages hold 100 executions by default, at most 1,000 (BASIC) or 100 (FULL); newest first, the token is
the last execution sent, so executions started between two pages do not shift them; with ``orderBy`` it
is an offset.

With ``LOCALCLOUD_QUOTAS`` set, Create and Cancel are charged to Google's write quota, List and Get to their
own, per project and location (``localcloud.quotas``); over quota the call fails with RESOURCE_EXHAUSTED
(HTTP 429) before anything else is checked.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from google.cloud.workflows.executions_v1.types import executions as ex

from localcloud.quotas import EXECUTIONS_CREATE, EXECUTIONS_GET, EXECUTIONS_LIST, Quotas, location_key
from localcloud.workflows.service.protos import execution_proto, pages
from localcloud.workflows.service.state import WorkflowsState

BASIC_PAGES = pages(default_size=100, max_size=1000)
FULL_PAGES = pages(default_size=100, max_size=100)
_LIST_EXECUTIONS_RESPONSE_PB: Any = ex.ListExecutionsResponse.pb()
_SEQ = attrgetter("seq")


class ExecutionsApi:
    def __init__(self, state: WorkflowsState, quotas: Quotas | None = None) -> None:
        self.state = state
        self.quotas = quotas or Quotas(clock=state.clock)

    async def CreateExecution(self, request: Any, context: Any) -> Any:
        self.quotas.charge(EXECUTIONS_CREATE, location_key(request.parent))
        return execution_proto(self.state.create_execution(request.parent, request.execution))

    async def GetExecution(self, request: Any, context: Any) -> Any:
        self.quotas.charge(EXECUTIONS_GET, location_key(request.name))
        return execution_proto(self.state.execution(request.name), request.view or ex.ExecutionView.FULL)

    async def ListExecutions(self, request: Any, context: Any) -> Any:
        self.quotas.charge(EXECUTIONS_LIST, location_key(request.parent))
        view = request.view or ex.ExecutionView.BASIC
        records, ordered = self.state.list_executions(request.parent, request.filter, request.order_by)
        paging = FULL_PAGES if view == ex.ExecutionView.FULL else BASIC_PAGES
        if ordered:
            page, token = paging.offset_page(records, request.page_size, request.page_token)
        else:
            page, token = paging.after_key_page(
                records, request.page_size, request.page_token, _SEQ, parse=int, descending=True
            )
        executions = [execution_proto(r, view) for r in page]
        return _LIST_EXECUTIONS_RESPONSE_PB(executions=executions, next_page_token=token)

    async def CancelExecution(self, request: Any, context: Any) -> Any:
        self.quotas.charge(EXECUTIONS_CREATE, location_key(request.name))  # Google's "write requests"
        return execution_proto(self.state.cancel_execution(request.name))


EXECUTIONS_REQUEST_TYPES: dict[str, Any] = {
    "CreateExecution": ex.CreateExecutionRequest.pb(),
    "GetExecution": ex.GetExecutionRequest.pb(),
    "ListExecutions": ex.ListExecutionsRequest.pb(),
    "CancelExecution": ex.CancelExecutionRequest.pb(),
}
