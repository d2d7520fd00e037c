"""Who is calling: an operator (``tbr_`` token) or a site (``tbs_`` secret).

Site secrets work only on ``/api/v1/sync/*`` and operator tokens only elsewhere, so
a node that leaks its secret exposes nothing but its own sync routes, and those
address no site by name: a site can only ever read and write its own records.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp

from registry.context import Registry
from registry.services.operators import OperatorPrincipal
from registry.services.sites import SitePrincipal
from towerbox_core.errors import Unauthorized

PUBLIC_PATHS = ["^/healthz$", "^/api/v1/auth/login$", "^/api/v1/enroll$"]
# A node provisioning itself authenticates with its provisioning credential, checked
# by the route (registry.api.provisioning).
PUBLIC_PATHS.append("^/api/v1/provision$")
SYNC_PREFIX = "/api/v1/sync/"

OperatorRequest = Request[OperatorPrincipal, str, Any]
SiteRequest = Request[SitePrincipal, str, Any]


def make_auth_middleware(registry: Registry) -> type[AbstractAuthenticationMiddleware]:
    class RegistryAuthMiddleware(AbstractAuthenticationMiddleware):
        def __init__(self, app: ASGIApp) -> None:
            super().__init__(app, exclude=PUBLIC_PATHS)

        async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
            header = connection.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise NotAuthorizedException(
                    "send 'Authorization: Bearer <token>': an operator token from "
                    "POST /api/v1/auth/login, or the site secret on /api/v1/sync/*"
                )
            # One indexed lookup of one row (a worker thread only on PostgreSQL).
            if connection.url.path.startswith(SYNC_PREFIX):
                principal: Any = await registry.run_db(registry.sites.authenticate, token)
            elif token.startswith("tbs_"):
                raise Unauthorized(
                    "a site secret only works on /api/v1/sync/*", code="operator_token_required"
                )
            else:
                principal = await registry.run_db(registry.operators.authenticate, token)
            return AuthenticationResult(user=principal, auth=token)

    return RegistryAuthMiddleware
