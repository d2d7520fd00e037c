"""GPU routes: the node's GPUs and MIG layouts, dry-run and apply (infra-admin)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, JSONBody

from appliance.api.deps import ApplianceDep, AuthedRequest, require_node_scope
from appliance.context import Appliance
from appliance.domain.gpu.binding import process_owner
from appliance.domain.gpu.layout import MigRole
from appliance.domain.gpu.target import LayoutRequest
from appliance.services.auth import Principal
from appliance.services.gpu_layouts import claim_view
from appliance.services.gpu_schedules import Schedule
from towerbox_core.errors import NotFound
from towerbox_core.names import check_name


class MigModeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool


class ClaimRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A slice for a process or container, which gets the MIG device UUID."""

    name: str
    profile: str | None = None
    role: MigRole = MigRole.B2B
    gpu: str | None = None


class GpuController(Controller):
    path = "/api/v1/gpus"
    tags = ("gpus",)

    @get("/", sync_to_thread=True)
    def list_gpus(self, request: AuthedRequest, appliance: ApplianceDep) -> dict[str, Any]:
        require_node_scope(request.user)
        return {"backend": appliance.gpus.line, "gpus": appliance.gpus.list_gpus()}

    @get("/schedules", sync_to_thread=True)
    def schedules(self, request: AuthedRequest, appliance: ApplianceDep) -> list[dict[str, Any]]:
        require_node_scope(request.user)
        return appliance.gpu_schedules.list()

    @put("/schedules/{name:str}", sync_to_thread=True)
    def put_schedule(
        self,
        request: AuthedRequest,
        name: FromPath[str],
        data: JSONBody[Schedule],
        appliance: ApplianceDep,
    ) -> dict[str, Any]:
        return appliance.gpu_schedules.put(request.user, name, data)

    @delete("/schedules/{name:str}", sync_to_thread=True)
    def delete_schedule(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> None:
        appliance.gpu_schedules.delete(request.user, name)

    @get("/claims", sync_to_thread=True)
    def claims(self, request: AuthedRequest, appliance: ApplianceDep) -> list[dict[str, Any]]:
        require_node_scope(request.user)
        return appliance.gpus.claims()

    @post("/claims", sync_to_thread=True, status_code=201)
    def claim(
        self, request: AuthedRequest, data: JSONBody[ClaimRequest], appliance: ApplianceDep
    ) -> dict[str, Any]:
        return claim_for_process(appliance, request.user, data)

    @delete("/claims/{name:str}", sync_to_thread=True)
    def release(self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep) -> None:
        request.user.require_infra_admin()
        check_name("process", name)
        if not appliance.gpus.release(process_owner(name)):
            raise NotFound(f"process {name!r} holds no GPU slice", code="claim_not_found")

    @get("/{uuid:str}", sync_to_thread=True)
    def get_gpu(
        self, request: AuthedRequest, uuid: FromPath[str], appliance: ApplianceDep
    ) -> dict[str, Any]:
        require_node_scope(request.user)
        return appliance.gpus.get(uuid)

    @get("/{uuid:str}/profiles", sync_to_thread=True)
    def profiles(
        self, request: AuthedRequest, uuid: FromPath[str], appliance: ApplianceDep
    ) -> list[dict[str, Any]]:
        require_node_scope(request.user)
        return appliance.gpus.profiles(uuid)

    @get("/layouts", sync_to_thread=True)
    def layouts(self, request: AuthedRequest, appliance: ApplianceDep) -> dict[str, Any]:
        require_node_scope(request.user)
        return msgspec.to_builtins(appliance.gpus.layouts)  # type: ignore[no-any-return]

    @post("/{uuid:str}/mig-mode", sync_to_thread=True, status_code=200)
    def mig_mode(
        self,
        request: AuthedRequest,
        uuid: FromPath[str],
        data: JSONBody[MigModeRequest],
        appliance: ApplianceDep,
    ) -> dict[str, bool]:
        return appliance.gpus.set_mig_mode(request.user, uuid, data.enabled)

    @post("/{uuid:str}/plan", sync_to_thread=True, status_code=200)
    def plan(
        self,
        request: AuthedRequest,
        uuid: FromPath[str],
        data: JSONBody[LayoutRequest],
        appliance: ApplianceDep,
    ) -> dict[str, Any]:
        require_node_scope(request.user)
        return appliance.gpus.plan(uuid, data)

    @post("/{uuid:str}/apply", sync_to_thread=True, status_code=200)
    def apply(
        self,
        request: AuthedRequest,
        uuid: FromPath[str],
        data: JSONBody[LayoutRequest],
        appliance: ApplianceDep,
    ) -> dict[str, Any]:
        return appliance.gpus.apply(request.user, uuid, data)


def claim_for_process(appliance: Appliance, user: Principal, req: ClaimRequest) -> dict[str, Any]:
    user.require_infra_admin()
    check_name("process", req.name)
    owner = process_owner(req.name)
    info, inst, gi, _ = appliance.gpus.claim(owner, req.profile, req.role, req.gpu)
    return claim_view(info, inst, gi)
