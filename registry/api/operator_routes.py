"""Operator login, tokens and operators."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from registry.api.auth import OperatorRequest
from registry.api.deps import RegistryDep
from registry.store.models import ms_to_iso
from towerbox_core.api.accounts import LoginRequest
from towerbox_core.api.fleet import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenInfo,
    LoginReply,
    OperatorCreate,
    OperatorIdentity,
    OperatorInfo,
)
from towerbox_core.api_params import RowIdPath
from towerbox_core.openapi_problems import problem_responses


class OperatorController(Controller):
    path = "/api/v1"
    tags = ("operators",)

    # Argon2 takes tens of milliseconds: off the event loop.
    @post("/auth/login", sync_to_thread=True, responses=problem_responses(401))
    def login(self, data: JSONBody[LoginRequest], registry: RegistryDep) -> LoginReply:
        token, expires = registry.operators.login(data.username, data.password)
        return LoginReply(token=token, expires_at=ms_to_iso(expires))

    @post("/auth/logout", status_code=HTTP_204_NO_CONTENT, sync_to_thread=True)
    def logout(self, request: OperatorRequest, registry: RegistryDep) -> None:
        registry.operators.revoke(request.user, request.user.token_id)

    @get("/auth/me")
    async def me(self, request: OperatorRequest) -> OperatorIdentity:
        return OperatorIdentity(username=request.user.username, role=request.user.role)

    @get("/tokens", sync_to_thread=True)
    def list_tokens(self, request: OperatorRequest, registry: RegistryDep) -> list[ApiTokenInfo]:
        return registry.operators.list_tokens(request.user)

    @post("/tokens", sync_to_thread=True)
    def create_token(
        self, request: OperatorRequest, data: JSONBody[ApiTokenCreate], registry: RegistryDep
    ) -> ApiTokenCreated:
        token = registry.operators.create_token(request.user, data.name)
        return ApiTokenCreated(token=token, name=data.name)

    @delete("/tokens/{token_id:int}", sync_to_thread=True)
    def revoke_token(
        self, request: OperatorRequest, token_id: RowIdPath, registry: RegistryDep
    ) -> None:
        registry.operators.revoke(request.user, token_id)

    @get("/operators", sync_to_thread=True)
    def list_operators(self, request: OperatorRequest, registry: RegistryDep) -> list[OperatorInfo]:
        request.user.require_write()
        return registry.operators.list_operators()

    @post("/operators", sync_to_thread=True)
    def create_operator(
        self, request: OperatorRequest, data: JSONBody[OperatorCreate], registry: RegistryDep
    ) -> OperatorIdentity:
        request.user.require_write()
        registry.operators.create(data.username, data.password, data.role)
        return OperatorIdentity(username=data.username, role=data.role)
