"""N6 routes: trunks and tenant VNets, plan and apply, live state, UPF configuration.

Bodies are parsed by upf_bridge.parse, which names the field and gives each refusal
a stable code; every edit is validated against the whole declaration.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, delete, get, patch, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from appliance.api.deps import ApplianceDep, AuthedRequest, require_node_scope
from towerbox_core.api.n6 import (
    DeclarationBody,
    N6Changes,
    N6Status,
    PfcpSession,
    TrunkDeclaration,
    UpfConfig,
    VnetDeclaration,
    VnetState,
)
from towerbox_core.errors import InvalidInput
from towerbox_core.openapi_problems import problem_responses


def _same_name(body: dict[str, Any], name: str) -> dict[str, Any]:
    if body.setdefault("name", name) != name:
        raise InvalidInput(
            f"the body names {body['name']!r} but the path {name!r}",
            code="name_mismatch",
            field="name",
        )
    return body


class N6Controller(Controller):
    path = "/api/v1/n6"
    tags = ("n6",)

    @get("/trunks", sync_to_thread=True)
    def trunks(self, request: AuthedRequest, appliance: ApplianceDep) -> list[TrunkDeclaration]:
        require_node_scope(request.user)
        return appliance.n6.trunks()

    @put("/trunks/{name:str}", sync_to_thread=True)
    def put_trunk(
        self,
        request: AuthedRequest,
        name: FromPath[str],
        data: JSONBody[DeclarationBody],
        appliance: ApplianceDep,
    ) -> TrunkDeclaration:
        return appliance.n6.put_trunk(request.user, _same_name(data, name))

    @delete("/trunks/{name:str}", sync_to_thread=True)
    def delete_trunk(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> None:
        appliance.n6.delete_trunk(request.user, name)

    @get("/vnets", sync_to_thread=True)
    def vnets(self, request: AuthedRequest, appliance: ApplianceDep) -> list[VnetDeclaration]:
        return appliance.n6.vnets(request.user)

    @post("/vnets", sync_to_thread=True)
    def create_vnet(
        self, request: AuthedRequest, data: JSONBody[DeclarationBody], appliance: ApplianceDep
    ) -> VnetDeclaration:
        return appliance.n6.create_vnet(request.user, data)

    @get("/vnets/{tenant:str}/{name:str}", sync_to_thread=True)
    def get_vnet(
        self,
        request: AuthedRequest,
        tenant: FromPath[str],
        name: FromPath[str],
        appliance: ApplianceDep,
    ) -> VnetDeclaration:
        return appliance.n6.get_vnet(request.user, tenant, name)

    @patch("/vnets/{tenant:str}/{name:str}", sync_to_thread=True)
    def update_vnet(
        self,
        request: AuthedRequest,
        tenant: FromPath[str],
        name: FromPath[str],
        data: JSONBody[DeclarationBody],
        appliance: ApplianceDep,
    ) -> VnetDeclaration:
        return appliance.n6.update_vnet(request.user, tenant, name, data)

    @delete("/vnets/{tenant:str}/{name:str}", sync_to_thread=True)
    def delete_vnet(
        self,
        request: AuthedRequest,
        tenant: FromPath[str],
        name: FromPath[str],
        appliance: ApplianceDep,
    ) -> None:
        appliance.n6.delete_vnet(request.user, tenant, name)

    @post("/plan", sync_to_thread=True, status_code=200)
    def plan(self, request: AuthedRequest, appliance: ApplianceDep) -> N6Changes:
        request.user.require_infra_admin()
        return N6Changes(changes=appliance.n6.plan())

    @post("/apply", sync_to_thread=True, status_code=200)
    def apply(self, request: AuthedRequest, appliance: ApplianceDep) -> N6Changes:
        return N6Changes(changes=appliance.n6.apply(request.user))

    @get("/status", sync_to_thread=True)
    def status(self, request: AuthedRequest, appliance: ApplianceDep) -> N6Status:
        """The N6 backends, the OVS datapaths this host runs, and the last apply's result."""
        require_node_scope(request.user)
        return appliance.n6.status()

    @get("/state", sync_to_thread=True)
    def state(self, request: AuthedRequest, appliance: ApplianceDep) -> list[VnetState]:
        return appliance.n6.state(request.user)

    @get("/sessions", sync_to_thread=True, responses=problem_responses(409))
    def sessions(
        self, request: AuthedRequest, appliance: ApplianceDep
    ) -> dict[str, list[PfcpSession]]:
        return appliance.n6.sessions(request.user)

    @get(
        "/upf-config",
        sync_to_thread=True,
        media_type="application/yaml",
        # A YAML document: its schema is the document's, not a string's.
        responses={200: ResponseSpec(UpfConfig, media_type="application/yaml")},
    )
    def upf_config(self, request: AuthedRequest, appliance: ApplianceDep) -> str:
        request.user.require_infra_admin()
        return appliance.n6.upf_config()
