"""VM routes: a thin layer over VmService, run in worker threads (libvirt blocks)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from appliance.api.deps import ApplianceDep, AuthedRequest
from towerbox_core.api.vms import (
    ShutdownRequest,
    VmCreateRequest,
    VmDetail,
    VmShutdown,
    VmStats,
    VmSummary,
)
from towerbox_core.errors import InvalidInput


class VmController(Controller):
    path = "/api/v1/vms"
    tags = ("vms",)

    @get("/", sync_to_thread=True)
    def list_vms(self, request: AuthedRequest, appliance: ApplianceDep) -> list[VmSummary]:
        return appliance.vms.list_vms(request.user)

    @post("/", sync_to_thread=True)
    def create_vm(
        self, request: AuthedRequest, data: JSONBody[VmCreateRequest], appliance: ApplianceDep
    ) -> VmDetail:
        return appliance.vms.create(request.user, data)

    @get("/{name:str}", sync_to_thread=True)
    def get_vm(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> VmDetail:
        return appliance.vms.get(request.user, name)

    @delete("/{name:str}", sync_to_thread=True)
    def delete_vm(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> None:
        appliance.vms.delete(request.user, name)

    @post("/{name:str}/start", sync_to_thread=True, status_code=200)
    def start(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> VmSummary:
        return appliance.vms.start(request.user, name)

    @post("/{name:str}/shutdown", sync_to_thread=True, status_code=200)
    def shutdown(
        self,
        request: AuthedRequest,
        name: FromPath[str],
        appliance: ApplianceDep,
        data: JSONBody[ShutdownRequest | None] = None,
    ) -> VmShutdown:
        timeout = data.timeout_s if data else None
        if timeout is not None and not 0 <= timeout <= 3600:
            raise InvalidInput(
                "timeout_s must be between 0 and 3600", code="invalid_timeout", field="timeout_s"
            )
        return appliance.vms.shutdown(request.user, name, timeout)

    @post("/{name:str}/stop", sync_to_thread=True, status_code=200)
    def stop(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> VmSummary:
        return appliance.vms.stop(request.user, name)

    @post("/{name:str}/reboot", sync_to_thread=True, status_code=200)
    def reboot(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> VmSummary:
        return appliance.vms.reboot(request.user, name)

    @get("/{name:str}/console", sync_to_thread=True, media_type="text/plain; charset=utf-8")
    def console(
        self,
        request: AuthedRequest,
        name: FromPath[str],
        appliance: ApplianceDep,
        lines: Annotated[int, QueryParameter(ge=1, le=10_000)] = 200,
    ) -> str:
        return appliance.vms.console(request.user, name, lines)

    @get("/{name:str}/stats", sync_to_thread=True)
    def stats(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> VmStats:
        stats = appliance.vms.stats(request.user, name)
        return msgspec.structs.replace(stats, gpu=appliance.top.gpu_history.history(stats.name))
