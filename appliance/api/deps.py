"""Types the route modules share: the injected appliance and the authed request."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from appliance.context import Appliance
from appliance.services.auth import Principal
from towerbox_core.errors import Forbidden

ApplianceDep = NamedDependency[Appliance]
AuthedRequest = Request[Principal, str, Any]


def require_node_scope(principal: Principal) -> None:
    """Node-wide data (host, journal, trunks) is for infra-admins and tenant-less viewers."""
    if not principal.can_see(None):
        raise Forbidden(
            "node-wide data needs infra-admin or a tenant-less viewer", code="node_scope_required"
        )
