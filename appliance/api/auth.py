"""Bearer-token authentication for every route but the health check and login."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp

from appliance.services.auth import AuthService, sign_journal_as
from towerbox_core.errors import Unauthorized

PUBLIC_PATHS = ["^/healthz$", "^/api/v1/auth/login$"]


def make_auth_middleware(auth: AuthService) -> type[AbstractAuthenticationMiddleware]:
    class TokenAuthMiddleware(AbstractAuthenticationMiddleware):
        def __init__(self, app: ASGIApp) -> None:
            super().__init__(app, exclude=PUBLIC_PATHS)

        async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
            header = connection.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise NotAuthorizedException(
                    "send 'Authorization: Bearer <token>'; get a token from POST /api/v1/auth/login"
                )
            # An indexed lookup of one row: cheap enough for the event loop.
            principal = auth.authenticate(token.strip())
            # The request runs in its own context: what it journals is signed by its caller.
            sign_journal_as(principal)
            return AuthenticationResult(user=principal, auth=token)

    return TokenAuthMiddleware


__all__ = ["PUBLIC_PATHS", "Unauthorized", "make_auth_middleware"]
