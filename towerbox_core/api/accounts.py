"""Login, tokens, users and tenants on a node."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec


class Role(enum.StrEnum):
    INFRA_ADMIN = "infra-admin"  # the whole node
    TENANT_ADMIN = "tenant-admin"  # its tenant's objects and users
    TENANT_USER = "tenant-user"  # deploys and runs its tenant's VMs; manages no users
    VIEWER = "viewer"  # read-only; its tenant's objects when it has one
    # The edge agent: reads and acks the journal, reports sync status, hands desired
    # documents over. Routes open to it say so; every other route refuses it.
    SYNC_AGENT = "sync-agent"


# Names (users, tenants, tokens) are checked by the node, which answers a bad one
# with 422 ``invalid_name`` and says why; only plain bounds are checked here.
# Bounds that cost nothing to check and keep a login from hashing megabytes.
LoginName = Annotated[str, msgspec.Meta(max_length=255)]
Password = Annotated[str, msgspec.Meta(max_length=1024)]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    """POST /api/v1/auth/login, on the appliance and on the registry."""

    username: LoginName
    password: Password


class LoginAnswer(msgspec.Struct, frozen=True):
    token: str
    expires_at: str  # ISO 8601, UTC


class Me(msgspec.Struct, frozen=True):
    username: str
    role: str
    tenant: str | None


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    username: str | None = None  # another user's token: infra-admin only


class NewToken(msgspec.Struct, frozen=True):
    token: str
    name: str


class TokenView(msgspec.Struct, frozen=True):
    id: int
    name: str
    kind: str
    user: str
    created_at: str
    expires_at: str | None


class UserRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str
    role: Role
    tenant: str | None = None


class UserCreated(msgspec.Struct, frozen=True):
    username: str
    role: str
    tenant: str | None


class UserView(msgspec.Struct, frozen=True):
    username: str
    role: str
    tenant: str | None
    disabled: bool


class TenantRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    description: str = ""
    labels: dict[str, str] = {}


class TenantView(msgspec.Struct, frozen=True):
    name: str
    description: str
    labels: dict[str, str] = {}
