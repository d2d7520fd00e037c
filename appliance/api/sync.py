"""Sync routes: journal acks and summary, the agent's status, desired-state documents.

The ``sync-agent`` role reaches only the routes marked ``opt={"sync_agent": True}``;
the app-wide guard below refuses it everywhere else.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post, put
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, JSONBody

from appliance.api.deps import ApplianceDep, AuthedRequest
from appliance.services.auth import Principal, Role
from towerbox_core.api.sync import (
    AckRequest,
    AgentToken,
    AgentTokenRequest,
    DesiredApplied,
    DesiredKindSummary,
    JournalAcked,
    JournalSummary,
    OverrideRequest,
    Overrides,
    SyncStatusView,
)
from towerbox_core.api_params import OptionalCountQuery
from towerbox_core.errors import Forbidden
from towerbox_core.json_depth import MAX_WIRE_JSON_DEPTH
from towerbox_core.json_request import OPT_KEY as JSON_DEPTH_OPT
from towerbox_core.wire import AgentStatus, DesiredDocument

SYNC_AGENT_OPEN = {"sync_agent": True}
# A desired document wraps the operator's document, which the registry bounded.
_DESIRED_OPT = {**SYNC_AGENT_OPEN, JSON_DEPTH_OPT: MAX_WIRE_JSON_DEPTH}


def sync_agent_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    principal = connection.scope.get("user")
    if (
        isinstance(principal, Principal)
        and principal.role is Role.SYNC_AGENT
        and not handler.opt.get("sync_agent")
    ):
        principal.refuse_sync_agent()


def require_sync_scope(principal: Principal) -> None:
    """The journal and sync routes: the agent, infra-admins, tenant-less viewers (read)."""
    if principal.role is Role.SYNC_AGENT or principal.can_see(None):
        return
    raise Forbidden(
        "the journal needs the sync-agent or infra-admin role", code="node_scope_required"
    )


def require_sync_write(principal: Principal) -> None:
    if principal.role is not Role.SYNC_AGENT:
        principal.require_infra_admin()


class SyncController(Controller):
    path = "/api/v1"
    tags = ("sync",)

    @post("/journal/ack", sync_to_thread=True, status_code=200, opt=SYNC_AGENT_OPEN)
    def ack(
        self, request: AuthedRequest, data: JSONBody[AckRequest], appliance: ApplianceDep
    ) -> JournalAcked:
        require_sync_write(request.user)
        acked = appliance.journal.ack(data.seq)
        appliance.events.sync_changed(appliance.sync.view())
        return acked

    @get("/journal/summary", sync_to_thread=True, opt=SYNC_AGENT_OPEN)
    def summary(
        self,
        request: AuthedRequest,
        appliance: ApplianceDep,
        through: OptionalCountQuery = None,
    ) -> JournalSummary:
        require_sync_scope(request.user)
        return appliance.journal.summary(through)

    @put("/sync/status", sync_to_thread=True, opt=SYNC_AGENT_OPEN)
    def put_status(
        self, request: AuthedRequest, data: JSONBody[AgentStatus], appliance: ApplianceDep
    ) -> SyncStatusView:
        require_sync_write(request.user)
        appliance.sync.put(data)
        view = appliance.sync.view()
        appliance.events.sync_changed(view)
        return view

    @get("/sync/status", sync_to_thread=True, opt=SYNC_AGENT_OPEN)
    def get_status(self, request: AuthedRequest, appliance: ApplianceDep) -> SyncStatusView:
        require_sync_scope(request.user)
        return appliance.sync.view()

    @post("/sync/agent-token", sync_to_thread=True)
    def agent_token(
        self, request: AuthedRequest, data: JSONBody[AgentTokenRequest], appliance: ApplianceDep
    ) -> AgentToken:
        token = appliance.auth.sync_agent_token(request.user, data.name)
        return AgentToken(token=token, name=data.name, role=Role.SYNC_AGENT.value)

    @post("/desired/{kind:str}", sync_to_thread=True, status_code=200, opt=_DESIRED_OPT)
    def post_desired(
        self,
        request: AuthedRequest,
        kind: FromPath[str],
        data: JSONBody[DesiredDocument],
        appliance: ApplianceDep,
    ) -> DesiredApplied:
        require_sync_write(request.user)
        return appliance.desired.apply(kind, data)

    @get("/desired", sync_to_thread=True)
    def desired(
        self, request: AuthedRequest, appliance: ApplianceDep
    ) -> dict[str, DesiredKindSummary]:
        return appliance.desired.summary(request.user)

    @put("/desired/{kind:str}/overrides", sync_to_thread=True)
    def override(
        self,
        request: AuthedRequest,
        kind: FromPath[str],
        data: JSONBody[OverrideRequest],
        appliance: ApplianceDep,
    ) -> Overrides:
        marked = appliance.desired.set_override(
            request.user, kind, data.object_id, data.local_override
        )
        return Overrides(kind=kind, local_overrides=marked)
