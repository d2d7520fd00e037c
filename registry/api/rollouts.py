"""Staged rollouts (docs/rollouts.md): admins publish and steer, viewers read.

Handlers run in worker threads, as the other operator routes do.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from registry.api.auth import OperatorRequest
from registry.api.deps import RegistryDep
from registry.services.rollout_step import advance
from towerbox_core.api.rollouts import Rollout, RolloutCreate, RolloutList, RolloutSites
from towerbox_core.api_params import CountQuery, RowIdPath
from towerbox_core.openapi_problems import problem_responses

Limit = Annotated[int, QueryParameter(ge=1, le=10000)]
WaveQuery = Annotated[int | None, QueryParameter(ge=0, le=1000)]


class RolloutController(Controller):
    path = "/api/v1/rollouts"
    tags = ("rollouts",)

    @post("/", sync_to_thread=True, status_code=HTTP_201_CREATED)
    def create(
        self, request: OperatorRequest, data: JSONBody[RolloutCreate], registry: RegistryDep
    ) -> Rollout:
        request.user.require_write()
        made = registry.rollouts.create(data, request.user.username)
        # The canary goes out now rather than at the next tick.
        advance(made.id, registry.sites.status)
        return registry.rollouts.get(made.id)

    @get("/", sync_to_thread=True, responses=problem_responses(422))
    def list_rollouts(
        self,
        registry: RegistryDep,
        # "state" is a name Litestar reserves for the application state.
        rollout_state: Annotated[str | None, QueryParameter(name="state")] = None,
        group: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
        limit: Limit = 100,
        offset: CountQuery = 0,
    ) -> RolloutList:
        return registry.rollouts.list(rollout_state, group, kind, limit, offset)

    @get("/{rollout_id:int}", sync_to_thread=True)
    def get_rollout(self, rollout_id: RowIdPath, registry: RegistryDep) -> Rollout:
        return registry.rollouts.get(rollout_id)

    @get("/{rollout_id:int}/sites", sync_to_thread=True, responses=problem_responses(422))
    def sites(
        self,
        rollout_id: RowIdPath,
        registry: RegistryDep,
        wave: WaveQuery = None,
        status: FromQuery[str | None] = None,
        limit: Limit = 1000,
        offset: CountQuery = 0,
    ) -> RolloutSites:
        return registry.rollouts.sites(rollout_id, wave, status, limit, offset)

    @post("/{rollout_id:int}/pause", sync_to_thread=True, status_code=HTTP_200_OK)
    def pause(
        self, request: OperatorRequest, rollout_id: RowIdPath, registry: RegistryDep
    ) -> Rollout:
        request.user.require_write()
        return registry.rollouts.pause(rollout_id, request.user.username)

    @post("/{rollout_id:int}/resume", sync_to_thread=True, status_code=HTTP_200_OK)
    def resume(
        self, request: OperatorRequest, rollout_id: RowIdPath, registry: RegistryDep
    ) -> Rollout:
        request.user.require_write()
        registry.rollouts.resume(rollout_id, request.user.username)
        advance(rollout_id, registry.sites.status)
        return registry.rollouts.get(rollout_id)

    @post("/{rollout_id:int}/abort", sync_to_thread=True, status_code=HTTP_200_OK)
    def abort(
        self, request: OperatorRequest, rollout_id: RowIdPath, registry: RegistryDep
    ) -> Rollout:
        request.user.require_write()
        return registry.rollouts.abort(rollout_id, request.user.username)

    @post("/{rollout_id:int}/rollback", sync_to_thread=True, status_code=HTTP_200_OK)
    def rollback(
        self, request: OperatorRequest, rollout_id: RowIdPath, registry: RegistryDep
    ) -> Rollout:
        request.user.require_write()
        return registry.rollouts.rollback(rollout_id, request.user.username)
