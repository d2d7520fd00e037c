"""Service routes: deploy, list, show, scale, rolling update, remove.

Deploy, scale, update and remove answer 202 at once with the service as it is; the
work runs in the background and GET /api/v1/services/{name} shows its progress. A
dry-run update answers 200 with the plan and changes nothing.
"""

from __future__ import annotations

from litestar import Controller, Response, delete, get, post
from litestar.params import FromPath, JSONBody

from appliance.api.deps import ApplianceDep, AuthedRequest
from towerbox_core.api.services import (
    ScaleRequest,
    ServiceDeployRequest,
    ServiceUpdateAnswer,
    ServiceView,
    UpdateRequest,
)


class ServiceController(Controller):
    path = "/api/v1/services"
    tags = ("services",)

    @get("/", sync_to_thread=True)
    def list_services(self, request: AuthedRequest, appliance: ApplianceDep) -> list[ServiceView]:
        return appliance.services.list_services(request.user)

    @post("/", sync_to_thread=True, status_code=202)
    def deploy(
        self,
        request: AuthedRequest,
        data: JSONBody[ServiceDeployRequest],
        appliance: ApplianceDep,
    ) -> ServiceView:
        return appliance.services.deploy(request.user, data)

    @get("/{name:str}", sync_to_thread=True)
    def get_service(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> ServiceView:
        return appliance.services.get(request.user, name)

    @delete("/{name:str}", sync_to_thread=True, status_code=202)
    def remove(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> ServiceView:
        return appliance.services.remove(request.user, name)

    @post("/{name:str}/roles/{role:str}/scale", sync_to_thread=True, status_code=202)
    def scale(
        self,
        request: AuthedRequest,
        name: FromPath[str],
        role: FromPath[str],
        data: JSONBody[ScaleRequest],
        appliance: ApplianceDep,
    ) -> ServiceView:
        return appliance.services.scale(request.user, name, role, data.count)

    @post("/{name:str}/update", sync_to_thread=True)
    def update(
        self,
        request: AuthedRequest,
        name: FromPath[str],
        data: JSONBody[UpdateRequest],
        appliance: ApplianceDep,
    ) -> Response[ServiceUpdateAnswer]:
        answer = appliance.rollouts.update(request.user, name, data)
        return Response(answer, status_code=200 if data.dry_run else 202)
