"""Operator login, tokens and operators."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from registry.api.auth import OperatorRequest
from registry.api.deps import RegistryDep
from registry.services.operators import OperatorRole
from registry.store.models import ms_to_iso


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class OperatorRequestBody(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str
    role: OperatorRole = OperatorRole.VIEWER


class OperatorController(Controller):
    path = "/api/v1"
    tags = ("operators",)

    # Argon2 takes tens of milliseconds: off the event loop.
    @post("/auth/login", sync_to_thread=True)
    def login(self, data: JSONBody[LoginRequest], registry: RegistryDep) -> dict[str, Any]:
        token, expires = registry.operators.login(data.username, data.password)
        return {"token": token, "expires_at": ms_to_iso(expires)}

    @post("/auth/logout", status_code=HTTP_204_NO_CONTENT, sync_to_thread=True)
    def logout(self, request: OperatorRequest, registry: RegistryDep) -> None:
        registry.operators.revoke(request.user, request.user.token_id)

    @get("/auth/me")
    async def me(self, request: OperatorRequest) -> dict[str, Any]:
        return {"username": request.user.username, "role": request.user.role.value}

    @get("/tokens", sync_to_thread=True)
    def list_tokens(self, request: OperatorRequest, registry: RegistryDep) -> list[dict[str, Any]]:
        return registry.operators.list_tokens(request.user)

    @post("/tokens", sync_to_thread=True)
    def create_token(
        self, request: OperatorRequest, data: JSONBody[TokenRequest], registry: RegistryDep
    ) -> dict[str, Any]:
        return {
            "token": registry.operators.create_token(request.user, data.name),
            "name": data.name,
        }

    @delete("/tokens/{token_id:int}", sync_to_thread=True)
    def revoke_token(
        self, request: OperatorRequest, token_id: FromPath[int], registry: RegistryDep
    ) -> None:
        registry.operators.revoke(request.user, token_id)

    @get("/operators", sync_to_thread=True)
    def list_operators(
        self, request: OperatorRequest, registry: RegistryDep
    ) -> list[dict[str, Any]]:
        request.user.require_write()
        return registry.operators.list_operators()

    @post("/operators", sync_to_thread=True)
    def create_operator(
        self, request: OperatorRequest, data: JSONBody[OperatorRequestBody], registry: RegistryDep
    ) -> dict[str, Any]:
        request.user.require_write()
        registry.operators.create(data.username, data.password, data.role)
        return {"username": data.username, "role": data.role.value}
