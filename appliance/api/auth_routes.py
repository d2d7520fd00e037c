"""Login, tokens, users and tenants."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from appliance.api.deps import ApplianceDep, AuthedRequest
from appliance.services.auth import Role


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    username: str | None = None  # another user's token: infra-admin only


class UserRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str
    role: Role
    tenant: str | None = None


class TenantRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    description: str = ""


class AuthController(Controller):
    path = "/api/v1"
    tags = ("auth",)

    @post("/auth/login", sync_to_thread=True)
    def login(self, data: JSONBody[LoginRequest], appliance: ApplianceDep) -> dict[str, Any]:
        token, expires = appliance.auth.login(data.username, data.password)
        return {"token": token, "expires_at": expires.isoformat()}

    @post("/auth/logout", status_code=HTTP_204_NO_CONTENT, sync_to_thread=True)
    def logout(self, request: AuthedRequest, appliance: ApplianceDep) -> None:
        appliance.auth.revoke(request.user, request.user.token_id)

    @get("/auth/me")
    async def me(self, request: AuthedRequest) -> dict[str, Any]:
        p = request.user
        return {"username": p.username, "role": p.role.value, "tenant": p.tenant}

    @get("/tokens", sync_to_thread=True)
    def list_tokens(self, request: AuthedRequest, appliance: ApplianceDep) -> list[dict[str, Any]]:
        return appliance.auth.list_tokens(request.user)

    @post("/tokens", sync_to_thread=True)
    def create_token(
        self, request: AuthedRequest, data: JSONBody[TokenRequest], appliance: ApplianceDep
    ) -> dict[str, Any]:
        token = appliance.auth.create_api_token(request.user, data.name, data.username)
        return {"token": token, "name": data.name}

    @delete("/tokens/{token_id:int}", sync_to_thread=True)
    def revoke_token(
        self, request: AuthedRequest, token_id: FromPath[int], appliance: ApplianceDep
    ) -> None:
        appliance.auth.revoke(request.user, token_id)

    @get("/users", sync_to_thread=True)
    def list_users(self, request: AuthedRequest, appliance: ApplianceDep) -> list[dict[str, Any]]:
        request.user.require_infra_admin()
        return appliance.auth.list_users()

    @post("/users", sync_to_thread=True)
    def create_user(
        self, request: AuthedRequest, data: JSONBody[UserRequest], appliance: ApplianceDep
    ) -> dict[str, Any]:
        request.user.require_infra_admin()
        appliance.auth.create_user(data.username, data.password, data.role, data.tenant)
        return {"username": data.username, "role": data.role.value, "tenant": data.tenant}

    @get("/tenants", sync_to_thread=True)
    def list_tenants(self, request: AuthedRequest, appliance: ApplianceDep) -> list[dict[str, Any]]:
        return appliance.auth.list_tenants(request.user)

    @post("/tenants", sync_to_thread=True)
    def create_tenant(
        self, request: AuthedRequest, data: JSONBody[TenantRequest], appliance: ApplianceDep
    ) -> dict[str, Any]:
        request.user.require_infra_admin()
        appliance.auth.create_tenant(data.name, data.description)
        return {"name": data.name, "description": data.description}
