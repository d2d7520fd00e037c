"""Login, tokens, users and tenants."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from appliance.api.deps import ApplianceDep, AuthedRequest
from towerbox_core.api.accounts import (
    LoginAnswer,
    LoginRequest,
    Me,
    NewToken,
    TenantRequest,
    TenantView,
    TokenRequest,
    TokenView,
    UserCreated,
    UserRequest,
    UserView,
)
from towerbox_core.api_params import RowIdPath
from towerbox_core.openapi_problems import problem_responses


class AuthController(Controller):
    path = "/api/v1"
    tags = ("auth",)

    @post("/auth/login", sync_to_thread=True, responses=problem_responses(401))
    def login(self, data: JSONBody[LoginRequest], appliance: ApplianceDep) -> LoginAnswer:
        token, expires = appliance.auth.login(data.username, data.password)
        return LoginAnswer(token=token, expires_at=expires.isoformat())

    @post("/auth/logout", status_code=HTTP_204_NO_CONTENT, sync_to_thread=True)
    def logout(self, request: AuthedRequest, appliance: ApplianceDep) -> None:
        appliance.auth.revoke(request.user, request.user.token_id)

    @get("/auth/me")
    async def me(self, request: AuthedRequest) -> Me:
        p = request.user
        return Me(username=p.username, role=p.role.value, tenant=p.tenant)

    @get("/tokens", sync_to_thread=True)
    def list_tokens(self, request: AuthedRequest, appliance: ApplianceDep) -> list[TokenView]:
        return appliance.auth.tokens(request.user)

    @post("/tokens", sync_to_thread=True)
    def create_token(
        self, request: AuthedRequest, data: JSONBody[TokenRequest], appliance: ApplianceDep
    ) -> NewToken:
        token = appliance.auth.create_api_token(request.user, data.name, data.username)
        return NewToken(token=token, name=data.name)

    @delete("/tokens/{token_id:int}", sync_to_thread=True)
    def revoke_token(
        self, request: AuthedRequest, token_id: RowIdPath, appliance: ApplianceDep
    ) -> None:
        appliance.auth.revoke(request.user, token_id)

    @get("/users", sync_to_thread=True)
    def list_users(self, request: AuthedRequest, appliance: ApplianceDep) -> list[UserView]:
        return appliance.auth.list_users(request.user)

    @post("/users", sync_to_thread=True)
    def create_user(
        self, request: AuthedRequest, data: JSONBody[UserRequest], appliance: ApplianceDep
    ) -> UserCreated:
        tenant = appliance.auth.add_user(
            request.user, data.username, data.password, data.role, data.tenant
        )
        return UserCreated(username=data.username, role=data.role.value, tenant=tenant)

    @delete("/users/{username:str}", sync_to_thread=True)
    def delete_user(
        self, request: AuthedRequest, username: FromPath[str], appliance: ApplianceDep
    ) -> None:
        appliance.auth.delete_user(request.user, username)

    @get("/tenants", sync_to_thread=True)
    def list_tenants(self, request: AuthedRequest, appliance: ApplianceDep) -> list[TenantView]:
        return appliance.auth.list_tenants(request.user)

    @post("/tenants", sync_to_thread=True)
    def create_tenant(
        self, request: AuthedRequest, data: JSONBody[TenantRequest], appliance: ApplianceDep
    ) -> TenantView:
        request.user.require_infra_admin()
        appliance.auth.create_tenant(data.name, data.description, data.labels)
        return TenantView(name=data.name, description=data.description, labels=data.labels)
