"""Alert routes: the node's firing (and recently resolved) alerts, and acknowledging one."""

from __future__ import annotations

import time

from litestar import Controller, get, post
from litestar.params import FromQuery

from appliance.api.deps import ApplianceDep, AuthedRequest
from towerbox_core.api.alerts import AlertList, AlertView
from towerbox_core.api_params import RowIdPath


class AlertController(Controller):
    path = "/api/v1/alerts"
    tags = ("alerts",)

    @get("/", sync_to_thread=True)
    def list_alerts(
        self, request: AuthedRequest, appliance: ApplianceDep, all: FromQuery[bool] = False
    ) -> AlertList:
        """Firing alerts about what the caller may see (a tenant's: its own VMs);
        ``all``: recently resolved ones too, newest first."""
        return appliance.alerts.list(request.user, include_resolved=all)

    @post("/{alert_id:int}/ack", sync_to_thread=True, status_code=200)
    def ack(
        self, request: AuthedRequest, alert_id: RowIdPath, appliance: ApplianceDep
    ) -> AlertView:
        """Acknowledge a firing alert; the journal records who did (``alert.acked``)."""
        return appliance.alerts.ack(request.user, alert_id, time.time())
