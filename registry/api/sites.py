"""What operators call: sites, enrollment tokens, journals, objects, desired state,
conflicts, fleet queries.

Handlers run in worker threads: a fleet query or a checksum over a long journal must
not hold up the heartbeats that agents send to the same worker.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from registry.api.auth import OperatorRequest
from registry.api.deps import RegistryDep
from registry.services.desired import group_scope, site_scope
from registry.services.versions import version_filter
from towerbox_core.api.fleet import (
    DesiredConflicts,
    DesiredRecord,
    DesiredWritten,
    EnrollmentTokenCreate,
    EnrollmentTokenIssued,
    FleetVms,
    SiteCreate,
    SiteCreated,
    SiteDesired,
    SiteDetail,
    SiteInfo,
    SiteJournal,
    SiteJournalSummary,
    SiteList,
    SiteObjects,
    SiteUpdate,
)
from towerbox_core.api_params import SQL_INT_MAX, CountQuery, OptionalCountQuery
from towerbox_core.openapi_problems import problem_responses

Limit = Annotated[int, QueryParameter(ge=1, le=20000)]
Offset = CountQuery

# A desired-state document is the operator's own JSON object, whatever its kind.
DesiredBody = JSONBody[Any]
_Versioned = TypeVar("_Versioned", DesiredRecord, DesiredWritten)


def _etag_response(result: _Versioned) -> Response[_Versioned]:
    return Response(result, headers={"ETag": f'"{result.etag}"'})


class SiteController(Controller):
    path = "/api/v1"
    tags = ("sites",)

    @post("/sites", sync_to_thread=True, status_code=HTTP_201_CREATED)
    def create_site(
        self, request: OperatorRequest, data: JSONBody[SiteCreate], registry: RegistryDep
    ) -> SiteCreated:
        request.user.require_write()
        return registry.sites.create(data.name, data.region, data.labels, data.token_ttl_s)

    @get("/sites", sync_to_thread=True, responses=problem_responses(422))
    def list_sites(
        self,
        registry: RegistryDep,
        status: Annotated[
            str | None, QueryParameter(description="pending|online|stale|offline")
        ] = None,
        label: Annotated[
            list[str] | None, QueryParameter(description="key=value, repeatable")
        ] = None,
        region: FromQuery[str | None] = None,
        limit: Limit = 1000,
        offset: Offset = 0,
        q: Annotated[
            str | None, QueryParameter(description="part of the name or hostname", max_length=63)
        ] = None,
        sort: Annotated[
            str | None, QueryParameter(description="name|region|hostname|last_contact, -desc")
        ] = None,
        component: Annotated[
            str | None, QueryParameter(description="towerbox|agent|gpu_driver|vgpu_manager")
        ] = None,
        version: Annotated[
            str | None, QueryParameter(description="with component: sites on that version")
        ] = None,
    ) -> SiteList:
        running = version_filter(component, version)
        return registry.sites.search(
            status, label or [], region, limit, offset, q, sort, version=running
        )

    @get("/sites/{name:str}", sync_to_thread=True)
    def get_site(self, name: FromPath[str], registry: RegistryDep) -> SiteDetail:
        return registry.sites.detail(registry.sites.get(name))

    @patch("/sites/{name:str}", sync_to_thread=True)
    def update_site(
        self,
        request: OperatorRequest,
        name: FromPath[str],
        data: JSONBody[SiteUpdate],
        registry: RegistryDep,
    ) -> SiteInfo:
        request.user.require_write()
        return registry.sites.update(name, data.region, data.labels)

    @delete("/sites/{name:str}", sync_to_thread=True, status_code=HTTP_204_NO_CONTENT)
    def delete_site(
        self, request: OperatorRequest, name: FromPath[str], registry: RegistryDep
    ) -> None:
        request.user.require_write()
        registry.sites.delete(name)

    @post("/sites/{name:str}/enrollment-tokens", sync_to_thread=True, status_code=HTTP_201_CREATED)
    def new_token(
        self,
        request: OperatorRequest,
        name: FromPath[str],
        registry: RegistryDep,
        data: JSONBody[EnrollmentTokenCreate | None] = None,
    ) -> EnrollmentTokenIssued:
        request.user.require_write()
        return registry.sites.new_enrollment_token(name, data.ttl_s if data else None)

    @get("/sites/{name:str}/journal", sync_to_thread=True)
    def journal(
        self,
        name: FromPath[str],
        registry: RegistryDep,
        after: Offset = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=5000)] = 500,
        epoch: Annotated[
            int | None,
            QueryParameter(ge=1, le=SQL_INT_MAX, description="an epoch (default: the current one)"),
        ] = None,
    ) -> SiteJournal:
        if epoch is not None:
            return registry.provisioning.journal(name, epoch, after, limit)
        return registry.fleet.journal(name, after, limit)

    @get("/sites/{name:str}/journal/summary", sync_to_thread=True)
    def journal_summary(
        self,
        name: FromPath[str],
        registry: RegistryDep,
        through: OptionalCountQuery = None,
    ) -> SiteJournalSummary:
        return registry.fleet.summary(name, through)

    @get("/sites/{name:str}/objects", sync_to_thread=True)
    def objects(
        self,
        name: FromPath[str],
        registry: RegistryDep,
        type: FromQuery[str | None] = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> SiteObjects:
        return registry.fleet.objects(name, type, limit, offset)

    # -- desired state ---------------------------------------------------------------

    @get("/sites/{name:str}/desired", sync_to_thread=True)
    def site_desired(self, name: FromPath[str], registry: RegistryDep) -> SiteDesired:
        site = registry.sites.get(name)
        return SiteDesired(
            site=name,
            own=registry.desired.list_scope(site_scope(name)),
            effective=registry.desired.index(site.id, name),
        )

    @get("/sites/{name:str}/desired/{kind:str}", sync_to_thread=True)
    def get_site_desired(
        self, name: FromPath[str], kind: FromPath[str], registry: RegistryDep
    ) -> Response[DesiredRecord]:
        registry.sites.get(name)
        return _etag_response(registry.desired.get(site_scope(name), kind))

    @put("/sites/{name:str}/desired/{kind:str}", sync_to_thread=True)
    def put_site_desired(
        self,
        request: OperatorRequest,
        name: FromPath[str],
        kind: FromPath[str],
        data: DesiredBody,
        registry: RegistryDep,
    ) -> Response[DesiredWritten]:
        request.user.require_write()
        registry.sites.get(name)
        result = registry.desired.put(
            site_scope(name), kind, data, request.headers.get("if-match"), request.user.username
        )
        return _etag_response(result)

    @get("/groups/{group:str}/desired/{kind:str}", sync_to_thread=True)
    def get_group_desired(
        self, group: FromPath[str], kind: FromPath[str], registry: RegistryDep
    ) -> Response[DesiredRecord]:
        return _etag_response(registry.desired.get(group_scope(group), kind))

    @put("/groups/{group:str}/desired/{kind:str}", sync_to_thread=True)
    def put_group_desired(
        self,
        request: OperatorRequest,
        group: FromPath[str],
        kind: FromPath[str],
        data: DesiredBody,
        registry: RegistryDep,
    ) -> Response[DesiredWritten]:
        request.user.require_write()
        result = registry.desired.put(
            group_scope(group), kind, data, request.headers.get("if-match"), request.user.username
        )
        return _etag_response(result)

    # -- fleet -----------------------------------------------------------------------

    @get("/conflicts", sync_to_thread=True, responses=problem_responses(404))
    def conflicts(
        self,
        registry: RegistryDep,
        site: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> DesiredConflicts:
        return registry.fleet.conflicts(site, kind, limit, offset)

    @get("/fleet/vms", sync_to_thread=True, responses=problem_responses(404))
    def fleet_vms(
        self,
        registry: RegistryDep,
        site: FromQuery[str | None] = None,
        # "state" is a name Litestar reserves for the application state.
        vm_state: Annotated[str | None, QueryParameter(name="state")] = None,
        tenant: FromQuery[str | None] = None,
        role: FromQuery[str | None] = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> FleetVms:
        return registry.fleet.vms(site, vm_state, tenant, role, limit, offset)
