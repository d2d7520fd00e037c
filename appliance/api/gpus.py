"""GPU routes: the node's GPUs and MIG layouts, dry-run and apply (infra-admin)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from appliance.api.deps import ApplianceDep, AuthedRequest, require_node_scope
from appliance.services.gpu_claims import claim_for_process, release_for_process, visible_claims
from towerbox_core.api.gpus import (
    ClaimRequest,
    GpuClaim,
    GpuList,
    GpuView,
    LayoutApplied,
    LayoutApply,
    LayoutPlan,
    LayoutRequest,
    MigModeAnswer,
    MigModeRequest,
    MigProfileView,
    Schedule,
    ScheduleView,
)


class GpuController(Controller):
    path = "/api/v1/gpus"
    tags = ("gpus",)

    @get("/", sync_to_thread=True)
    def list_gpus(self, request: AuthedRequest, appliance: ApplianceDep) -> GpuList:
        require_node_scope(request.user)
        return GpuList(backend=appliance.gpus.line, gpus=appliance.gpus.list_gpus())

    @get("/schedules", sync_to_thread=True)
    def schedules(self, request: AuthedRequest, appliance: ApplianceDep) -> list[ScheduleView]:
        require_node_scope(request.user)
        return appliance.gpu_schedules.list()

    @put("/schedules/{name:str}", sync_to_thread=True)
    def put_schedule(
        self,
        request: AuthedRequest,
        name: FromPath[str],
        data: JSONBody[Schedule],
        appliance: ApplianceDep,
    ) -> ScheduleView:
        return appliance.gpu_schedules.put(request.user, name, data)

    @delete("/schedules/{name:str}", sync_to_thread=True)
    def delete_schedule(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> None:
        appliance.gpu_schedules.delete(request.user, name)

    @get("/claims", sync_to_thread=True)
    def claims(self, request: AuthedRequest, appliance: ApplianceDep) -> list[GpuClaim]:
        return visible_claims(appliance.gpu_claims, request.user)

    @post("/claims", sync_to_thread=True, status_code=201)
    def claim(
        self, request: AuthedRequest, data: JSONBody[ClaimRequest], appliance: ApplianceDep
    ) -> GpuClaim:
        return claim_for_process(appliance.gpu_claims, appliance.tenants, request.user, data)

    @delete("/claims/{name:str}", sync_to_thread=True)
    def release(
        self,
        request: AuthedRequest,
        name: FromPath[str],
        appliance: ApplianceDep,
        tenant: Annotated[str | None, QueryParameter(max_length=63)] = None,
    ) -> None:
        """Release a process's slice; ``tenant``: an infra-admin releasing a tenant's."""
        release_for_process(appliance.gpu_claims, appliance.tenants, request.user, name, tenant)

    @get("/{uuid:str}", sync_to_thread=True)
    def get_gpu(
        self, request: AuthedRequest, uuid: FromPath[str], appliance: ApplianceDep
    ) -> GpuView:
        require_node_scope(request.user)
        return appliance.gpus.get(uuid)

    @get("/{uuid:str}/profiles", sync_to_thread=True)
    def profiles(
        self, request: AuthedRequest, uuid: FromPath[str], appliance: ApplianceDep
    ) -> list[MigProfileView]:
        require_node_scope(request.user)
        return appliance.gpus.profiles(uuid)

    @get("/layouts", sync_to_thread=True)
    def layouts(self, request: AuthedRequest, appliance: ApplianceDep) -> dict[str, LayoutRequest]:
        """The named layouts (configuration and central documents), by name."""
        require_node_scope(request.user)
        return dict(appliance.gpus.layouts)

    @post("/{uuid:str}/mig-mode", sync_to_thread=True, status_code=200)
    def mig_mode(
        self,
        request: AuthedRequest,
        uuid: FromPath[str],
        data: JSONBody[MigModeRequest],
        appliance: ApplianceDep,
    ) -> MigModeAnswer:
        return appliance.gpus.set_mig_mode(request.user, uuid, data.enabled)

    @post("/{uuid:str}/plan", sync_to_thread=True, status_code=200)
    def plan(
        self,
        request: AuthedRequest,
        uuid: FromPath[str],
        data: JSONBody[LayoutRequest],
        appliance: ApplianceDep,
    ) -> LayoutPlan:
        require_node_scope(request.user)
        return appliance.gpus.plan(uuid, data)

    @post("/{uuid:str}/apply", sync_to_thread=True, status_code=200)
    def apply(
        self,
        request: AuthedRequest,
        uuid: FromPath[str],
        data: JSONBody[LayoutApply],
        appliance: ApplianceDep,
    ) -> LayoutApplied:
        return appliance.gpus.apply(request.user, uuid, data)
