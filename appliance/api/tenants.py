"""A tenant's Virtual Data Center: quotas, grants and usage (the list and create
routes are with the accounts routes)."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.params import FromPath, JSONBody

from appliance.api.deps import ApplianceDep, AuthedRequest
from towerbox_core.api.tenants import (
    GrantsAnswer,
    GrantsUpdate,
    QuotasAnswer,
    QuotasUpdate,
    TenantDetail,
    VmOptions,
)


class TenantController(Controller):
    path = "/api/v1/tenants"
    tags = ("tenants",)

    @get("/{name:str}", sync_to_thread=True)
    def get_tenant(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> TenantDetail:
        """Quotas, grants and usage; a tenant's users see their own tenant only."""
        return appliance.tenants.detail(request.user, name)

    @get("/{name:str}/vm-options", sync_to_thread=True)
    def vm_options(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> VmOptions:
        """Roles, grants, GPU profiles and NUMA nodes a VM of this tenant may ask for."""
        return appliance.tenants.vm_options(request.user, name)

    @put("/{name:str}/quotas", sync_to_thread=True)
    def put_quotas(
        self,
        request: AuthedRequest,
        name: FromPath[str],
        data: JSONBody[QuotasUpdate],
        appliance: ApplianceDep,
    ) -> QuotasAnswer:
        """Change quotas (infra-admin); one below usage blocks new allocations only."""
        return appliance.tenants.set_quotas(request.user, name, data)

    @put("/{name:str}/grants", sync_to_thread=True)
    def put_grants(
        self,
        request: AuthedRequest,
        name: FromPath[str],
        data: JSONBody[GrantsUpdate],
        appliance: ApplianceDep,
    ) -> GrantsAnswer:
        """Grant or revoke (infra-admin): maps merge, 0 revokes, pci_devices replaces."""
        return appliance.tenants.set_grants(request.user, name, data)
